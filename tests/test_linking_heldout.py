"""Entity linking on the held-out headlines (tests/data/linking_heldout.csv): 230 headlines written by hand
before the linker was run on them, scored as `finmon link` links them (benchmarks/eval_linking.py).

The floors are the scores reached (precision 0.994, recall 0.681 with investpy's US-listed companies; 0.993
and 0.613 without) minus a small margin, so that a change that costs precision or recall shows up here. Raise them
when the linker gets better; never edit the gold labels to match the linker.
"""

from __future__ import annotations

import pytest

from benchmarks.eval_linking import HELDOUT, default_linker, evaluate
from monitor.entities.company import Company
from monitor.entities.listed import new_companies, parse_table, table_path


def test_heldout_precision_and_recall() -> None:
    scores = evaluate(HELDOUT)
    recall_floor = 0.66 if table_path() is not None else 0.59
    assert scores.rows >= 150
    assert scores.precision >= 0.98, scores.false_positives
    assert scores.recall >= recall_floor, scores.false_negatives


@pytest.mark.skipif(table_path() is None, reason="investpy's stocks table is not installed")
def test_listed_companies_add_recall_not_false_positives() -> None:
    without = evaluate(HELDOUT, default_linker(listed=False))
    with_listed = evaluate(HELDOUT)
    assert with_listed.true_positives > without.true_positives
    assert len(with_listed.false_positives) <= len(without.false_positives)


TABLE = """country,name,full_name,tag,isin,id,currency,symbol
united states,Roku,Roku Inc,roku,US77543R1023,1,USD,ROKU
united states,Toyota ADR,Toyota Motor Corporation ADR,tm,US8923313071,2,USD,TM
united states,Muni Fund,Nuveen Municipal Income Fund,nmi,US0,3,USD,NMI
united states,Nestle ADR,Nestle SA ADR,nsrgy,US0,4,USD,NSRGY
united states,Facebook,Facebook Inc,fb,US0,5,USD,FB
germany,SAP,SAP SE,sap,DE0,6,EUR,SAP
"""


def test_listed_table_keeps_us_common_stocks_only() -> None:
    assert [c.symbol for c in parse_table(TABLE)] == ["ROKU", "FB"]


def test_listed_companies_yield_to_trusted_symbols_and_names() -> None:
    trusted = [Company("META", names=("Meta Platforms",), aliases=("Facebook",), source="entities.yaml")]
    assert [c.symbol for c in new_companies(parse_table(TABLE), trusted)] == ["ROKU"]
