"""pandas timestamps as exact integer microseconds since the epoch (UTC): the unit windows and their store
share. One module that both may import (the store must not import the window code, nor it the store)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def to_us(when: object) -> int:
    """A tz-aware datetime as integer microseconds since the epoch (UTC)."""
    return int(pd.Timestamp(when).value // 1000)


def from_us(us: int | np.integer) -> pd.Timestamp:
    return pd.Timestamp(int(us) * 1000, tz="UTC")
