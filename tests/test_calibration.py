"""Calibrated probabilities: temperature fitting and ECE on synthetic logits, the int8 margin choice, configs
with and without calibration, and the engine applying the shipped model's temperatures on every path."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from monitor.classify import load_classifier
from monitor.classify.engine import INT8_RESCORE_MARGIN, Engine, softmax
from monitor.classify.model import CONFIG_FILE, Calibration, ModelConfig, resolve_model_dir
from pipelines.training.calibration import (
    choose_margin,
    cross_fitted_ece,
    ece,
    fit_temperature,
    margin_table,
    nll,
    reliability,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TEXTS = [
    "Fed raises rates by 25 basis points, signals more hikes ahead",
    "$AAPL beats earnings estimates; shares jump 5% after hours",
    "Oil falls as OPEC+ weighs output increase",
    "Goldman Sachs downgrades Tesla to sell citing margin pressure",
    "Company announces quarterly dividend of $0.42 per share",
    "CEO steps down effective immediately, CFO named interim chief",
    "Stocks close mixed as investors await jobs report",
    "IPO priced at top of range, valuing the startup at $12 billion",
]


def synthetic(scale: float, n: int = 6000, k: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z) (so z is perfectly calibrated), returned with the logits z * scale."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, size=(n, k))
    p = softmax(z).astype(np.float64)
    labels = (p.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return z * scale, labels


@pytest.mark.parametrize("scale", [3.0, 0.5])
def test_temperature_recovers_the_scale_and_lowers_ece(scale: float) -> None:
    logits, labels = synthetic(scale)
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(scale, rel=0.1)  # over-confident (x3) -> T ~ 3; under-confident (x0.5) -> T ~ 0.5
    before, after = ece(softmax(logits), labels), ece(softmax(logits, t), labels)
    assert before > 0.05 and after < 0.02 and after < before / 3
    assert nll(logits, labels, t) < nll(logits, labels)
    assert cross_fitted_ece(logits, labels) < 0.03  # the fit also holds on rows it did not see


def test_well_calibrated_logits_keep_t_near_one_and_ece_bins_are_equal_width() -> None:
    logits, labels = synthetic(1.0)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.1)
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=np.int64)) == 1.0
    probs = np.array([[0.95, 0.05], [0.55, 0.45], [0.60, 0.40], [1.0, 0.0]])
    r = reliability(probs, np.array([0, 1, 0, 0]), bins=15)
    # 0.55 and 0.60 share the bin (8/15, 9/15]; 0.95 and 1.0 share the top bin (14/15, 1].
    assert r["count"][8] == 2 and r["count"][14] == 2 and sum(r["count"]) == 4
    assert r["accuracy"][8] == 0.5 and r["confidence"][8] == pytest.approx(0.575)
    expected = 0.5 * abs(0.5 - 0.575) + 0.5 * abs(1.0 - 0.975)
    assert ece(probs, np.array([0, 1, 0, 0]), bins=15) == pytest.approx(expected)


def test_margin_table_simulates_rescoring_and_picks_the_smallest_margin() -> None:
    fp32 = (np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.7, 0.3]]), np.array([[0.8, 0.2]] * 4))
    # int8 flips row 1 (margin 0.1) and row 3 (margin 0.3) on the first head; the second head always agrees.
    int8 = (np.array([[0.9, 0.1], [0.45, 0.55], [0.2, 0.8], [0.35, 0.65]]), np.array([[0.8, 0.2]] * 4))
    table = margin_table(fp32, int8, grid=(0.0, 0.2, 0.35, 0.9))
    assert [r["topic_agreement"] for r in table] == [0.5, 0.75, 1.0, 1.0]
    assert [r["rescored_fraction"] for r in table] == [0.0, 0.25, 0.5, 1.0]  # second head: margin 0.6 < 0.9
    assert all(r["sentiment_agreement"] == 1.0 for r in table)
    assert choose_margin(table, target=0.995) == (0.35, True)
    assert choose_margin(table[:2], target=0.995) == (0.2, False)  # not reached: the largest tried


def _copy_shipped(tmp_path: Path, calibration: object = "drop") -> Path:
    out = tmp_path / "model"
    shutil.copytree(resolve_model_dir(None), out)
    raw = json.loads((out / CONFIG_FILE).read_text())
    raw.pop("calibration", None)
    if calibration != "drop":
        raw["calibration"] = calibration
    (out / CONFIG_FILE).write_text(json.dumps(raw))
    return out


def test_config_without_calibration_loads_with_t_one_and_the_default_margin(tmp_path: Path) -> None:
    out = _copy_shipped(tmp_path)
    config = ModelConfig.load(out)
    assert config.calibration is None and config.temperature("topic") == config.temperature("sentiment") == 1.0
    engine = load_classifier(str(out), device="cpu")
    assert engine.temperatures == (1.0, 1.0)
    logits = engine.predict_logits(TEXTS[:2])
    np.testing.assert_allclose(engine.predict_proba(TEXTS[:2])[1], softmax(logits[1]), atol=1e-6)
    config.save(out)  # an uncalibrated config is written without the key
    assert "calibration" not in json.loads((out / CONFIG_FILE).read_text())
    int8 = load_classifier(str(out), device="cpu", quantize=True)
    assert int8.rescore_margin == INT8_RESCORE_MARGIN


def test_calibration_round_trips_and_bad_values_say_how_to_fix(tmp_path: Path) -> None:
    out = _copy_shipped(tmp_path, {"topic": {"temperature": 1.5}, "sentiment": {"temperature": 0.8},
                                   "int8_rescore_margin": 0.1})
    config = ModelConfig.load(out)
    assert config.calibration == Calibration(1.5, 0.8, 0.1)
    config.save(out)
    assert ModelConfig.load(out).calibration == Calibration(1.5, 0.8, 0.1)
    assert json.loads((out / CONFIG_FILE).read_text())["calibration"]["topic"] == {"temperature": 1.5}
    bad = _copy_shipped(tmp_path / "bad", {"topic": {"temperature": -1}})
    with pytest.raises(ValueError, match=r"calibration.topic.temperature must be a number > 0.*finmon calibrate"):
        ModelConfig.load(bad)
    bad = _copy_shipped(tmp_path / "bad2", {"int8_rescore_margin": 3})
    with pytest.raises(ValueError, match="int8_rescore_margin must be in"):
        ModelConfig.load(bad)


@pytest.fixture(scope="module")
def shipped() -> Engine:
    torch.set_num_threads(2)
    return load_classifier(device="cpu")


def test_shipped_model_is_calibrated_and_temperature_keeps_every_label(shipped: Engine) -> None:
    assert shipped.config.calibration is not None
    t_topic, t_sent = shipped.temperatures
    assert (t_topic, t_sent) != (1.0, 1.0)
    logits = shipped.predict_logits(TEXTS)
    topic_p, sent_p = shipped.predict_proba(TEXTS)
    np.testing.assert_allclose(topic_p, softmax(logits[0], t_topic), atol=1e-6)
    np.testing.assert_allclose(sent_p, softmax(logits[1], t_sent), atol=1e-6)
    plain = softmax(logits[0]), softmax(logits[1])
    assert (topic_p.argmax(1) == plain[0].argmax(1)).all() and (sent_p.argmax(1) == plain[1].argmax(1)).all()
    for calibrated, raw, t in ((topic_p, plain[0], t_topic), (sent_p, plain[1], t_sent)):
        # T > 1 lowers every top probability, T < 1 raises it; and the change is not negligible.
        lower = calibrated.max(1) <= raw.max(1) + 1e-6
        higher = calibrated.max(1) >= raw.max(1) - 1e-6
        assert lower.all() if t > 1 else higher.all()
        assert np.abs(calibrated - raw).max() > 1e-3


def test_int8_engine_uses_the_stored_margin_and_the_temperatures(shipped: Engine) -> None:
    assert shipped.config.calibration is not None
    stored = shipped.config.calibration.int8_rescore_margin
    int8 = load_classifier(device="cpu", quantize=True)
    assert stored is not None and int8.rescore_margin == stored and int8.describe()["int8_rescore_margin"] == stored
    assert int8.temperatures == shipped.temperatures
    everything = load_classifier(device="cpu", quantize=True, rescore_margin=1.0)
    assert everything.rescore_margin == 1.0  # an explicit margin wins over the stored one
    # Every text re-scored in fp32: the int8 engine gives the fp32 engine's calibrated probabilities.
    np.testing.assert_allclose(everything.predict_proba(TEXTS)[1], shipped.predict_proba(TEXTS)[1], atol=1e-5)
    assert everything.texts_rescored == len(TEXTS)
    with pytest.raises(ValueError, match="rescore_margin must be in"):
        load_classifier(device="cpu", quantize=True, rescore_margin=2.0)
