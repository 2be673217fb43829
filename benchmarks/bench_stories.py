"""`finmon bench stories`: story assignment cost per item and what the stories look like (prints numbers).

For the bundled demo feed and for the first `--rows` rows (in time order) of the StockNet tweets in
../shared/data/backtest (rows merge by tweet id into items, as `finmon backtest` merges them):

Items carry their tickers (the demo feed's `tickers`, the StockNet rows' `ticker`s of the tweet), as the
classify stage will pass them. Reported:

* cost per item: fingerprints alone (normalise, shingle, MinHash, bands), the in-memory assignment
  (`MemoryStories`) and the store-backed `StoryIndex` on SQLite (or --store-url), in batches of `--batch`
  (and datasketch's MinHash on the same shingles, if that package is installed);
  for the index also the time per batch inside its transaction (what concurrent workers wait for);
* stories: how many, the largest (in rows and in items), the share of rows in stories of 5+ rows, the share
  of items that joined an earlier item's story, the mean novelty; next to the same counts for exact text
  duplicates (raw text, no time limit: the numbers issue #13 quotes).

`--embedding N` also runs the comparison behind the package's choice (monitor/stories/__init__.py): N items
from `--embedding-start` are embedded with the shipped encoder (finmon-minilm, mean pooled, as the classifier
computes it) and clustered greedily (an item joins the story of its most similar item of the past 24 h if
the cosine reaches each of --cosine), and the same-story pairs are compared with MinHash's; samples of the
pairs only one method finds are written to --pairs-out for checking by hand.

    finmon bench stories                       # demo feed + 20,000 StockNet rows, SQLite in a temp dir
    finmon bench stories --rows 0 --full       # all 119,641 rows, in memory only
    finmon bench stories --embedding 2000 --embedding-start 60000 --pairs-out /tmp/pairs.txt
"""

from __future__ import annotations

import itertools
import json
import random
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd
from sqlalchemy import delete

from monitor.config import StorySettings
from monitor.store import Store
from monitor.store.schema import stories, story_bands, story_exemplars, story_items, story_progress, story_sources
from monitor.stories import MemoryStories, StoryInput
from monitor.stories.book import fingerprint_items
from monitor.stories.index import StoryIndex
from monitor.stories.memory import make_hasher

REPO = Path(__file__).resolve().parent.parent
STOCKNET = REPO.parent / "shared/data/backtest/tweets"
DEMO_FEED = REPO / "monitor/data/demo_feed.jsonl"
STORY_TABLES = (stories, story_items, story_sources, story_bands, story_exemplars, story_progress)


def demo_feed() -> tuple[pd.DataFrame, list[StoryInput]]:
    frame = pd.read_json(DEMO_FEED, lines=True, dtype=False)
    frame["t"] = pd.to_datetime(frame["published_at"], utc=True)
    frame = frame.sort_values(["t", "id"], kind="stable").reset_index(drop=True)
    text = frame["title"] + frame.get("body", pd.Series("", index=frame.index)).fillna("").map(
        lambda b: f"\n{b}" if b else "")
    items = [StoryInput(str(i), str(x), str(s), t.to_pydatetime(), tuple(k))
             for i, x, s, t, k in zip(frame["id"], text, frame["source"], frame["t"], frame["tickers"], strict=True)]
    return frame.assign(item_id=frame["id"].astype(str), text=text), items


def stocknet(rows: int | None, start: int = 0) -> tuple[pd.DataFrame, list[StoryInput]]:
    """Rows start..start+rows of the tweets in time order; items = the first row of each tweet id."""
    files = sorted(STOCKNET.glob("*.csv"))
    if not files:
        raise click.ClickException(f"no StockNet tweets under {STOCKNET}")
    frame = pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False) for f in files], ignore_index=True)
    frame = frame.sort_values("created_at", kind="stable").reset_index(drop=True)
    frame = frame.iloc[start : start + rows] if rows else frame.iloc[start:]
    frame = frame.assign(t=pd.to_datetime(frame["created_at"], utc=True), item_id=frame["tweet_id"])
    firsts = frame.drop_duplicates("item_id")
    tickers = frame.groupby("item_id")["ticker"].agg(tuple)
    items = [StoryInput(i, x, "twitter", t.to_pydatetime(), tickers[i])
             for i, x, t in zip(firsts["item_id"], firsts["text"], firsts["t"], strict=True)]
    return frame, items


def timed(fn: Any, items: Sequence[StoryInput], batch: int) -> tuple[list[Any], float, list[float]]:
    out, per_batch = [], []
    started = time.perf_counter()
    for i in range(0, len(items), batch):
        t0 = time.perf_counter()
        out.extend(fn(items[i : i + batch]))
        per_batch.append(time.perf_counter() - t0)
    return out, time.perf_counter() - started, per_batch


