"""Window specs: tumbling (`5min`) or hopping (`1h/15min`) windows of fixed size, aligned to the Unix epoch.

A spec's `label` is its canonical name in the store and on the CLI: sizes are written in the largest whole
unit (`5min`, `1h`, `1d`, `30s`), hopping specs as `SIZE/HOP`. `parse_spec("1D")` and `parse_spec("24h")`
both give `1d`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from monitor.windows.errors import WindowError

_US = 1_000_000
_UNITS = (("d", 86_400 * _US), ("h", 3_600 * _US), ("min", 60 * _US), ("s", _US))


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """A window size and hop, both in microseconds (hop == size for tumbling windows)."""

    size_us: int
    hop_us: int

    @property
    def tumbling(self) -> bool:
        return self.size_us == self.hop_us

    @property
    def per_item(self) -> int:
        """How many windows of this spec contain any one instant."""
        return self.size_us // self.hop_us

    @property
    def label(self) -> str:
        size = format_duration(self.size_us)
        return size if self.tumbling else f"{size}/{format_duration(self.hop_us)}"


def format_duration(us: int) -> str:
    """Microseconds as the largest whole unit: 300_000_000 -> '5min'."""
    for unit, scale in _UNITS:
        if us % scale == 0:
            return f"{us // scale}{unit}"
    return f"{us}us"


def _duration_us(text: str, what: str) -> int:
    text = text.strip()
    if len(text) > 1 and text.endswith("d") and text[-2].isdigit():
        text = text[:-1] + "D"  # our own labels say '1d'; pandas deprecates the lower-case day alias
    try:
        delta = pd.Timedelta(text)
    except (ValueError, TypeError) as exc:
        raise WindowError(
            f"window {what} {text!r} is not a duration; use a pandas alias such as '5min', '1h' or '1D'"
        ) from exc
    us = int(delta.value // 1000)
    if us <= 0 or us % _US:
        raise WindowError(f"window {what} {text!r} must be a positive whole number of seconds (e.g. '30s', '5min')")
    return us


def parse_spec(text: str) -> WindowSpec:
    """'5min' (tumbling) or '1h/15min' (hopping) into a `WindowSpec`; errors say what is allowed."""
    if not isinstance(text, str) or not text.strip():
        raise WindowError(f"window size {text!r} is empty; use e.g. '5min', '1h', '1D' or '1h/15min'")
    size_text, _, hop_text = text.partition("/")
    size = _duration_us(size_text, "size")
    hop = _duration_us(hop_text, "hop") if hop_text else size
    if hop > size or size % hop:
        raise WindowError(f"window {text!r}: the size must be a whole multiple of the hop (e.g. '1h/15min')")
    return WindowSpec(size, hop)


def parse_specs(texts: tuple[str, ...] | list[str]) -> list[WindowSpec]:
    """All configured specs, without repeats (by label), in the given order."""
    specs: dict[str, WindowSpec] = {}
    for text in texts:
        spec = parse_spec(text)
        specs.setdefault(spec.label, spec)
    if not specs:
        raise WindowError("no window sizes configured; set FINMON_WINDOWS__SIZES, e.g. '[\"5min\",\"1h\"]'")
    return list(specs.values())
