"""Entity linking beyond US English: exchange-suffixed and prefixed codes of other markets, and company names
written in Chinese (and Japanese), found without word boundaries. Headlines written for these tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cjk import cjk_share, fold_width, has_cjk
from monitor.config import load_settings
from monitor.entities import DEFAULT_RELEVANCE_THRESHOLD, Linker
from monitor.entities.symbols import normalize_symbol
from monitor.entities.watchlist import checked_symbol

WATCHLIST = """
600519.SH: {names: [贵州茅台], aliases: [茅台]}
0700.HK: {names: [腾讯控股], aliases: [腾讯]}
TME: {names: [腾讯音乐, Tencent Music]}
601318.SH: {names: [中国平安], ambiguous: [平安]}
000001.SZ: {names: [平安银行]}
7203.T: {names: [トヨタ自動車]}
SZ300750: {names: [宁德时代]}
"""


@pytest.fixture(scope="module")
def linker(tmp_path_factory: pytest.TempPathFactory) -> Linker:
    path = tmp_path_factory.mktemp("cjk") / "watchlist.yaml"
    path.write_text(WATCHLIST, encoding="utf-8")
    return Linker.from_settings(load_settings(None, entities={"watchlist_file": str(path)}))


@pytest.fixture(scope="module")
def shipped() -> Linker:
    return Linker.from_settings(load_settings(None))


def relevant(linker: Linker, title: str, body: str = "") -> list[str]:
    return [x.symbol for x in linker.link(title, body) if x.relevance >= DEFAULT_RELEVANCE_THRESHOLD]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("600519.SH", "600519.SH"), ("600519.SS", "600519.SH"), ("SH600519", "600519.SH"), ("sz000001", "000001.SZ"),
        ("300750.SZ", "300750.SZ"), ("0700.HK", "0700.HK"), ("00700.HK", "0700.HK"), ("700.HK", "0700.HK"),
        ("SAP.DE", "SAP.DE"), ("HSBA.L", "HSBA.L"), ("7203.T", "7203.T"), ("MC.PA", "MC.PA"), ("AAPL", "AAPL"),
    ],
)
def test_symbol_forms_normalise_to_the_project_form(raw: str, expected: str) -> None:
    assert normalize_symbol(raw) == expected
    assert checked_symbol(raw, "test") == expected  # a watchlist may write any of them


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Asia close: 600519.SH, 000001.SZ and 300750.SZ higher", {"600519.SH", "000001.SZ", "300750.SZ"}),
        ("Tencent's 00700.HK and SAP.DE rally; HSBA.L and 7203.T flat", {"0700.HK", "SAP.DE", "HSBA.L", "7203.T"}),
        ("Moutai (600519.SS) lifts dividend", {"600519.SH"}),
        ("Portal quotes SH600519 and sz000001 at the open", {"600519.SH", "000001.SZ"}),
        ("茅台600519.SH涨停，腾讯00700.HK收涨", {"600519.SH", "0700.HK"}),  # codes glued to Chinese words
        ("白酒股走强：600519.SH。", {"600519.SH"}),  # a code before the Chinese full stop
        ("６００５１９．ＳＨ　全角代码也能识别", {"600519.SH"}),  # full-width characters
        ("$AAPL大涨，苹果发布新品", {"AAPL"}),
    ],
)
def test_codes_in_english_and_chinese_text(linker: Linker, title: str, expected: set[str]) -> None:
    assert {x.symbol for x in linker.link(title)} == expected


@pytest.mark.parametrize(
    "title",
    [
        "Version 600519.SHA of the firmware",  # a longer dotted word
        "Call 0700.HKG for details",
        "He wrote SH6005190 in the form",  # seven digits
        "2024年共有600519名投资者参与",  # a bare number in Chinese text
        "US.HK relations", "Plan 123.T is late",  # the suffix needs a code of its market: letters vs digits
    ],
)
def test_code_traps_link_nothing(linker: Linker, title: str) -> None:
    assert relevant(linker, title) == []


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("贵州茅台发布2024年年报，净利润增长15%", ["600519.SH"]),
        ("腾讯控股一季度营收超预期", ["0700.HK"]),
        ("港股收盘：腾讯领涨科技股", ["0700.HK"]),
        ("宁德时代与特斯拉续签电池供货协议", ["300750.SZ"]),
        ("贵州茅台（600519）净利增长", ["600519.SH"]),
        ("トヨタ自動車、通期予想を上方修正", ["7203.T"]),
        ("Analysts say 贵州茅台 is cheap", ["600519.SH"]),  # mixed-language text
        ("中国平安股价创年内新高", ["601318.SH"]),
    ],
)
def test_chinese_names_from_the_watchlist(linker: Linker, title: str, expected: list[str]) -> None:
    assert relevant(linker, title) == expected
    assert linker.link(title)[0].how in ("name", "alias", "paren")


def test_longest_name_wins_inside_unspaced_text(linker: Linker) -> None:
    assert relevant(linker, "腾讯音乐付费用户增长放缓") == ["TME"]  # not Tencent inside "Tencent Music"
    assert relevant(linker, "平安银行发布年报，不良率下降") == ["000001.SZ"]  # not 中国平安's 平安
    assert relevant(linker, "中国平安与平安银行同日公告") == ["601318.SH", "000001.SZ"]


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("平安夜消费火爆，商场客流创新高", []),  # 平安 "safe": an everyday word without evidence
        ("祝大家出行平安", []),
        ("平安股价大涨5%", ["601318.SH"]),  # evidence after the name
        ("旗下平安好医生业务扩张", ["601318.SH"]),  # evidence before it
        ("中国平安：平安寿险新业务价值增长", ["601318.SH"]),  # the company is named in full as well
    ],
)
def test_ambiguous_chinese_names_need_evidence(linker: Linker, title: str, expected: list[str]) -> None:
    assert relevant(linker, title) == expected


def test_chinese_title_beats_body_and_earlier_beats_later(linker: Linker) -> None:
    title_first = {x.symbol: x.relevance for x in linker.link("贵州茅台提价", "腾讯控股回购股份的消息也在市场流传")}
    assert title_first["600519.SH"] > title_first.get("0700.HK", 0)
    both = {x.symbol: x.relevance for x in linker.link("贵州茅台和腾讯控股领涨")}
    assert both["600519.SH"] > both["0700.HK"] >= DEFAULT_RELEVANCE_THRESHOLD


def test_shipped_chinese_names(shipped: Linker) -> None:
    assert relevant(shipped, "腾讯控股发布一季度业绩") == ["0700.HK"]
    assert relevant(shipped, "騰訊控股公布季度業績") == ["0700.HK"]  # traditional characters, as in Hong Kong
    assert relevant(shipped, "贵州茅台拟每股派息") == ["600519.SH"]
    assert relevant(shipped, "小米粥的做法") == []  # 小米 "millet"
    assert relevant(shipped, "小米集团发布新款手机") == ["1810.HK"]
    assert relevant(shipped, "Ping An Bank cuts deposit rates") == ["000001.SZ"]


def test_english_linking_is_unchanged_by_cjk_support(shipped: Linker) -> None:
    assert relevant(shipped, "Apple shares slide as iPhone sales disappoint") == ["AAPL"]
    assert relevant(shipped, "Ａｐｐｌｅ shares slide") == ["AAPL"]  # full-width letters fold to ASCII
    assert relevant(shipped, "Apple发布新款iPhone") == ["AAPL"]  # an English name glued to Chinese


def test_cjk_helpers() -> None:
    assert fold_width("（６００５１９）　ＡＢＣ，") == "(600519) ABC,"
    text = "Apple shares"
    assert fold_width(text) is text
    assert has_cjk("茅台") and not has_cjk("Apple。")
    assert cjk_share("贵州茅台 up") == pytest.approx(4 / 6)
    assert cjk_share("123") == 0.0


def test_watchlist_with_chinese_names_only(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("600519.SS: [贵州茅台]\n", encoding="utf-8")
    linker = Linker.from_settings(load_settings(None, entities={"watchlist_file": str(path)}))
    assert relevant(linker, "贵州茅台董事会换届") == ["600519.SH"]
