"""Benchmarks: scripts and commands that print numbers, never timed tests.

`finmon bench classifier` (bench_classifier.py) and `finmon bench pipeline` (bench_pipeline.py) are click
commands that the `finmon` command (pipelines/cli.py) loads by name, so this directory is an installed package;
load_test.py, bench_windows.py and bench_dashboard.py are run as scripts (`python benchmarks/load_test.py`).
Benchmarks sit on top of everything: they may import monitor, pipelines and dashboards, and no module imports
them (the `finmon` command loads the two commands by name only when `finmon bench ...` runs).
"""
