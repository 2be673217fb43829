"""Alert rules, lifecycle, silences, acks and notifications, driven with a manual clock over real stores,
a local HTTP server (webhook, Slack format) and a local aiosmtpd SMTP server with STARTTLS."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from prometheus_client import generate_latest

from monitor.alerts.errors import RulesError
from monitor.alerts.rules import load_rules, parse_rules
from monitor.alerts.service import AlertService, start_scheduler
from monitor.clock import ManualClock
from monitor.config import load_settings
from monitor.kafka.broker import free_port
from monitor.records import SourceMark, encode
from monitor.stages.aggregate import AggregateProcessor
from monitor.store import Store
from monitor.store import alerts as astore
from monitor.store.sources import apply_marks
from monitor.timestamps import to_us
from pipelines.cli import cli
from tests.alert_feed import BASE, BURST_END, BURST_START, END, HOT, QUIET, burst_feed
from tests.test_windows import Record

STEP = timedelta(minutes=1)


def load_feed(url: str) -> Store:
    """The burst feed through the real aggregate processor into a fresh store."""
    store = Store(url)
    store.create_schema()
    settings = load_settings(None, store_url=url)
    processor = AggregateProcessor(settings, store, ManualClock(BASE))
    records = [Record("news.scored", 0, i, None, encode(s)) for i, s in enumerate(burst_feed())]
    for i in range(0, len(records), 250):
        processor.process(records[i : i + 250])
    with store.engine.begin() as conn:  # no source marks here: settle every story, as an idle stream would
        processor.aggregator.settle_stories(conn, to_us(END) + 1)
    return store


def service_for(
    url: str, store: Store, clock: ManualClock, rules_text: str | None = None, **alerts: Any
) -> AlertService:
    settings = load_settings(None, store_url=url, alerts=alerts or None)
    rules = parse_rules(rules_text) if rules_text is not None else load_rules()
    return AlertService(settings, store, clock, rules)


def run(service: AlertService, clock: ManualClock, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Evaluate (and dispatch) once a minute of event time from start to end."""
    transitions = []
    t = start
    while t <= end:
        clock.set(t)
        transitions += service.evaluate()
        service.dispatch()
        t += STEP
    return transitions



@pytest.mark.parametrize("jump", [timedelta(minutes=47), timedelta(hours=2)])
def test_stream_mode_fires_the_same_alerts_whatever_the_replay_speed(store_url: str, jump: timedelta) -> None:
    """A fast replay moves event time in big jumps; the stream clock ticks through them, so the burst still
    goes pending -> firing -> resolved (evaluating only at each jump, `for: 5min` would never be met)."""
    store = load_feed(store_url)
    clock = ManualClock(BURST_START - timedelta(minutes=30))
    service = service_for(store_url, store, clock, time_mode="stream", stream_step_s=300)
    service.evaluate()  # the replay's first batch
    transitions = []
    while clock.now() < BURST_END + timedelta(hours=1):
        clock.set(clock.now() + jump)
        transitions += service.evaluate()
    surge = [t["state"] for t in transitions if t["rule"] == "negative-share-surge" and t["key"] == f"ticker:{HOT}"]
    assert surge == ["pending", "firing", "resolved"]
    with store.engine.connect() as conn:
        alert = next(a for a in astore.list_alerts(conn) if a["rule"] == "negative-share-surge")
    # stamped with event time on the step grid, not with the (much later) time of the jump
    assert BURST_START < alert["fired_at"] <= BURST_END + timedelta(minutes=5)
    assert not any(t["key"].startswith(("ticker:QA", "ticker:QB")) for t in transitions)


# --- rules ------------------------------------------------------------------------------------------


