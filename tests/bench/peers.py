"""Evidently and NannyML, each in its own venv under `_venvs/`, installed and run by the benchmark.

Neither peer goes near triage's venv: they pin pandas below 3 and pull in large trees
(NannyML brings xgboost, lightgbm and cloud SDKs). Each venv is made with the Python running the
benchmark (3.11+) and installed from PyPI with the pins in `PEERS`; a stamp file records the pins,
so a changed pin rebuilds the venv and an unchanged one is reused. Installs run in the background
(`start_install`) while the data is generated; `finish_install` waits for one.

Pins (checked on Python 3.11): evidently 0.7.23 and nannyml 0.13.1 are the newest releases, both
with pandas 2.3.3; NannyML also needs statsmodels. pyarrow reads the Parquet files.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bench.measure import run_measured, tail

RUNNER = Path(__file__).with_name("peer_runner.py")
STAMP = ".bench-requirements"
INSTALL_TIMEOUT_S = 45 * 60
RUN_TIMEOUT_S = 60 * 60


@dataclass(frozen=True)
class Peer:
    name: str
    requirements: tuple[str, ...]


PEERS = (
    Peer("evidently", ("evidently==0.7.23", "pandas<3", "pyarrow")),
    Peer("nannyml", ("nannyml==0.13.1", "statsmodels", "pandas<3", "pyarrow")),
)


class PeerError(RuntimeError):
    """A peer could not be installed or run; the message names the log to read."""


@dataclass
class Install:
    """A peer's venv being prepared; `process` is None when it was already up to date."""

    peer: Peer
    venv: Path
    process: subprocess.Popen[bytes] | None
    log: Path
    started: float

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


def _quiet_env() -> dict[str, str]:
    # No telemetry from either peer, no progress bars or pip chatter in the logs.
    env = dict(os.environ)
    env.update(DO_NOT_TRACK="1", NML_DISABLE_USAGE_LOGGING="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PYTHONPATH", None)
    return env


def start_install(peer: Peer, venv_root: Path) -> Install:
    """Create or reuse the peer's venv; an install that is needed starts in the background."""
    venv = venv_root / peer.name
    wanted = "\n".join(peer.requirements) + "\n"
    stamp = venv / STAMP
    log = venv_root / f"{peer.name}-install.log"
    if stamp.exists() and stamp.read_text() == wanted and (venv / "bin" / "python").exists():
        return Install(peer, venv, None, log, time.perf_counter())
    if venv.exists():
        shutil.rmtree(venv)
    venv_root.mkdir(parents=True, exist_ok=True)
    python = venv / "bin" / "python"
    # `venv` then `pip install` in one shell line, so the whole install runs in the background.
    script = (
        f"{_sh(sys.executable)} -m venv {_sh(venv)} && "
        f"{_sh(python)} -m pip install --progress-bar off "
        + " ".join(_sh(r) for r in peer.requirements)
        + f" && printf %s {_sh(wanted)} > {_sh(stamp)}"
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["/bin/sh", "-c", script], stdout=out, stderr=subprocess.STDOUT, env=_quiet_env()
        )
    return Install(peer, venv, process, log, time.perf_counter())


def finish_install(install: Install) -> float:
    """Wait for the install; seconds it took (0 when reused). PeerError if it failed."""
    if install.process is None:
        return 0.0
    name, left = install.peer.name, INSTALL_TIMEOUT_S - (time.perf_counter() - install.started)
    try:
        code = install.process.wait(timeout=max(1.0, left))
    except subprocess.TimeoutExpired:
        install.process.kill()
        install.process.wait()
        raise PeerError(f"installing {name} took over {INSTALL_TIMEOUT_S} s; see {install.log}") from None
    if code != 0:
        raise PeerError(f"installing {name} failed (exit {code}); see {install.log}:\n{tail(install.log)}")
    return time.perf_counter() - install.started


def run(install: Install, data_dir: Path, work_dir: Path) -> dict[str, Any]:
    """Run the peer on the data set in its venv; the runner's JSON plus wall time and peak RSS."""
    work_dir.mkdir(parents=True, exist_ok=True)
    out = work_dir / f"{install.peer.name}.json"
    out.unlink(missing_ok=True)
    process = run_measured(
        [str(install.python), str(RUNNER), install.peer.name, "--data", str(data_dir), "--out", str(out)],
        stdout=work_dir / f"{install.peer.name}.stdout.log",
        stderr=work_dir / f"{install.peer.name}.stderr.log",
        env=_quiet_env(),
        timeout_s=RUN_TIMEOUT_S,
    )
    if process.returncode != 0 or not out.exists():
        raise PeerError(
            f"{install.peer.name} failed (exit {process.returncode}); see {process.stderr}:\n"
            + tail(process.stderr)
        )
    result: dict[str, Any] = json.loads(out.read_text())
    result["process_wall_s"] = process.wall_s
    result["process_peak_rss_mb"] = process.peak_rss_mb
    return result


def _sh(value: object) -> str:
    return shlex.quote(str(value))
