"""`triage demo`: the demo clock, the streamer in the loop with the control plane, the config, headless."""

from __future__ import annotations

import io
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from triage import demo
from triage.cli import main
from triage.config import load_config
from triage.generate import DEFAULT_START, SCORE_COMPRESSION, generate, plan_incidents, read_manifest
from triage.runbooks.simulator import ControlPlane

TINY_ROWS = 6000  # the fewest whose busiest 6h windows hold min_samples (200): a judged check
T0 = datetime(2026, 1, 5, 18, tzinfo=UTC)


class FakeTime:
    """A monotonic source the test moves by hand."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo-world")
    demo.prepare(out, rows=TINY_ROWS)
    return out


@pytest.fixture
def fresh_world(world: Path, tmp_path: Path) -> Path:
    out = tmp_path / "demo"
    shutil.copytree(world, out)
    return out


def test_demo_clock_advances_at_speed() -> None:
    fake = FakeTime()
    clock = demo.DemoClock(T0, speed=1200.0, source=fake)
    assert (clock.mode, clock.live) == ("demo", True)
    assert clock.now() == T0
    fake.t += 18.0
    assert clock.now() == T0 + timedelta(hours=6)
    assert clock.wall().tzinfo is not None
    with pytest.raises(ValueError):
        demo.DemoClock(T0, speed=0)


def test_history_ends_before_the_score_compression(world: Path) -> None:
    manifest = read_manifest(world)
    onset = next(
        i.onset for i in plan_incidents(DEFAULT_START, demo.DEMO_DAYS) if i.kind == SCORE_COMPRESSION
    )
    assert manifest.end == demo.history_end() == onset - demo.LEAD
    assert manifest.days == demo.DEMO_DAYS and manifest.window == "6h"
    con = duckdb.connect()
    query = f"SELECT epoch_ms(max(ts)) FROM read_parquet('{world}/logs/predictions/*.parquet')"
    latest = con.execute(query).fetchone()
    assert latest is not None and latest[0] < manifest.end.timestamp() * 1000
    assert demo.stream_start(world, manifest) == manifest.end


def test_generate_until_writes_only_the_history(tmp_path: Path) -> None:
    until = DEFAULT_START + timedelta(days=2, hours=6)
    manifest = generate(tmp_path / "w", 2000, 7, 1, until=until)
    assert manifest.end == until and manifest.rows == 2000
    assert sum(f.rows for f in manifest.prediction_files) < 2000
    assert len(manifest.prediction_files) == 3  # days 1, 2 and the first 6 h of day 3
    with pytest.raises(ValueError, match="until"):
        generate(tmp_path / "x", 2000, 7, 1, until=DEFAULT_START + timedelta(days=8))


def test_streamer_honours_the_control_planes_split(fresh_world: Path) -> None:
    manifest = read_manifest(fresh_world)
    fake = FakeTime()
    clock = demo.DemoClock(manifest.end, speed=3600.0, source=fake)
    with ControlPlane(token="secret", settle_s=0.0) as plane:
        streamer = demo.Streamer(fresh_world, clock, plane.canary_percent, manifest.end, manifest.seed)
        assert streamer.step() is None  # no simulated time has passed
        demo.set_canary_percent(plane.url, "secret", 50)
        fake.t += 3.0  # three simulated hours
        half = streamer.step()
        assert half is not None and half.rows > 0 and 0 < half.canary_rows < half.rows
        demo.set_canary_percent(plane.url, "secret", 0)  # what the runbook's shift step does
        assert plane.canary_percent() == 0
        fake.t += 3.0
        none = streamer.step()
        assert none is not None and none.rows > 0 and none.canary_rows == 0
    versions = (
        duckdb.connect()
        .execute(f"SELECT DISTINCT model_version FROM read_parquet('{none.predictions}')")
        .fetchall()
    )
    assert versions == [("v1",)]
    assert demo.stream_start(fresh_world, manifest) == streamer.last_end
    assert not list((fresh_world / "logs").rglob("*.partial"))


def test_streamer_thread_starts_and_stops(fresh_world: Path) -> None:
    manifest = read_manifest(fresh_world)
    clock = demo.DemoClock(manifest.end, speed=3600.0)
    streamer = demo.Streamer(fresh_world, clock, lambda: 0, manifest.end, interval_s=0.05).start()
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while not streamer.appended and datetime.now(UTC) < deadline:
            streamer._stopping.wait(0.05)
    finally:
        streamer.stop()
    assert streamer.appended and streamer.error is None


def test_demo_config_points_at_the_control_plane(fresh_world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(demo.TOKEN_ENV, raising=False)
    token = demo.demo_token()
    assert token and demo.demo_token() == token
    with ControlPlane(token=token) as plane:
        path = demo.write_config(fresh_world, read_manifest(fresh_world), plane.url)
        config = load_config(path)
        assert set(config.targets) == set(demo.TARGETS)
        for target in config.targets.values():
            assert target.base_url == plane.url
            assert target.auth.type == "bearer" and target.auth.token_env == demo.TOKEN_ENV
        assert (config.runbooks_dir / "kserve-canary-traffic.md").is_file()
        assert config.model("fraud").window is not None
        # Rewritten on each run: a new port replaces the old one.
        config = load_config(demo.write_config(fresh_world, read_manifest(fresh_world), "http://127.0.0.1:1"))
        assert {t.base_url for t in config.targets.values()} == {"http://127.0.0.1:1"}


def test_headless_demo_exits_zero(
    fresh_world: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["demo", "--dir", str(fresh_world), "--rows", str(TINY_ROWS)]) == 0
    out = capsys.readouterr().out
    assert "model fraud" in out and "Alerts" in out


def test_demo_refuses_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", "x.toml", "demo"]) == 2
    assert "--dir" in capsys.readouterr().err


def test_one_live_demo_per_folder(fresh_world: Path) -> None:
    import fcntl

    from triage.generate import GenerateError

    with open(fresh_world / demo.LOCK_FILE, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(GenerateError, match="another `triage demo`"):
            demo.run_live(fresh_world, hint=lambda _: None)
