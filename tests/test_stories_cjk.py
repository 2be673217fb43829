"""Stories in Chinese (and Japanese): near-duplicates found without spaces, by character shingles
(monitor/stories/text.py). Headlines written for these tests; the English behaviour is pinned in
tests/test_stories.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.config import StorySettings
from monitor.stories import MemoryStories, StoryInput
from monitor.stories.text import MAX_CJK_UNITS, normalize, shingle_texts

T0 = datetime(2025, 3, 3, 12, tzinfo=UTC)

# One story, as a wire, a flash headline, a portal's copy with its name appended and a full-width rewrite.
ANNUAL_REPORT = [
    ("wire", "贵州茅台发布2024年年报，净利润同比增长15%"),
    ("flash", "【快讯】贵州茅台发布2024年年报：净利润同比增长15%"),
    ("portal", "贵州茅台发布2024年年报 净利润同比增长15% - 新浪财经"),
    ("weibo", "贵州茅台发布２０２４年年报，净利润同比增长１５％ https://t.cn/A6xYz"),
]
# Other stories about the same company.
MOUTAI_OTHERS = [
    "贵州茅台下调部分产品出厂价，股价大跌5%",
    "贵州茅台董事长辞职，由副董事长代行职责",
    "贵州茅台拟斥资30亿元回购股份用于注销",
    "贵州茅台一季度直销收入占比提升至45%",
]


def item(item_id: str, text: str, minutes: float = 0.0, source: str = "wire",
         tickers: tuple[str, ...] = ()) -> StoryInput:
    return StoryInput(item_id, text, source, T0 + timedelta(minutes=minutes), tickers)


def test_chinese_text_is_cut_into_characters() -> None:
    norm = normalize("【快讯】腾讯控股（00700.HK）回购1,000万股 CEO马化腾：")
    assert norm.cjk
    assert norm.words == ("快", "讯", "腾", "讯", "控", "股", "00700", "hk", "回", "购", "1000", "万", "股", "ceo",
                          "马", "化", "腾")
    shingles = shingle_texts(norm)
    assert "腾 讯" in shingles and "腾 讯 控" in shingles and "1000 万 股" in shingles
    assert shingle_texts(normalize("茅台涨停")) == ["=茅 台 涨 停"]  # short: compared whole
    assert len(normalize("茅" * 2000).words) == MAX_CJK_UNITS


def test_mostly_english_text_keeps_word_shingles() -> None:
    """A Chinese comment in front of an English retweet stays on the word scheme, as before CJK support."""
    norm = normalize("太好了 RT @desk: Northwind Energy cuts 2025 output forecast")
    assert not norm.cjk
    assert norm.words == ("太好了", "rt", "northwind", "energy", "cuts", "2025", "output", "forecast")


def test_near_identical_chinese_headlines_join_one_story() -> None:
    stories = MemoryStories(StorySettings())
    got = stories.assign([item(f"a{i}", t, 5 * i, src) for i, (src, t) in enumerate(ANNUAL_REPORT)])
    assert len({a.story_id for a in got}) == 1
    assert [a.novelty for a in got] == [100, 75, 56, 42]


def test_different_chinese_stories_about_one_company_stay_apart() -> None:
    stories = MemoryStories(StorySettings())
    texts = [ANNUAL_REPORT[0][1], *MOUTAI_OTHERS]
    got = stories.assign([item(f"m{i}", t, i, tickers=("600519.SH",)) for i, t in enumerate(texts)])
    assert len({a.story_id for a in got}) == len(texts)


def test_templated_chinese_headlines_stay_apart_by_their_tickers() -> None:
    template = "{}发布2024年年报，净利润同比增长15%"
    names = [("贵州茅台", "600519.SH"), ("五粮液", "000858.SZ")]
    got = MemoryStories(StorySettings()).assign([item(f"t{i}", template.format(n), i, tickers=(s,))
                                                 for i, (n, s) in enumerate(names)])
    assert got[0].story_id != got[1].story_id


def test_japanese_copies_join() -> None:
    got = MemoryStories(StorySettings()).assign([
        item("j1", "トヨタ自動車、通期の営業利益予想を上方修正"),
        item("j2", "【速報】トヨタ自動車、通期の営業利益予想を上方修正", 3),
        item("j3", "トヨタ自動車、国内工場の稼働を一時停止", 6),
    ])
    assert got[0].story_id == got[1].story_id != got[2].story_id
