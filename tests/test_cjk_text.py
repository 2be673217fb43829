"""Chinese text along the path: cleaning at ingest and before the model (monitor/cjk.normalize_text), and
the size limits. English text must come through byte for byte."""

from __future__ import annotations

from datetime import UTC, datetime

from monitor.cjk import normalize_text
from monitor.classify.engine import clean_text
from monitor.config import LimitSettings
from monitor.ingest.config import FeedConfig
from monitor.ingest.items import candidate, content_hash, to_raw
from monitor.ingest.parse import Entry

NOW = datetime(2025, 3, 3, 12, tzinfo=UTC)
FEED = FeedConfig(name="cn-wire", url="https://example.com/rss")


def test_normalize_text_folds_cjk_text_and_leaves_english_alone() -> None:
    assert normalize_text("腾讯控股（００７００．ＨＫ）涨５％！") == "腾讯控股(00700.HK)涨5%!"
    assert normalize_text("ﾄﾖﾀ自動車") == "トヨタ自動車"  # half-width katakana
    assert normalize_text("Ａｐｐｌｅ") == "Apple"  # full-width Latin without any CJK character
    english = "Apple… shares ™ rise ½ point"  # NFKC would change all three marks
    assert normalize_text(english) is english
    assert normalize_text("贵州茅台。增持、回购") == "贵州茅台。增持、回购"  # Chinese marks without an ASCII twin stay


def test_model_input_is_folded_for_cjk_only() -> None:
    assert clean_text("腾讯控股　回购　１０００万股", 100) == "腾讯控股 回购 1000万股"
    assert clean_text("Apple… ™", 100) == "Apple… ™"
    assert clean_text("a\ud800b茅台", 100) == "a?b茅台"  # lone surrogates are still replaced


def test_ingest_cleans_cjk_items_and_dedupes_full_width_copies() -> None:
    full = Entry("贵州茅台（６００５１９）发布年报", "净利润同比增长１５％", published=NOW)
    half = Entry("贵州茅台(600519)发布年报", "净利润同比增长15%", published=NOW)
    assert content_hash(full) == content_hash(half)
    cand = candidate("cn-wire", full)
    assert cand is not None
    raw = to_raw(FEED, cand, NOW, LimitSettings())
    assert (raw.title, raw.body) == ("贵州茅台(600519)发布年报", "净利润同比增长15%")


def test_english_ingest_is_unchanged() -> None:
    entry = Entry("Apple… beats ™ estimates", "Shares rise ½ point", published=NOW)
    cand = candidate("wire", entry)
    assert cand is not None
    raw = to_raw(FEED, cand, NOW, LimitSettings())
    assert (raw.title, raw.body) == ("Apple… beats ™ estimates", "Shares rise ½ point")


def test_a_long_chinese_body_is_cut_on_a_character_within_the_byte_limit() -> None:
    limits = LimitSettings(max_text_bytes=1000)
    entry = Entry("茅台年报", "净利润增长" * 200, published=NOW)  # 3,000 bytes of body
    cand = candidate("cn-wire", entry)
    assert cand is not None
    raw = to_raw(FEED, cand, NOW, limits)
    size = len(raw.title.encode()) + len(raw.body.encode())
    assert 990 <= size <= 1000
    assert raw.body.startswith("净利润增长") and "\ufffd" not in raw.body


def test_a_feeds_language_goes_on_its_items_and_the_example_has_chinese_feeds() -> None:
    from monitor.ingest.config import load_feeds
    from tests.conftest import REPO

    feed = FeedConfig(name="cn", url="https://example.com/rss", lang="zh")
    cand = candidate("cn", Entry("贵州茅台发布年报", published=NOW))
    assert cand is not None
    assert to_raw(feed, cand, NOW, LimitSettings()).lang == "zh"
    assert to_raw(FEED, cand, NOW, LimitSettings()).lang is None  # detected when it is scored
    chinese = [f for f in load_feeds(REPO / "feeds.example.yaml").feeds if f.lang == "zh"]
    assert len(chinese) >= 2 and not any(f.enabled for f in chinese)
