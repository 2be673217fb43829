"""Batched inference engine behind the `Classifier` protocol.

Why it is faster than `transformers.pipeline(batch_size=32)` on the same model:

* texts are tokenised once, sorted by token length and cut into batches by a *token budget*
  (rows x padded length <= max_batch_tokens), so short headlines travel in large batches and padding is
  nearly zero; the padded length is rounded up to a multiple of 8 (tensor-core friendly shapes on GPU);
* both heads share one encoder forward pass, under `torch.inference_mode`;
* on CUDA: bf16 (or fp16) autocast, pinned host memory, non-blocking copies, and a producer thread that
  tokenises and collates the next batches while the GPU runs the current one; results are copied back once;
* on CPU: optional dynamic int8 quantisation of the linear layers (`compare_engines` measures how far its
  predictions move from fp32).

Probabilities are softmax(logits / T) with the model's calibrated temperature per head (1 for an uncalibrated
model), on every path: fp32, int8 and the fp32 re-scoring of low-margin int8 texts. Temperature never changes
a label, only how sure the model says it is.

Odd input never raises: non-strings are stringified, invalid surrogates replaced, very long texts cut to a
character cap and then truncated to the model's token limit; an empty string still gets a Prediction.
"""

from __future__ import annotations

import copy
import logging
import queue
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from monitor.cjk import normalize_text
from monitor.classify.base import Prediction
from monitor.classify.model import ModelConfig, MultiTaskModel, content_hash, load_model, resolve_model_dir

log = logging.getLogger(__name__)

PAD_MULTIPLE = 8
# No token is longer than this many characters in practice, so the cap never changes what the model sees
# within its token limit, but it bounds tokenisation time on multi-megabyte inputs.
CHARS_PER_TOKEN_CAP = 64
DEFAULT_CHUNK = 2048
# Dynamic int8 on CPU ran ~2x slower at 8192 tokens per forward than at 1024-4096 in our measurements (the
# per-batch activation quantisation and larger working set); the token budget is a maximum, so cap it there.
CPU_INT8_MAX_BATCH_TOKENS = 2048
# int8 flips a prediction only where fp32 is close to a tie. Texts whose int8 top-2 probability margin (either
# head) is below this are re-scored in fp32: on held-out tweets ~10% of texts, lifting label agreement with fp32
# from ~97-98% to >99% (measured by `compare_engines`, reported in metrics.json). A calibrated model stores its
# own margin (chosen on its validation texts by `finmon calibrate`); this is the fallback for models without.
INT8_RESCORE_MARGIN = 0.25
_QUEUE_DEPTH = 4


@dataclass(slots=True)
class Batch:
    """One padded batch and the input positions of its rows."""

    index: np.ndarray
    input_ids: torch.Tensor
    attention_mask: torch.Tensor