def test_default_rules_load_and_cover_the_three_signals() -> None:
    rules = load_rules()
    assert {r.name for r in rules.rules} == {"negative-share-surge", "sentiment-drop", "volume-spike",
                                             "negative-story-burst", "daily-sentiment-drop", "daily-attention-spike"}
    assert {r.window for r in rules.rules} == {"5min", "1h", "1d"}
    stories = {r.name for r in rules.rules if r.min_stories >= 5}  # these count stories, not copies
    assert stories == {"negative-share-surge", "negative-story-burst"}
    daily = {r.name: r.min_stories for r in rules.rules if r.window == "1d"}  # sparse tickers: a few a day
    assert daily == {"daily-sentiment-drop": 2, "daily-attention-spike": 3}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "rules: [{name: a, scope: tickr, window: 5min, when: ['count > 1']}]",
            "rule 'a', field 'scope': scope entry 'tickr'",
        ),
        ("rules: [{name: a, scope: ticker, window: 5min, when: ['count >> 1']}]", "must read 'METRIC OP NUMBER'"),
        ("rules: [{name: a, scope: ticker, window: 5min, when: ['fear > 1']}]", "'count', 'mean_sentiment'"),
        ("rules: [{name: a, scope: ticker, window: 7 parsecs, when: ['count > 1']}]", "field 'window'"),
        (
            "rules: [{name: a, scope: ticker, window: 5min, when: ['count > 1'], severity: high}]",
            "'info', 'warning' or 'critical' (got 'high')",
        ),
        ("rules: [{name: a, scope: ticker, window: 5min, when: ['count > 1'], for: soon}]", "'soon' is not a duration"),
        (
            "rules: [{name: a, scope: ticker, window: 5min, when: ['count > 1'], channels: [pager]}]",
            "channel(s) pager not defined under 'channels'",
        ),
        (
            "rules: [{name: a, scope: ticker, window: 5min, when: ['count > 1'], colour: red}]",
            "field 'colour': unknown",
        ),
        (
            "rules: [{name: a, scope: ticker, window: 5min, when: ['count > 1']}, {name: a, scope: market, window: 1h, "
            "when: ['count > 1']}]",
            "repeated: a",
        ),
        ("channels: {x: {type: pager}}\nrules: []", "'webhook', 'slack', 'email', 'log'"),
        ("rules: [{name: a, scope: ticker, window: 5min, when: ['__import__(\"os\") > 1']}]", "METRIC OP NUMBER"),
        ("- just a list", "must be a mapping"),
        ("rules: [unclosed", "not valid YAML"),
    ],
)
def test_rule_errors_name_the_file_rule_field_and_what_is_allowed(text: str, expected: str) -> None:
    with pytest.raises(RulesError) as info:
        parse_rules(text, "my-rules.yaml")
    assert "my-rules.yaml" in str(info.value)
    assert expected in str(info.value)


def test_a_missing_rules_file_says_which_setting_to_fix(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="FINMON_ALERTS__RULES_FILE"):
        load_rules(tmp_path / "nope.yaml")


# --- lifecycle ----------------------------------------------------------------------------------------------