def datasketch_us(items: Sequence[StoryInput], cfg: StorySettings, n: int = 3000) -> float | None:
    """datasketch's MinHash per signature on the same shingles, when the package is installed (it is not a
    dependency: the numpy implementation was chosen over it)."""
    try:
        from datasketch import MinHash
    except ImportError:
        return None
    from monitor.stories.text import normalize, shingle_texts

    shingles = [[s.encode() for s in shingle_texts(normalize(i.text))] for i in items[:n]]
    started = time.perf_counter()
    for one in shingles:
        MinHash(num_perm=cfg.num_perm, seed=cfg.seed).update_batch(one)
    return 1e6 * (time.perf_counter() - started) / max(1, len(shingles))


def cluster_stats(rows: pd.DataFrame, story_of: dict[str, str]) -> dict[str, Any]:
    """Stories over the rows (an item listed under several tickers is several rows) and over the items."""
    by_row = rows["item_id"].map(story_of)
    row_sizes = by_row.map(by_row.value_counts())
    items = pd.Series(story_of)
    item_sizes = items.value_counts()
    return {"rows": len(rows), "items": len(items), "stories": len(item_sizes),
            "largest_story_rows": int(row_sizes.max()), "largest_story_items": int(item_sizes.max()),
            "rows_in_stories_5plus": round(float((row_sizes >= 5).mean()), 3),
            "items_joined": round(1 - len(item_sizes) / len(items), 3)}


def run_feed(name: str, rows: pd.DataFrame, items: list[StoryInput], cfg: StorySettings, batch: int,
             store_url: str | None) -> dict[str, Any]:
    hasher = make_hasher(cfg)
    _, t_fp, _ = timed(lambda b: fingerprint_items(hasher, b), items, batch)
    memory = MemoryStories(cfg)
    assigned, t_mem, _ = timed(memory.assign, items, batch)
    out: dict[str, Any] = {"feed": name, "items": len(items), "fingerprint_us": 1e6 * t_fp / len(items),
                           "memory_us": 1e6 * t_mem / len(items), "datasketch_us": datasketch_us(items, cfg)}
    if store_url is not None:
        store = Store(store_url)
        store.create_schema()
        _empty_story_tables(store)
        stored, t_idx, per_batch = timed(StoryIndex(store, cfg).assign, items, batch)
        store.dispose()
        if stored != assigned:
            raise click.ClickException("StoryIndex and MemoryStories disagree")
        out.update(store=store.dialect, store_us=1e6 * t_idx / len(items),
                   txn_ms_per_batch=1e3 * (t_idx - t_fp) / len(per_batch))
    story_of = {a.item_id: a.story_id for a in assigned}
    exact = dict(zip(rows["item_id"], rows["text"], strict=True))
    out["stories"] = cluster_stats(rows, story_of)
    out["exact_text"] = cluster_stats(rows, exact)
    out["mean_novelty"] = round(float(np.mean([a.novelty for a in assigned])), 1)
    out["below_100"] = round(float(np.mean([a.novelty < 100 for a in assigned])), 3)
    return out


def _empty_story_tables(store: Store) -> None:
    """Each feed starts from empty story tables (a --store-url is a scratch database)."""
    with store.engine.begin() as conn:
        for table in STORY_TABLES:
            conn.execute(delete(table))


def same_story_pairs(story_ids: Sequence[Any]) -> set[tuple[int, int]]:
    groups: dict[Any, list[int]] = defaultdict(list)
    for i, s in enumerate(story_ids):
        groups[s].append(i)
    return {p for members in groups.values() for p in itertools.combinations(members, 2)}


def embeddings(texts: Sequence[str]) -> tuple[np.ndarray, float]:
    """Unit-length mean-pooled sentence embeddings from the shipped encoder, and seconds per text."""
    import torch

    from monitor.classify.engine import clean_text
    from monitor.classify.model import load_model, resolve_model_dir

    model, tokenizer, _ = load_model(resolve_model_dir(None))
    started, parts = time.perf_counter(), []
    with torch.inference_mode():
        for i in range(0, len(texts), 64):
            enc = tokenizer([clean_text(t, 2000) for t in texts[i : i + 64]], truncation=True, max_length=128,
                            padding=True, return_tensors="pt")
            parts.append(model.pooled(enc["input_ids"], enc["attention_mask"]))
    vectors = torch.cat(parts).numpy()
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), (time.perf_counter() - started) / len(texts)


def embedding_stories(vectors: np.ndarray, t_us: np.ndarray, cosine: float, window_us: int) -> list[int]:
    story = list(range(len(vectors)))
    for i in range(len(vectors)):
        lo = int(np.searchsorted(t_us, t_us[i] - window_us))
        if i > lo:
            sims = vectors[lo:i] @ vectors[i]
            j = int(np.argmax(sims))
            if sims[j] >= cosine:
                story[i] = story[lo + j]
    return story


