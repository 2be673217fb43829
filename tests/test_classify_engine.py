"""The inference engine on the real shipped model: exactness vs a plain forward pass, batching, odd inputs."""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pytest
import torch

from monitor.classify import SENTIMENT_LABELS, Classifier, Prediction, load_classifier
from monitor.classify.engine import PAD_MULTIPLE, Engine, collate, compare_engines, plan_batches, select_device
from monitor.classify.model import ModelNotFoundError, content_hash, resolve_model_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HEADLINES = [
    "Fed raises rates by 25 basis points, signals more hikes ahead",
    "$AAPL beats earnings estimates; shares jump 5% after hours",
    "Oil falls as OPEC+ weighs output increase",
    "Goldman Sachs downgrades Tesla to sell citing margin pressure",
    "Company announces quarterly dividend of $0.42 per share",
    "Treasury yields climb to 16-year high",
    "CEO steps down effective immediately, CFO named interim chief",
    "Stocks close mixed as investors await jobs report",
    "Acquisition of rival for $2.1B in cash and stock approved by regulators",
    "IPO priced at top of range, valuing the startup at $12 billion",
    "short",
    "A much longer item: " + " ".join(["the market moved sideways while analysts debated guidance"] * 8),
]
ODD = [
    "",
    " \n\t ",
    "x" * 100_000,
    "🚀🚀🚀 $GME to the moon 🌕💎🙌",
    "日本銀行は政策金利を引き上げた",
    "البنك المركزي يرفع أسعار الفائدة",
    "Центральный банк повысил ключевую ставку",
    "भारतीय रिज़र्व बैंक ने रेपो दर बढ़ाई",
    "bad surrogate \ud800 inside",
    "\x00\x01 control chars \u200b zero width",
    "word " * 30_000,
]


@pytest.fixture(scope="module")
def engine() -> Engine:
    torch.set_num_threads(2)
    return load_classifier(device="cpu")


def plain_forward(engine: Engine, text: str) -> tuple[np.ndarray, np.ndarray]:
    """Reference: one unpadded text through the same model, no engine machinery; the model's calibrated
    temperatures, from its config."""
    enc = engine.tokenizer(text, truncation=True, max_length=engine.max_length, return_tensors="pt")
    with torch.no_grad():
        topic, sent = engine.model(enc["input_ids"], enc["attention_mask"])
    t_topic, t_sent = engine.config.temperature("topic"), engine.config.temperature("sentiment")
    return (topic / t_topic).softmax(-1)[0].numpy(), (sent / t_sent).softmax(-1)[0].numpy()


def test_engine_implements_classifier_with_content_versioned_name(engine: Engine) -> None:
    assert isinstance(engine, Classifier)
    model_dir = resolve_model_dir(None)
    assert engine.version == f"finmon-minilm-{content_hash(model_dir)}"
    assert re.fullmatch(r"finmon-minilm-[0-9a-f]{12}", engine.version)
    assert len(engine.topic_labels) == 20 and "Earnings" in engine.topic_labels
    assert engine.sentiment_labels == SENTIMENT_LABELS


def test_engine_equals_plain_forward_pass(engine: Engine) -> None:
    topic_p, sent_p = engine.predict_proba(HEADLINES)
    for i, text in enumerate(HEADLINES):
        ref_topic, ref_sent = plain_forward(engine, text)
        np.testing.assert_allclose(topic_p[i], ref_topic, atol=1e-5)
        np.testing.assert_allclose(sent_p[i], ref_sent, atol=1e-5)
        assert topic_p[i].argmax() == ref_topic.argmax() and sent_p[i].argmax() == ref_sent.argmax()


def test_predictions_keep_input_order_whatever_the_batching(engine: Engine) -> None:
    many = HEADLINES * 20
    small_budget = Engine(
        engine.model,
        engine.tokenizer,
        engine.config,
        version="t",
        device=engine.device,
        max_batch_tokens=64,
        chunk_size=7,
    )
    a = engine.predict(many)
    b = small_budget.predict(many)
    assert [p.topic for p in a] == [p.topic for p in b]
    for pa, pb in zip(a, b, strict=True):
        assert math.isclose(pa.sentiment_score, pb.sentiment_score, abs_tol=1e-5)
    assert [p.topic for p in a[: len(HEADLINES)]] == [p.topic for p in a[len(HEADLINES) : 2 * len(HEADLINES)]]


