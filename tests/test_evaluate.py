"""`finmon evaluate` with the shipped model on small labelled files: JSON contract, consistency, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from monitor.classify import load_classifier
from pipelines.training.evaluate import command
from pipelines.training.metrics import compute_metrics, paired_bootstrap

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SENTIMENT = [
    ("Shares soar after the company smashes earnings expectations", "positive"),
    ("Stock rallies to a record high on strong demand", "positive"),
    ("Analyst upgrades the bank to buy, sees 30% upside", "positive"),
    ("Shares plunge after profit warning and CEO exit", "negative"),
    ("Company misses revenue estimates, cuts full-year outlook", "negative"),
    ("Moody's downgrades the retailer's debt to junk", "negative"),
    ("Company to hold annual shareholder meeting on May 4", "neutral"),
    ("Board schedules conference call for Thursday", "neutral"),
    ("Firm files its quarterly report with the SEC", "neutral"),
]
TOPIC = [
    ("Fed Chair Powell says further rate hikes may be needed", "Fed | Central Banks"),
    ("ECB holds interest rates steady", "Fed | Central Banks"),
    ("Company declares quarterly dividend of $0.25 per share", "Dividend"),
    ("Oil prices jump as OPEC cuts production", "Energy | Oil"),
    ("Tech giant reports record quarterly earnings", "Earnings"),
]
KEYS = {"n", "accuracy", "macro_f1", "weighted_f1", "labels", "per_class", "confusion_matrix"}


def invoke(*args: str) -> tuple[int, str]:
    """Exit code and stdout (where --json prints), or all output on failure (click's errors go to stderr)."""
    result = CliRunner().invoke(command, list(args))
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


def test_sentiment_json_contract_and_consistency(tmp_path: Path) -> None:
    path = tmp_path / "sent.csv"
    pd.DataFrame(SENTIMENT, columns=["text", "label"]).to_csv(path, index=False)
    code, out = invoke("--task", "sentiment", "--data", str(path), "--json")
    assert code == 0, out
    metrics = json.loads(out)
    assert set(metrics) >= KEYS
    assert metrics["n"] == len(SENTIMENT) and metrics["labels"] == ["negative", "neutral", "positive"]
    assert sum(map(sum, metrics["confusion_matrix"])) == len(SENTIMENT)
    predicted = [p.sentiment for p in load_classifier(device="cpu").predict([t for t, _ in SENTIMENT])]
    expected = compute_metrics([label for _, label in SENTIMENT], predicted, ["negative", "neutral", "positive"])
    assert metrics["accuracy"] == pytest.approx(expected["accuracy"])
    assert metrics["macro_f1"] == pytest.approx(expected["macro_f1"])
    assert metrics["per_class"]["positive"]["support"] == 3


def test_topic_with_column_mapping_jsonl_and_reports(tmp_path: Path) -> None:
    path = tmp_path / "topic.jsonl"
    pd.DataFrame(TOPIC, columns=["headline", "topic"]).to_json(path, orient="records", lines=True)
    code, out = invoke(
        "--task",
        "topic",
        "--data",
        str(path),
        "--text-col",
        "headline",
        "--label-col",
        "topic",
        "--report-dir",
        str(tmp_path / "reports"),
    )
    assert code == 0, out
    assert "accuracy" in out and "Fed | Central Banks" in out and "confusion matrix" in out
    assert (tmp_path / "reports" / "classification_report_topic_topic.txt").is_file()
    assert (tmp_path / "reports" / "confusion_matrix_topic_topic.png").stat().st_size > 1000
    code, out = invoke(
        "--task", "topic", "--data", str(path), "--text-col", "headline", "--label-col", "topic", "--json"
    )
    metrics = json.loads(out)
    assert len(metrics["labels"]) == 20 and len(metrics["confusion_matrix"]) == 20
    assert metrics["per_class"]["Fed | Central Banks"]["support"] == 2


def test_compute_metrics_known_values() -> None:
    m = compute_metrics(["a", "a", "b", "b"], ["a", "b", "b", "b"], ["a", "b"])
    assert m["accuracy"] == 0.75
    assert m["per_class"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert m["confusion_matrix"] == [[1, 1], [0, 2]]


def test_errors_name_the_problem_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "sent.csv"
    pd.DataFrame([("Stocks up", "bullish"), ("Stocks down", "Negative")], columns=["text", "label"]).to_csv(
        path, index=False
    )
    code, out = invoke("--task", "sentiment", "--data", str(path))
    assert code != 0 and "2 unknown sentiment label(s)" in out and "negative, neutral, positive" in out
    code, out = invoke("--task", "sentiment", "--data", str(path), "--label-col", "sentiment")
    assert code != 0 and "missing column(s) ['sentiment']" in out and "available columns" in out
    code, out = invoke("--task", "sentiment", "--data", str(tmp_path / "nope.csv"))
    assert code != 0 and "does not exist" in out
    code, out = invoke("--task", "sentiment", "--data", str(path), "--model", str(tmp_path))
    assert code != 0 and "finmon_config.json" in out
    code, out = invoke("--task", "mood", "--data", str(path))
    assert code != 0 and "sentiment" in out and "topic" in out


def test_split_selects_rows_and_names_bad_choices(tmp_path: Path) -> None:
    path = tmp_path / "news.csv"
    rows = [(text, label, "validation" if i % 3 == 0 else "train") for i, (text, label) in enumerate(SENTIMENT)]
    pd.DataFrame(rows, columns=["text", "sentiment", "split"]).to_csv(path, index=False)
    base = ["--task", "sentiment", "--data", str(path), "--label-col", "sentiment"]
    code, out = invoke(*base, "--split", "validation", "--json")
    assert code == 0, out
    metrics = json.loads(out)
    assert metrics["n"] == 3 and metrics["split"] == "validation"
    assert json.loads(invoke(*base, "--json")[1])["n"] == len(SENTIMENT)
    code, out = invoke(*base, "--split", "test")
    assert code != 0 and "no row has split = 'test'" in out and "'train', 'validation'" in out
    code, out = invoke(*base, "--split", "validation", "--split-col", "fold")
    assert code != 0 and "no split column 'fold'" in out and "--split-col" in out


def _swapped_sentiment_model(tmp_path: Path) -> Path:
    """A real second model with the same labels: the shipped one with its positive and neutral sentiment rows
    swapped, so it calls the positive texts neutral and the neutral ones positive."""
    import shutil

    from safetensors.torch import load_file, save_file

    from monitor.classify.model import resolve_model_dir

    out = tmp_path / "swapped"
    shutil.copytree(resolve_model_dir(None), out)
    heads = load_file(out / "heads.safetensors")
    for key in ("sentiment.weight", "sentiment.bias"):
        heads[key] = heads[key][[0, 2, 1]].clone()
    save_file(heads, out / "heads.safetensors")
    return out


def test_compare_reports_paired_bootstrap_against_a_second_model(tmp_path: Path) -> None:
    path = tmp_path / "sent.csv"
    pd.DataFrame(SENTIMENT, columns=["text", "label"]).to_csv(path, index=False)
    swapped = _swapped_sentiment_model(tmp_path)
    code, out = invoke("--task", "sentiment", "--data", str(path), "--compare", str(swapped), "--json")
    assert code == 0, out
    metrics = json.loads(out)
    other = metrics["compare"]
    assert other["model"] != metrics["model"]
    boot = other["bootstrap"]
    assert boot["n"] == len(SENTIMENT) and boot["resamples"] == 1000
    assert boot["accuracy"]["delta"] == pytest.approx(other["accuracy"] - metrics["accuracy"])
    assert boot["macro_f1"]["delta"] == pytest.approx(other["macro_f1"] - metrics["macro_f1"])
    assert metrics["accuracy"] > other["accuracy"]  # swapping two classes can only hurt a model that got them right
    assert boot["accuracy"]["low"] <= boot["accuracy"]["delta"] <= boot["accuracy"]["high"] < 0
    code, out = invoke("--task", "sentiment", "--data", str(path), "--compare", str(swapped))
    assert code == 0 and "paired bootstrap" in out and "delta -" in out


def test_compare_with_the_same_model_is_zero_and_other_labels_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "sent.csv"
    pd.DataFrame(SENTIMENT, columns=["text", "label"]).to_csv(path, index=False)
    metrics = json.loads(invoke("--task", "sentiment", "--data", str(path), "--compare", "finmon-minilm", "--json")[1])
    boot = metrics["compare"]["bootstrap"]
    assert boot["macro_f1"] == {"delta": 0.0, "low": 0.0, "high": 0.0, "b_ahead": 0.0}
    other = _swapped_sentiment_model(tmp_path)
    config = json.loads((other / "finmon_config.json").read_text())
    config["sentiment_labels"] = ["bearish", "neutral", "bullish"]
    (other / "finmon_config.json").write_text(json.dumps(config))
    code, out = invoke("--task", "sentiment", "--data", str(path), "--compare", str(other))
    assert code != 0 and "other sentiment labels" in out and "same label set" in out


def test_paired_bootstrap_macro_f1_matches_compute_metrics() -> None:
    rng = np.random.default_rng(3)
    labels = ["a", "b", "c", "d"]
    truth = list(rng.choice(labels[:3], 60))  # "d" never true: predicted-only labels still count, as in sklearn
    a = [t if rng.random() < 0.7 else str(rng.choice(labels)) for t in truth]
    b = [t if rng.random() < 0.8 else str(rng.choice(labels)) for t in truth]
    boot = paired_bootstrap(truth, a, b, labels, resamples=300, seed=1)
    whole = compute_metrics(truth, b, labels)["macro_f1"] - compute_metrics(truth, a, labels)["macro_f1"]
    assert boot["macro_f1"]["delta"] == pytest.approx(whole)
    assert boot["macro_f1"]["low"] < boot["macro_f1"]["delta"] < boot["macro_f1"]["high"]
    assert 0 <= boot["macro_f1"]["b_ahead"] <= 1
    assert paired_bootstrap(truth, a, b, labels, resamples=300, seed=1) == boot  # seeded: reproducible
