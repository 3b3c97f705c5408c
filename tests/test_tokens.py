"""Window tokens updated from what changed since an earlier evaluation equal a full scan's — new
prediction files, appended labels, corrections, late labels stamped in the past — and a replaced
file or an earlier T falls back to the full scan."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.store_support import config_of, write_config, write_jsonl
from tests.test_engine_memo import DAY0, MODEL, day_file
from triage.config import Config
from triage.metrics import tokens as tokens_module
from triage.metrics.frame import Scope
from triage.metrics.tokens import TokenState, WindowToken, window_tokens
from triage.store import Store
from triage.store.queries import predictions_sql
from triage.store.tables import predictions_table

T0 = DAY0 + timedelta(days=3, hours=12)
T1 = DAY0 + timedelta(days=4, hours=18)


def _tokens(
    config: Config, at: datetime, previous: TokenState | None, arrived_after: datetime | None
) -> tuple[dict[datetime, WindowToken], TokenState | None]:
    with Store.open(config.store_path) as store:
        con = store.cursor()
        return window_tokens(con, Scope.of(config.model("fraud"), as_of=at), previous, arrived_after)


def _ingest(config: Config) -> None:
    with Store.open(config.store_path) as store:
        store.ingest(config)


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    folder = tmp_path / "logs"
    for day in range(4):
        day_file(folder, f"d{day}", day, 400, seed=day)
    return folder


def test_tokens_from_the_changes_equal_a_full_scan(logs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = config_of(write_config(logs.parent, MODEL.format(logs=logs)))
    _ingest(config)
    _, state = _tokens(config, T0, None, None)
    assert state is not None and state.as_of == T0
    updates: list[datetime] = []
    original = tokens_module._updated

    def spy(con: object, scope: Scope, *rest: object) -> object:
        updates.append(scope.as_of)
        return original(con, scope, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(tokens_module, "_updated", spy)

    # A new day of predictions (some after T1), a late file of an earlier day; labels appended to
    # an ingested label file: corrections of labelled ids stamped before T0 and after it, a first
    # label stamped before T0 but ingested only now (late), one for a prediction of the new file,
    # one after T1.
    day_file(logs, "d4", 4, 400, seed=4)
    day_file(logs, "late", 2, 50, seed=5)  # predictions of day 2 and their labels, ingested only now
    write_jsonl(
        logs / "labels-d1.jsonl",
        [
            {"request_id": "d1-0", "label": True, "labeled_at": (T0 - timedelta(hours=3)).isoformat()},
            {"request_id": "d1-2", "label": False, "labeled_at": (T0 + timedelta(hours=2)).isoformat()},
            {"request_id": "d1-3", "label": True, "labeled_at": (T0 - timedelta(hours=20)).isoformat()},
            {"request_id": "d4-5", "label": True, "labeled_at": (T1 - timedelta(hours=1)).isoformat()},
            {"request_id": "d2-7", "label": True, "labeled_at": (T1 + timedelta(hours=1)).isoformat()},
        ],
        mode="a",
    )
    _ingest(config)
    updated, later = _tokens(config, T1, state, T0)
    full, _ = _tokens(config, T1, None, T0)
    assert updates == [T1]
    assert updated == full
    assert sum(t.arrived for t in full.values()) > 0 and len(full) == 5
    # The d1 corrections changed that window's labelled token, not its rows token.
    before, _ = _tokens(config, T0, None, None)
    d1 = DAY0 + timedelta(days=1)
    assert full[d1].rows == before[d1].rows and full[d1].labelled != before[d1].labelled

    # A later step from the updated state: still equal.
    assert later is not None
    again, _ = _tokens(config, T1 + timedelta(hours=3), later, T1)
    assert again == _tokens(config, T1 + timedelta(hours=3), None, T1)[0] and len(updates) == 2

    # A replaced file: the earlier rows are not all there any more, so a full scan.
    day_file(logs, "d2", 2, 300, seed=9)
    _ingest(config)
    replaced, _ = _tokens(config, T1 + timedelta(hours=4), later, T1)
    assert len(updates) == 2
    assert replaced == _tokens(config, T1 + timedelta(hours=4), None, T1)[0]

    # Looking back in time, or counting arrivals since another time: a full scan.
    _, latest = _tokens(config, T1 + timedelta(hours=4), None, None)
    assert _tokens(config, T0, latest, None)[0] == _tokens(config, T0, None, None)[0]
    assert (
        _tokens(config, T1 + timedelta(hours=5), latest, T0)[0]
        == _tokens(config, T1 + timedelta(hours=5), None, T0)[0]
    )
    assert len(updates) == 2


def test_the_watermark_check_reads_only_files_whose_registry_entry_changed(logs: Path) -> None:
    config = config_of(write_config(logs.parent, MODEL.format(logs=logs)))
    _ingest(config)
    _, state = _tokens(config, T0, None, None)
    day_file(logs, "d4", 4, 400, seed=4)  # a new file; the others keep their registry entries
    _ingest(config)
    assert state is not None
    with Store.open(config.store_path) as store:
        con = store.cursor()
        model = config.model("fraud")
        registry = tokens_module._registry(con, model.name, "predictions")
        assert registry is not None and set(registry) > set(state.predictions.files)
        checked = tokens_module._watermark(
            con, predictions_sql(model), tokens_module._prediction_hash(), registry, state.predictions
        )
        full = tokens_module._watermark(
            con, predictions_sql(model), tokens_module._prediction_hash(), None, None
        )
        assert checked.kept and checked.now.files == full.now.files
        # A row changed behind the registry's back (ingest never does this) is seen only by a
        # check of every file: the registry is what spares a refresh the history.
        con.execute(f"UPDATE {predictions_table(model.name)} SET _id = 'x' WHERE _id = 'd1-0'")
        blind = tokens_module._watermark(
            con, predictions_sql(model), tokens_module._prediction_hash(), registry, state.predictions
        )
        everything = tokens_module._watermark(
            con, predictions_sql(model), tokens_module._prediction_hash(), None, state.predictions
        )
        assert blind.kept and not everything.kept