def test_burst_fires_default_rules_for_the_hot_ticker_only_and_resolves(store_url: str) -> None:
    store = load_feed(store_url)
    clock = ManualClock(BASE)
    service = service_for(store_url, store, clock)
    transitions = run(service, clock, BURST_START - timedelta(minutes=30), BURST_END + timedelta(minutes=30))
    tickers = [t for t in transitions if t["key"].startswith("ticker:")]
    assert {t["key"] for t in tickers} == {f"ticker:{HOT}"}  # quiet tickers: nothing at all
    by_rule: dict[str, list[str]] = {}
    for t in tickers:
        by_rule.setdefault(t["rule"], []).append(t["state"])
    assert by_rule["negative-share-surge"] == ["pending", "firing", "resolved"]
    assert by_rule["sentiment-drop"] == ["pending", "firing", "resolved"]
    assert by_rule["volume-spike"] == ["pending", "firing", "resolved"]  # for: 0s fires in the same pass
    # 15 distinct negative stories in the burst's hour; its 1h window is still the latest at the end
    assert by_rule.pop("negative-story-burst") == ["pending", "firing"]
    with store.engine.connect() as conn:
        hot = [a for a in astore.list_alerts(conn) if a["key"] == f"ticker:{HOT}" and a["rule"] in by_rule]
        notes = astore.notifications(conn)
        history = astore.events(conn)
    assert all(a["state"] == "resolved" and a["started_at"] <= a["fired_at"] < a["resolved_at"] for a in hot)
    surge = next(a for a in hot if a["rule"] == "negative-share-surge")
    assert surge["fired_at"] - surge["started_at"] >= timedelta(minutes=5)  # the `for` duration
    assert BURST_START <= surge["fired_at"] <= BURST_END and surge["resolved_at"] <= BURST_END + timedelta(minutes=10)
    # one firing and one resolved notification per rule: no repeats inside the 1 h repeat interval
    kinds = Counter((n["payload"]["rule"], n["kind"]) for n in notes
                    if "ticker:HOT" in n["payload"]["title"] and n["payload"]["rule"] in by_rule)
    assert kinds == {(r, k): 1 for r in by_rule for k in ("firing", "resolved")}
    assert all(n["status"] == "sent" and n["channel"] == "log" for n in notes)
    assert len(history) == len(transitions)
    assert not any(f"ticker:{q}" in json.dumps(history, default=str) for q in QUIET)


REPEAT_RULES = """
rules:
  - name: surge
    scope: ticker
    window: 5min
    when: ["negative_share >= 0.5"]
    min_count: 3
    for: 0s
    repeat_interval: 3min
"""


def test_repeat_interval_silences_and_acks(sqlite_url: str) -> None:
    store = load_feed(sqlite_url)
    clock = ManualClock(BASE)
    service = service_for(sqlite_url, store, clock, REPEAT_RULES)
    run(service, clock, BURST_START, BURST_START + timedelta(minutes=6))
    with store.engine.connect() as conn:
        sent = [n["created_at"] for n in astore.notifications(conn)]
    # fired at +0 and re-notified at +3 and +6: exactly every repeat interval, never in between
    assert [t - BURST_START for t in sent] == [timedelta(0), timedelta(minutes=3), timedelta(minutes=6)]

    with store.engine.begin() as conn:
        assert astore.ack_alerts(conn, clock.now(), "me", rule="surge", key=f"ticker:{HOT}") == 1
    run(service, clock, BURST_START + timedelta(minutes=7), BURST_START + timedelta(minutes=10))
    with store.engine.connect() as conn:
        assert len(astore.notifications(conn)) == 3  # acknowledged: no more repeats

    with store.engine.begin() as conn:
        astore.add_silence(
            conn,
            {
                "rule": None,
                "key": f"ticker:{HOT}",
                "starts_at": clock.now(),
                "ends_at": clock.now() + timedelta(hours=2),
                "created_by": "t",
                "comment": "",
                "created_at": clock.now(),
            },
        )
    transitions = run(service, clock, BURST_START + timedelta(minutes=11), BURST_END + timedelta(minutes=20))
    assert [t["state"] for t in transitions] == ["resolved"]  # the state changes...
    with store.engine.connect() as conn:
        assert len(astore.notifications(conn)) == 3  # ...but a silenced alert wakes nobody up


# --- notifications ----------------------------------------------------------------------------------------------


class Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, Any]]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.received.append((self.path, body))  # type: ignore[attr-defined]
        self.send_response(500 if self.path.startswith("/fail") else 200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[tuple[Controller, Mailbox, Path]]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(), tls_context=context, require_starttls=True)
    controller.start()
    yield controller, mailbox, cert
    controller.stop()


def notify_rules(smtp_port: int, cert: Path) -> str:
    return f"""
channels:
  hook: {{type: webhook, url_env: T_HOOK_URL}}
  chat: {{type: slack, url_env: T_SLACK_URL}}
  mail: {{type: email, host: 127.0.0.1, port: {smtp_port}, sender: finmon@test.example,
          to: [oncall@test.example], ca_file: "{cert}"}}
  broken: {{type: webhook, url_env: T_BROKEN_URL}}
  nosecret: {{type: webhook, url_env: T_UNSET_URL}}
  log: {{type: log}}
defaults: {{channels: [log], repeat_interval: 4h}}
rules:
  - name: hot-news
    scope: [ticker]
    window: 5min
    when: ["negative_share >= 0.6"]
    min_count: 5
    for: 2min
    severity: critical
    channels: [broken, nosecret, hook, chat, mail, log]
"""


