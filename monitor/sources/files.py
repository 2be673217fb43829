"""Read news feeds from CSV, JSONL or Parquet files (or a directory of them) with a column mapping.

Live and replay differ only in the source: a `FileSource` yields the same wire objects a scraper would
publish, in event-time order, keeping the original timestamps. Rows are not validated here beyond what is
needed to order them: the classify stage is the one gate, so a bad row reaches the dead-letter topic with
its reason instead of vanishing in a reader.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from monitor.errors import SourceError
from monitor.records import normalize_tickers, stable_id

SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NEW_YORK = ZoneInfo("America/New_York")
MARKET_CLOSE = time(16, 0)


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Which input column holds each field; None means 'look for the usual names'."""

    text: str | None = None
    time: str | None = None
    ticker: str | None = None
    id: str | None = None

    CANDIDATES = {  # noqa: RUF012  (class-level constant, not a dataclass field)
        "text": ("title", "text", "headline", "content"),
        "time": ("published_at", "created_at", "timestamp", "time", "datetime", "date"),
        "ticker": ("tickers", "ticker", "symbols", "symbol"),
        "id": ("id", "guid", "tweet_id", "uuid"),
    }

    def resolve(self, columns: list[str]) -> dict[str, str | None]:
        """Map each field to a real column, or fail with the columns that exist."""
        out: dict[str, str | None] = {}
        for name in ("text", "time", "ticker", "id"):
            chosen = getattr(self, name)
            if chosen is not None and chosen not in columns:
                raise SourceError(f"--{name}-col {chosen!r} is not a column; the file has {columns}")
            out[name] = chosen or next((c for c in self.CANDIDATES[name] if c in columns), None)
        for required in ("text", "time"):
            if out[required] is None:
                raise SourceError(f"no {required} column found among {columns}; name it with --{required}-col")
        return out


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES)
        if not found:
            raise SourceError(f"{path} holds no CSV/JSONL/Parquet files")
        return found
    if not path.exists():
        raise SourceError(f"{path} does not exist; give a CSV, JSONL or Parquet file or a directory of them")
    if path.suffix.lower() not in SUFFIXES:
        raise SourceError(f"{path}: unknown file type {path.suffix!r}; use .csv, .jsonl or .parquet")
    return [path]


def read_jsonl(path: Path) -> tuple[pd.DataFrame, list[bytes]]:
    """Rows of a JSONL file, and the lines that are not JSON objects, kept as bytes: a feed with one broken
    line still replays, and the broken line reaches the dead-letter topic instead of being lost."""
    rows: list[dict[str, Any]] = []
    unparsed: list[bytes] = []
    with path.open("rb") as fh:
        for line in fh:
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except (ValueError, RecursionError):
                obj = None
            if isinstance(obj, dict):
                rows.append(obj)
            else:
                unparsed.append(line)
    return pd.DataFrame(rows), unparsed


def _read_one(path: Path, unparsed: list[bytes]) -> pd.DataFrame:
    kind = SUFFIXES[path.suffix.lower()]
    try:
        if kind in ("csv", "tsv"):
            return pd.read_csv(path, sep="\t" if kind == "tsv" else ",", dtype=str, keep_default_na=False)
        if kind == "jsonl":
            frame, bad = read_jsonl(path)
            unparsed.extend(bad)
            return frame
        if kind == "json":
            return pd.read_json(path, dtype=False)
        return pd.read_parquet(path)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read {path} as {kind}: {exc}") from exc