def test_odd_inputs_never_crash_and_do_not_disturb_neighbours(engine: Engine) -> None:
    mixed = [HEADLINES[0], *ODD, HEADLINES[1]]
    preds = engine.predict(mixed)
    assert len(preds) == len(mixed)
    for p in preds:
        assert isinstance(p, Prediction)
        assert p.topic in engine.topic_labels and p.sentiment in SENTIMENT_LABELS
        assert math.isclose(sum(p.topic_probs.values()), 1.0, abs_tol=1e-4)
        assert math.isclose(sum(p.sentiment_probs.values()), 1.0, abs_tol=1e-4)
        assert -1.0 <= p.sentiment_score <= 1.0
    alone = engine.predict([HEADLINES[0], HEADLINES[1]])
    assert preds[0].topic_probs == pytest.approx(alone[0].topic_probs, abs=1e-5)
    assert preds[-1].sentiment_probs == pytest.approx(alone[1].sentiment_probs, abs=1e-5)


def test_long_text_is_truncated_to_the_model_limit(engine: Engine) -> None:
    long_text = "rates " * 5000
    ids = engine._tokenize([long_text])[0]
    assert len(ids) == engine.max_length
    truncated = engine.tokenizer.decode(ids[1:-1])
    assert engine.predict([long_text])[0].topic_probs == pytest.approx(
        engine.predict([truncated])[0].topic_probs, abs=1e-5
    )


def test_empty_input_list(engine: Engine) -> None:
    assert engine.predict([]) == []
    topic_p, sent_p = engine.predict_proba([])
    assert topic_p.shape == (0, 20) and sent_p.shape == (0, 3)


def test_token_budget_batches_sorted_and_padded_to_multiple_of_8() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 200, size=500).tolist()
    batches = plan_batches(lengths, max_batch_tokens=1024)
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(500))
    for batch in batches:
        width = -(-max(lengths[i] for i in batch) // PAD_MULTIPLE) * PAD_MULTIPLE
        assert len(batch) * width <= 1024 or len(batch) == 1
    firsts = [lengths[b[0]] for b in batches]
    assert firsts == sorted(firsts, reverse=True)  # longest first, so padding inside each batch is small
    ids = [[7] * n for n in (3, 9, 17)]
    batch = collate(ids, np.array([0, 1, 2]), pad_id=0, pin=False)
    assert batch.input_ids.shape == (3, 24)
    assert batch.attention_mask.sum(1).tolist() == [3, 9, 17]


def test_int8_engine_is_quantized_and_reports_agreement(engine: Engine) -> None:
    int8 = load_classifier(device="cpu", quantize=True)
    assert int8.version == engine.version + "-int8"
    assert int8.describe()["dtype"] == "int8-dynamic"
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    quantized = [m for m in int8.model.encoder.modules() if isinstance(m, DynamicLinear)]
    assert len(quantized) == 36  # every linear layer of the 6 encoder blocks
    assert not any(isinstance(m, torch.nn.Linear) for m in int8.model.encoder.modules())
    assert isinstance(int8.model.topic, torch.nn.Linear)  # heads stay fp32
    report = compare_engines(engine, int8, HEADLINES * 4)
    assert report["n"] == len(HEADLINES) * 4
    assert 0.9 <= report["topic_agreement"] <= 1.0 and 0.9 <= report["sentiment_agreement"] <= 1.0
    assert 0 < report["raw_max_abs_prob_diff"] <= 1  # int8 really changes the arithmetic
    assert 0 <= report["rescored_fraction"] <= 1
    # Low-margin texts are re-scored in fp32, which can only bring labels back to the fp32 ones.
    assert report["topic_agreement"] >= report["raw_topic_agreement"]
    assert report["sentiment_agreement"] >= report["raw_sentiment_agreement"]


def test_unknown_model_and_device_errors_say_how_to_fix() -> None:
    with pytest.raises(ModelNotFoundError, match="finmon train"):
        load_classifier("/nonexistent/model-dir")
    with pytest.raises(ValueError, match="unknown device"):
        select_device("tpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            select_device("cuda")
