"""The question files of benchmarks/library_manuals.py: well-formed, 32 answerable and 8 unanswerable each,
every gold source one of the set's pages (sets b-s list their pages; set a is checked by the benchmark's run), and
no listed page's package one that training may read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation import load_dataset
from generator.sculpt.training.data import NOT_FOR_TRAINING

DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data"


@pytest.mark.parametrize("name", ["library_manuals.jsonl", "library_manuals_b.jsonl", "library_manuals_c.jsonl",
                                  "library_manuals_d.jsonl", "library_manuals_e.jsonl",
                                  "library_manuals_f.jsonl", "library_manuals_g.jsonl", "library_manuals_h.jsonl",
                                  "library_manuals_i.jsonl", "library_manuals_j.jsonl",
                                  "library_manuals_k.jsonl", "library_manuals_l.jsonl", "library_manuals_m.jsonl",
                                  "library_manuals_n.jsonl", "library_manuals_o.jsonl", "library_manuals_p.jsonl",
                                  "library_manuals_q.jsonl", "library_manuals_r.jsonl", "library_manuals_s.jsonl",
                                  "library_manuals_t.jsonl", "library_manuals_u.jsonl"])
def test_a_question_file_is_well_formed(name):
    rows = [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]
    assert len({r["id"] for r in rows}) == len(rows) == 40
    assert sum(r["answerable"] for r in rows) == 32
    for r in rows:
        if r["answerable"]:
            assert r["aliases"] and all(a.strip() for a in r["aliases"]) and r["gold_sources"], r["id"]
        else:
            assert not r["aliases"] and not r["gold_sources"], r["id"]
    ds = load_dataset(DATA / name, corpus=DATA)  # (the corpus folder is not read to load the questions)
    assert len(ds.items) == 40


@pytest.mark.parametrize("name, count", [("b", 12), ("c", 12), ("d", 14), ("e", 13), ("f", 14), ("g", 12),
                                         ("h", 14), ("i", 13), ("j", 14), ("k", 7), ("l", 14), ("m", 10),
                                         ("n", 10), ("o", 10), ("p", 1), ("q", 10), ("r", 11),
                                         ("s", 1), ("t", 11), ("u", 11), ("v", 12)])
def test_a_listed_set_s_gold_sources_are_its_pages(name, count):
    pages = json.loads((DATA / f"library_manuals_{name}.pages.json").read_text())
    names = [Path(p).name for paths in pages.values() for p in paths]
    assert len(names) == len(set(names)) == count  # flat per package, and no two pages share a name
    for line in (DATA / f"library_manuals_{name}.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert set(row["gold_sources"]) <= set(names), row["id"]
    assert all(NOT_FOR_TRAINING.match(package) for package in pages)  # an evaluation's manual is never trained on