def select_device(device: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; anything else is passed to torch.device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available: use device='cpu' or 'auto'")
    return dev


def clean_text(text: object, max_chars: int) -> str:
    """Make any input safe for the tokenizer: a valid-UTF-8 string of bounded length, full-width forms of CJK
    text folded (NFKC; monitor/cjk.normalize_text leaves other text alone): a BERT vocabulary has "A" and
    "6" but not "Ａ" and "６". The cap is in characters, and a CJK character is at least one token, so it
    never cuts CJK text before the token limit does."""
    s = text if isinstance(text, str) else ("" if text is None else str(text))
    s = normalize_text(s[:max_chars])
    # Lone surrogates (e.g. from bad JSON decoding) make the Rust tokenizer raise.
    return s.encode("utf-8", "replace").decode("utf-8")


def plan_batches(lengths: Sequence[int], max_batch_tokens: int, multiple: int = PAD_MULTIPLE) -> list[np.ndarray]:
    """Group positions, longest first, so that rows x padded length stays within the token budget."""
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        padded = _round_up(int(lengths[order[start]]), multiple)  # longest row of the batch comes first
        rows = max(1, max_batch_tokens // padded)
        batches.append(order[start : start + rows])
        start += rows
    return batches


def _round_up(n: int, multiple: int) -> int:
    return max(multiple, -(-n // multiple) * multiple)


def collate(ids: Sequence[Sequence[int]], index: np.ndarray, pad_id: int, pin: bool) -> Batch:
    """Pad the rows `index` of `ids` to a common multiple-of-8 length."""
    width = _round_up(max(len(ids[i]) for i in index), PAD_MULTIPLE)
    input_ids = np.full((len(index), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(index), width), dtype=np.int64)
    for row, i in enumerate(index):
        input_ids[row, : len(ids[i])] = ids[i]
        mask[row, : len(ids[i])] = 1
    t_ids, t_mask = torch.from_numpy(input_ids), torch.from_numpy(mask)
    if pin:
        t_ids, t_mask = t_ids.pin_memory(), t_mask.pin_memory()
    return Batch(index, t_ids, t_mask)


def quantize_int8(model: MultiTaskModel, *, full_range: bool = True) -> MultiTaskModel:
    """A copy of `model` with dynamic int8 quantisation of the encoder's nn.Linear layers (heads stay fp32).

    Weights are quantised per output channel: MiniLM has weight rows with outliers, and one scale per tensor
    lost ~6% cosine similarity of the sentence embedding (topic agreement with fp32 near 80%) in our
    measurements, versus <1% per channel. `full_range` quantises activations to 8 instead of torch's default
    7 bits (halving their rounding error); on CPUs without VNNI a product sum can rarely saturate, which
    `compare_engines` would show as disagreement.
    """
    with warnings.catch_warnings():
        # torch deprecates the eager-mode API in favour of torchao; it is still the CPU fast path here.
        warnings.simplefilter("ignore")
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        mapping = {nn.Linear: _FullRangeDynamicLinear} if full_range else None
        quantized = copy.deepcopy(model)
        quantized.encoder = quantize_dynamic(
            quantized.encoder, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, mapping=mapping
        )
    return quantized


def _full_range_class() -> type[nn.Module]:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    class FullRangeDynamicLinear(DynamicLinear):
        """torch's dynamic int8 Linear, with 8-bit instead of 7-bit activation quantisation."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            packed = self._packed_params._packed_params
            return torch.ops.quantized.linear_dynamic(x, packed, reduce_range=False).to(x.dtype)

    return FullRangeDynamicLinear


_FullRangeDynamicLinear = _full_range_class()


class Engine:
    """A loaded finmon model plus the batching machinery; implements `Classifier`."""

    def __init__(
        self,
        model: MultiTaskModel,
        tokenizer: Any,
        config: ModelConfig,
        *,
        version: str,
        device: torch.device,
        max_batch_tokens: int = 8192,
        quantized: bool = False,
        autocast: bool = True,
        chunk_size: int = DEFAULT_CHUNK,
        reference: MultiTaskModel | None = None,
        rescore_margin: float = INT8_RESCORE_MARGIN,
    ) -> None:
        if max_batch_tokens < PAD_MULTIPLE:
            raise ValueError(f"max_batch_tokens must be >= {PAD_MULTIPLE}, got {max_batch_tokens}")
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.device, self.quantized, self.chunk_size = device, quantized, chunk_size
        self.max_batch_tokens = (
            min(max_batch_tokens, CPU_INT8_MAX_BATCH_TOKENS) if quantized and device.type == "cpu" else max_batch_tokens
        )
        self.max_length = self._token_limit()
        self.max_chars = self.max_length * CHARS_PER_TOKEN_CAP
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.cuda = device.type == "cuda"
        self.autocast_dtype = _autocast_dtype() if (self.cuda and autocast) else None
        self._version = version
        self.reference, self.rescore_margin = reference, rescore_margin
        # Mutable on purpose: calibration fits them on this engine's logits and tests compare T with T = 1.
        self.temperatures = (config.temperature("topic"), config.temperature("sentiment"))
        self.texts_scored = self.texts_rescored = 0
        self._topics = tuple(config.topic_labels)
        self._sentiments = tuple(config.sentiment_labels)

    def _token_limit(self) -> int:
        limits = [self.config.max_length, getattr(self.tokenizer, "model_max_length", 10**9)]
        enc_cfg = getattr(self.model.encoder, "config", None)
        limits.append(getattr(enc_cfg, "max_position_embeddings", 10**9))
        return int(min(limits))

    @property
    def version(self) -> str:
        return self._version

    @property
    def topic_labels(self) -> tuple[str, ...]:
        return self._topics

    @property
    def sentiment_labels(self) -> tuple[str, ...]:
        return self._sentiments

    def describe(self) -> dict[str, object]:
        """Device, precision and batching settings, for logs and the benchmark."""
        dtype = (
            "int8-dynamic"
            if self.quantized
            else (str(self.autocast_dtype).removeprefix("torch.") if self.autocast_dtype else "float32")
        )
        return {
            "version": self.version,
            "device": str(self.device),
            "dtype": dtype,
            "max_batch_tokens": self.max_batch_tokens,
            "max_length": self.max_length,
            "pad_multiple": PAD_MULTIPLE,
            "torch_threads": torch.get_num_threads(),
            "int8_rescore_margin": self.rescore_margin if self.reference is not None else None,
            "temperatures": dict(zip(("topic", "sentiment"), self.temperatures, strict=True)),
        }

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Score `texts` in input order; never raises on odd text."""
        topic_p, sent_p = self.predict_proba(texts)
        topics, sentiments = self._topics, self._sentiments
        t_arg, s_arg = topic_p.argmax(axis=1), sent_p.argmax(axis=1)
        return [
            Prediction(
                topic=topics[ta],
                topic_probs=dict(zip(topics, tp, strict=True)),
                sentiment=sentiments[sa],
                sentiment_probs=dict(zip(sentiments, sp, strict=True)),
            )
            for ta, tp, sa, sp in zip(t_arg.tolist(), topic_p.tolist(), s_arg.tolist(), sent_p.tolist(), strict=True)
        ]

    def predict_proba(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated topic and sentiment probabilities, shape (n, n_topics) and (n, 3), in input order."""
        return self.probabilities(*self.predict_logits(texts))

    def predict_logits(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Raw (untempered) topic and sentiment logits in input order; on the int8 engine, the rows of texts
        whose calibrated probability margin is below the re-score margin come from the fp32 model."""
        topic_z, sent_z = self._run(self.model, texts)
        self.texts_scored += len(texts)
        if self.reference is not None and self.rescore_margin > 0 and len(texts):
            topic_p, sent_p = self.probabilities(topic_z, sent_z)
            redo = np.flatnonzero(np.minimum(_margin(topic_p), _margin(sent_p)) < self.rescore_margin)
            if len(redo):
                topic_z[redo], sent_z[redo] = self._run(self.reference, [texts[int(i)] for i in redo])
                self.texts_rescored += len(redo)
        return topic_z, sent_z

    def probabilities(self, topic_logits: np.ndarray, sent_logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """softmax(logits / T) per head, with this engine's temperatures."""
        t_topic, t_sent = self.temperatures
        return softmax(topic_logits, t_topic), softmax(sent_logits, t_sent)

    def _run(self, model: nn.Module, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Both heads' logits of `texts` under `model`, in input order."""
        n = len(texts)
        topic_z = np.zeros((n, len(self._topics)), dtype=np.float32)
        sent_z = np.zeros((n, len(self._sentiments)), dtype=np.float32)
        if n == 0:
            return topic_z, sent_z
        pending: list[tuple[np.ndarray, torch.Tensor, torch.Tensor]] = []
        with torch.inference_mode():
            for batch in self._batches(texts):
                pending.append((batch.index, *self._logits(model, batch)))
        # One host sync at the end: on CUDA the device queue never waits for Python.
        for index, tz, sz in pending:
            topic_z[index], sent_z[index] = tz.cpu().numpy(), sz.cpu().numpy()
        return topic_z, sent_z

    def _logits(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        ids = batch.input_ids.to(self.device, non_blocking=True)
        mask = batch.attention_mask.to(self.device, non_blocking=True)
        if self.autocast_dtype is not None:
            with torch.autocast(device_type="cuda", dtype=self.autocast_dtype):
                topic_logits, sent_logits = model(ids, mask)
        else:
            topic_logits, sent_logits = model(ids, mask)
        return topic_logits.float(), sent_logits.float()

    def _batches(self, texts: Sequence[str]) -> Iterator[Batch]:
        """Yield batches; on CUDA they are produced by a background thread, ahead of the forward pass."""
        starts = range(0, len(texts), self.chunk_size)
        chunks = (texts[s : s + self.chunk_size] for s in starts)
        if not self.cuda:
            for offset, chunk in zip(starts, chunks, strict=True):
                yield from self._chunk_batches(chunk, offset)
            return
        yield from _prefetch(b for off, ch in zip(starts, chunks, strict=True) for b in self._chunk_batches(ch, off))

    def _chunk_batches(self, chunk: Sequence[str], offset: int) -> Iterator[Batch]:
        ids = self._tokenize(chunk)
        for index in plan_batches([len(x) for x in ids], self.max_batch_tokens):
            batch = collate(ids, index, self.pad_id, pin=self.cuda)
            batch.index = index + offset
            yield batch

    def _tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        clean = [clean_text(t, self.max_chars) for t in texts]
        enc = self.tokenizer(
            clean,
            truncation=True,
            max_length=self.max_length,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return list(enc["input_ids"])


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax(logits / temperature), float32, stable for large logits."""
    z = np.asarray(logits, dtype=np.float32) / np.float32(temperature)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _margin(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability per row."""
    if probs.shape[1] < 2:
        return np.ones(len(probs), dtype=probs.dtype)
    top2 = np.partition(probs, -2, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def _autocast_dtype() -> torch.dtype:
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _prefetch(source: Iterator[Batch]) -> Iterator[Batch]:
    """Run `source` in a daemon thread, `_QUEUE_DEPTH` batches ahead of the consumer."""
    q: queue.Queue[object] = queue.Queue(maxsize=_QUEUE_DEPTH)
    done = object()

    def produce() -> None:
        try:
            for item in source:
                q.put(item)
        except BaseException as exc:  # handed to the consumer, which re-raises it in the caller's thread
            q.put(exc)
        q.put(done)

    threading.Thread(target=produce, name="finmon-tokenize", daemon=True).start()
    while (item := q.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item  # type: ignore[misc]


def load_classifier(
    model: str | None = None,
    *,
    device: str = "auto",
    quantize: bool = False,
    max_batch_tokens: int = 8192,
    rescore_margin: float | None = None,
) -> Engine:
    """Load a finmon model (None = the shipped default) behind the batched engine.

    `quantize=True` applies dynamic int8 quantisation (per-channel weights, 8-bit activations) and keeps the
    fp32 model to re-score texts whose int8 prediction is close to a tie, so labels stay within ~1% of fp32.
    The tie margin is `rescore_margin` when given, else the one calibrated for the model (finmon_config.json),
    else INT8_RESCORE_MARGIN. It is a CPU feature and is ignored (with a warning) on CUDA, where bf16/fp16
    autocast is used instead. On CPU with int8 the token budget is capped at CPU_INT8_MAX_BATCH_TOKENS.
    """
    if rescore_margin is not None and not 0 <= rescore_margin <= 1:
        raise ValueError(f"rescore_margin must be in [0, 1] (a top-2 probability margin), got {rescore_margin}")
    model_dir = resolve_model_dir(model)
    dev = select_device(device)
    net, tokenizer, config = load_model(model_dir)
    if quantize and dev.type != "cpu":
        log.warning("quantize=True ignored on %s: dynamic int8 quantisation is CPU-only", dev)
        quantize = False
    reference = None
    if quantize:
        net, reference = quantize_int8(net), net.eval()
    net.to(dev)
    version = f"{config.name}-{content_hash(model_dir)}" + ("-int8" if quantize else "")
    return Engine(
        net,
        tokenizer,
        config,
        version=version,
        device=dev,
        max_batch_tokens=max_batch_tokens,
        quantized=quantize,
        reference=reference,
        rescore_margin=_rescore_margin(config, rescore_margin),
    )


def _rescore_margin(config: ModelConfig, explicit: float | None) -> float:
    """An explicit margin wins over the model's calibrated one, which wins over the global default."""
    if explicit is not None:
        return float(explicit)
    stored = config.calibration.int8_rescore_margin if config.calibration is not None else None
    return INT8_RESCORE_MARGIN if stored is None else stored


def compare_engines(reference: Engine, other: Engine, texts: Sequence[str]) -> dict[str, float]:
    """How far `other` moves from `reference` on `texts`: label agreement and largest probability change.

    For an int8 engine that re-scores low-margin texts in fp32, the same figures without re-scoring are
    reported too (`raw_*`), with the share of texts it re-scored.
    """
    ref = reference.predict_proba(texts)
    before = other.texts_rescored
    result = {"n": len(texts), **_agreement(ref, other.predict_proba(texts))}
    if other.reference is not None:
        result["rescored_fraction"] = (other.texts_rescored - before) / max(len(texts), 1)
        margin, other.rescore_margin = other.rescore_margin, 0.0
        try:
            raw = _agreement(ref, other.predict_proba(texts))
        finally:
            other.rescore_margin = margin
        result.update({f"raw_{k}": v for k, v in raw.items()})
    return result


def _agreement(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    if not len(a[0]):
        return {"topic_agreement": 1.0, "sentiment_agreement": 1.0, "max_abs_prob_diff": 0.0}
    return {
        "topic_agreement": float((a[0].argmax(1) == b[0].argmax(1)).mean()),
        "sentiment_agreement": float((a[1].argmax(1) == b[1].argmax(1)).mean()),
        "max_abs_prob_diff": float(max(np.abs(a[0] - b[0]).max(), np.abs(a[1] - b[1]).max())),
    }
