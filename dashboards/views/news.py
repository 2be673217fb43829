"""News explorer: the latest scored items with their scores and language, filtered by topic, ticker,
sentiment, language, time and free text, downloadable as CSV."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import data
from dashboards.queries import NewsFilter, group_by_story
from dashboards.state import EMPTY_HINT, SENTIMENT_COLORS, store_error, time_controls


def _filters() -> NewsFilter | None:
    _, latest = data.time_bounds(data.url())
    if latest is None:
        st.info(EMPTY_HINT)
        return None
    window = time_controls(latest)
    cols = st.columns([2, 2, 2, 2, 3])
    topics = cols[0].multiselect("Topic", data.topics(data.url()), key="news_topics")
    tickers = cols[1].text_input("Tickers (comma separated)", key="news_tickers")
    sentiments = cols[2].multiselect("Sentiment", list(SENTIMENT_COLORS), key="news_sentiments")
    langs = cols[3].multiselect("Language", data.languages(data.url()), key="news_langs",
                                help="ISO 639-1 codes (en, zh, ja, ...); und: too little text to tell, or scored "
                                     "before language detection")
    text = cols[4].text_input("Text contains", key="news_text")
    symbols = tuple(t.strip().lstrip("$").upper() for t in tickers.split(",") if t.strip())
    return NewsFilter(
        start=window.start,
        end=window.end,
        topics=tuple(topics),
        tickers=symbols,
        sentiments=tuple(sentiments),
        langs=tuple(langs),
        text=text,
        limit=500,
    )


def _table(f: NewsFilter, by_story: bool) -> None:
    frame = data.news(data.url(), f)
    st.caption(f"{len(frame)} items (newest first, at most {f.limit})")
    if frame.empty:
        st.info("No item matches these filters; widen the time range or clear a filter.")
        return
    if by_story:
        _stories(frame)
        return
    st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        column_config={
            "url": st.column_config.LinkColumn("link", display_text="open"),
            "sentiment_score": st.column_config.ProgressColumn("score", min_value=-1.0, max_value=1.0, format="%.2f"),
            "published_at": st.column_config.DatetimeColumn("published (UTC)", format="YYYY-MM-DD HH:mm"),
        },
    )
    st.download_button("Download CSV", frame.to_csv(index=False).encode("utf-8"), "finmon-news.csv", "text/csv")


def _stories(frame: pd.DataFrame) -> None:
    """One row per story: retweets and syndicated copies of a headline counted once (stories settle behind
    stream time, so the newest items may still stand alone)."""
    stories = group_by_story(frame)
    st.caption(f"{len(stories)} stories in these items")
    st.dataframe(
        stories,
        hide_index=True,
        width="stretch",
        column_config={
            "mean_score": st.column_config.ProgressColumn("score", min_value=-1.0, max_value=1.0, format="%.2f"),
            "first_seen": st.column_config.DatetimeColumn("first seen (UTC)", format="YYYY-MM-DD HH:mm"),
        },
    )


def render() -> None:
    st.title("News explorer")
    try:
        f = _filters()
        if f is None:
            return
        by_story = st.toggle("Group by story", key="news_by_story",
                             help="Count retweets and syndicated copies of one story once")

        @st.fragment(run_every="10s")
        def live() -> None:
            _table(f, by_story)

        live()
    except Exception as exc:
        store_error(exc)