def test_notifications_reach_webhook_slack_and_smtp_while_a_broken_channel_retries(
    sqlite_url: str,
    http_server: ThreadingHTTPServer,
    smtp_server: tuple[Controller, Mailbox, Path],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    controller, mailbox, cert = smtp_server
    base_url = f"http://127.0.0.1:{http_server.server_port}"
    monkeypatch.setenv("T_HOOK_URL", f"{base_url}/hook/secret-token-123")
    monkeypatch.setenv("T_SLACK_URL", f"{base_url}/slack/secret-token-456")
    monkeypatch.setenv("T_BROKEN_URL", f"{base_url}/fail/secret-token-789")
    monkeypatch.delenv("T_UNSET_URL", raising=False)
    store = load_feed(sqlite_url)
    clock = ManualClock(BASE)
    service = service_for(
        sqlite_url, store, clock, notify_rules(controller.port, cert), retry_max_attempts=3, retry_base_s=30.0
    )
    run(service, clock, BURST_START, BURST_END + timedelta(minutes=15))

    received = http_server.received  # type: ignore[attr-defined]
    hooks = [body for path, body in received if path.startswith("/hook/")]
    assert [(b["kind"], [a["key"] for a in b["alerts"]]) for b in hooks] == [
        ("firing", [f"ticker:{HOT}"]),
        ("resolved", [f"ticker:{HOT}"]),
    ]
    assert hooks[0]["alerts"][0]["severity"] == "critical" and hooks[0]["alerts"][0]["window"]["count"] >= 5
    slack = [body for path, body in received if path.startswith("/slack/")]
    assert len(slack) == 2 and "FIRING: hot-news" in slack[0]["text"] and slack[0]["attachments"][0]["title"]
    assert len(mailbox.messages) == 2
    assert mailbox.messages[0].rcpt_tos == ["oncall@test.example"]
    assert b"FIRING: hot-news" in mailbox.messages[0].content

    with store.engine.connect() as conn:
        notes = {(n["channel"], n["kind"]): n for n in astore.notifications(conn)}
    delivered = {notes[(c, k)]["status"] for c in ("hook", "chat", "mail", "log") for k in ("firing", "resolved")}
    assert delivered == {"sent"}
    broken = notes[("broken", "firing")]
    assert broken["status"] == "failed" and broken["attempts"] == 3 and "HTTP 500" in broken["last_error"]
    assert len([p for p, _ in received if p.startswith("/fail/")]) == 6  # 3 attempts x 2 messages, with backoff
    unset = notes[("nosecret", "firing")]
    assert unset["status"] == "failed" and unset["attempts"] == 1 and "T_UNSET_URL is not set" in unset["last_error"]
    everything = caplog.text + json.dumps([n["last_error"] for n in notes.values()])
    assert "secret-token" not in everything  # secrets never logged nor stored


def test_daily_digest_and_the_scheduler_run_without_news(
    sqlite_url: str, http_server: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_HOOK_URL", f"http://127.0.0.1:{http_server.server_port}/digest")
    store = load_feed(sqlite_url)
    clock = ManualClock(BURST_START + timedelta(minutes=1))
    rules = "channels: {hook: {type: webhook, url_env: T_HOOK_URL}}\n" + REPEAT_RULES
    service = service_for(
        sqlite_url, store, clock, rules, evaluate_every_s=0.2, dispatch_every_s=0.2, digest_channels=["hook"]
    )
    scheduler = start_scheduler(service)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # no records arrive: the scheduler alone evaluates
            with store.engine.connect() as conn:
                if any(a["state"] == "firing" for a in astore.list_alerts(conn)):
                    break
            time.sleep(0.1)
        service.digest()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not http_server.received:  # type: ignore[attr-defined]
            time.sleep(0.1)
    finally:
        scheduler.shutdown(wait=True)
    digest = [body for _, body in http_server.received]  # type: ignore[attr-defined]
    assert digest and digest[0]["kind"] == "digest"
    assert "1 firing now" in digest[0]["text"] and "surge/ticker:HOT firing" in digest[0]["text"]


# --- CLI ---------------------------------------------------------------------------------------------------


def test_cli_lists_silences_and_acks(sqlite_url: str) -> None:
    store = load_feed(sqlite_url)
    clock = ManualClock(BASE)
    run(service_for(sqlite_url, store, clock), clock, BURST_START, BURST_START + timedelta(minutes=6))
    env = {"FINMON_STORE_URL": sqlite_url}
    runner = CliRunner()
    listed = json.loads(runner.invoke(cli, ["alerts", "list", "--json"], env=env).output)
    hot = [a for a in listed if a["key"] == f"ticker:{HOT}"]
    assert {a["rule"] for a in hot} == {"negative-share-surge", "sentiment-drop", "volume-spike",
                                        "negative-story-burst"}
    assert all(set(a) >= {"rule", "key", "state", "severity", "started_at", "resolved_at"} for a in listed)
    assert all(a["state"] in ("pending", "firing", "resolved") and a["resolved_at"] is None for a in hot)
    assert all(a["started_at"].endswith("Z") for a in listed)

    result = runner.invoke(
        cli, ["alerts", "ack", "--rule", "volume-spike", "--key", f"ticker:{HOT}", "--by", "me"], env=env
    )
    assert result.exit_code == 0 and json.loads(result.output) == {"acknowledged": 1}
    result = runner.invoke(cli, ["alerts", "silence", "--key", f"ticker:{HOT}", "--for", "30min"], env=env)
    assert result.exit_code == 0 and json.loads(result.output)["key"] == f"ticker:{HOT}"
    result = runner.invoke(cli, ["alerts", "silence", "--for", "soon", "--rule", "x"], env=env)
    assert result.exit_code != 0 and "not a duration" in result.output

    windows = json.loads(
        runner.invoke(cli, ["windows", "--key", f"ticker:{HOT}", "--size", "5min", "--json"], env=env).output
    )
    assert set(windows[0]) == {
        "window_start",
        "window_end",
        "count",
        "mean_sentiment",
        "negative_share",
        "neutral_share",
        "positive_share",
        "sentiment_index",
        "volume_z",
        "sentiment_z",
        "story_z",
        "story_sentiment_z",
        "n_stories",
        "n_negative_stories",
        "story_sentiment",
        "story_negative_share",
    }
    assert windows[0]["volume_z"] is None and windows[-1]["volume_z"] is not None  # null until defined
    assert windows[0]["window_start"] == BASE.isoformat().replace("+00:00", "Z")
    bad = runner.invoke(cli, ["windows", "--key", "market", "--size", "5 parsecs"], env=env)
    assert bad.exit_code != 0 and "pandas alias" in bad.output


def test_alerts_of_one_rule_firing_together_are_grouped_into_one_notification(sqlite_url: str) -> None:
    from tests.alert_feed import item

    store = Store(sqlite_url)
    store.create_schema()
    feed = [
        item(f"{t}-{j}", t, BURST_START + timedelta(seconds=20 * j), "negative")
        for t in ("AAA", "BBB")
        for j in range(8)
    ]
    feed.append(item("calm-1", "CCC", BURST_START, "positive"))
    processor = AggregateProcessor(load_settings(None, store_url=sqlite_url), store, ManualClock(BASE))
    processor.process([Record("news.scored", 0, i, None, encode(s)) for i, s in enumerate(feed)])
    clock = ManualClock(BURST_START)
    service = service_for(sqlite_url, store, clock, REPEAT_RULES)
    transitions = service.evaluate()
    assert sorted((t["key"], t["state"]) for t in transitions) == [
        ("ticker:AAA", "firing"),
        ("ticker:AAA", "pending"),
        ("ticker:BBB", "firing"),
        ("ticker:BBB", "pending"),
    ]
    with store.engine.connect() as conn:
        notes = astore.notifications(conn)
    assert len(notes) == 1  # one message for the group (rule, kind) on the one channel
    assert [a["key"] for a in notes[0]["payload"]["alerts"]] == ["ticker:AAA", "ticker:BBB"]
    assert notes[0]["payload"]["title"] == "FIRING: surge (2): ticker:AAA, ticker:BBB"


@pytest.fixture
def hanging_server() -> Iterator[int]:
    """Accepts connections and never answers: a notification endpoint that hangs."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for sock in [*held, listener]:
        sock.close()


def test_a_hanging_endpoint_times_out_without_blocking_the_other_channels(
    sqlite_url: str, http_server: ThreadingHTTPServer, hanging_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_HOOK_URL", f"http://127.0.0.1:{http_server.server_port}/hook/x")
    monkeypatch.setenv("T_HANG_URL", f"http://127.0.0.1:{hanging_server}/hang")
    rules = """
channels:
  hang: {type: webhook, url_env: T_HANG_URL}
  hook: {type: webhook, url_env: T_HOOK_URL}
rules:
  - name: hot-news
    scope: [ticker]
    window: 5min
    when: ["negative_share >= 0.6"]
    min_count: 5
    for: 2min
    severity: critical
    channels: [hang, hook]
"""
    store = load_feed(sqlite_url)
    clock = ManualClock(BASE)
    service = service_for(sqlite_url, store, clock, rules, http_timeout_s=1.0, retry_max_attempts=2, retry_base_s=60.0)
    started = time.monotonic()
    run(service, clock, BURST_START, BURST_END + timedelta(minutes=15))
    elapsed = time.monotonic() - started
    hooks = [body for path, body in http_server.received if path.startswith("/hook/")]  # type: ignore[attr-defined]
    assert [b["kind"] for b in hooks] == ["firing", "resolved"]  # the healthy channel got everything
    with store.engine.connect() as conn:
        hung = [n for n in astore.notifications(conn) if n["channel"] == "hang"]
    assert hung and all(n["status"] in ("pending", "failed") and n["last_error"] for n in hung)
    assert any("timed out" in n["last_error"].lower() or "timeout" in n["last_error"].lower() for n in hung)
    assert elapsed < 30  # each attempt is cut at http_timeout_s: a hung endpoint cannot stall the stage
    exposed = generate_latest().decode()  # ...and the failures are visible in the metrics
    assert 'finmon_notifications_total{channel="hang",outcome="failed"}' in exposed


def test_wall_mode_holds_evaluation_while_the_stream_catches_up(sqlite_url: str) -> None:
    """A backlog fills the windows near `now` bit by bit: wall-clock alerting waits until the sources (their
    classify workers and the aggregators) have caught up, instead of firing from half-filled windows."""
    store = load_feed(sqlite_url)
    clock = ManualClock(BURST_START + timedelta(minutes=8))
    service = service_for(sqlite_url, store, clock)
    topic = service.settings.kafka.topics.scored

    def mark(through: int, lag: int, idle: bool, sent: datetime) -> None:
        with store.engine.begin() as conn:
            apply_marks(conn, topic, [(0, SourceMark("news.raw", 0, through, BURST_END, idle, 1, sent, lag))])

    mark(10, 5000, False, clock.now())
    assert service.evaluate() == []  # classify is 5000 records behind
    mark(20, 0, False, clock.now() - timedelta(minutes=5))
    assert service.evaluate() == []  # caught up at the source, but the aggregators are 5 minutes behind
    mark(30, 0, True, clock.now())
    fired = {(t["rule"], t["key"]) for t in service.evaluate()}
    assert ("volume-spike", f"ticker:{HOT}") in fired
