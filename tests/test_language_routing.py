"""Routing by language (`classify.models_by_lang`): each item is scored by its language's model, batched per model,
with that model's version stored; a Chinese and a mixed-language feed through `finmon up` reach the right model,
the windows and the tickers of a watchlist. The second model is the packaged one under another name (a model
with its own version is all the router needs to tell apart); headlines written for these tests."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import namedtuple
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor.classify import load_classifier
from monitor.classify.base import Classifier, Prediction
from monitor.classify.model import resolve_model_dir
from monitor.classify.routing import ModelRouter, RoutingError
from monitor.clock import ManualClock
from monitor.config import load_settings
from monitor.kafka.broker import free_port
from monitor.records import ScoredItem, decode_raw, decode_scored_record
from monitor.stages.classify import ClassifyProcessor
from monitor.store import Store
from monitor.store.schema import scored_items
from monitor.store.windows import all_windows
from pipelines.backtest.run import BacktestConfig, score_items
from pipelines.backtest.scoring import ScoreStats
from tests.conftest import REPO, make_settings, settings_env

T0 = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)
Record = namedtuple("Record", "topic partition offset key value")
CHINESE = ["贵州茅台一季度净利润同比增长18%，超出市场预期", "腾讯控股宣布回购100亿港元股份",
           "宁德时代股价大跌，投资者担忧需求放缓", "央行宣布下调存款准备金率0.5个百分点",
           "中国平安发布年报，营收小幅下降"]
ENGLISH = ["Apple shares slide as iPhone sales disappoint", "Fed holds rates steady, signals two cuts this year",
           "Nvidia beats estimates on data-center demand"]
GERMAN = ["Siemens hebt die Prognose nach starkem Quartal an"]
WATCHLIST = "600519.SH: {names: [贵州茅台]}\n0700.HK: {names: [腾讯控股]}\n300750.SZ: {names: [宁德时代]}\n"


class Counting:
    """A real model, with the batches it was asked to score recorded."""

    def __init__(self, inner: Classifier) -> None:
        self.inner, self.calls = inner, []  # type: Classifier, list[int]

    @property
    def version(self) -> str:
        return self.inner.version

    @property
    def topic_labels(self) -> tuple[str, ...]:
        return self.inner.topic_labels

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        self.calls.append(len(texts))
        return self.inner.predict(texts)


@pytest.fixture(scope="module")
def zh_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models") / "zh-model"
    shutil.copytree(resolve_model_dir(None), out)
    config = json.loads((out / "finmon_config.json").read_text())
    config["name"] = "finmon-zh-test"
    (out / "finmon_config.json").write_text(json.dumps(config))
    return out


def feed() -> list[dict[str, object]]:
    texts = [*CHINESE, *ENGLISH, *GERMAN]
    rows: list[dict[str, object]] = [
        {"id": f"r{i}", "title": t, "published_at": (T0 + timedelta(minutes=i)).isoformat()}
        for i, t in enumerate(texts)]
    rows.append({"id": "given", "title": "Short note", "lang": "zh-Hant",  # the feed's language wins
                 "published_at": (T0 + timedelta(minutes=len(texts))).isoformat()})
    return rows


def test_each_item_is_scored_by_its_languages_model_in_one_batch_per_model(zh_model: Path, tmp_path: Path) -> None:
    settings = load_settings(None, store_url=f"sqlite:///{tmp_path / 'r.db'}")
    store = Store(settings.store_url)
    store.create_schema()
    models: dict[str | None, Counting] = {}
    router = ModelRouter.load(None, {"zh": str(zh_model), "ZH-TW": str(zh_model)},
                              lambda name: models.setdefault(name, Counting(load_classifier(name, device="cpu"))))
    assert len(router.models) == 2  # a model named for two languages is loaded once
    records = [Record("news.raw", 0, i, None, json.dumps(r).encode()) for i, r in enumerate(feed())]
    out = ClassifyProcessor(settings, router, ManualClock(T0 + timedelta(days=1)), store).process(records)
    scored = {s.item.id: s for s in (decode_scored_record(m.value) for m in out) if isinstance(s, ScoredItem)}
    by_version = {s.item.id: s.model_version for s in scored.values()}
    zh, default = models[str(zh_model)].version, models[None].version
    assert zh.startswith("finmon-zh-test-") and default.startswith("finmon-minilm-")
    chinese_ids = {f"r{i}" for i in range(len(CHINESE))} | {"given"}
    assert {i for i, v in by_version.items() if v == zh} == chinese_ids
    assert {i for i, v in by_version.items() if v == default} == set(scored) - chinese_ids  # English and German
    assert scored["given"].item.lang == "zh" and scored[f"r{len(CHINESE) + len(ENGLISH)}"].item.lang == "de"
    assert models[str(zh_model)].calls == [len(chinese_ids)] and models[None].calls == [len(ENGLISH) + len(GERMAN)]
    # the same texts through the default model alone: the router changes who scores, not what a model says
    alone = load_classifier(str(zh_model), device="cpu").predict(CHINESE)
    assert [scored[f"r{i}"].sentiment_probs for i in range(len(CHINESE))] == [p.sentiment_probs for p in alone]


def test_a_model_with_other_topic_labels_is_refused_with_the_fix(zh_model: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(zh_model, other)
    config = json.loads((other / "finmon_config.json").read_text())
    config["topic_labels"] = [f"{label} (v2)" for label in config["topic_labels"]]
    (other / "finmon_config.json").write_text(json.dumps(config))
    with pytest.raises(RoutingError, match=r"other topic labels than the default.*--topic-labels"):
        ModelRouter.load(None, {"zh": str(other)}, lambda name: load_classifier(name, device="cpu"))


def test_chinese_and_mixed_feeds_through_finmon_up_reach_the_right_model_windows_and_tickers(
    zh_model: Path, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in feed()), encoding="utf-8")
    (tmp_path / "watchlist.yaml").write_text(WATCHLIST, encoding="utf-8")
    settings = make_settings(f"127.0.0.1:{free_port()}", f"sqlite:///{tmp_path / 'up.db'}")
    env = {**settings_env(settings), "FINMON_CLASSIFY__MODELS_BY_LANG": json.dumps({"zh": str(zh_model)}),
           "FINMON_ENTITIES__WATCHLIST_FILE": str(tmp_path / "watchlist.yaml")}
    cmd = [sys.executable, "-m", "pipelines.cli", "up", "--feed", str(path), "--speed", "max", "--no-dashboard",
           "--stop-after-idle", "4"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["stored"] == len(feed())
    with Store(settings.store_url).engine.connect() as conn:
        rows = {r["id"]: r for r in conn.execute(select(scored_items)).mappings()}
        windows = all_windows(conn)
    assert {i for i, r in rows.items() if r["model_version"].startswith("finmon-zh-test-")} == {
        *(f"r{i}" for i in range(len(CHINESE))), "given"}
    assert all(r["model_version"].startswith("finmon-minilm-") for i, r in rows.items() if r["lang"] != "zh")
    assert "600519.SH" in rows["r0"]["tickers"] and "0700.HK" in rows["r1"]["tickers"]
    hourly = windows[windows["size"] == "1h"]
    for key in ("ticker:600519.SH", "ticker:0700.HK", "ticker:300750.SZ"):
        assert hourly.loc[hourly["key"] == key, "count"].sum() == 1, key
    assert hourly.loc[hourly["key"] == "market", "count"].sum() == len(feed())


def test_the_backtest_routes_like_live_classify(zh_model: Path, tmp_path: Path) -> None:
    """`finmon backtest` scores each item with the model live classify would use: the same versions and labels."""
    settings = load_settings(None, store_url=f"sqlite:///{tmp_path / 'r.db'}",
                             classify={"models_by_lang": {"zh": str(zh_model)}})
    store = Store(settings.store_url)
    store.create_schema()
    router = ModelRouter.load(None, settings.classify.models_by_lang, lambda name: load_classifier(name, device="cpu"))
    records = [Record("news.raw", 0, i, None, json.dumps(r).encode()) for i, r in enumerate(feed())]
    out = ClassifyProcessor(settings, router, ManualClock(T0 + timedelta(days=1)), store).process(records)
    live = {s.item.id: s for s in (decode_scored_record(m.value) for m in out) if isinstance(s, ScoredItem)}
    items = [decode_raw(r.value, T0 + timedelta(days=1), settings.limits) for r in records]
    cfg = BacktestConfig(feed=tmp_path, prices=tmp_path, out=tmp_path, quantize=False, cache_dir=tmp_path / "cache",
                         progress=False)
    stats = ScoreStats()
    backtest = {s.item.id: s for s in score_items(cfg, settings, items, stats)}
    assert stats.misses == len(items) and stats.hits == 0  # added up over the two models' scorers
    for item_id, scored in live.items():
        other = backtest[item_id]
        assert (other.model_version, other.item.lang, other.topic, other.sentiment) == (
            scored.model_version, scored.item.lang, scored.topic, scored.sentiment), item_id
    assert len({s.model_version for s in backtest.values()}) == 2
