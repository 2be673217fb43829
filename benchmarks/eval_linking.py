"""Ticker precision and recall of `finmon link` on a labelled headline file (default: the held-out set).

The held-out sets are tests/data/linking_heldout.csv (the default) and linking_heldout2.csv. The file has
`id`, `text`, optional `body` and `gold` (space-separated Yahoo-form symbols, empty for none).
Rows are linked by `pipelines.link.link_rows`, the function `finmon link` calls, with the default settings and
threshold, and without feed tickers (the gold column is not a ticker column, but a file might have one). The
scores are micro-averaged over (row, ticker) pairs; every false positive and false negative is listed.

    .venv/bin/python benchmarks/eval_linking.py [FILE] [--json] [--no-listed]

`--no-listed` links without investpy's US-listed companies (monitor/entities/listed.py), for a before/after.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import click

from monitor.config import load_settings
from monitor.entities import Linker
from monitor.sources.files import read_table
from pipelines.link import link_rows

REPO = Path(__file__).resolve().parent.parent
HELDOUT = REPO / "tests/data/linking_heldout.csv"
HELDOUT2 = REPO / "tests/data/linking_heldout2.csv"  # the second set, written before the linker saw it


@dataclass(frozen=True)
class Scores:
    """Micro precision, recall and F1, with the errors as (id, symbol, text)."""

    rows: int
    gold: int
    predicted: int
    true_positives: int
    false_positives: list[tuple[str, str, str]]
    false_negatives: list[tuple[str, str, str]]

    @property
    def precision(self) -> float:
        return self.true_positives / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.gold if self.gold else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def _gold(path: Path) -> dict[str, set[str]]:
    frame = read_table(path)
    return {str(i): set(str(g).split()) if isinstance(g, str) else set()
            for i, g in zip(frame["id"], frame["gold"], strict=True)}


def default_linker(listed: bool = True) -> Linker:
    """`finmon link`'s linker (default settings), with or without the listed companies."""
    settings = load_settings(None)
    entities = settings.entities.model_copy(update={"listed": listed})
    return Linker.from_settings(settings.model_copy(update={"entities": entities}))


def evaluate(path: Path = HELDOUT, linker: Linker | None = None) -> Scores:
    """Link every row as `finmon link` does and compare the tickers at/above the threshold with the gold."""
    linker = linker or default_linker()
    gold = _gold(path)
    tp, predicted, fps, fns = 0, 0, [], []
    for ident, title, links in link_rows(linker, str(path), "text", "id", None, feed=False):
        found = {x.symbol for x in links if x.relevance >= linker.min_relevance}
        want = gold[str(ident)]
        tp += len(found & want)
        predicted += len(found)
        fps += [(str(ident), s, title) for s in sorted(found - want)]
        fns += [(str(ident), s, title) for s in sorted(want - found)]
    return Scores(len(gold), sum(map(len, gold.values())), predicted, tp, fps, fns)


def render(s: Scores) -> str:
    lines = [f"{s.rows} rows, {s.gold} gold tickers, {s.predicted} predicted, {s.true_positives} correct",
             f"precision {s.precision:.3f}  recall {s.recall:.3f}  F1 {s.f1:.3f}",
             f"false positives ({len(s.false_positives)}):"]
    lines += [f"  FP {i:<6} {sym:<12} {text[:90]}" for i, sym, text in s.false_positives]
    lines.append(f"false negatives ({len(s.false_negatives)}):")
    lines += [f"  FN {i:<6} {sym:<12} {text[:90]}" for i, sym, text in s.false_negatives]
    return "\n".join(lines)


@click.command("eval-linking")
@click.argument("file", type=click.Path(exists=True, path_type=Path), default=HELDOUT)
@click.option("--listed/--no-listed", default=True, show_default=True,
              help="Include investpy's US-listed companies (entities.listed).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def command(file: Path, listed: bool, as_json: bool) -> None:
    """Precision, recall and F1 of entity linking on FILE, with every false positive and negative."""
    s = evaluate(file, default_linker(listed))
    if as_json:
        click.echo(json.dumps({"rows": s.rows, "gold": s.gold, "predicted": s.predicted,
                               "precision": round(s.precision, 4), "recall": round(s.recall, 4),
                               "f1": round(s.f1, 4), "false_positives": s.false_positives,
                               "false_negatives": s.false_negatives}))
    else:
        click.echo(render(s))


if __name__ == "__main__":
    command()
