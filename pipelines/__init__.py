"""Batch and operator pipelines on top of the monitor library: replay, train, evaluate, backtest, bench."""
