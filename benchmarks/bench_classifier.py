"""`finmon bench classifier`: texts/s of the engine vs `transformers.pipeline` vs a naive loop, one run.

All three paths score the same texts with the same model (merged encoder + mean pooling + both heads):

* engine: `load_classifier` (token-budget batches, length sort, pad to 8, inference_mode; int8 dynamic
  quantisation on CPU unless --no-int8, bf16/fp16 autocast on CUDA), plus the exact fp32 engine;
* pipeline: `transformers.pipeline("feature-extraction", batch_size=32)` on the encoder, then the same pooling
  and heads (the pipeline pads each batch to its longest text, in input order);
* naive: one text at a time, fp32.

It also checks that the exact engine's predictions equal the naive loop's and reports how far int8 moves
from fp32. Default texts: a seeded sample of the shared TFNS/topic training files when present, else the
bundled demo feed's titles.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np

from pipelines.options import dataclass_options, from_options

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = (REPO.parent / "shared/data/tfns/sent_train.csv", REPO.parent / "shared/data/tfn_topic/topic_train.csv")
DEMO_FEED = REPO / "monitor/data/demo_feed.jsonl"
TEXT_COLUMNS = ("text", "title", "headline", "content")


@dataclass
class BenchArguments:
    """What to benchmark, and how."""

    model: str | None = field(default=None, metadata={"help": "Model directory or shipped name (default: shipped)."})
    data: Path | None = field(
        default=None,
        metadata={
            "help": "CSV/JSONL/Parquet with texts (default: shared TFNS + topic train files, else the demo feed)."
        },
    )
    text_col: str | None = field(default=None, metadata={"help": "Text column (default: text/title/headline)."})
    n: int = field(default=2000, metadata={"help": "Number of texts (sampled with a fixed seed)."})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N."})
    int8: bool = field(default=True, metadata={"help": "On CPU, the engine uses dynamic int8 quantisation."})
    max_batch_tokens: int = field(default=8192, metadata={"help": "Engine token budget per batch."})
    pipeline_batch_size: int = field(default=32, metadata={"help": "batch_size of transformers.pipeline."})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads (default: torch's choice)."})


def load_texts(args: BenchArguments) -> list[str]:
    """`n` texts from --data (or the defaults), sampled with seed 0, repeated if the file is smaller."""
    from pipelines.training.data import read_table

    paths = [args.data] if args.data else [p for p in DEFAULT_DATA if p.is_file()] or [DEMO_FEED]
    texts: list[str] = []
    for path in paths:
        frame = read_table(path)
        col = args.text_col or next((c for c in TEXT_COLUMNS if c in frame.columns), None)
        if col is None or col not in frame.columns:
            raise click.BadParameter(
                f"{path}: no text column {args.text_col or TEXT_COLUMNS}; set --text-col "
                f"(columns: {list(frame.columns)})"
            )
        texts.extend(frame[col].astype(str).tolist())
    rng = np.random.default_rng(0)
    picks = rng.permutation(len(texts))
    return [texts[i] for i in np.resize(picks, args.n)]


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Run `fn` once; return its result and the wall seconds."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def pipeline_path(engine: Any, texts: Sequence[str], batch_size: int) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    """transformers.pipeline on the same encoder; pooling over each text's real tokens, then both heads."""
    import torch
    from transformers import pipeline

    model = engine.model
    pipe = pipeline(
        "feature-extraction",
        model=model.encoder,
        tokenizer=engine.tokenizer,
        device=engine.device,
        batch_size=batch_size,
    )
    # The pipeline pads within a batch, so each text's real length is needed to pool it (computed untimed).
    lengths = [
        len(x) for x in engine.tokenizer(list(texts), truncation=True, max_length=engine.max_length)["input_ids"]
    ]

    t_topic, t_sent = engine.temperatures  # the model's calibration, as the engine applies it

    def run() -> tuple[np.ndarray, np.ndarray]:
        outputs = pipe(list(texts), return_tensors=True, truncation=True, max_length=engine.max_length)
        with torch.inference_mode():
            pooled = torch.stack([o[0, :n].mean(0) for o, n in zip(outputs, lengths, strict=True)]).float()
            topic = (model.topic(pooled) / t_topic).softmax(-1)
            return topic.numpy(), (model.sentiment(pooled) / t_sent).softmax(-1).numpy()

    return run


def naive_path(engine: Any, texts: Sequence[str]) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    """One text per forward pass, no batching, fp32, the model's temperatures."""
    import torch

    t_topic, t_sent = engine.temperatures

    def run() -> tuple[np.ndarray, np.ndarray]:
        topic, sent = [], []
        with torch.inference_mode():
            for text in texts:
                enc = engine.tokenizer(text, truncation=True, max_length=engine.max_length, return_tensors="pt")
                t, s = engine.model(enc["input_ids"].to(engine.device), enc["attention_mask"].to(engine.device))
                topic.append((t / t_topic).softmax(-1)[0].cpu().numpy())
                sent.append((s / t_sent).softmax(-1)[0].cpu().numpy())
        return np.stack(topic), np.stack(sent)

    return run


