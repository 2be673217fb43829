"""Feed files: CSV/JSONL/Parquet with column mapping, merged by id, in event-time order."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from monitor.errors import SourceError
from monitor.sources.files import ColumnMap, FileSource
from pipelines.replay import DEMO_FEED, Pacer, parse_speed


def test_jsonl_interface_needs_no_flags(tmp_path: Path) -> None:
    path = tmp_path / "feed.jsonl"
    rows = [
        {"id": "2", "published_at": "2024-01-02T00:00:00Z", "title": "later", "tickers": ["b"]},
        {
            "id": "1",
            "published_at": "2024-01-01T00:00:00Z",
            "title": "first",
            "body": "text",
            "source": "wire",
            "url": "http://x",
        },
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    out = FileSource(path).records()
    assert [r["id"] for r in out] == ["1", "2"]
    assert out[0]["body"] == "text" and out[0]["source"] == "wire" and out[1]["tickers"] == ["B"]


def test_csv_mapping_merge_and_dates(tmp_path: Path) -> None:
    path = tmp_path / "tweets.csv"
    pd.DataFrame(
        {
            "created": ["2015-01-05", "2015-01-02T15:00:00Z", "2015-01-02T15:00:00Z", "not a time"],
            "tweet": ["daily close", "both", "both", "bad"],
            "sym": ["AAPL", "AAPL", "MSFT", "X"],
            "tid": ["10", "11", "11", "12"],
        }
    ).to_csv(path, index=False)
    out = FileSource(path, ColumnMap(text="tweet", time="created", ticker="sym", id="tid")).records()
    assert [r["id"] for r in out] == ["11", "10", "12"]  # time order, unparseable last
    assert out[0]["tickers"] == ["AAPL", "MSFT"]  # one item about two tickers
    assert out[1]["published_at"] == "2015-01-05T21:00:00+00:00"  # a bare date is that day's US close
    assert out[2]["published_at"] == "not a time"  # kept for the classify stage to dead-letter


def test_parquet_and_directory(tmp_path: Path) -> None:
    frame = pd.DataFrame({"text": ["a", "b"], "published_at": pd.to_datetime(["2024-05-01", "2024-04-01"], utc=True)})
    frame.to_parquet(tmp_path / "one.parquet")
    frame.assign(text=["c", "d"]).to_csv(tmp_path / "two.csv", index=False)
    out = FileSource(tmp_path).records()
    assert len(out) == 4 and len({r["id"] for r in out}) == 4  # generated ids are stable and distinct
    assert out == FileSource(tmp_path).records()


def test_mapping_errors_say_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("foo,bar\n1,2\n")
    with pytest.raises(SourceError, match="--text-col"):
        FileSource(path).records()
    with pytest.raises(SourceError, match="not a column"):
        FileSource(path, ColumnMap(text="nope")).records()
    with pytest.raises(SourceError, match="does not exist"):
        FileSource(tmp_path / "missing.csv").records()


def test_demo_feed_has_a_burst() -> None:
    records = FileSource(DEMO_FEED).records()
    assert 200 <= len(records) <= 1000
    halc = [r for r in records if r.get("tickers") == ["HALC"]]
    assert len(halc) > len(records) / 10


def test_pacer_follows_event_time() -> None:
    slept: list[float] = []
    pacer = Pacer(3600.0, sleep=slept.append)
    pacer.wait({"published_at": "2024-01-01T00:00:00Z"})
    pacer.wait({"published_at": "2024-01-01T01:00:00Z"})  # one hour of event time = 1 s at 3600x
    assert slept and 0.9 < slept[-1] <= 1.0
    assert parse_speed("max") is None and parse_speed("60x") == 60.0


def test_a_far_future_timestamp_sorts_last_not_first(tmp_path: Path) -> None:
    path = tmp_path / "feed.jsonl"
    rows = [
        {"id": "typo", "published_at": "2300-01-01T00:00:00Z", "title": "year typo"},
        {"id": "b", "published_at": "2024-01-02T00:00:00Z", "title": "second"},
        {"id": "a", "published_at": "2024-01-01T00:00:00Z", "title": "first"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    assert [r["id"] for r in FileSource(path).records()] == ["a", "b", "typo"]  # a paced replay stays paced