def compare_embedding(items: list[StoryInput], cfg: StorySettings, cosines: Sequence[float],
                      pairs_out: Path | None, sample: int) -> dict[str, Any]:
    minhash = [a.story_id for a in MemoryStories(cfg).assign(items)]
    vectors, s_per_text = embeddings([i.text for i in items])
    t_us = np.array([int(i.published_at.timestamp() * 1e6) for i in items])
    mh_pairs = same_story_pairs(minhash)
    out: dict[str, Any] = {"items": len(items), "first": items[0].published_at.isoformat(),
                           "last": items[-1].published_at.isoformat(), "embed_ms_per_item": 1e3 * s_per_text,
                           "minhash": {"joined": len(items) - len(set(minhash)), "pairs": len(mh_pairs)}}
    lines: list[str] = []
    rng = random.Random(0)
    for cos in cosines:
        started = time.perf_counter()
        emb = embedding_stories(vectors, t_us, cos, int(cfg.window_hours * 3600e6))
        search_us = 1e6 * (time.perf_counter() - started) / len(items)
        emb_pairs = same_story_pairs(emb)
        out[f"cosine_{cos}"] = {"joined": len(items) - len(set(emb)), "pairs": len(emb_pairs),
                                "both": len(mh_pairs & emb_pairs), "only_minhash": len(mh_pairs - emb_pairs),
                                "only_embedding": len(emb_pairs - mh_pairs), "search_us_per_item": search_us}
        for label, pairs in (("only MinHash", mh_pairs - emb_pairs), ("only embedding", emb_pairs - mh_pairs)):
            for a, b in rng.sample(sorted(pairs), min(sample, len(pairs))):
                lines += [f"--- cosine {cos}, {label}: cos={float(vectors[a] @ vectors[b]):.3f}",
                          f" A: {items[a].text[:160]!r}", f" B: {items[b].text[:160]!r}"]
    if pairs_out is not None:
        pairs_out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def render(result: dict[str, Any]) -> str:
    lines = []
    for feed in result["feeds"]:
        line = (f"{feed['feed']}: {feed['items']:,} items  fingerprint {feed['fingerprint_us']:.0f} us/item  "
                f"in memory {feed['memory_us']:.0f} us/item")
        if "store" in feed:
            line += (f"  {feed['store']} store {feed['store_us']:.0f} us/item "
                     f"({feed['txn_ms_per_batch']:.1f} ms per batch in the transaction)")
        if feed["datasketch_us"] is not None:
            line += f"  (datasketch MinHash alone {feed['datasketch_us']:.0f} us/item)"
        lines.append(line)
        for key in ("stories", "exact_text"):
            s = feed[key]
            lines.append(f"  {key:10s} rows {s['rows']:,}  stories {s['stories']:,}  "
                         f"largest {s['largest_story_rows']:,} rows / {s['largest_story_items']:,} items  "
                         f"rows in stories of 5+ {100 * s['rows_in_stories_5plus']:.1f}%  "
                         f"items joined {100 * s['items_joined']:.1f}%")
        lines.append(f"  mean novelty {feed['mean_novelty']}  items below 100: {100 * feed['below_100']:.1f}%")
    if "embedding" in result:
        lines.append("MinHash vs embedding: " + json.dumps(result["embedding"], indent=1))
    return "\n".join(lines)


@click.command("stories")
@click.option("--rows", type=int, default=20_000, show_default=True, help="StockNet rows (0: skip StockNet).")
@click.option("--full", is_flag=True, help="Also all StockNet rows, in memory only.")
@click.option("--batch", type=int, default=256, show_default=True, help="Items per assign() call.")
@click.option("--store-url", default=None,
              help="Scratch store for the StoryIndex runs: its story tables are emptied before each feed "
                   "(default: SQLite in a temp dir).")
@click.option("--embedding", type=int, default=0, help="Compare with embedding clustering on this many items.")
@click.option("--embedding-start", type=int, default=60_000, show_default=True, help="First StockNet item.")
@click.option("--cosine", type=float, multiple=True, default=(0.97, 0.95, 0.9), show_default=True)
@click.option("--pairs-out", type=click.Path(path_type=Path), default=None, help="Where to write pair samples.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def command(rows: int, full: bool, batch: int, store_url: str | None, embedding: int, embedding_start: int,
            cosine: tuple[float, ...], pairs_out: Path | None, as_json: bool) -> None:
    """Story assignment cost per item, and the stories it finds (demo feed, StockNet)."""
    cfg = StorySettings()
    with tempfile.TemporaryDirectory() as tmp:
        def url(name: str) -> str:
            return store_url or f"sqlite:///{Path(tmp) / name}.db"

        feeds = [run_feed("demo feed", *demo_feed(), cfg, batch, url("demo"))]
        if rows:
            feeds.append(run_feed(f"StockNet first {rows:,} rows", *stocknet(rows), cfg, batch, url("stocknet")))
        if full:
            feeds.append(run_feed("StockNet all rows", *stocknet(None), cfg, batch, None))
    result: dict[str, Any] = {"settings": cfg.model_dump(), "batch": batch, "feeds": feeds}
    if embedding:
        _, items = stocknet(None)
        result["embedding"] = compare_embedding(items[embedding_start : embedding_start + embedding], cfg, cosine,
                                                pairs_out, sample=25)
    click.echo(json.dumps(result, default=str) if as_json else render(result))


if __name__ == "__main__":
    command()
