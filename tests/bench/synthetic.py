"""The benchmark's own table: N predictions vs an N-row reference, 20 numeric + 5 categorical features.

triage's demo generator has about a dozen features; DESIGN §8 asks for 25 columns, so the benchmark
makes its own table with numpy and writes it to Parquet through DuckDB (a dict of numpy arrays is a
DuckDB replacement scan: no pandas, no pyarrow in triage's venv). Everything is cached under
`_data/` by (schema version, rows, seed) and reused by every benchmark of the same run and later runs.

What is in it, so the drift grid has real work and real signal:
- numeric `f00`…`f19`: normal, log-normal, exponential, uniform, Poisson counts (ties), a bimodal
  mixture, gamma, beta, Student-t, values rounded to cents (ties), and two with ~2 % missing;
- categorical `c0`…`c4` with 3, 6, 12, 30 and 100 Zipf-weighted categories, `c4` ~1 % missing;
- the segment `region` (4 values), two model versions, score, latency and error flags;
- predictions span 30 days (a 1 d window gives 30 windows), the reference the 30 days before;
- drift in the predictions only: `f00` shifts by 0.3 σ from day 20, `f05` is 20 % larger on v2,
  `c1`'s mix changes in region `apac`, and `c3` gains categories the reference never saw.

`ensure_store` then loads both files into a triage store (`store.duckdb` beside them, described by
the `triage.toml` written there): with triage's own ingest (`triage.store.ingest.ingest`) when it
is importable, else with `canonical_table_sql`, which creates the canonical tables of
`triage/store/schema.py` directly.
"""

from __future__ import annotations

import importlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np

from triage.store.schema import predictions_table, reference_table

SCHEMA_VERSION = 1
NUMERIC = tuple(f"f{i:02d}" for i in range(20))
CATEGORICAL = tuple(f"c{i}" for i in range(5))
FEATURES = NUMERIC + CATEGORICAL
SEGMENT = "region"
MODEL = "bench"
DAYS = 30
PREDICTIONS_START = datetime(2026, 1, 1, tzinfo=UTC)
REFERENCE_START = PREDICTIONS_START - timedelta(days=DAYS)

_REGIONS = ("na", "eu", "apac", "latam")
_REGION_WEIGHTS = (0.4, 0.3, 0.2, 0.1)
_CARDINALITIES = (3, 6, 12, 30, 100)


@dataclass(frozen=True)
class SyntheticData:
    """Paths of one cached data set and what it holds."""

    directory: Path
    rows: int
    seed: int

    @property
    def predictions(self) -> Path:
        return self.directory / "predictions.parquet"

    @property
    def reference(self) -> Path:
        return self.directory / "reference.parquet"

    @property
    def manifest(self) -> Path:
        return self.directory / "manifest.json"


def _zipf_weights(k: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, k + 1) ** 1.1
    return weights / weights.sum()


def _categories(k: int, prefix: str) -> np.ndarray:
    return np.array([f"{prefix}_{i:03d}" for i in range(k)])


