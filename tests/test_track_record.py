"""Rule track records: what a rule's alerts were followed by in a backtest, stored and shown with live alerts
(notifications, `finmon alerts list --json`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from monitor.alerts.notify import render_text, slack_body
from monitor.alerts.rules import load_rules, parse_rules
from monitor.alerts.track import TrackRecord
from monitor.clock import ManualClock
from monitor.store.schema import alert_notifications
from monitor.store.track import save_track_records, track_records
from pipelines.backtest.events import OFFSETS
from pipelines.backtest.track import direction
from pipelines.backtest.track import track_records as measure
from pipelines.cli import cli
from tests.test_alerts import BURST_END, BURST_START, HOT, load_feed, run, service_for

AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_direction_comes_from_the_conditions_or_a_label() -> None:
    shipped = {rule.name: direction(rule) for rule in load_rules().rules}
    assert shipped["negative-share-surge"] == "down" and shipped["sentiment-drop"] == "down"
    assert shipped["volume-spike"] is None
    custom = parse_rules("rules:\n"
                         "  - {name: joy, scope: ticker, window: 1h, when: ['positive_share >= 0.7']}\n"
                         "  - {name: spike, scope: ticker, window: 1h, when: ['volume_z >= 3'],"
                         " labels: {direction: up}}\n")
    assert [direction(r) for r in custom.rules] == ["up", "up"]


def _events(rule: str, post: list[list[float]]) -> pd.DataFrame:
    """Events of `rule` whose abnormal returns on days +1.. are given (all other days 0)."""
    rows = []
    for i, ars in enumerate(post):
        ar = {f"ar_{k}": 0.0 for k in OFFSETS}
        ar.update({f"ar_{k + 1}": v for k, v in enumerate(ars)})
        rows.append({"alert_id": i, "rule": rule, "severity": "warning", "ticker": "X", "day0": AT, **ar})
    return pd.DataFrame(rows)


def test_hit_rates_cars_and_t_statistics_per_rule() -> None:
    rules = load_rules()
    events = _events("negative-share-surge", [[-0.01, -0.01, 0, 0, 0], [-0.02, 0.0, 0, 0, -0.01],
                                              [0.01, 0.0, 0, 0, 0.03]])
    alerts = pd.DataFrame({"rule": ["negative-share-surge"] * 4 + ["volume-spike"]})
    records = {r.rule: r for r in measure(rules, alerts, events, "test", AT)}
    surge = records["negative-share-surge"]
    assert (surge.n_alerts, surge.n_events, surge.direction) == (4, 3, "down")
    assert surge.hit_rate_1d == pytest.approx(2 / 3) and surge.car_1d == pytest.approx(-0.02 / 3)
    cars_5d = [-0.02, -0.03, 0.04]
    assert surge.car_5d == pytest.approx(sum(cars_5d) / 3) and surge.hit_rate_5d == pytest.approx(2 / 3)
    mean = sum(cars_5d) / 3
    se = (sum((c - mean) ** 2 for c in cars_5d) / 2) ** 0.5 / 3 ** 0.5
    assert surge.t_5d == pytest.approx(mean / se)
    spike = records["volume-spike"]
    assert (spike.n_alerts, spike.n_events, spike.hit_rate_1d, spike.car_1d) == (1, 0, None, None)
    assert records["sentiment-drop"].n_alerts == 0  # a rule that never fired has a record too
    assert "fired 4x, 3 priced events" in surge.describe() and "67% down" in surge.describe()


def test_live_alerts_show_their_rules_track_record(store_url: str) -> None:
    store = load_feed(store_url)
    record = TrackRecord(rule="negative-share-surge", source="backtest of stocknet.csv", computed_at=AT,
                         direction="down", n_alerts=40, n_events=31, hit_rate_1d=0.61, hit_rate_5d=0.58,
                         car_1d=-0.004, car_5d=-0.008, t_1d=-1.4, t_5d=-2.1)
    with store.engine.begin() as conn:
        save_track_records(conn, [record.to_json() | {"computed_at": record.computed_at}])
        assert TrackRecord.from_mapping(track_records(conn)["negative-share-surge"]) == record

    clock = ManualClock(BURST_START)
    run(service_for(store_url, store, clock), clock, BURST_START, BURST_END + timedelta(minutes=10))
    with store.engine.connect() as conn:
        payloads = [json.loads(r.payload) if isinstance(r.payload, str) else r.payload
                    for r in conn.execute(select(alert_notifications))]
    surge = [p for p in payloads if p["rule"] == "negative-share-surge"]
    assert surge and all(p["track_record"]["car_5d"] == -0.008 for p in surge)
    text = render_text(surge[0])
    assert "track record (backtest of stocknet.csv): fired 40x, 31 priced events" in text
    assert "5d CAR -0.80% (t=-2.1), 58% down" in text
    assert slack_body(surge[0])["attachments"][-1]["title"] == "track record"
    others = [p for p in payloads if p["rule"] != "negative-share-surge"]
    assert all("track_record" not in p for p in others)  # no record saved for them: nothing invented

    listed = json.loads(CliRunner().invoke(cli, ["alerts", "list", "--json", "--all"],
                                           env={"FINMON_STORE_URL": store_url}).output)
    hot = [a for a in listed if a["key"] == f"ticker:{HOT}"]
    assert any(a["rule"] == "negative-share-surge" and a["track_record"]["n_events"] == 31 for a in hot)
    assert all(a["track_record"] is None for a in listed if a["rule"] != "negative-share-surge")
