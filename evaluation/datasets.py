"""Evaluation sets: questions with gold answers and gold sources, and the corpus to index.

An `EvalDataset` is plain data: `items` (one `EvalItem` per question) and what the store must hold to
answer them, either `documents` [(doc_id, title, text)] (the runner writes each as a .txt file and
ingests it) or a `corpus` folder ingested as it is. A gold source names a document: a doc_id of
`documents`, or a corpus file by name ("lease.pdf"), stem ("lease") or path relative to the corpus
("contracts/lease.pdf").

Built-in sets (read from ../shared/data, or $SCULPTRAG_SHARED_DATA):

- `scifact` (qa/scifact): the claims with evidence; question = the claim, gold answer = its rationale
  sentences joined, gold sources = the evidence abstracts. Documents = the abstracts the selected claims
  cite, plus `extra_docs` (default 100) other abstracts picked with a fixed seed, so the store stays small.
- `chunking_eval` (qa/chunking_eval): gold answer = the evidence excerpts joined, gold source = the corpus
  file; corpus = the five markdown files, ingested as they are.
- `rgb` (qa/rgb/en_fact.json): each question brings its own positive and negative passages, which become
  the documents (gold sources: the positive ones; the counterfactual "positive_wrong" ones are left out);
  gold answer = the first accepted answer, `aliases` = all accepted answers.
- `business_docs` (evaluation/data/business_docs.jsonl, in the user format below, over
  docs/unstructured-example-docs): questions written by hand from business-like documents with tables
  and multi-page layouts (PDF reports and papers, spreadsheets, CSV/TSV/Markdown/HTML/PPTX tables,
  e-mails, handbooks). The id says the kind: `table-*` (a figure in a table cell), `lookalike-*` (the
  wording matches several near-identical documents: the gold sources name every file that holds the
  answer, and the question carries what tells them apart where only one does), `prose-*` (a fact in the
  running text), `unanswerable-*` (looks answerable, is not). Gold sources are paths relative to the
  example folder; `aliases` = the gold answer plus its other accepted forms. Corpus = exactly the files
  in BUSINESS_DOCS_FILES (the look-alikes included, whatever the limit), copied into `corpus_dir`
  (default runs/eval-corpora/business_docs; ~9 MB, copied again only when a file changes) with the same
  relative paths, because the example folder also holds many files the set is not about.
- `manuals` (evaluation/data/manuals.jsonl, user format, over MANUALS_FILES): questions written by hand
  from technical manuals the bundled model never trained on, as a user of the software asks them (the
  option, default, path or directive they need), plus a few that look answerable and are not. Corpus: 25
  pages of the Apache httpd 2.4 manual, 12 git manual pages and the bash man page, from the Debian packages
  `apache2-doc`, `git-doc` and `bash-doc` (`apt-get install apache2-doc git-doc bash-doc`; the loader says
  so when they are missing), copied into runs/eval-corpora/manuals as apache/..., git/..., bash/....

With `limit`, a built-in set keeps the first N items of a seeded shuffle (so a sample of N is a prefix of
any larger sample) and only the documents those items need (`business_docs` keeps its whole corpus: its
look-alike documents are part of what it measures).

User format (`load_user`, `sculptrag eval FILE --corpus DIR`): a .jsonl file (one JSON object a line) or
a .csv file (a header row), one question a row:

    question      the question (required)
    gold_answer   the reference answer (optional)
    gold_sources  the documents holding the answer: a JSON list, or names separated by ";" (optional)
    aliases       other accepted short answers, as gold_sources (optional; scored as "answer contains")
    answerable    false when the corpus does not hold the answer (optional, default true); the gold
                  answer of an unanswerable question is the refusal
    id            a name for the row (optional, default its line number)

and `--corpus DIR`: the files to ingest (any format `sculptrag ingest` reads).
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from pipeline.text import REFUSAL
from pipeline.errors import ConfigError

BUILTIN = ("scifact", "chunking_eval", "rgb", "business_docs", "manuals")
DATA = Path(os.environ.get("SCULPTRAG_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@dataclass(frozen=True)
class EvalItem:
    """One question with what a right answer looks like."""

    id: str
    question: str
    gold_answer: str | None = None
    gold_sources: list[str] = field(default_factory=list)
    answerable: bool = True
    aliases: list[str] = field(default_factory=list)  # short accepted answers ("answer contains" metric)


@dataclass(frozen=True)
class EvalDataset:
    """Questions and the corpus they are asked of: `documents` to write out and/or a `corpus` folder."""

    name: str
    items: list[EvalItem]
    documents: list[tuple[str, str, str]] = field(default_factory=list)  # (doc_id, title, text)
    corpus: Path | None = None


def load_dataset(spec: str | Path, *, limit: int | None = None, corpus: str | Path | None = None,
                 root: str | Path | None = None, seed: int = 0) -> EvalDataset:
    """A built-in set by name (see BUILTIN) or a user .jsonl/.csv file (with `corpus`, its documents)."""
    name = str(spec)
    root = Path(root) if root is not None else DATA
    if name in BUILTIN:
        if corpus is not None:
            raise ConfigError(f"--corpus is for your own question files; {name!r} brings its own documents")
        loader = {"scifact": load_scifact, "chunking_eval": load_chunking_eval, "rgb": load_rgb,
                  "business_docs": load_business_docs, "manuals": load_manuals}[name]
        return loader(root, limit=limit, seed=seed)
    path = Path(name)
    if path.suffix.lower() not in (".jsonl", ".csv"):
        raise ConfigError(f"unknown dataset {name!r}: use one of {', '.join(BUILTIN)} or a .jsonl/.csv question file")
    return load_user(path, corpus=corpus, limit=limit)


# -- built-in sets ---------------------------------------------------------------------------------------
def load_scifact(root: str | Path = DATA, *, limit: int | None = None, seed: int = 0,
                 extra_docs: int = 100) -> EvalDataset:
    from generator.sculpt.training.data import read_scifact  # the one reader of SciFact's files

    _folder(root, "qa/scifact")
    stored, claims = read_scifact(Path(root))
    abstracts = {str(d): (title, sentences) for d, (title, sentences) in stored.items()}
    evidence: dict[int, tuple[str, dict[str, set[int]]]] = {}  # claim id -> (claim, doc -> sentence indexes)
    for r in claims:
        if r.evidence_doc is not None:
            evidence.setdefault(r.id, (r.claim, {}))[1].setdefault(str(r.evidence_doc), set()).update(
                r.evidence_sentences)
    items = []
    for cid, (claim, docs) in sorted(evidence.items()):
        docs = {d: s for d, s in docs.items() if d in abstracts}
        if not docs:
            continue
        rationale = [abstracts[d][1][i] for d in sorted(docs) for i in sorted(docs[d]) if i < len(abstracts[d][1])]
        items.append(EvalItem(id=f"scifact-{cid}", question=claim, gold_answer=" ".join(rationale) or None,
                              gold_sources=sorted(docs)))
    items = _select(items, limit, seed)
    cited = {d for it in items for d in it.gold_sources}
    # distractors drawn from abstracts no claim cites, in a fixed order: the same ones whatever the limit
    uncited = sorted(set(abstracts) - {d for _, ds in evidence.values() for d in ds})
    random.Random(f"scifact-extra:{seed}").shuffle(uncited)
    keep = sorted(cited) + uncited[:extra_docs]
    documents = [(d, abstracts[d][0], " ".join(abstracts[d][1])) for d in keep]
    return EvalDataset("scifact", items, documents)


def load_chunking_eval(root: str | Path = DATA, *, limit: int | None = None, seed: int = 0) -> EvalDataset:
    import pandas as pd

    folder = _folder(root, "qa/chunking_eval")
    rows = pd.read_csv(folder / "questions_df.csv")
    items = []
    for i, r in enumerate(rows.itertuples()):
        refs = sorted(json.loads(r.references), key=lambda ref: ref["start_index"])
        items.append(EvalItem(id=f"chunking_eval-{i}", question=r.question,
                              gold_answer=" ".join(ref["content"] for ref in refs) or None,
                              gold_sources=[f"{r.corpus_id}.md"]))
    return EvalDataset("chunking_eval", _select(items, limit, seed), corpus=folder / "corpora")


def load_rgb(root: str | Path = DATA, *, limit: int | None = None, seed: int = 0) -> EvalDataset:
    path = _folder(root, "qa/rgb") / "en_fact.json"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    items, docs_of = [], {}
    for row in rows:
        qid = f"rgb-{row['id']}"
        pos = [(f"{qid}-pos{j}", "", t) for j, t in enumerate(row.get("positive", [])) if t.strip()]
        neg = [(f"{qid}-neg{j}", "", t) for j, t in enumerate(row.get("negative", [])) if t.strip()]
        answers = list(dict.fromkeys(_flatten(row["answer"])))
        items.append(EvalItem(id=qid, question=row["query"], gold_answer=answers[0] if answers else None,
                              gold_sources=[d for d, _, _ in pos], aliases=answers))
        docs_of[qid] = pos + neg
    items = _select(items, limit, seed)
    return EvalDataset("rgb", items, [d for it in items for d in docs_of[it.id]])


BUSINESS_DOCS = "docs/unstructured-example-docs"  # under the shared data folder
BUSINESS_DOCS_QUESTIONS = Path(__file__).resolve().parent / "data" / "business_docs.jsonl"
BUSINESS_DOCS_CORPUS = Path("runs/eval-corpora/business_docs")
# the corpus, relative to BUSINESS_DOCS: every gold source, plus the look-alikes that make questions hard
BUSINESS_DOCS_FILES = (
    "2023-half-year-analyses-by-segment.xlsx",
    "example-10k-1p.html",
    "example-10k.html",
    "example-steelJIS-datasheet-utf-16.html",
    "example-steelJIS-datasheet.html",
    "fake-email.eml",
    "fake-email.msg",
    "fake-power-point-table.pptx",
    "handbook-1p-no-rendered-page-breaks.docx",
    "handbook-1p.docx",
    "handbook-872p.docx",
    "simple-table.md",
    "stanley-cups-utf-16.csv",
    "stanley-cups-with-emoji.csv",
    "stanley-cups-with-emoji.tsv",
    "stanley-cups.csv",
    "stanley-cups.tsv",
    "stanley-cups.xlsx",
    "table-multi-row-column-cells-actual.csv",
    "vodafone.xlsx",
    "eml/fake-email-attachment.eml",
    "eml/fake-email-b64.eml",
    "eml/fake-email.eml",
    "eml/family-day.eml",
    "eml/mime-different-plain-html.eml",
    "eml/simple-rfc-822.eml",
    "pdf/DA-1p.pdf",
    "pdf/DA-619p.pdf",
    "pdf/a1977-backus-p21.pdf",
    "pdf/chevron-page.pdf",
    "pdf/embedded-images-tables.pdf",
    "pdf/fake-memo-with-duplicate-page.pdf",
    "pdf/fake-memo.pdf",
    "pdf/interface-config-guide-p93.pdf",
    "pdf/layout-parser-paper-fast.pdf",
    "pdf/layout-parser-paper-with-empty-pages.pdf",
    "pdf/layout-parser-paper-with-table.pdf",
    "pdf/reliance.pdf",
)
_CORPUS_MARK = ".sculptrag-eval-corpus"  # in a corpus folder: the loader made it, so it may prune it


def load_business_docs(root: str | Path = DATA, *, limit: int | None = None, seed: int = 0,
                       corpus_dir: str | Path | None = None) -> EvalDataset:
    """Hand-written questions over the example documents with tables and multi-page layouts.

    The corpus is exactly BUSINESS_DOCS_FILES, brought into `corpus_dir` (default
    runs/eval-corpora/business_docs) with their relative paths, whatever the limit.
    """
    folder = _folder(root, BUSINESS_DOCS)
    items = _hand_written(BUSINESS_DOCS_QUESTIONS)
    missing = [f for f in BUSINESS_DOCS_FILES if not (folder / f).is_file()]
    if missing:
        raise ConfigError(f"{folder} lacks {', '.join(missing)}; set SCULPTRAG_SHARED_DATA (or --data) to the shared data folder")
    corpus = _mirror({f: folder / f for f in BUSINESS_DOCS_FILES},
                     Path(corpus_dir) if corpus_dir is not None else BUSINESS_DOCS_CORPUS)
    return EvalDataset("business_docs", _select(items, limit, seed), corpus=corpus)


MANUALS_QUESTIONS = Path(__file__).resolve().parent / "data" / "manuals.jsonl"
MANUALS_CORPUS = Path("runs/eval-corpora/manuals")
_APACHE = "/usr/share/doc/apache2-doc/manual/en"
# corpus path -> installed file (Debian's apache2-doc, git-doc and bash-doc)
MANUALS_FILES = {
    **{f"apache/{page.replace('/', '-')}": f"{_APACHE}/{page}" for page in (
        "install.html", "configuring.html", "invoking.html", "stopping.html", "bind.html", "logs.html",
        "urlmapping.html", "vhosts/name-based.html", "howto/htaccess.html", "howto/auth.html", "howto/cgi.html",
        "howto/ssi.html", "mod/mod_rewrite.html", "mod/mod_alias.html", "mod/mod_dir.html",
        "mod/mod_log_config.html", "ssl/ssl_howto.html", "mpm.html", "dso.html", "caching.html",
        "content-negotiation.html", "handler.html", "sections.html", "misc/security_tips.html",
        "misc/perf-tuning.html")},
    **{f"git/{page}": f"/usr/share/doc/git-doc/{page}" for page in (
        "gittutorial.html", "git-stash.html", "git-bisect.html", "gitignore.html", "git-rebase.html",
        "git-clone.html", "git-worktree.html", "githooks.html", "gitcredentials.html", "git-cherry-pick.html",
        "git-tag.html", "git-gc.html")},
    "bash/bash.html": "/usr/share/doc/bash-doc/bash.html",
}


def load_manuals(root: str | Path = DATA, *, limit: int | None = None, seed: int = 0,
                 corpus_dir: str | Path | None = None) -> EvalDataset:
    """Hand-written questions over technical manuals (Apache httpd, git, bash) the bundled model never saw.

    The corpus is exactly MANUALS_FILES, copied into `corpus_dir` (default runs/eval-corpora/manuals),
    whatever the limit (`root` is unused: the manuals come from Debian's documentation packages)."""
    missing = sorted({Path(src).parts[4] for src in MANUALS_FILES.values() if not Path(src).is_file()})
    if missing:  # parts[4]: the package's folder under /usr/share/doc, named as the package
        raise ConfigError(f"the manuals set reads Debian's documentation packages: apt-get install {' '.join(missing)}")
    items = _hand_written(MANUALS_QUESTIONS)
    corpus = _mirror({rel: Path(src) for rel, src in MANUALS_FILES.items()},
                     Path(corpus_dir) if corpus_dir is not None else MANUALS_CORPUS)
    return EvalDataset("manuals", _select(items, limit, seed), corpus=corpus)


def _hand_written(path: Path) -> list[EvalItem]:
    """A built-in set's questions (.jsonl, user format), the gold answer first among the aliases ("answer
    contains" scores the aliases only)."""
    items = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            item = _user_item(json.loads(line), f"{path.name}:{i}")
            if item.answerable and item.gold_answer:
                item = replace(item, aliases=list(dict.fromkeys([item.gold_answer, *item.aliases])))
            items.append(item)
    return items


def _mirror(files: dict[str, Path], dest: Path) -> Path:
    """`dest` holding copies of exactly `files` (corpus path -> source file); anything else there is removed.

    Eval ingests a folder, and the example folder holds far more than the set is about. Symbolic links
    would not do (ingestion refuses links that lead out of the folder it reads), and hard links would let
    a write to the copy change the shared data. A copy keeps its source's size and mtime, so an unchanged
    file is not copied again.
    """
    if dest.is_dir() and any(dest.iterdir()) and not (dest / _CORPUS_MARK).is_file():
        raise ConfigError(f"{dest} exists and was not made by an evaluation loader: pass another corpus folder")
    dest.mkdir(parents=True, exist_ok=True)
    (dest / _CORPUS_MARK).write_text("made by evaluation.datasets; files here are replaced and pruned\n")
    for rel, source in files.items():
        target = dest / rel
        st = source.stat()
        if target.is_file() and not target.is_symlink():
            tt = target.stat()
            if (tt.st_size, tt.st_mtime_ns) == (st.st_size, st.st_mtime_ns):
                continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copy2(source, tmp)  # with the source's mtime
        os.replace(tmp, target)
    keep = {Path(f) for f in files}
    for path in sorted(dest.rglob("*"), reverse=True):  # files first, then folders left empty
        rel = path.relative_to(dest)
        if path.is_dir() and not path.is_symlink():
            if not any(path.iterdir()):
                path.rmdir()
        elif rel not in keep and rel != Path(_CORPUS_MARK):
            path.unlink()
    return dest


# -- user format -----------------------------------------------------------------------------------------
def load_user(path: str | Path, *, corpus: str | Path | None = None, limit: int | None = None) -> EvalDataset:
    """Questions from a .jsonl or .csv file (see the module docstring), the first `limit` of them."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no question file at {path}")
    if corpus is None:
        raise ConfigError(f"{path.name} has questions only: pass --corpus DIR with the documents to ask them of")
    corpus = Path(corpus)
    if not corpus.exists():
        raise ConfigError(f"no corpus at {corpus}: pass --corpus a folder (or file) of documents to ingest")
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", newline="") as f:
            rows = [(i + 2, row) for i, row in enumerate(csv.DictReader(f))]
    else:
        rows = []
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append((lineno, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise ConfigError(f"{path}:{lineno} is not JSON ({e}); one object a line") from e
    items = [_user_item(row, f"{path.name}:{lineno}") for lineno, row in rows]
    if not items:
        raise ConfigError(f"{path} holds no questions")
    return EvalDataset(path.stem, items[:limit] if limit is not None else items, corpus=corpus)


USER_FIELDS = ("id", "question", "gold_answer", "gold_sources", "aliases", "answerable")


def _user_item(row: Any, where: str) -> EvalItem:
    if not isinstance(row, dict) or not str(row.get("question") or "").strip():
        raise ConfigError(f"{where}: each row needs a non-empty `question`")
    unknown = sorted(k for k in row if k not in USER_FIELDS)
    if unknown:  # a misspelt field would silently drop the gold answer or sources
        raise ConfigError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; "
                          f"the fields are {', '.join(USER_FIELDS)}")
    answerable = _bool(row.get("answerable", True), where)
    gold = str(row["gold_answer"]) if row.get("gold_answer") not in (None, "") else None
    if not answerable and gold is None:
        gold = REFUSAL
    return EvalItem(id=str(row.get("id") or where.rsplit(":", 1)[-1]), question=str(row["question"]).strip(),
                    gold_answer=gold, gold_sources=_names(row.get("gold_sources"), where),
                    answerable=answerable, aliases=_names(row.get("aliases"), where))


def _names(value: Any, where: str) -> list[str]:
    """A list, a JSON list in a string, or ";"-separated names -> the names, stripped, empties dropped."""
    if value in (None, ""):
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{where}: {text[:40]!r} looks like a JSON list but is not ({e})") from e
        else:
            value = text.split(";")
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list or ';'-separated names, got {value!r}")
    return [str(v).strip() for v in value if str(v).strip()]


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", ""):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ConfigError(f"{where}: answerable must be true or false, got {value!r}")


# -- helpers ---------------------------------------------------------------------------------------------
def _folder(root: str | Path, rel: str) -> Path:
    folder = Path(root) / rel
    if not folder.is_dir():
        raise ConfigError(f"{folder} not found; set SCULPTRAG_SHARED_DATA (or --data) to the shared data folder")
    return folder


def _select(items: Sequence[EvalItem], limit: int | None, seed: int) -> list[EvalItem]:
    """The first `limit` items of a seeded shuffle (all of them, shuffled, without a limit)."""
    out = list(items)
    random.Random(seed).shuffle(out)
    return out[:limit] if limit is not None else out


def _flatten(value: Any) -> list[str]:
    if isinstance(value, list):
        return [s for v in value for s in _flatten(v)]
    return [str(value).strip()] if str(value).strip() else []
