"""Run one peer's drift computation on the synthetic data and answer in JSON.

Runs with the Python of the peer's own venv (`tests/bench/_venvs/NAME/bin/python`), never in
triage's: it needs pandas and the peer library, and triage needs neither.

    python peer_runner.py evidently --data DIR --out result.json

Timing is taken inside this process with `time.perf_counter()` around the peer's own work only:
interpreter start-up, imports and reading the Parquet files into pandas are excluded (reported
separately as `import_s` and `load_s`). What is timed:
- Evidently: wrapping both frames in `Dataset.from_pandas` with an explicit `DataDefinition`, and
  `Report([DataDriftPreset()]).run(current, reference)` with the preset's default tests
  (Wasserstein (normed) for numeric, Jensen–Shannon for categorical columns at this size): one
  comparison of the whole current table against the whole reference per feature.
- NannyML: `UnivariateDriftCalculator.fit(reference)` + `.calculate(analysis)`, continuous methods
  jensen_shannon / kolmogorov_smirnov / wasserstein, categorical chi2 / jensen_shannon, one chunk
  per UTC day (`chunk_period="D"`), i.e. one comparison per feature per day, as triage's 1 d windows.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import resource
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

# Neither peer may phone home during a benchmark.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")

PACKAGES = ("evidently", "nannyml", "pandas", "numpy", "scipy", "statsmodels", "pyarrow")


def _versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


def _load(data: Path, columns: list[str]) -> tuple[Any, Any]:
    import pandas as pd

    reference = pd.read_parquet(data / "reference.parquet", columns=columns)
    current = pd.read_parquet(data / "predictions.parquet", columns=columns)
    return reference, current


def run_evidently(data: Path, numeric: list[str], categorical: list[str]) -> dict[str, Any]:
    started = time.perf_counter()
    evidently = importlib.import_module("evidently")
    presets = importlib.import_module("evidently.presets")
    import_s = time.perf_counter() - started

    started = time.perf_counter()
    reference, current = _load(data, numeric + categorical)
    load_s = time.perf_counter() - started

    started = time.perf_counter()
    definition = evidently.DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    reference_ds = evidently.Dataset.from_pandas(reference, data_definition=definition)
    current_ds = evidently.Dataset.from_pandas(current, data_definition=definition)
    wrapped = time.perf_counter()
    snapshot = evidently.Report([presets.DataDriftPreset()]).run(
        current_data=current_ds, reference_data=reference_ds
    )
    finished = time.perf_counter()

    metrics = snapshot.dict()["metrics"]
    drifts = [m for m in metrics if m["metric_name"].startswith("ValueDrift(")]
    drifted: dict[str, Any] = next(
        (m["value"] for m in metrics if m["metric_name"].startswith("DriftedColumnsCount")), {}
    )
    return {
        "compute_s": finished - started,
        "dataset_s": wrapped - started,
        "report_s": finished - wrapped,
        "import_s": import_s,
        "load_s": load_s,
        "feature_cells": len(drifts),
        "statistics": sorted({m["config"].get("method", "?") for m in drifts}),
        "what": "DataDriftPreset: one whole-table comparison per feature "
        "(Wasserstein normed / Jensen–Shannon), default thresholds",
        "summary": {
            "drifted_columns": drifted.get("count"),
            "drifted_share": drifted.get("share"),
        },
    }


def run_nannyml(data: Path, numeric: list[str], categorical: list[str], timestamp: str) -> dict[str, Any]:
    started = time.perf_counter()
    nml = importlib.import_module("nannyml")
    import_s = time.perf_counter() - started

    started = time.perf_counter()
    reference, current = _load(data, [timestamp, *numeric, *categorical])
    load_s = time.perf_counter() - started

    continuous = ["jensen_shannon", "kolmogorov_smirnov", "wasserstein"]
    categorical_methods = ["chi2", "jensen_shannon"]
    started = time.perf_counter()
    calculator = nml.UnivariateDriftCalculator(
        column_names=numeric + categorical,
        treat_as_numerical=numeric,
        treat_as_categorical=categorical,
        timestamp_column_name=timestamp,
        continuous_methods=continuous,
        categorical_methods=categorical_methods,
        chunk_period="D",
    )
    calculator.fit(reference)
    fitted = time.perf_counter()
    results = calculator.calculate(current)
    finished = time.perf_counter()

    frame = results.filter(period="analysis").to_df()
    chunks = len(frame)
    alert_columns = [column for column in frame.columns if column[-1] == "alert"]
    alerts = int(sum(frame[column].fillna(False).astype(bool).sum() for column in alert_columns))
    return {
        "compute_s": finished - started,
        "fit_s": fitted - started,
        "calculate_s": finished - fitted,
        "import_s": import_s,
        "load_s": load_s,
        "feature_cells": chunks * len(numeric + categorical),
        "statistics": sorted(set(continuous + categorical_methods)),
        "what": f"UnivariateDriftCalculator: {chunks} daily chunks × 25 features, continuous "
        f"{'/'.join(continuous)}, categorical {'/'.join(categorical_methods)}",
        "summary": {"analysis_chunks": chunks, "alerts": alerts},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("peer", choices=("evidently", "nannyml"))
    parser.add_argument("--data", type=Path, required=True, help="folder with manifest.json and Parquet")
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON result")
    args = parser.parse_args()

    manifest = json.loads((args.data / "manifest.json").read_text())
    numeric, categorical = list(manifest["numeric"]), list(manifest["categorical"])
    if args.peer == "evidently":
        result = run_evidently(args.data, numeric, categorical)
    else:
        result = run_nannyml(args.data, numeric, categorical, timestamp="ts")
    result |= {
        "peer": args.peer,
        "versions": _versions(),
        "python": platform.python_version(),
        # ru_maxrss is KiB on Linux; this includes the loaded frames.
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "timing": "inside the subprocess; excludes interpreter start-up, imports and data loading",
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
