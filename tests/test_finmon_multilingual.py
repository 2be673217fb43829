"""The shipped `finmon-multilingual` (multilingual-e5-small fine-tuned for finmon; its base is built by `make
multilingual`, which `make test` runs): it loads by name, reads Chinese as its model card says, takes Chinese items
when routed, and a machine without its base gets the command that builds it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from monitor.classify import load_classifier
from monitor.classify.model import ModelNotFoundError, resolve_model_dir
from monitor.classify.routing import ModelRouter
from tests.conftest import REPO

NAME = "finmon-multilingual"
ZH = REPO / "data" / "news" / "finmon_news_zh.csv"


@pytest.fixture(scope="module")
def engine():  # type: ignore[no-untyped-def]
    try:
        return load_classifier(NAME, device="cpu")
    except ModelNotFoundError as exc:
        pytest.fail(f"{exc} (`make test` runs `make multilingual`)")


def test_it_loads_by_name_on_its_local_base(engine) -> None:  # type: ignore[no-untyped-def]
    config = json.loads((resolve_model_dir(NAME) / "finmon_config.json").read_text())
    assert config["base_model"] == "local:multilingual-e5-small"
    assert engine.version.startswith(f"{NAME}-")
    default = load_classifier(None, device="cpu")
    assert tuple(engine.topic_labels) == tuple(default.topic_labels)  # routable next to the default
    ModelRouter(default, {"zh": engine})


def test_chinese_validation_split_reads_as_the_card_says(engine) -> None:  # type: ignore[no-untyped-def]
    rows = pd.read_csv(ZH, keep_default_na=False)
    val = rows[rows["split"] == "validation"]
    predicted = [p.sentiment for p in engine.predict(val["text"].tolist())]
    macro = f1_score(val["sentiment"], predicted, average="macro")
    card = json.loads((resolve_model_dir(NAME) / "metrics.json").read_text())["validation"]["news_zh_sentiment"]
    assert macro == pytest.approx(card["macro_f1"], abs=1e-9)  # the card describes this artifact
    assert macro >= 0.75
    assert float(np.mean([p == "neutral" for p in predicted])) < 0.5  # not the English model's all-neutral


def test_a_machine_without_the_base_is_told_how_to_build_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FINMON_BASE_MODELS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match=r"make multilingual"):
        load_classifier(NAME, device="cpu")
