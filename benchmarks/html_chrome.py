"""An HTML page's site chrome kept or stripped (ingest/chrome.py), side by side in one run.

    python benchmarks/html_chrome.py [--sets sphinx,manuals,debref] [--k 8] [--json runs/html_chrome.json]

- `sphinx`: 28 pages of Sphinx's own manual, as Debian's `sphinx-doc` package ships them
  (/usr/share/doc/sphinx-doc/html; `apt-get install sphinx-doc`; the set is skipped when it is missing),
  with 21 questions written by hand in benchmarks/data/sphinx_doc.jsonl (19 with a short answer the pages
  state, such as an option or a setting, and 2 they do not answer). Sphinx builds most Python projects'
  manuals: its pages carry a related-links bar, a sidebar with the site's contents and a search box, a
  footer, and a "¶" after every heading and defined term.
- `manuals`: the built-in manuals set (Apache httpd, git and bash pages), all 60 questions.
- `debref`: three chapters of the Debian Reference (DocBook) and two pages of the Debian Developer's Reference
  (Sphinx), as the `debian-reference-en` and `developers-reference` packages ship them (skipped when they are
  missing), with 12 questions written by hand in benchmarks/data/debian_reference.jsonl. A fresh family of
  manuals, looked at once (2026-12-02) to see what a new corpus meets: the DocBook outline items ("Enhances"
  over its explanation, ingest/definitions.py) came from it, so it is a dev set now.

For each set, one store with `ingest.html_chrome = "keep"` and one with "strip" (the default). Per store:
its documents' distinct titles, its chunks, the chunks that hold a "¶"; per system (sculpt, extractive;
k passages, no repair): the answerable questions whose answer holds the gold fact ("contains", whole words
after SQuAD normalisation), token F1, refusals of answerable and unanswerable questions, the pass rate.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluation import EvalRun, load_dataset, run_eval  # noqa: E402
from evaluation.metrics import mean  # noqa: E402
from pipeline.config import Settings  # noqa: E402

SPHINX_DOC = Path("/usr/share/doc/sphinx-doc/html")
SPHINX_PAGES = [
    "man/sphinx-build.html", "man/sphinx-quickstart.html", "man/sphinx-apidoc.html", "usage/configuration.html",
    "usage/quickstart.html", "usage/installation.html", "usage/theming.html", "usage/markdown.html",
    "usage/restructuredtext/directives.html", "usage/restructuredtext/basics.html",
    "usage/restructuredtext/roles.html", "usage/restructuredtext/domains.html", "usage/extensions/autodoc.html",
    "usage/extensions/intersphinx.html", "usage/extensions/napoleon.html", "usage/extensions/todo.html",
    "usage/extensions/viewcode.html", "usage/extensions/autosummary.html", "usage/extensions/doctest.html",
    "usage/extensions/extlinks.html", "usage/extensions/autosectionlabel.html", "usage/extensions/githubpages.html",
    "tutorial/getting-started.html", "tutorial/first-steps.html", "tutorial/deploying.html",
    "tutorial/narrative-documentation.html", "tutorial/describing-code.html", "tutorial/automatic-doc-generation.html",
]
QUESTIONS = Path(__file__).resolve().parent / "data" / "sphinx_doc.jsonl"
DEBREF = {Path("/usr/share/debian-reference"): ["ch02.en.html", "ch04.en.html", "ch06.en.html"],
          Path("/usr/share/developers-reference"): ["pkgs.html", "best-pkging-practices.html"]}
DEBREF_QUESTIONS = Path(__file__).resolve().parent / "data" / "debian_reference.jsonl"
SYSTEMS = ("sculpt", "extractive")
MODES = ("keep", "strip")


def sphinx_dataset():
    """The sphinx set, its pages copied flat (man/sphinx-build.html -> man-sphinx-build.html); None without them."""
    if not all((SPHINX_DOC / p).is_file() for p in SPHINX_PAGES):
        print(f"sphinx: skipped, {SPHINX_DOC} lacks the pages (apt-get install sphinx-doc)")
        return None
    corpus = Path("runs/eval-corpora/sphinx-doc")
    corpus.mkdir(parents=True, exist_ok=True)
    for p in SPHINX_PAGES:
        target = corpus / p.replace("/", "-")
        if not target.is_file():
            shutil.copyfile(SPHINX_DOC / p, target)
    return load_dataset(QUESTIONS, corpus=corpus)


def debref_dataset():
    """The debref set, its pages copied flat; None without them."""
    if not all((folder / p).is_file() for folder, pages in DEBREF.items() for p in pages):
        print("debref: skipped, the pages are missing (apt-get install debian-reference-en developers-reference)")
        return None
    corpus = Path("runs/eval-corpora/debian-reference")
    corpus.mkdir(parents=True, exist_ok=True)
    for folder, pages in DEBREF.items():
        for p in pages:
            if not (corpus / p).is_file():
                shutil.copyfile(folder / p, corpus / p)
    return load_dataset(DEBREF_QUESTIONS, corpus=corpus)


def store_counts(store: Path) -> dict:
    with sqlite3.connect(store / "sculptrag.db") as db:
        return {"titles": db.execute("select count(distinct title) from documents").fetchone()[0],
                "documents": db.execute("select count(*) from documents").fetchone()[0],
                "chunks": db.execute("select count(*) from chunks").fetchone()[0],
                "pilcrow_chunks": db.execute("select count(*) from chunks where text like '%¶%'").fetchone()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default="sphinx,manuals")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--json", type=Path, default=Path("runs/html_chrome.json"))
    args = ap.parse_args()
    base = Settings()
    base = base.model_copy(update={"validation": base.validation.model_copy(update={"repair_rounds": 0})})
    results: dict = {}
    for name in args.sets.split(","):
        ds = {"sphinx": sphinx_dataset, "debref": debref_dataset}.get(name, lambda: load_dataset(name))()
        if ds is None:
            continue
        for mode in MODES:
            settings = base.model_copy(update={"ingest": base.ingest.model_copy(update={"html_chrome": mode})})
            store = Path(f"runs/eval-stores/{name}-chrome-{mode}")
            report = run_eval(EvalRun(dataset=ds, generators=SYSTEMS, k=args.k, store_dir=store, settings=settings))
            row = {"store": store_counts(store)}
            for system in SYSTEMS:
                answers = [(r["answers"][system], r) for r in report["items"] if "error" not in r["answers"][system]]
                answerable = [a for a, r in answers if r["answerable"]]
                unanswerable = [a for a, r in answers if not r["answerable"]]
                row[system] = {"contains": mean(a["contains_gold"] for a in answerable),
                               "f1": mean(a["token_f1"] for a in answerable),
                               "refuse_answerable": mean(a["refusal"] for a in answerable),
                               "refuse_unanswerable": mean(a["refusal"] for a in unanswerable),
                               "pass": mean(a["status"] == "pass" for a, _ in answers),
                               "answers": {r["id"]: {k: a.get(k) for k in ("text", "status", "contains_gold", "reasons")}
                                           for a, r in answers}}
            results.setdefault(name, {})[mode] = row
        print_table(name, len(ds.items), results[name])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"\n(json: {args.json})")


def print_table(name: str, n: int, rows: dict) -> None:
    def f(x):
        return "-" if x is None else f"{x:.3f}"

    print(f"\n{name} ({n} questions)\n")
    print("| chrome | titles / documents | chunks | chunks with ¶ | system | contains | F1 | refuse ans | refuse unans | pass |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for mode, row in rows.items():
        s = row["store"]
        for system in SYSTEMS:
            r = row[system]
            print(f"| {mode} | {s['titles']} / {s['documents']} | {s['chunks']} | {s['pilcrow_chunks']} | {system} | "
                  f"{f(r['contains'])} | {f(r['f1'])} | {f(r['refuse_answerable'])} | {f(r['refuse_unanswerable'])} | "
                  f"{f(r['pass'])} |")


if __name__ == "__main__":
    main()