def _columns(rng: np.random.Generator, n: int, start: datetime, drifted: bool) -> dict[str, np.ndarray]:
    """One table's columns as numpy arrays; NaN / "" mark missing values (made NULL in SQL)."""
    seconds = np.sort(rng.uniform(0, DAYS * 86_400, n))
    ts_us = (int(start.timestamp()) * 1_000_000 + seconds * 1_000_000).astype(np.int64)
    day = seconds / 86_400
    region = np.array(_REGIONS)[rng.choice(len(_REGIONS), n, p=_REGION_WEIGHTS)]
    version = np.where(rng.random(n) < 0.15, "v2", "v1")

    f: dict[str, np.ndarray] = {}
    for i, (mu, sigma) in enumerate([(0, 1), (10, 2), (-5, 0.5), (100, 15), (0.5, 0.1)]):
        f[f"f{i:02d}"] = rng.normal(mu, sigma, n)
    for i, sigma in zip(range(5, 8), (0.5, 1.0, 1.5), strict=True):
        f[f"f{i:02d}"] = rng.lognormal(3.0, sigma, n)
    f["f08"] = rng.exponential(1.0, n)
    f["f09"] = rng.exponential(250.0, n)
    f["f10"] = rng.uniform(0, 1, n)
    f["f11"] = rng.uniform(-100, 100, n)
    f["f12"] = rng.poisson(3, n).astype(np.float64)
    f["f13"] = rng.poisson(40, n).astype(np.float64)
    f["f14"] = np.where(rng.random(n) < 0.3, rng.normal(-2, 0.5, n), rng.normal(3, 1, n))
    f["f15"] = rng.gamma(2.0, 2.0, n)
    f["f16"] = rng.beta(2, 5, n)
    f["f17"] = rng.standard_t(3, n)
    f["f18"] = rng.normal(50, 10, n)
    f["f19"] = np.round(rng.normal(20, 5, n), 2)
    f["f18"][rng.random(n) < 0.02] = np.nan
    f["f16"][rng.random(n) < 0.02] = np.nan

    c: dict[str, np.ndarray] = {}
    for i, k in enumerate(_CARDINALITIES):
        c[f"c{i}"] = _categories(k, f"c{i}")[rng.choice(k, n, p=_zipf_weights(k))]
    if drifted:
        f["f00"] = f["f00"] + np.where(day >= 20, 0.3, 0.0)
        f["f05"] = np.where(version == "v2", f["f05"] * 1.2, f["f05"])
        apac = region == "apac"
        c["c1"] = np.where(apac, _categories(6, "c1")[rng.choice(6, n)], c["c1"])
        unseen = rng.random(n) < 0.01
        c["c3"] = np.where(unseen, _categories(35, "c3")[rng.integers(30, 35, n)], c["c3"])
    c["c4"] = np.where(rng.random(n) < 0.01, "", c["c4"])

    logit = 0.8 * f["f00"] + 0.02 * (f["f13"] - 40) - 0.5 * f["f08"] + rng.normal(0, 1, n) - 1.0
    return {
        "id": np.char.add("p" if drifted else "r", np.arange(n).astype(str)),
        "ts_us": ts_us,
        "version": version,
        "score": 1.0 / (1.0 + np.exp(-logit)),
        "latency_ms": rng.lognormal(3.5, 0.4, n),
        "error": rng.random(n) < 0.005,
        SEGMENT: region,
        **f,
        **c,
    }


def connect(path: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection (in memory without `path`) that draws no progress bar on the terminal."""
    con = duckdb.connect(":memory:" if path is None else str(path))
    con.execute("SET enable_progress_bar = false")
    return con


def _write_parquet(con: duckdb.DuckDBPyConnection, columns: dict[str, np.ndarray], path: Path) -> None:
    """COPY the arrays to Parquet with NULLs for missing values (DuckDB scans the dict directly)."""
    con.register("arrays", columns)
    numeric = ", ".join(f"nullif({name}, 'NaN'::DOUBLE) AS {name}" for name in NUMERIC)
    categorical = ", ".join(f"nullif({name}, '') AS {name}" for name in CATEGORICAL)
    con.execute(
        f"""
        COPY (
            SELECT id, make_timestamp(ts_us) AS ts, version, score, latency_ms, error, {SEGMENT},
                   {numeric}, {categorical}
            FROM arrays
        ) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 122880)
        """
    )
    con.unregister("arrays")


def ensure(data_dir: Path, rows: int, seed: int, log: Callable[[str], None] = print) -> SyntheticData:
    """The cached data set for (rows, seed), generated first if absent or incomplete."""
    data = SyntheticData(data_dir / f"synthetic-v{SCHEMA_VERSION}-{rows}-s{seed}", rows, seed)
    if data.manifest.exists():
        return data
    if data.directory.exists():
        shutil.rmtree(data.directory)  # an interrupted generation
    data.directory.mkdir(parents=True)
    log(f"generating {rows:,} predictions + {rows:,} reference rows into {data.directory} …")
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    con = connect()
    # One table at a time so peak memory stays at one table's arrays.
    _write_parquet(con, _columns(rng, rows, REFERENCE_START, drifted=False), data.reference)
    _write_parquet(con, _columns(rng, rows, PREDICTIONS_START, drifted=True), data.predictions)
    con.close()
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "rows": rows,
        "seed": seed,
        "numeric": list(NUMERIC),
        "categorical": list(CATEGORICAL),
        "segment": SEGMENT,
        "predictions_start": PREDICTIONS_START.isoformat(),
        "reference_start": REFERENCE_START.isoformat(),
        "days": DAYS,
        "generated_in_s": round(time.perf_counter() - started, 2),
    }
    data.manifest.write_text(json.dumps(manifest, indent=2) + "\n")  # written last: the data is complete
    return data


CONFIG = "triage.toml"
STORE = "store.duckdb"
STORE_MARKER = "store.json"
THRESHOLD = 0.5

CONFIG_TEXT = f"""\
# The benchmark's model over the synthetic table (written by tests/bench/synthetic.py).
[store]
path = "{STORE}"