def read_table(path: str | Path, unparsed: list[bytes] | None = None) -> pd.DataFrame:
    """All rows of a file, or of every supported file in a directory; JSONL lines that are not JSON objects
    are appended to `unparsed` when given."""
    sink: list[bytes] = [] if unparsed is None else unparsed
    frames = [_read_one(p, sink) for p in _files(Path(path))]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def to_utc_string(value: Any) -> Any:
    """Normalise a time cell to ISO-8601 UTC; a bare date means that day's US market close.
    Unparseable values are passed through untouched for the classify stage to reject with a reason."""
    if isinstance(value, pd.Timestamp | datetime):
        stamp = pd.Timestamp(value)
        return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).isoformat()
    if not isinstance(value, str):
        return value
    text = value.strip()
    if _DATE_ONLY.match(text):
        day = datetime.fromisoformat(text).date()
        return datetime.combine(day, MARKET_CLOSE, tzinfo=_NEW_YORK).astimezone(ZoneInfo("UTC")).isoformat()
    if text.isdigit():
        return int(text)  # epoch seconds or milliseconds; the record parser knows which
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
        return text
    except ValueError:
        pass
    try:
        return to_utc_string(pd.Timestamp(text))  # "Jan 5 2024 10:00", RFC 2822 and friends
    except (ValueError, TypeError, OverflowError):
        return value


def _clean(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


class FileSource:
    """Wire objects from a feed file, merged by id (tickers united) and ordered by event time."""

    def __init__(self, path: str | Path, columns: ColumnMap | None = None, source_name: str | None = None) -> None:
        self.path = Path(path)
        self.columns = columns or ColumnMap()
        self.source_name = source_name or self.path.stem
        self.unparsed: list[bytes] = []  # filled by records(): lines to publish as they are

    def records(self) -> list[dict[str, Any]]:
        self.unparsed = []
        frame = read_table(self.path, self.unparsed)
        if frame.empty and self.unparsed:
            return []
        cols = self.columns.resolve([str(c) for c in frame.columns])
        rows = [self._row(rec, cols) for rec in frame.to_dict(orient="records")]
        return self._order(self._merge(rows))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records())

    def _row(self, rec: dict[str, Any], cols: dict[str, str | None]) -> dict[str, Any]:
        rec = {str(k): _clean(v) for k, v in rec.items()}
        text_col, time_col = cols["text"], cols["time"]
        assert text_col is not None and time_col is not None  # noqa: S101  (resolve() guarantees it)
        title = rec.get(text_col)
        published = to_utc_string(rec.get(time_col))
        out: dict[str, Any] = {"title": title, "published_at": published}
        out["body"] = rec.get("body") if text_col != "body" else None
        out["source"] = rec.get("source") or self.source_name
        out["url"] = rec.get("url") or rec.get("link")
        out["lang"] = rec.get("lang")
        out["tickers"] = self._tickers(rec.get(cols["ticker"]) if cols["ticker"] else None)
        raw_id = rec.get(cols["id"]) if cols["id"] else None
        out["id"] = (
            str(raw_id) if raw_id not in (None, "") else stable_id(str(out["source"]), str(published), str(title))
        )
        return {k: v for k, v in out.items() if v is not None}

    @staticmethod
    def _tickers(value: Any) -> list[str]:
        try:
            return list(normalize_tickers(value))
        except Exception:
            return []

    @staticmethod
    def _merge(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One item per id: the same tweet listed under two tickers is one item about both."""
        merged: dict[str, dict[str, Any]] = {}
        for row in rows:
            seen = merged.get(row["id"])
            if seen is None:
                merged[row["id"]] = row
            else:
                seen["tickers"] = list(dict.fromkeys(seen.get("tickers", []) + row.get("tickers", [])))
        return list(merged.values())

    @staticmethod
    def _order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Stable sort by event time; rows whose time does not parse go last (and get dead-lettered)."""
        stamps = pd.to_datetime(
            pd.Series([r.get("published_at") for r in rows], dtype=object), utc=True, errors="coerce", format="ISO8601"
        )
        missing = stamps.isna().to_numpy()
        # Microseconds: nanoseconds overflow int64 after 2262, and a typo like 2300 would then sort first.
        us = stamps.fillna(pd.Timestamp(0, tz="UTC")).to_numpy(dtype="datetime64[us]").astype("int64")
        return [rows[i] for i in np.lexsort((us, missing))]


def event_time(record: dict[str, Any]) -> datetime | None:
    """The record's event time if it parses, for pacing replays."""
    try:
        return pd.Timestamp(record.get("published_at")).to_pydatetime()
    except (ValueError, TypeError):
        return None


def dumps(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")
