"""Two database libraries' manuals, ingested as Debian ships them, asked the questions their users ask.

    python benchmarks/library_manuals.py [--set a|b|...|s] [--whole] [--k 8] [--json runs/library_manuals.json]

The corpus: psycopg2's whole Sphinx site (`python-psycopg2-doc`, /usr/share/doc/python-psycopg2-doc/html,
ingested as a site: its build copies are skipped) and twelve pages of SQLAlchemy 1.4's manual
(`python-sqlalchemy-doc`: the FAQ, pooling, engines, and the PostgreSQL and SQLite dialects), copied flat
under sqlalchemy/. `apt-get install python-psycopg2-doc python-sqlalchemy-doc`; the run stops when they are
missing. 40 questions in benchmarks/data/library_manuals.jsonl, written for this set (2026-12-03) by a
helper that read the pages and nothing of sculptrag: 32 answered by one statement of one page (a default, a
parameter, a limit, what an error means, what to do), phrased as a user asks them ("SQLite isn't enforcing
the ForeignKey constraints I defined in SQLAlchemy. What do I need to do?"), each with the short verbatim
facts a right answer holds; 8 about these libraries that the pages do not answer.

`--set b`: a second set, written blind on 2026-12-04 (by a helper that read only the pages and the format
of the first set) and used for no choice before it was first run: twelve pages of Celery's and peewee's
manuals (`apt-get install python-celery-doc python-peewee-doc`; the pages are listed in
benchmarks/data/library_manuals_b.pages.json, copied flat per package), 32 answerable questions and 8 that
the pages do not answer, in benchmarks/data/library_manuals_b.jsonl.

`--set c`: a third set, written blind on 2026-12-04 the same way, and run once before any change was made
against it: twelve pages of Requests' and pytest's manuals (`apt-get install python-requests-doc
python-pytest-doc`; benchmarks/data/library_manuals_c.pages.json), 32 answerable questions and 8 that the
pages do not answer, in benchmarks/data/library_manuals_c.jsonl.

`--set d`: a fourth set, written blind on 2026-12-05 the same way and run once before any change was made
against it: fourteen pages of aiohttp's and Tornado's manuals (`apt-get install python-aiohttp-doc
python-tornado-doc`; benchmarks/data/library_manuals_d.pages.json), 32 answerable questions and 8 that the
pages do not answer (ids e01-e40), in benchmarks/data/library_manuals_d.jsonl.

`--set e`: a fifth set, written blind on 2026-12-05 the same way: thirteen pages of Scrapy's and Hypothesis'
manuals (`apt-get install python-scrapy-doc python-hypothesis-doc`; benchmarks/data/library_manuals_e.pages.json),
32 answerable questions and 8 that the pages do not answer (ids f01-f40), in benchmarks/data/library_manuals_e.jsonl.

`--set f`: a sixth set, written blind on 2026-12-05 the same way: fourteen pages of Django 3.2's manual
(`apt-get install python-django-doc`, a Sphinx site of 692 pages, the largest installed here; removed from
training's documentation packages when this set was made; benchmarks/data/library_manuals_f.pages.json), 32
answerable questions and 8 that the pages do not answer (ids g01-g40), in benchmarks/data/library_manuals_f.jsonl.

`--set g`: a seventh set, written blind on 2026-12-06 the same way, and run once before any change was made
against it: twelve chapters of the Exim specification (`apt-get install exim4-doc-html`, the spec as HTML
pages: not Sphinx; each option under a small Use / Type / Default table; benchmarks/data/library_manuals_g.pages.json),
32 answerable questions and 8 that the pages do not answer (ids h01-h40), in benchmarks/data/library_manuals_g.jsonl.

`--set h`: an eighth set, written blind on 2026-12-06 the same way, and run once before any change was made
against it: fourteen pages of Postfix's documentation (`apt-get install postfix-doc`, hand-written HTML 4
without any markup of its main content, and manual pages that are one `<pre>` each; postconf.5 documents all
of main.cf's parameters on one page; benchmarks/data/library_manuals_h.pages.json), 32 answerable questions
and 8 that the pages do not answer (ids i01-i40), in benchmarks/data/library_manuals_h.jsonl.

`--set i`: a ninth set, written blind on 2026-12-06 the same way, and run once before any change was made
against it: eleven pages of the zsh manual (`apt-get install zsh-doc`, texinfo's HTML: each builtin, option or
parameter a `<dl>` entry) and HAProxy's starter guide and management guide (`apt-get install haproxy-doc`, two
long pages converted from its plain-text manuals; benchmarks/data/library_manuals_i.pages.json), 32 answerable
questions and 8 that the pages do not answer (ids j01-j40), in benchmarks/data/library_manuals_i.jsonl.

`--set j`: a tenth set, written blind on 2026-12-06 the same way, and run once before any change was made
against it: fourteen pages of the Linux-PAM guides (`apt-get install libpam-doc`, DocBook XSL's HTML as
PostgreSQL's manual is made: numbered section titles, a module's options and return values as variablelists;
benchmarks/data/library_manuals_j.pages.json), 32 answerable questions and 8 that the pages do not answer (ids
k01-k40), in benchmarks/data/library_manuals_j.jsonl.

`--set k`: an eleventh set, written blind on 2026-12-07 the same way, and run once before any change was made
against it: seven pages of GnuTLS's C API reference (`apt-get install gnutls-doc`, gtk-doc's HTML: each function
its signature in a `<pre>`, then its description, a table of its parameters and what it returns, as a C
library's reference is made; benchmarks/data/library_manuals_k.pages.json), 32 answerable questions and 8 that
the pages do not answer (ids l01-l40), in benchmarks/data/library_manuals_k.jsonl.

`--set l`: a twelfth set, written blind on 2026-12-07 the same way, and run once before any change was made against
it: fourteen pages of the Slony-I 2.2 administration guide (`apt-get install slony1-2-doc`, DocBook's HTML from the
same SGML toolchain as PostgreSQL's manual, which is reserved for the blind judgement and was not opened;
benchmarks/data/library_manuals_l.pages.json), 32 answerable questions and 8 that the pages do not answer (ids
m01-m40), in benchmarks/data/library_manuals_l.jsonl.

`--set m`: a thirteenth set, written blind on 2026-12-07 the same way, and run once before any change was made
against it: ten pages of Graphviz's hand-written HTML manual (`apt-get install graphviz-doc`: the FAQ, the build
notes, the DOT language, the command line, the output formats, the attribute reference, node and arrow shapes,
tcldot; benchmarks/data/library_manuals_m.pages.json), 32 answerable questions and 8 that the pages do not answer
(ids n01-n40), in benchmarks/data/library_manuals_m.jsonl.

`--set n`: a fourteenth set, written blind on 2026-12-07 the same way, and run once before any change was made
against it: ten pages of Mutt's manual (the `mutt` package's /usr/share/doc/mutt/html: DocBook XSL's HTML, as
PostgreSQL's manual is made, with every configuration variable under a Type / Default block on one long
reference page; benchmarks/data/library_manuals_n.pages.json), 32 answerable questions and 8 that the pages do
not answer (ids o01-o40), in benchmarks/data/library_manuals_n.jsonl.

`--set o`: a fifteenth set, written blind on 2026-12-07 the same way and run once before any change was made
against it: ten chapters of the BIND 9 Administrator Reference Manual (`apt-get install bind9-doc`, a Sphinx site
as Python's manual is made; benchmarks/data/library_manuals_o.pages.json), 32 answerable questions and 8 that
the pages do not answer (ids p01-p40), in benchmarks/data/library_manuals_o.jsonl.

`--set p`: a sixteenth set, written blind on 2026-12-07 the same way and run once before any change was made
against it: PostGIS's manual as Debian ships it (`apt-get install postgis-doc`: one DocBook XSL page of 3.5 MB
in ISO-8859-1, its function reference written as PostgreSQL's SQL reference is;
benchmarks/data/library_manuals_p.pages.json), 32 answerable questions and 8 that the page does not answer (ids
q01-q40), in benchmarks/data/library_manuals_p.jsonl.

`--set q`: a seventeenth set, written blind on 2026-12-07 the same way and run once before any change was made
against it: ten pages of Jinja's documentation (`apt-get install python-jinja2-doc`, a Sphinx site with Sphinx's
own theme, as Python's manual is made; benchmarks/data/library_manuals_q.pages.json), 32 answerable questions
and 8 that the pages do not answer (ids r01-r40), in benchmarks/data/library_manuals_q.jsonl.

`--set r`: an eighteenth set, written blind on 2026-12-07 the same way and run once before any change was made
against it: LMDB's API documentation (`apt-get install lmdb-doc`, a Doxygen site: each function a member entry
with its parameters and return values; benchmarks/data/library_manuals_r.pages.json), 32 answerable questions
and 8 that the pages do not answer (ids s01-s40), in benchmarks/data/library_manuals_r.jsonl.

`--set s`: a nineteenth set, written blind on 2026-12-07 the same way and run once before any change was made
against it: psutil's documentation (`apt-get install python-psutil-doc`: one Sphinx page of 380 kB, a Python
module's whole API reference as Python's library manual writes one; benchmarks/data/library_manuals_s.pages.json),
32 answerable questions and 8 that the page does not answer (ids t01-t40), in benchmarks/data/library_manuals_s.jsonl.

`--set t`: a twentieth set, written blind on 2026-12-07 the same way and run once before any change was made
against it: eleven pages of pyca/cryptography's documentation (`apt-get install python-cryptography-doc`, a Sphinx
site: Fernet, installation, the FAQ, exceptions, random numbers, AEAD, symmetric encryption, RSA, hashes, key
derivation functions and the X.509 tutorial; benchmarks/data/library_manuals_t.pages.json), 32 answerable questions
and 8 that the pages do not answer (ids u01-u40), in benchmarks/data/library_manuals_t.jsonl.

`--set u`: a twenty-first set, written blind on 2026-12-07 the same way and run once before any change was made
against it: eleven pages of libxml2's documentation (`apt-get install libxml2-doc`: seven of its hand-written
pages, the FAQ, memory, threads, encodings, catalogs, entities and I/O, and four pages of the C API reference its
own generator writes, parser, tree, xpath and xmlmemory; benchmarks/data/library_manuals_u.pages.json), 32
answerable questions and 8 that the pages do not answer (ids v01-v40), in benchmarks/data/library_manuals_u.jsonl.

`--set v`: a twenty-second set, written blind on 2026-12-08 the same way and run once before any change was made
against it: twelve pages of PyMongo's documentation (`apt-get install python-pymongo-doc`, a Sphinx site: the FAQ,
installation, the tutorial, six examples (authentication, TLS, bulk writes, GridFS, high availability,
aggregation) and three API reference pages, mongo_client, collection and errors;
benchmarks/data/library_manuals_v.pages.json), 32 answerable questions and 8 that the pages do not answer (ids
w01-w40), in benchmarks/data/library_manuals_v.jsonl.

`--whole` (sets b-f, h-j): the same questions asked of a store that holds each package's whole site as Debian
ships it (ingested as a site: its build copies skipped), not only the listed pages: a company asks its whole
manual, where ten to thirty times as many passages compete for the top k. The unanswerable questions were
written against the listed pages; the rest of a manual may answer some of them, so their refusal rate is
indicative only there.

Per system (sculpt, extractive; k passages, no repair): answerable questions whose answer holds a gold fact
("contains", whole words after SQuAD normalisation), token F1, refusals of answerable and unanswerable
questions, the validation pass rate; and per run, the answerable questions with a gold fact in one of the k
passages retrieved ("retrieved").
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluation import EvalRun, load_dataset, run_eval  # noqa: E402
from evaluation.metrics import contains_answer, mean  # noqa: E402
from pipeline.config import Settings  # noqa: E402

PSYCOPG2 = Path("/usr/share/doc/python-psycopg2-doc/html")
SQLALCHEMY = Path("/usr/share/doc/python-sqlalchemy-doc/html")
SQLALCHEMY_PAGES = ["faq/connections", "faq/installation", "faq/metadata_schema", "faq/ormconfiguration",
                    "faq/performance", "faq/sessions", "faq/sqlexpressions", "faq/thirdparty", "core/pooling",
                    "core/engines", "dialects/postgresql", "dialects/sqlite"]
QUESTIONS = Path(__file__).resolve().parent / "data" / "library_manuals.jsonl"
DATA = Path(__file__).resolve().parent / "data"
SETS = {s: DATA / f"library_manuals_{s}" for s in "bcdefghijklmnopqrstuv"}  # .jsonl (questions), .pages.json (pages)
SYSTEMS = ("sculpt", "extractive")


def corpus(root: Path = Path("runs/eval-corpora/library-manuals")) -> Path:
    """The corpus folder, made once: psycopg2's site as shipped, SQLAlchemy's pages flat."""
    pages = [SQLALCHEMY / f"{p}.html" for p in SQLALCHEMY_PAGES]
    if not (PSYCOPG2 / "index.html").is_file() or not all(p.is_file() for p in pages):
        sys.exit("the manuals are missing: apt-get install python-psycopg2-doc python-sqlalchemy-doc")
    if not (root / "psycopg2").is_dir():
        shutil.copytree(PSYCOPG2, root / "psycopg2", symlinks=True)
    (root / "sqlalchemy").mkdir(parents=True, exist_ok=True)
    for name, page in zip(SQLALCHEMY_PAGES, pages):
        target = root / "sqlalchemy" / f"sqlalchemy-{name.replace('/', '-')}.html"
        if not target.is_file():
            shutil.copyfile(page, target)
    return root


def package_folder(root: Path, package: str) -> Path:
    """Where a package's pages go in a corpus folder: "python-celery-doc" -> root/celery, "exim4-doc-html" -> root/exim4."""
    return root / package.removeprefix("python-").removesuffix("-html").removesuffix("-doc")


