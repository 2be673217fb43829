"""`finmon average`: two tiny real models (packaged MiniLM) trained on different files, averaged, calibrated and
measured on the primary's validation rows; a partner that trained on those rows is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from monitor.classify import load_classifier
from pipelines.cli import cli
from pipelines.training.train import command as train
from tests.test_train import TOPICS, news_rows, sentiment_rows, topic_rows


def _common(root: Path, out: Path) -> list[str]:
    return [
        *("--sentiment-data", str(root / "sent.csv"), "--sentiment-text-col", "headline"),
        *("--sentiment-label-col", "sentiment", "--topic-data", str(root / "topic.csv")),
        *("--topic-text-col", "body", "--topic-label-col", "category", "--topic-labels", str(root / "topics.txt")),
        *("--validation-fraction", "0.25", "--epochs", "1", "--batch-size", "8", "--threads", "2"),
        *("--no-tensorboard", "--split-seed", "42", "--output-dir", str(out)),
    ]


@pytest.fixture(scope="module")
def parents(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A full fine-tune that also read a news file (the primary) and a LoRA model without it (the partner)."""
    root = tmp_path_factory.mktemp("average")
    sentiment_rows().to_csv(root / "sent.csv", index=False)
    topic_rows().to_csv(root / "topic.csv", index=False)
    news_rows().to_csv(root / "news.csv", index=False)
    (root / "topics.txt").write_text("\n".join(TOPICS) + "\n", encoding="utf-8")
    news = ["--news-data", str(root / "news.csv"), "--news-text-col", "headline", "--news-sentiment-col", "tone",
            "--news-split-col", "part"]
    primary = CliRunner().invoke(train, [*_common(root, root / "primary"), *news, "--lora-r", "0", "--seed", "1"])
    assert primary.exit_code == 0, primary.output
    partner = CliRunner().invoke(train, [*_common(root, root / "partner"), "--lora-r", "4", "--lora-alpha", "8",
                                         "--seed", "2"])
    assert partner.exit_code == 0, partner.output
    return root, root / "primary", root / "partner"


def test_average_writes_a_calibrated_model_between_its_parents(parents: tuple[Path, Path, Path],
                                                               tmp_path: Path) -> None:
    _, primary, partner = parents
    out = tmp_path / "soup"
    result = CliRunner().invoke(cli, ["average", str(primary), str(partner), "--weight", "0.25", "--output-dir",
                                      str(out), "--device", "cpu", "--threads", "2"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    metrics = json.loads((out / "metrics.json").read_text())
    engine = load_classifier(str(out), device="cpu")
    assert summary["version"] == metrics["version"] == engine.version
    assert engine.version not in (load_classifier(str(primary), device="cpu").version,
                                  load_classifier(str(partner), device="cpu").version)
    # The heads are stored unquantised: exactly 0.25 x primary + 0.75 x partner (the LoRA partner merged).
    ours, a, b = (load_file(str(d / "heads.safetensors")) for d in (out, primary, partner))
    for name, tensor in ours.items():
        torch.testing.assert_close(tensor, 0.25 * a[name] + 0.75 * b[name])
    # Measured and calibrated on every validation row of the primary, news included (the partner never saw it).
    src = metrics["averaged_from"]
    assert set(metrics["validation"]) == {"topic", "sentiment", "news_sentiment", "news_topic"}
    assert src["weight"] == 0.25 and src["leak_check_rows"] == {"topic": 6, "sentiment": 6, "news_sentiment": 6,
                                                                "news_topic": 6}
    assert set(src["primary"]["validation"]) == set(src["partner"]["validation"]) == set(metrics["validation"])
    assert src["partner"]["version"] == json.loads((partner / "metrics.json").read_text())["version"]
    assert metrics["calibration"]["heads"]["sentiment"]["n"] == 12 and metrics["int8_agreement"]["n"] == 24
    assert engine.config.calibration is not None
    assert json.loads((out / "finmon_config.json").read_text())["adapter"] is None
    card = (out / "README.md").read_text()
    assert "**Weight average**" in card and f"finmon average {primary} {partner} --weight 0.25" in card
    assert "--news-data " + str(parents[0] / "news.csv") in card  # the primary's own command, news file included
    for name in ("classification_report_news_topic.txt", "reliability_sentiment.png", "tokenizer.json"):
        assert (out / name).stat().st_size > 0


def test_a_partner_that_trained_on_the_validation_rows_is_refused(parents: tuple[Path, Path, Path],
                                                                  tmp_path: Path) -> None:
    _, primary, partner = parents
    leaky = tmp_path / "leaky"
    shutil.copytree(partner, leaky)
    metrics = json.loads((leaky / "metrics.json").read_text())
    metrics["arguments"]["data"]["split_seed"] = 7  # its training rows now include rows the primary held out
    (leaky / "metrics.json").write_text(json.dumps(metrics))
    refused = CliRunner().invoke(cli, ["average", str(primary), str(leaky), "--weight", "0.5", "--output-dir",
                                       str(tmp_path / "out")])
    assert refused.exit_code != 0 and "trained on" in refused.output and "validation rows" in refused.output
    assert not (tmp_path / "out").exists()

    # An average's metrics.json records its primary's rows; its partner's rows count too, however deep.
    chained = tmp_path / "chained"
    shutil.copytree(partner, chained)
    record = json.loads((chained / "metrics.json").read_text())
    record["averaged_from"] = {"weight": 0.5, "partner": {"path": str(leaky), "version": "x"}}
    (chained / "metrics.json").write_text(json.dumps(record))
    via_parent = CliRunner().invoke(cli, ["average", str(primary), str(chained), "--weight", "0.5", "--output-dir",
                                          str(tmp_path / "out")])
    assert via_parent.exit_code != 0 and "trained on" in via_parent.output
    record["averaged_from"]["partner"]["path"] = str(tmp_path / "deleted")
    (chained / "metrics.json").write_text(json.dumps(record))
    gone = CliRunner().invoke(cli, ["average", str(primary), str(chained), "--weight", "0.5", "--output-dir",
                                    str(tmp_path / "out")])
    assert gone.exit_code != 0 and "which is gone" in gone.output

    (leaky / "metrics.json").unlink()
    unknown = CliRunner().invoke(cli, ["average", str(primary), str(leaky), "--weight", "0.5", "--output-dir",
                                       str(tmp_path / "out")])
    assert unknown.exit_code != 0 and "has no metrics.json" in unknown.output

    for weight, message in (("1", "strictly between 0 and 1"), ("0.5", "not one of the two models")):
        out = partner if weight == "0.5" else tmp_path / "out"
        bad = CliRunner().invoke(cli, ["average", str(primary), str(partner), "--weight", weight, "--output-dir",
                                       str(out)])
        assert bad.exit_code != 0 and message in bad.output


def test_models_of_other_labels_are_not_averaged(parents: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, primary, partner = parents
    other = tmp_path / "other"
    shutil.copytree(partner, other)
    config = json.loads((other / "finmon_config.json").read_text())
    config["topic_labels"] = list(reversed(config["topic_labels"]))
    (other / "finmon_config.json").write_text(json.dumps(config))
    refused = CliRunner().invoke(cli, ["average", str(primary), str(other), "--weight", "0.5", "--output-dir",
                                       str(tmp_path / "out")])
    assert refused.exit_code != 0 and "differ in topic labels" in refused.output
