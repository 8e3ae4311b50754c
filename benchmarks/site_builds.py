"""A Sphinx site ingested as its rendered pages, or with everything its build writes beside them, side by side.

    python benchmarks/site_builds.py [--k 8]

The corpus is two whole Sphinx HTML sites as Debian ships them: `python-requests-doc` and
`python-jinja2-doc` (/usr/share/doc/python-requests-doc/html, /usr/share/doc/python-jinja2-doc/html;
`apt-get install python-requests-doc python-jinja2-doc`; the run stops when they are missing), with 12
questions written by hand in benchmarks/data/sphinx_sites.jsonl (each with the short facts a right answer
holds). Two stores: "pages" (the default: ingest.discover skips a Sphinx build's `_sources/`, `_modules/`,
`_static/`, `_images/` and its generated index and search pages) and "everything" (that rule turned off;
stylesheets and source maps are refused in both, ingest.parse.web_asset).
Per store: documents, chunks, files rejected, ingest seconds; per system (sculpt, extractive; k passages):
answers that hold a gold fact, answers quoting a build copy (`_sources`, `_modules` or an index page), and
the validation pass rate.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ingest.discover as discover  # noqa: E402
from pipeline import ingest  # noqa: E402
from pipeline.config import Settings  # noqa: E402
from pipeline.rag import RagPipeline  # noqa: E402

SITES = {"requests": Path("/usr/share/doc/python-requests-doc/html"),
         "jinja2": Path("/usr/share/doc/python-jinja2-doc/html")}
QUESTIONS = Path(__file__).resolve().parent / "data" / "sphinx_sites.jsonl"
SYSTEMS = ("sculpt", "extractive")
COPY_MARKS = ("/_sources/", "/_modules/", "genindex", "modindex", "/search.html")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--k", type=int, default=8)
    args = ap.parse_args()
    missing = [str(p) for p in SITES.values() if not (p / "searchindex.js").is_file()]
    if missing:
        sys.exit(f"missing: {', '.join(missing)} (apt-get install python-requests-doc python-jinja2-doc)")
    questions = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="site-builds-") as tmp:
        corpus = Path(tmp, "corpus")
        for name, site in SITES.items():
            shutil.copytree(site, corpus / name, symlinks=True)  # as shipped: its scripts link out of the tree
        for mode in ("everything", "pages"):
            saved = discover.site_build
            if mode == "everything":
                discover.site_build = lambda *a: None
            try:
                settings = Settings(store_dir=Path(tmp, f"store-{mode}"))
                report = ingest([corpus], settings)
            finally:
                discover.site_build = saved
            rag = RagPipeline(settings)
            row = {"mode": mode, "documents": report.ingested, "chunks": report.chunks_added,
                   "rejected": report.rejected, "seconds": report.seconds}
            for system in SYSTEMS:
                holds = copies = passed = 0
                for q in questions:
                    answer = rag.ask(q["question"], generator=system, k=args.k)
                    holds += any(a.lower() in answer.text.lower() for a in q["aliases"])
                    copies += any(any(m in c.source_uri for m in COPY_MARKS) for c in answer.citations)
                    passed += answer.validation is not None and answer.validation.status == "pass"
                row[system] = (holds, copies, passed)
            rows.append(row)
    n = len(questions)
    print(f"\nSphinx sites (requests, jinja2), {n} questions, k={args.k}\n")
    print("| store | documents | chunks | rejected | ingest s | system | holds a gold fact | quotes a build copy | pass |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        for system in SYSTEMS:
            holds, copies, passed = row[system]
            print(f"| {row['mode']} | {row['documents']} | {row['chunks']} | {row['rejected']} | {row['seconds']:.1f} "
                  f"| {system} | {holds}/{n} | {copies}/{n} | {passed}/{n} |")


if __name__ == "__main__":
    main()
