"""The application side, on top of the monitor library: the `finmon` command (cli), `finmon up` (stack),
replay, ingest, training/ (train, evaluate) and backtest/. The library (monitor/) never imports this package."""
