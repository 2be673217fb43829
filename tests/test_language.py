"""Language per item (monitor/language.py): detection, the scored record's `lang`, old records, the store and
the news explorer's language filter. Texts written for these tests."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from dashboards import queries
from monitor.classify.base import Prediction
from monitor.core.scoring import build_scored
from monitor.language import UNDETERMINED, detect_language, item_language
from monitor.records import RawItem, ScoredItem, decode_scored, encode
from monitor.store import Store
from monitor.store.schema import scored_items

T0 = datetime(2025, 3, 3, 14, 0, tzinfo=UTC)
PRED = Prediction("Company | Product News", {"Company | Product News": 1.0}, "neutral",
                  {"negative": 0.1, "neutral": 0.8, "positive": 0.1})


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Apple shares slide as iPhone sales disappoint", "en"),
        ("$NWND Northwind Energy cuts 2025 output forecast https://t.co/x1Yz9Q", "en"),
        ("Quorum Medical AB reports Q4 results", "en"),  # names and tickers: too little to be anything else
        ("贵州茅台发布2024年年报，净利润同比增长15%", "zh"),
        ("騰訊控股公布季度業績，遊戲收入回升", "zh"),  # traditional characters
        ("苹果发布新款iPhone 15 Pro Max", "zh"),  # Chinese with an English product name
        ("トヨタ自動車、通期予想を上方修正", "ja"),
        ("日銀、金融政策の現状維持を決定", "ja"),
        ("삼성전자 3분기 영업이익 예상치 상회", "ko"),
        ("Siemens hebt die Prognose für das laufende Geschäftsjahr an", "de"),
        ("La Banque centrale européenne maintient ses taux directeurs", "fr"),
        ("El banco eleva su beneficio un 20% en el trimestre", "es"),
        ("$AAPL $TSLA +5%", UNDETERMINED),  # no words at all
    ],
)
def test_detection(text: str, lang: str) -> None:
    assert detect_language(text) == lang


def test_a_given_language_wins_as_its_primary_subtag() -> None:
    assert item_language("zh-CN", "Apple shares slide") == "zh"
    assert item_language("EN_us", "贵州茅台发布年报") == "en"
    assert item_language("not a tag!", "贵州茅台发布年报") == "zh"  # unusable: detected instead
    assert item_language(None, "Apple shares slide as iPhone sales disappoint") == "en"


def _scored(title: str, i: int = 0, lang: str | None = None) -> ScoredItem:
    item = RawItem(id=f"g-{i}", title=title, published_at=T0 + timedelta(minutes=i), lang=lang)
    return build_scored(item, PRED, "test", T0, src_partition=0, src_offset=i)


def test_scored_items_carry_their_language_and_old_records_decode() -> None:
    zh = _scored("腾讯控股一季度营收超预期")
    assert zh.item.lang == "zh"
    assert _scored("Apple shares slide", lang="de-CH").item.lang == "de"  # the feed's word is kept
    assert decode_scored(encode(zh)) == zh

    old = json.loads(encode(zh))
    del old["lang"]  # a record published before language detection
    back = decode_scored(json.dumps(old).encode())
    assert back.item.lang is None
    assert back.item.title == zh.item.title


def _store(path: Path) -> Store:
    store = Store(f"sqlite:///{path}")
    store.create_schema()
    items = [_scored("Apple shares slide as iPhone sales disappoint", 0), _scored("贵州茅台发布2024年年报", 1),
             _scored("トヨタ自動車、通期予想を上方修正", 2)]
    old = _scored("Microsoft wins cloud contract", 3)  # as stored before language detection: no lang
    items.append(replace(old, item=RawItem(id="g-old", title=old.item.title, published_at=old.item.published_at)))
    store.upsert_scored(items, T0)
    return store


def test_store_and_news_filter(tmp_path: Path) -> None:
    store = _store(tmp_path / "lang.db")
    with store.engine.connect() as conn:
        stored = dict(conn.execute(select(scored_items.c.id, scored_items.c.lang)).all())
    assert stored == {"g-0": "en", "g-1": "zh", "g-2": "ja", "g-old": None}
    assert queries.languages(store.engine) == ["en", "ja", "zh", UNDETERMINED]
    chinese = queries.news(store.engine, queries.NewsFilter(langs=("zh",)))
    assert list(chinese["title"]) == ["贵州茅台发布2024年年报"] and list(chinese["lang"]) == ["zh"]
    asian = queries.news(store.engine, queries.NewsFilter(langs=("zh", "ja")))
    assert set(asian["lang"]) == {"zh", "ja"}
    unknown = queries.news(store.engine, queries.NewsFilter(langs=(UNDETERMINED,)))
    assert list(unknown["id"]) == ["g-old"]  # "und" also finds records from before detection


def test_news_explorer_filters_by_language(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(tmp_path / "page.db")
    monkeypatch.setenv("FINMON_STORE_URL", store.url)
    monkeypatch.setenv("FINMON_BOOTSTRAP", "127.0.0.1:1")
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_string("from dashboards.views.news import render\nrender()", default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert set(at.multiselect(key="news_langs").options) == {"en", "ja", "zh", UNDETERMINED}
    assert len(at.dataframe[0].value) == 4 and "lang" in at.dataframe[0].value.columns
    at.multiselect(key="news_langs").select("zh").run()
    assert list(at.dataframe[0].value["title"]) == ["贵州茅台发布2024年年报"]
