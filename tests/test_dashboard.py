"""Every dashboard page, rendered by Streamlit's AppTest against a store seeded with the demo feed scored by
the shipped model; assertions are on what the page shows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO
from tests.dashboard_seed import seed


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('dash') / 'finmon.db'}"
    seed(url)
    yield url


@pytest.fixture
def page(seeded: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FINMON_STORE_URL", seeded)
    monkeypatch.setenv("FINMON_BOOTSTRAP", "127.0.0.1:1")  # no broker: no page may need one
    st.cache_data.clear()
    st.cache_resource.clear()

    def run(name: str) -> AppTest:
        at = AppTest.from_string(f"from dashboards.views.{name} import render\nrender()", default_timeout=60)
        at.run()
        assert not at.exception, at.exception
        return at

    return run


def _text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [m.value for m in at.caption] + [m.value for m in at.info]
    parts += [m.value for m in at.title] + [m.value for m in at.subheader]
    return "\n".join(str(p) for p in parts)


def _charts(at: AppTest) -> list[object]:
    return list(at.get("vega_lite_chart"))


def test_overview_shows_market_topics_and_movers(page) -> None:
    at = page("overview")
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Items in range"].replace(",", "")) > 0
    assert metrics["Market sentiment index (latest window)"] != "n/a"
    assert len(_charts(at)) >= 3  # market, heatmap, movers (small multiples are inside an expander)
    assert "Tickers whose sentiment moved most" in _text(at)


def test_news_explorer_lists_and_filters(page) -> None:
    at = page("news")
    table = at.dataframe[0].value
    assert len(table) > 0 and {"title", "topic", "sentiment", "sentiment_score", "tickers"} <= set(table.columns)
    at.text_input(key="news_tickers").input("HALC").run()
    filtered = at.dataframe[0].value
    assert len(filtered) > 0 and filtered["tickers"].str.contains("HALC").all()
    at.text_input(key="news_text").input("recall").run()
    assert at.dataframe[0].value["title"].str.lower().str.contains("recall").all()
    assert len(at.get("download_button")) == 1


def test_news_explorer_groups_copies_by_story(page) -> None:
    at = page("news")
    items = at.dataframe[0].value
    at.toggle(key="news_by_story").set_value(True).run()
    assert not at.exception
    stories = at.dataframe[0].value
    assert {"first_seen", "headline", "copies", "sources", "mean_score", "story_id"} <= set(stories.columns)
    assert stories["copies"].sum() == len(items)  # every item in exactly one story
    assert len(stories) < len(items)  # the seeded feed repeats headlines: copies joined their stories
    assert stories["first_seen"].is_monotonic_decreasing


def test_ticker_view_shows_windows_prices_and_headlines(page) -> None:
    at = page("ticker")
    at.selectbox(key="ticker_symbol").select("HALC").run()
    assert not at.exception
    assert len(_charts(at)) >= 2
    headlines = at.dataframe[-1].value
    assert len(headlines) > 0


def test_system_page_reports_store_dead_letters_and_lag(page) -> None:
    at = page("system")
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Items stored"].replace(",", "")) >= 300
    assert "Dead letters (3)" in _text(at)
    per_stage = at.dataframe[0].value
    assert set(per_stage.index) == {"classify", "sink", "aggregate", "alerting"}
    assert per_stage.loc["sink", "items_per_s"] == 25.0
    # Consumer lag comes from the workers' heartbeats in the store, not from the (absent) broker.
    assert per_stage.loc["aggregate", "lag"] == 8
    assert "24 records behind in all" in _text(at)
    assert not at.warning


def test_backtest_page_explains_how_to_get_a_report(page, tmp_path: Path) -> None:
    at = page("backtest")
    assert "finmon backtest" in _text(at)
    out = tmp_path / "bt"
    out.mkdir()
    (out / "metrics.json").write_text('{"n_items": 10, "ic_mean_1d": 0.05, "hit_rate_1d": 0.5, "long_short_1d": 0.001}')
    (out / "report.html").write_text("<html><body><h1>Backtest report</h1></body></html>")
    at.text_input(key="backtest_dir").input(str(out)).run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["n_items"] == "10"


def test_broken_store_shows_an_error_not_a_traceback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FINMON_STORE_URL", f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}?mode=ro")
    st.cache_data.clear()
    st.cache_resource.clear()
    (tmp_path / "missing-dir").mkdir()
    (tmp_path / "missing-dir" / "x.db").write_text("this is not a database")
    at = AppTest.from_string("from dashboards.views.news import render\nrender()", default_timeout=30)
    at.run()
    assert not at.exception
    assert at.error and "cannot be read" in at.error[0].value


def test_full_app_starts_on_the_overview(seeded: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINMON_STORE_URL", seeded)
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(REPO / "dashboards" / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception
    assert at.title[0].value == "Overview"


def test_alerts_page_shows_evidence_and_writes_silences(page, seeded: str) -> None:
    at = page("alerts")
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Resolved"]) >= 1  # the demo burst about HALC fired and resolved
    titles = [e.label for e in at.expander]
    assert any("negative-share-surge — ticker:HALC" in t for t in titles)
    assert len(at.dataframe) >= 1  # the headlines behind the alert's window
    at.text_input[0].input("negative-share-surge")
    at.text_input[1].input("ticker:HALC")
    at.button(key="FormSubmitter:new_silence-Add silence").click().run()
    assert not at.exception
    from monitor.store import Store
    from monitor.store import alerts as astore

    with Store(seeded).engine.connect() as conn:
        silences = astore.list_silences(conn)
    assert any(s["rule"] == "negative-share-surge" and s["key"] == "ticker:HALC" for s in silences)


def test_alerts_page_shows_each_rules_track_record(page, seeded: str) -> None:
    from datetime import UTC, datetime

    from monitor.alerts.track import TrackRecord
    from monitor.store import Store
    from monitor.store.track import save_track_records

    record = TrackRecord(rule="negative-share-surge", source="backtest of demo.jsonl",
                         computed_at=datetime(2026, 11, 30, tzinfo=UTC), direction="down", n_alerts=12, n_events=9,
                         hit_rate_1d=0.56, hit_rate_5d=0.67, car_1d=-0.002, car_5d=-0.011, t_1d=-0.8, t_5d=-2.3)
    with Store(seeded).engine.begin() as conn:
        save_track_records(conn, [record.to_json() | {"computed_at": record.computed_at}])
    captions = [c.value for c in page("alerts").caption]
    assert any("track record (backtest of demo.jsonl): fired 12x, 9 priced events" in c for c in captions)


def test_group_by_story_counts_copies_once_and_leaves_open_items_alone() -> None:
    import pandas as pd

    from dashboards.queries import group_by_story

    t = pd.Timestamp("2026-11-30T09:00Z")
    frame = pd.DataFrame({
        "id": ["a", "b", "c", "d"], "story_id": ["s1", "s1", None, "s2"],
        "published_at": [t, t + pd.Timedelta(minutes=5), t + pd.Timedelta(minutes=9), t - pd.Timedelta(hours=1)],
        "title": ["Acme recalls heaters", "RT @desk: Acme recalls heaters", "Acme CFO resigns", "Orbit wins order"],
        "source": ["wire", "social", "wire", "wire"], "sentiment_score": [-0.8, -0.6, -0.5, 0.7],
        "topic": ["Company | Product News"] * 4, "tickers": ["ACME", "ACME", "ACME", "ORBT"]})
    grouped = group_by_story(frame)
    assert list(grouped["headline"]) == ["Acme CFO resigns", "Acme recalls heaters", "Orbit wins order"]
    assert list(grouped["copies"]) == [1, 2, 1] and list(grouped["sources"]) == [1, 2, 1]
    assert grouped.loc[1, "mean_score"] == pytest.approx(-0.7) and pd.isna(grouped.loc[0, "story_id"])
