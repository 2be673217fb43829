"""The wire format's gate: every kind of bad input is rejected with a stable reason, good input round-trips."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from monitor.config import LimitSettings
from monitor.errors import RecordError
from monitor.records import (
    DeadLetter,
    RawItem,
    ScoredItem,
    decode_deadletter,
    decode_raw,
    decode_scored,
    encode,
    extract_cashtags,
    normalize_tickers,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LIMITS = LimitSettings(max_text_bytes=1000)


def _raw(**fields: object) -> bytes:
    base = {"id": "x1", "published_at": "2025-06-01T10:00:00Z", "title": "Acme beats estimates"}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None}).encode()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe\x00garbage", "not_utf8"),
        (b"[1, 2, 3]", "not_an_object"),
        (b'{"published_at": "2025-06-01T10:00:00Z", "title": "no id"}', "missing_field"),
        (b'{"id": "a", "published_at": "2025-06-01T10:00:00Z"}', "missing_field"),
        (_raw(title="   "), "empty_text"),
        (_raw(title="x" * 2000), "text_too_large"),
        (_raw(published_at="1900-01-01T00:00:00Z"), "timestamp_out_of_range"),
        (_raw(published_at="2300-01-01T00:00:00Z"), "timestamp_out_of_range"),
        (_raw(published_at="yesterday-ish"), "invalid_field"),
        (_raw(title=42), "invalid_field"),
        (_raw(tickers={"a": 1}), "invalid_field"),
        (_raw(v=99), "unsupported_version"),
        (b"[" * 100000 + b"]" * 100000, "malformed_json"),
        (None, "missing_field"),
    ],
)
def test_bad_input_is_rejected_with_reason(payload: bytes | None, reason: str) -> None:
    with pytest.raises(RecordError) as info:
        decode_raw(payload, NOW, LIMITS)
    assert info.value.reason == reason
    assert info.value.detail  # a human-readable explanation travels with the reason


def test_good_input_is_normalised() -> None:
    item = decode_raw(_raw(tickers="$aapl, msft", published_at="2025-06-01T12:00:00+02:00", body="more"), NOW, LIMITS)
    assert item.tickers == ("AAPL", "MSFT")
    assert item.published_at == datetime(2025, 6, 1, 10, tzinfo=UTC)
    assert item.text == "Acme beats estimates\nmore"


def test_epoch_and_naive_times_are_utc() -> None:
    assert decode_raw(_raw(published_at=1748772000), NOW, LIMITS).published_at == datetime(2025, 6, 1, 10, tzinfo=UTC)
    naive = decode_raw(_raw(published_at="2025-06-01 10:00:00"), NOW, LIMITS)
    assert naive.published_at.tzinfo is not None


def test_records_round_trip() -> None:
    raw = RawItem(id="a", title="t $X", published_at=NOW, tickers=("X",), fetched_at=NOW)
    assert decode_raw(encode(raw), NOW, LIMITS) == raw
    scored = ScoredItem(
        item=raw,
        topic="Earnings",
        topic_probs={"Earnings": 1.0},
        sentiment="negative",
        sentiment_probs={"negative": 0.7, "neutral": 0.2, "positive": 0.1},
        model_version="m",
        scored_at=NOW,
        src_partition=2,
        src_offset=9,
    )
    back = decode_scored(encode(scored))
    assert back == scored
    assert back.sentiment_score == pytest.approx(-0.6)
    letter = DeadLetter(
        payload=b"\xff",
        topic="news.raw",
        partition=1,
        offset=5,
        stage="classify",
        reason="not_utf8",
        detail="d",
        at=NOW,
        key=b"k",
    )
    assert decode_deadletter(encode(letter)) == letter


def test_cashtags_and_tickers() -> None:
    assert extract_cashtags("Buy $aapl and $BRK.B, not US$5 or $100") == ("AAPL", "BRK.B")
    assert normalize_tickers(["$tsla", "TSLA", " "]) == ("TSLA",)