[[model]]
name = "{MODEL}"
predictions = "predictions.parquet"
threshold = {THRESHOLD}
window = "1d"

[model.columns]
id = "id"
timestamp = "ts"
version = "version"
score = "score"
latency_ms = "latency_ms"
error = "error"

[model.features]
numeric = [{", ".join(f'"{name}"' for name in NUMERIC)}]
categorical = [{", ".join(f'"{name}"' for name in CATEGORICAL)}]

[model.segments]
columns = ["{SEGMENT}"]

[model.reference]
files = "reference.parquet"
"""


def canonical_table_sql(table: str, parquet: Path, file_id: int) -> str:
    """CREATE one canonical table of `triage/store/schema.py` straight from a Parquet file.

    The fallback while triage's ingest is absent: for these clean files (unique ids, no bad rows,
    one file per table) it gives the columns, types and order that ingest gives.
    """
    return f"""
    CREATE TABLE {table} AS
    SELECT id::VARCHAR AS _id, ts::TIMESTAMP AS _ts, version::VARCHAR AS _version, score::DOUBLE AS _score,
           score >= {THRESHOLD} AS _decision, latency_ms::DOUBLE AS _latency_ms, NULL::DOUBLE AS _cost,
           NULL::DOUBLE AS _tokens, error::BOOLEAN AS _error, NULL::BOOLEAN AS _fallback,
           NULL::VARCHAR AS _route, {SEGMENT}::VARCHAR AS {SEGMENT},
           {", ".join(f"{name}::DOUBLE AS {name}" for name in NUMERIC)},
           {", ".join(f"{name}::VARCHAR AS {name}" for name in CATEGORICAL)},
           {file_id}::INTEGER AS _file_id, row_number() OVER () AS _row
    FROM read_parquet('{parquet}')"""


@dataclass(frozen=True)
class Store:
    """A triage store holding the synthetic data: where it is and how it was built."""

    path: Path
    config: Path
    method: str  # "triage ingest" | "fallback SQL"
    build_s: float


def _ingest_function() -> Callable[..., object] | None:
    try:
        module = importlib.import_module("triage.store.ingest")
    except ModuleNotFoundError:
        return None
    ingest = getattr(module, "ingest", None)
    return ingest if callable(ingest) else None


def _derived_tables(path: Path) -> list[str]:
    """The tables an evaluation stores (profile, cached windows), which a store as ingest leaves
    it has none of: a cold run on a copy that has them would read them instead of computing."""
    if not path.exists():
        return []
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
    finally:
        con.close()
    return sorted(n for n in names if n.startswith(("_triage_profile", "_triage_cache")))


def ensure_store(data: SyntheticData, log: Callable[[str], None] = print) -> Store:
    """The data set's triage store, built now if absent or built by the fallback while ingest exists."""
    config = data.directory / CONFIG
    path = data.directory / STORE
    marker = data.directory / STORE_MARKER
    ingest = _ingest_function()
    method = "triage ingest" if ingest is not None else "fallback SQL"
    if marker.exists() and config.read_text() == CONFIG_TEXT:
        built = json.loads(marker.read_text())
        if built["method"] == method and not _derived_tables(path):
            return Store(path, config, method, built["build_s"])
        if built["method"] == method:
            log(f"the store holds {', '.join(_derived_tables(path))} (something ran on it): rebuilding …")
    marker.unlink(missing_ok=True)
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".wal").unlink(missing_ok=True)
    config.write_text(CONFIG_TEXT)
    log(f"building the triage store with {method} …")
    started = time.perf_counter()
    con = connect(path)
    try:
        if ingest is not None:
            from triage.config import load_config

            ingest(con, load_config(config))
        else:
            con.execute(canonical_table_sql(predictions_table(MODEL), data.predictions, 1))
            con.execute(canonical_table_sql(reference_table(MODEL), data.reference, 2))
        con.execute("CHECKPOINT")
    finally:
        con.close()
    build_s = time.perf_counter() - started
    marker.write_text(json.dumps({"method": method, "build_s": build_s}) + "\n")
    return Store(path, config, method, build_s)
