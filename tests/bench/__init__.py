"""triage's benchmarks: `python -m tests.bench` (what `make bench` runs).

Never part of `make test` or CI: pytest skips this folder (`norecursedirs` in pyproject.toml).

Layout:
- `registry.py` — named benchmarks; a module registers one with `@benchmark("name", ...)`, and the
  runner imports every module listed in `registry.MODULES` that exists.
- `synthetic.py` — the shared 1 M vs 1 M table (20 numeric + 5 categorical features), generated
  with numpy into Parquet through DuckDB and cached under `_data/` (git-ignored).
- `peers.py` + `peer_runner.py` — Evidently and NannyML, each installed into its own venv under
  `_venvs/` (git-ignored) and run as a subprocess that times itself and answers in JSON.
- `drift_grid.py` — the DESIGN §8 comparison: triage's full drift grid vs the peers vs one bare
  DuckDB scan, as ratios against the targets.
- `check_full.py` — the whole `triage check` on 10 M generated rows: time and peak RSS (`--full`).
- `measure.py`, `report.py` — timing (best of N, a subprocess's own peak RSS) and text tables.

Adding a benchmark (the TUI first paint, the alert-quality evaluation, …): a new module here with
a function decorated by `registry.benchmark`; `python -m tests.bench --list` shows it.

Results are printed and written to `_results/latest.json` (git-ignored).
"""
