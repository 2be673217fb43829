"""Altair charts with one colour language: negative red, neutral grey, positive green."""

from __future__ import annotations

import altair as alt
import pandas as pd

from dashboards.state import DIVERGING

SENTIMENT_SCALE = alt.Scale(scheme=DIVERGING, domain=[-1, 1])
TIME = alt.X("window_start:T", title=None)


def sentiment_and_volume(frame: pd.DataFrame, title: str) -> alt.VConcatChart:
    """Sentiment index (points coloured by value) above news volume bars, sharing the time axis."""
    base = alt.Chart(frame).encode(x=TIME)
    tooltip = [
        "window_start:T",
        "count:Q",
        alt.Tooltip("sentiment_index:Q", format=".2f"),
        alt.Tooltip("negative_share:Q", format=".0%"),
        alt.Tooltip("volume_z:Q", format=".1f"),
    ]
    line = base.mark_line(color="#607d8b").encode(
        y=alt.Y("sentiment_index:Q", title="sentiment index", scale=alt.Scale(domain=[-1, 1]))
    )
    points = base.mark_circle(size=40).encode(
        y="sentiment_index:Q", color=alt.Color("sentiment_index:Q", scale=SENTIMENT_SCALE, legend=None), tooltip=tooltip
    )
    zero = alt.Chart(pd.DataFrame({"y": [0]})).mark_rule(strokeDash=[4, 4], color="#9e9e9e").encode(y="y:Q")
    bars = base.mark_bar(color="#90a4ae").encode(y=alt.Y("count:Q", title="items"), tooltip=tooltip)
    top = (line + points + zero).properties(height=220, title=title)
    return alt.vconcat(top, bars.properties(height=110)).resolve_scale(x="shared")


def topic_small_multiples(frame: pd.DataFrame) -> alt.FacetChart:
    data = frame.assign(topic=frame["key"].str.removeprefix("topic:"))
    chart = (
        alt.Chart(data)
        .mark_area(opacity=0.8, interpolate="monotone")
        .encode(
            x=alt.X("window_start:T", title=None, axis=alt.Axis(labels=False, ticks=False)),
            y=alt.Y("sentiment_index:Q", title=None, scale=alt.Scale(domain=[-1, 1])),
            color=alt.Color("mean(sentiment_index):Q", scale=SENTIMENT_SCALE, legend=None),
            tooltip=["topic:N", "window_start:T", "count:Q", alt.Tooltip("sentiment_index:Q", format=".2f")],
        )
        .properties(width=160, height=70)
    )
    return chart.facet(facet=alt.Facet("topic:N", title=None), columns=4)


def topic_heatmap(frame: pd.DataFrame) -> alt.Chart:
    data = frame.assign(topic=frame["key"].str.removeprefix("topic:"))
    return (
        alt.Chart(data)
        .mark_rect()
        .encode(
            x=alt.X("window_start:T", title=None),
            x2="window_end:T",
            y=alt.Y("topic:N", title=None, sort="ascending"),
            color=alt.Color("sentiment_index:Q", scale=SENTIMENT_SCALE, title="sentiment"),
            tooltip=[
                "topic:N",
                "window_start:T",
                "count:Q",
                alt.Tooltip("sentiment_index:Q", format=".2f"),
                alt.Tooltip("negative_share:Q", format=".0%"),
            ],
        )
        .properties(height=420)
    )


def movers_bar(frame: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("change:Q", title="change in sentiment index"),
            y=alt.Y("ticker:N", sort=alt.EncodingSortField("change", order="ascending"), title=None),
            color=alt.Color("change:Q", scale=SENTIMENT_SCALE, legend=None),
            tooltip=[
                "ticker:N",
                alt.Tooltip("before:Q", format=".2f"),
                alt.Tooltip("after:Q", format=".2f"),
                "items:Q",
            ],
        )
        .properties(height=max(120, 22 * len(frame)))
    )


def z_scores(frame: pd.DataFrame) -> alt.Chart:
    long = frame.melt(
        id_vars=["window_start"], value_vars=["volume_z", "sentiment_z"], var_name="metric", value_name="z"
    ).dropna()
    return (
        alt.Chart(long)
        .mark_line(point=True)
        .encode(
            x=TIME,
            y=alt.Y("z:Q", title="z-score"),
            color=alt.Color(
                "metric:N", scale=alt.Scale(domain=["volume_z", "sentiment_z"], range=["#ff9800", "#3f51b5"])
            ),
            tooltip=["window_start:T", "metric:N", alt.Tooltip("z:Q", format=".2f")],
        )
        .properties(height=160)
    )
