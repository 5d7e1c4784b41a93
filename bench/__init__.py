"""Benchmarks of genvault against the raw database and against peer libraries.

Each module is one benchmark with its own command (`python -m bench.append`, `bench.pageload`,
`bench.streaming`, `bench.http`); each writes `bench/results/<name>.json`, and `python -m
bench.report` turns those into the tables and plots of `docs/benchmarks.md`. Timings live here,
never in tests.
"""