def agreement(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    """Label agreement per head and the largest probability difference."""
    return {
        "topic_agreement": float((a[0].argmax(1) == b[0].argmax(1)).mean()),
        "sentiment_agreement": float((a[1].argmax(1) == b[1].argmax(1)).mean()),
        "max_abs_prob_diff": float(max(np.abs(a[0] - b[0]).max(), np.abs(a[1] - b[1]).max())),
    }


def bench(args: BenchArguments) -> dict[str, Any]:
    """Warm up, then time every path once on the same texts; return the report."""
    import torch

    from monitor.classify.engine import load_classifier

    if args.threads:
        torch.set_num_threads(args.threads)
    texts = load_texts(args)
    exact = load_classifier(args.model, device=args.device, max_batch_tokens=args.max_batch_tokens)
    use_int8 = args.int8 and exact.device.type == "cpu"
    fast = (
        load_classifier(args.model, device=args.device, quantize=True, max_batch_tokens=args.max_batch_tokens)
        if use_int8
        else exact
    )
    paths = {
        "engine": lambda: fast.predict_proba(texts),
        "engine_exact": lambda: exact.predict_proba(texts),
        "pipeline": pipeline_path(exact, texts, args.pipeline_batch_size),
        "naive": naive_path(exact, texts),
    }
    warm = texts[:64]
    fast.predict_proba(warm), exact.predict_proba(warm), pipeline_path(exact, warm, args.pipeline_batch_size)()
    results, seconds = {}, {}
    for name, fn in paths.items():
        results[name], seconds[name] = timed(fn)
    return report(args, texts, exact, fast, results, seconds)


def report(
    args: BenchArguments,
    texts: Sequence[str],
    exact: Any,
    fast: Any,
    results: dict[str, Any],
    seconds: dict[str, float],
) -> dict[str, Any]:
    """The JSON object of `finmon bench classifier --json`."""
    rate = {name: len(texts) / max(s, 1e-9) for name, s in seconds.items()}
    lengths = [len(x) for x in exact.tokenizer(list(texts), truncation=True, max_length=exact.max_length)["input_ids"]]
    return {
        "engine_texts_per_s": round(rate["engine"], 1),
        "engine_exact_texts_per_s": round(rate["engine_exact"], 1),
        "pipeline_texts_per_s": round(rate["pipeline"], 1),
        "naive_texts_per_s": round(rate["naive"], 1),
        "speedup_vs_pipeline": round(rate["engine"] / rate["pipeline"], 2),
        "speedup_vs_naive": round(rate["engine"] / rate["naive"], 2),
        "exact_speedup_vs_pipeline": round(rate["engine_exact"] / rate["pipeline"], 2),
        "device": str(exact.device),
        "engine": fast.describe(),
        "pipeline_batch_size": args.pipeline_batch_size,
        "n_texts": len(texts),
        "mean_tokens": round(float(np.mean(lengths)), 1),
        "exact_vs_naive": agreement(results["engine_exact"], results["naive"]),
        "exact_vs_pipeline": agreement(results["engine_exact"], results["pipeline"]),
        "engine_vs_exact": agreement(results["engine"], results["engine_exact"]),
        "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(args).items()},
    }


def render_text(r: dict[str, Any]) -> str:
    """Readable summary of the report."""
    e = r["engine"]
    return "\n".join(
        [
            f"model {e['version']}  device {r['device']}  engine dtype {e['dtype']}  max_batch_tokens "
            f"{e['max_batch_tokens']}  pad to {e['pad_multiple']}  threads {e['torch_threads']}",
            f"{r['n_texts']} texts, mean {r['mean_tokens']} tokens; pipeline batch_size {r['pipeline_batch_size']}",
            f"engine        {r['engine_texts_per_s']:8.1f} texts/s  ({r['speedup_vs_pipeline']}x pipeline, "
            f"{r['speedup_vs_naive']}x naive)",
            f"engine exact  {r['engine_exact_texts_per_s']:8.1f} texts/s  ({r['exact_speedup_vs_pipeline']}x pipeline)",
            f"pipeline      {r['pipeline_texts_per_s']:8.1f} texts/s",
            f"naive         {r['naive_texts_per_s']:8.1f} texts/s",
            f"exact vs naive: {r['exact_vs_naive']}",
            f"engine vs exact: {r['engine_vs_exact']}",
        ]
    )


@click.command("classifier")
@dataclass_options(BenchArguments)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def command(as_json: bool, **options: Any) -> None:
    """Benchmark the inference engine against transformers.pipeline and a naive loop on the same texts."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = bench(from_options(BenchArguments, options))
    click.echo(json.dumps(result) if as_json else render_text(result))
