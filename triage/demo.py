"""`triage demo`: a generated world streamed live, with the local control plane in the loop.

The world is planned over `DEMO_DAYS` days but only its history up to `LEAD` before v2's score
compression is written; a `DemoClock` then runs simulated time from there at `speed` simulated
seconds per second, and a `Streamer` appends the traffic up to the clock's now every couple of
seconds, with v2's share taken from the control plane's KServe InferenceService. Running the
traffic-shift runbook against the control plane therefore really changes the new traffic.

Nothing here imports Textual at module level; `run_tui` imports it when the UI opens.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from triage.generate import (
    CONFIG,
    DEFAULT_START,
    PREDICTIONS_DIR,
    SCORE_COMPRESSION,
    AppendResult,
    GenerateError,
    Manifest,
    append_traffic,
    config_text,
    generate,
    plan_incidents,
    read_manifest,
)

DEMO_DAYS = 7
DEMO_ROWS = 150_000
DEMO_SEED = 7
# 6h windows pass in 18 s; v2's score compression starts 24 s after the stream does.
DEFAULT_SPEED = 1200.0
LEAD = timedelta(hours=8)
STREAM_INTERVAL_S = 2.0
REFRESH_S = 2.0
TOKEN_ENV = "TRIAGE_DEMO_TOKEN"
LOCK_FILE = ".demo.lock"
# The shipped runbooks' targets; the simulator serves all of them on one base URL.
TARGETS = ("kubernetes", "mlflow", "flags")
NAMESPACE, SERVICE = "models", "fraud"
DEMO_MARKER = "# --- written by `triage demo`: the local control plane and the shipped runbooks ---"
RUNBOOKS_DIR = Path(__file__).resolve().parent.parent / "runbooks"
HINT = (
    "triage demo: v2's decision rate collapses within about a minute. Press 6 for alerts, enter on "
    "the decision-rate alert for v2, enter for its runbook, select shift-traffic, x for the dry run, "
    "x to run it, then 1 to watch the recovery. q stops the UI, the stream and the control plane."
)

_LIVE_STAMP = re.compile(r"^live-\d{8}T\d{6}\.\d{3}Z-(\d{8}T\d{6}\.\d{3})Z\.")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class DemoClock:
    """Simulated time: `origin` when created, advancing `speed` simulated seconds per real second.

    Implements the TUI's `Clock` protocol; `live` so that every refresh ingests the new rows.
    `source` (monotonic seconds) and `wall_source` are injectable for tests.
    """

    origin: datetime
    speed: float = DEFAULT_SPEED
    source: Callable[[], float] = time.monotonic
    wall_source: Callable[[], datetime] = utc_now
    started: float = field(init=False)

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError(f"speed must be positive, got {self.speed}")
        self.started = self.source()

    @property
    def mode(self) -> str:
        return "demo"

    @property
    def live(self) -> bool:
        return True

    def now(self) -> datetime:
        return self.origin + timedelta(seconds=(self.source() - self.started) * self.speed)

    def wall(self) -> datetime:
        return self.wall_source()


class Streamer:
    """Appends the world's traffic from `start` up to `clock.now()` every `interval_s` seconds.

    `canary_percent` is asked before each append (the control plane's served split). A failing
    append is kept in `error` and retried on the next tick; `stop` joins the thread.
    """

    def __init__(
        self,
        out_dir: str | Path,
        clock: DemoClock,
        canary_percent: Callable[[], float],
        start: datetime,
        seed: int = DEMO_SEED,
        interval_s: float = STREAM_INTERVAL_S,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.clock = clock
        self.canary_percent = canary_percent
        self.last_end = start
        self.seed = seed
        self.interval_s = interval_s
        self.error: Exception | None = None
        self.appended: list[AppendResult] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> AppendResult | None:
        """Append [last_end, clock.now()) now (whole milliseconds); None if no time has passed."""
        now = self.clock.now()
        end = now - timedelta(microseconds=now.microsecond % 1000)
        if end <= self.last_end:
            return None
        result = append_traffic(
            self.out_dir, self.last_end, end, self.seed, canary_percent=float(self.canary_percent())
        )
        self.last_end = end
        self.appended.append(result)
        return result

    def _run(self) -> None:
        while not self._stopping.wait(self.interval_s):
            try:
                self.step()
                self.error = None
            except Exception as exc:  # keep streaming; the next tick retries the span
                self.error = exc

    def start(self) -> Streamer:
        self._thread = threading.Thread(target=self._run, name="demo-streamer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def history_end(start: datetime = DEFAULT_START, days: int = DEMO_DAYS) -> datetime:
    """Where the written history stops: `LEAD` before v2's score compression starts."""
    onset = next(i.onset for i in plan_incidents(start, days) if i.kind == SCORE_COMPRESSION)
    return onset - LEAD


def prepare(out_dir: str | Path, rows: int = DEMO_ROWS, seed: int = DEMO_SEED) -> Manifest:
    """Generate the demo world into `out_dir` unless it has a triage.toml; return its manifest."""
    out = Path(out_dir)
    if not (out / CONFIG).exists():
        generate(out, rows, DEMO_DAYS, seed, until=history_end(DEFAULT_START, DEMO_DAYS))
    return read_manifest(out)


def stream_start(out_dir: str | Path, manifest: Manifest) -> datetime:
    """Where streaming resumes: the end of the last appended span, else the end of the history."""
    latest = manifest.end
    for path in (Path(out_dir) / PREDICTIONS_DIR).glob("live-*"):
        match = _LIVE_STAMP.match(path.name)
        if match:
            end = datetime.strptime(match[1], "%Y%m%dT%H%M%S.%f").replace(tzinfo=UTC)
            latest = max(latest, end)
    return latest


def write_config(out_dir: str | Path, manifest: Manifest, base_url: str) -> Path:
    """Rewrite triage.toml: the generator's config, the runbooks folder and one target per
    shipped runbook target, all at `base_url` with a bearer token read from `TOKEN_ENV`."""
    path = Path(out_dir) / CONFIG
    runbooks = json.dumps(str(RUNBOOKS_DIR))  # a TOML basic string
    targets = "".join(
        f'\n[targets.{name}]\nbase_url = "{base_url}"\n'
        f'auth = {{ type = "bearer", token_env = "{TOKEN_ENV}" }}\n'
        for name in TARGETS
    )
    text = f"{DEMO_MARKER}\nrunbooks = {runbooks}\n\n{config_text(manifest)}{targets}"
    path.write_text(text, encoding="utf-8")
    return path


def demo_token() -> str:
    """The control plane's bearer token: `TOKEN_ENV` if set, else a fresh random one put there."""
    token = os.environ.get(TOKEN_ENV)
    if not token:
        token = secrets.token_urlsafe(24)
        os.environ[TOKEN_ENV] = token
    return token


def set_canary_percent(base_url: str, token: str, percent: int) -> None:
    """Set the InferenceService's canaryTrafficPercent through the control plane's KServe API."""
    url = f"{base_url}/apis/serving.kserve.io/v1beta1/namespaces/{NAMESPACE}/inferenceservices/{SERVICE}"
    body = json.dumps({"spec": {"predictor": {"canaryTrafficPercent": percent}}}).encode()
    request = urllib.request.Request(
        url,
        data=body,
        method="PATCH",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/merge-patch+json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()


def run_headless(out_dir: str | Path, rows: int = DEMO_ROWS) -> int:
    """Without a terminal: generate if absent, ingest, then `triage info` and `triage check`."""
    from triage.cli import main

    manifest = prepare(out_dir, rows)
    config = str(Path(out_dir) / CONFIG)
    for argv in (["ingest"], ["info"]):
        status = main(["--config", config, *argv])
        if status:
            return status
    # `check` exits 1/2 when alerts fire, which is what the demo world is for: not a failure.
    as_of = stream_start(out_dir, manifest)  # the end of what is written, streamed or not
    status = main(["--config", config, "check", "--at", as_of.isoformat()])
    return 0 if status in (0, 1, 2) else status


def run_live(
    out_dir: str | Path,
    rows: int = DEMO_ROWS,
    speed: float = DEFAULT_SPEED,
    hint: Callable[[str], None] = print,
) -> int:
    """Generate if absent, start the control plane and the stream, open the TUI; stop all on exit."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # One live demo per folder: two would append the same spans and fight over the store.
    with open(out / LOCK_FILE, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise GenerateError(f"{out}: another `triage demo` is running on this folder") from None
        return _run_live_locked(out, rows, speed, hint)


def _run_live_locked(out: Path, rows: int, speed: float, hint: Callable[[str], None]) -> int:
    from triage.cli import main
    from triage.runbooks.simulator import ControlPlane

    if not (out / CONFIG).exists():
        hint(f"triage demo: generating a {DEMO_DAYS}-day world in {out} (once; about a minute)…")
    manifest = prepare(out, rows)
    token = demo_token()
    with ControlPlane(token=token, settle_s=0.3) as plane:
        # The history serves v2 to half the traffic; the simulator's own scenario starts at 10 %.
        set_canary_percent(plane.url, token, round(manifest.rollout.canary_percent_after))
        config_path = write_config(out, manifest, plane.url)
        # Ingest what is there now, so that the UI's first snapshot only has the stream to add.
        status = main(["--config", str(config_path), "ingest"])
        if status:
            return status
        clock = DemoClock(stream_start(out, manifest), speed)
        streamer = Streamer(out, clock, plane.canary_percent, clock.origin, manifest.seed)
        hint(HINT)
        streamer.start()
        try:
            return run_tui(config_path, clock)
        finally:
            streamer.stop()


def run_tui(config_path: Path, clock: DemoClock, refresh_s: float = REFRESH_S) -> int:
    """Open the TUI in live mode on `clock`; returns when the user quits."""
    from functools import partial

    from triage.commands.ui_cmd import open_source
    from triage.config import load_config
    from triage.tui.app import TriageApp

    config = load_config(config_path)
    app = TriageApp(partial(open_source, config, True), clock, refresh_s, None)
    try:
        app.run()
    finally:
        app.close_source()
    return app.return_code or 0
