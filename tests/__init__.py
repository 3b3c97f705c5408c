"""triage's tests (pytest) and, under `tests/bench`, the benchmarks run by `make bench`."""