def listed_corpus(listed: Path, root: Path) -> Path:
    """The corpus folder of a set whose pages are listed (b-f: `listed`.pages.json), made once: each package's
    listed pages, flat under the package's name."""
    pages = json.loads(listed.with_suffix(".pages.json").read_text())
    missing = sorted(package for package, paths in pages.items() if not all(Path(p).is_file() for p in paths))
    if missing:
        sys.exit(f"the manuals are missing: apt-get install {' '.join(missing)}")
    for package, paths in pages.items():
        folder = package_folder(root, package)
        folder.mkdir(parents=True, exist_ok=True)
        for page in map(Path, paths):
            if not (folder / page.name).is_file():
                shutil.copyfile(page, folder / page.name)
    return root


def site_root(package: str) -> Path:
    """Where Debian puts a package's HTML site: /usr/share/doc/PACKAGE/html, or the main package's folder for a
    -doc package that fills it (postfix-doc: /usr/share/doc/postfix/html)."""
    own = Path("/usr/share/doc") / package / "html"
    return own if own.is_dir() else Path("/usr/share/doc") / package.removesuffix("-doc") / "html"


def whole_corpus(listed: Path, root: Path) -> Path:
    """The corpus folder of a set's packages as whole sites (`--whole`), made once: each package's html/ folder
    copied as shipped (links kept), so that ingest reads it as a site."""
    packages = json.loads(listed.with_suffix(".pages.json").read_text())
    missing = sorted(p for p in packages if not site_root(p).is_dir())
    if missing:
        sys.exit(f"the manuals are missing: apt-get install {' '.join(missing)}")
    for package in packages:
        folder = package_folder(root, package)
        if not folder.is_dir():
            shutil.copytree(site_root(package), folder, symlinks=True)
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", choices=("a", *SETS), default="a",
                    help="a: psycopg2 and SQLAlchemy; b: Celery and peewee; c: Requests and pytest; "
                         "d: aiohttp and Tornado; e: Scrapy and Hypothesis; f: Django; g: the Exim specification; h: Postfix; "
                         "i: zsh and HAProxy; j: Linux-PAM; k: GnuTLS's C API reference; l: the Slony-I admin guide; "
                         "m: Graphviz; n: Mutt; o: the BIND 9 reference manual; p: PostGIS; q: Jinja; r: LMDB; "
                         "s: psutil; t: pyca/cryptography; u: libxml2")
    ap.add_argument("--whole", action="store_true", help="sets b-f and h-j: a store of the packages' whole sites, not only "
                                                              "the listed pages")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--json", type=Path, default=Path("runs/library_manuals.json"))
    args = ap.parse_args()
    settings = Settings()
    settings = settings.model_copy(update={"validation": settings.validation.model_copy(update={"repair_rounds": 0})})
    if args.whole and args.set in "agk":
        ap.error("--whole is for sets b-f and h-j (set a's psycopg2 site is whole already; set g's spec has no html/ "
                 "site; set k's API reference is not gnutls-doc's html/ site)")
    if args.set == "a":
        ds, store = load_dataset(QUESTIONS, corpus=corpus()), Path("runs/eval-stores/library-manuals")
    else:
        listed, name = SETS[args.set], f"library-manuals-{args.set}" + ("-whole" if args.whole else "")
        make = whole_corpus if args.whole else listed_corpus
        ds = load_dataset(listed.with_suffix(".jsonl"), corpus=make(listed, Path("runs/eval-corpora") / name))
        store = Path("runs/eval-stores") / name
    report = run_eval(EvalRun(dataset=ds, generators=SYSTEMS, k=args.k, store_dir=store, settings=settings))
    aliases = {item.id: item.aliases for item in ds.items}
    retrieved = sum(any(contains_answer(p["text"], aliases[r["id"]]) for p in r["passages"])
                    for r in report["items"] if r["answerable"])
    rows = {}
    for system in SYSTEMS:  # the run's own summary, with contains and F1 over the answerable questions only
        summary = report["summary"][system]
        answers = [(r["answers"][system], r) for r in report["items"] if "error" not in r["answers"][system]]
        answerable = [a for a, r in answers if r["answerable"]]
        rows[system] = {"contains": mean(a["contains_gold"] for a in answerable),
                        "contains_n": sum(bool(a["contains_gold"]) for a in answerable), "answerable": len(answerable),
                        "f1": mean(a["token_f1"] for a in answerable),
                        "refuse_answerable": summary["refusal_answerable"],
                        "refuse_unanswerable": summary["refusal_unanswerable"], "pass": summary["pass"],
                        "answers": {r["id"]: {k: a.get(k) for k in ("text", "status", "contains_gold", "refusal")}
                                    for a, r in answers}}
    answerable = sum(r["answerable"] for r in report["items"])
    print(f"\nlibrary manuals, set {args.set}{' (whole sites)' if args.whole else ''} ({len(ds.items)} questions, "
          f"k={args.k}; store: {report['store']['chunks']} chunks; a gold fact retrieved for {retrieved}/{answerable} "
          f"answerable)\n")
    for rejected in report["store"]["rejected"]:  # (a page that failed to parse keeps its old chunks, or none)
        print(f"rejected: {rejected['path']}: {rejected['reason']} ({rejected['detail']})\n")
    print("| system | contains | F1 | refuse answerable | refuse unanswerable | pass |")
    print("|---|---|---|---|---|---|")
    for system, r in rows.items():
        print(f"| {system} | {r['contains_n']}/{r['answerable']} ({r['contains']:.3f}) | {r['f1']:.3f} | "
              f"{r['refuse_answerable']:.3f} | {r['refuse_unanswerable']:.3f} | {r['pass']:.3f} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2))
    print(f"\n(json: {args.json})")


if __name__ == "__main__":
    main()
