"""Training and held-out data for the bundled answer model: RAG examples built from real text.

An *item* is a question, the passages that hold its answer with the answer's character spans in them,
and the passages a lexical retriever ranks highest that do NOT hold it (hard distractors). An *example*
is what the model sees: the question, k numbered passages (relevant ones mixed with hard distractors, in
random order) and the gold answer: the evidence text copied verbatim, each piece followed by the marker of
its passage ("... [2] ... [1]"), or `REFUSAL` when no given passage holds the answer. Training draws a
fresh example from each item every epoch (k, order, unanswerable variants); the held-out set is drawn once.

Sources (all under ../shared/data), each split by source document so no held-out text reaches training:
- chunking_eval: 472 questions with exact evidence spans over 5 markdown corpora. state_of_the_union is
  held out whole; the multi-article corpora are cut into 4 contiguous regions (about article-level) and
  region 3 is held out. A question whose evidence straddles regions is dropped.
- SciFact: claims with rationale sentences in an abstract (split by abstract id, 20% held out); claims whose
  cited abstract holds no rationale become unanswerable items (the cited abstract is the distractor).
- synthetic: rule-based questions over the Debian handbook (qgen.py), split by chapter file.
- rgb: RGB's news questions, read as the rgb evaluation set reads them, each with the question's own negative
  passages as its distractors (split by question).
- debian_docs, example_docs: rule-based questions over documents as ingest chunks them (`document_items`):
  HTML manuals of Debian documentation packages that no evaluation reads (TRAINING_DOC_PACKAGES), and the
  PDF, Office, HTML, e-mail and text examples the business_docs evaluation set does not use.

`corpus_of` names the corpus of an item's source, and `without` leaves corpora out of a run (leave-one-corpus
-out: `sculptrag train-generator --exclude rgb --exclude chunking_eval` trains a model to be chosen on those).

Passages are cut the way a retriever would serve them: paragraphs packed up to ~150 words, long paragraphs
at sentence ends. Distractors are ranked by BM25 within the same split only.
"""

from __future__ import annotations

import ast
import io
import tokenize
import hashlib
import json
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from pipeline.lexical import BM25Index  # training draws distractors with a BM25 index, as retrieval does
from pipeline.text import REFUSAL, SENTENCE_RE as SENT_RE

MAX_WORDS = 150
HELDOUT = "heldout"
TRAIN = "train"


@dataclass(frozen=True)
class Span:
    passage: int  # index into Item.relevant
    start: int
    end: int


@dataclass
class PassageText:
    title: str
    text: str
    doc: str = ""


@dataclass
class Item:
    id: str
    source: str
    doc: str  # the split key: the source document
    question: str
    relevant: list[PassageText]
    spans: list[Span]  # evidence, in answer order; empty for an unanswerable item
    distractors: list[PassageText] = field(default_factory=list)

    @property
    def answerable(self) -> bool:
        return bool(self.spans)


def split_of(doc: str, heldout_share: float = 0.2) -> str:
    """Stable split by a hash of the source document id."""
    h = int(hashlib.sha1(doc.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return HELDOUT if h < heldout_share else TRAIN


def pack_passages(text: str, max_words: int = MAX_WORDS) -> list[tuple[int, int]]:
    """Char spans of passages: paragraphs packed up to `max_words`, long paragraphs cut at sentence ends."""
    pieces: list[tuple[int, int]] = []
    for m in re.finditer(r"\S(?:.*?\S)?(?=\s*\n\s*\n|\s*$)", text, re.S):
        start, end = m.start(), m.end()
        if len(text[start:end].split()) <= max_words:
            pieces.append((start, end))
            continue
        cut = start
        for s in SENT_RE.finditer(text, start, end):
            if len(text[cut:s.start()].split()) >= max_words * 0.6:
                pieces.append((cut, s.start()))
                cut = s.end()
        pieces.append((cut, end))
    pieces = [w for a, b in pieces for w in _cap_words(text, a, b, max_words)]
    out: list[tuple[int, int]] = []
    for start, end in pieces:
        if out and len(text[out[-1][0]:end].split()) <= max_words:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def _cap_words(text: str, start: int, end: int, max_words: int) -> list[tuple[int, int]]:
    """Cut [start, end) at word boundaries into pieces of at most `max_words` words (text without sentence ends)."""
    words = list(re.finditer(r"\S+", text[start:end]))
    if len(words) <= max_words:
        return [(start, end)]
    return [(start + words[i].start(), start + words[min(i + max_words, len(words)) - 1].end())
            for i in range(0, len(words), max_words)]


# ---------------------------------------------------------------- sources


def parse_sentence_list(s: str) -> list[str]:
    """corpus_train.csv stores abstracts as numpy reprs (string literals without commas): read each literal."""
    toks = tokenize.generate_tokens(io.StringIO(s).readline)
    return [ast.literal_eval(t.string) for t in toks if t.type == tokenize.STRING]


@dataclass(frozen=True)
class SciFactClaim:
    """One row of SciFact's claims_train.csv: a claim with (at most) one evidence abstract."""

    id: int
    claim: str
    evidence_doc: int | None  # None: the claim cites abstracts but none holds evidence for it
    evidence_sentences: tuple[int, ...]  # indexes into the evidence abstract's sentences
    label: str | None  # SUPPORT / CONTRADICT (None without evidence)
    cited_docs: tuple[int, ...]


def read_scifact(root: Path) -> tuple[dict[int, tuple[str, list[str]]], list[SciFactClaim]]:
    """SciFact as stored under ROOT/qa/scifact: {doc_id: (title, sentences)} of corpus_train.csv, and the rows
    of claims_train.csv in file order (a claim with evidence in several abstracts has a row for each).

    The one reader of these files: the bundled model's training data, `sculptrag eval scifact`
    (evaluation.datasets) and the benchmarks all start from it. Sentences are as stored (not stripped).
    """
    import pandas as pd

    folder = Path(root) / "qa" / "scifact"
    corpus = pd.read_csv(folder / "corpus_train.csv")
    abstracts = {int(r.doc_id): (str(r.title), parse_sentence_list(r.abstract)) for r in corpus.itertuples()}
    claims = []
    for r in pd.read_csv(folder / "claims_train.csv").itertuples():
        has_evidence = not (isinstance(r.evidence_doc_id, float) and np.isnan(r.evidence_doc_id))
        claims.append(SciFactClaim(
            id=int(r.id), claim=str(r.claim), evidence_doc=int(r.evidence_doc_id) if has_evidence else None,
            evidence_sentences=tuple(int(n) for n in re.findall(r"\d+", str(r.evidence_sentences))),  # "[ 9 10]"
            label=str(r.evidence_label) if has_evidence else None,
            cited_docs=tuple(int(d) for d in re.findall(r"\d+", str(r.cited_doc_ids)))))
    return abstracts, claims


def chunking_eval_items(root: Path) -> dict[str, list[Item]]:
    import pandas as pd

    qa = root / "qa" / "chunking_eval"
    frame = pd.read_csv(qa / "questions_df.csv")
    out: dict[str, list[Item]] = {TRAIN: [], HELDOUT: []}
    pools: dict[str, list[PassageText]] = {TRAIN: [], HELDOUT: []}
    cuts: dict[str, list[tuple[int, int]]] = {}
    texts: dict[str, str] = {}
    for path in sorted((qa / "corpora").glob("*.md")):
        corpus = path.stem
        text = path.read_text(encoding="utf-8")
        texts[corpus] = text
        cuts[corpus] = pack_passages(text)
        for a, b in cuts[corpus]:
            split, doc = _region(corpus, a, len(text))
            pools[split].append(PassageText(corpus, text[a:b], doc))
    for i, row in frame.iterrows():
        corpus, text = row.corpus_id, texts[row.corpus_id]
        refs = sorted(json.loads(row.references), key=lambda r: r["start_index"])
        regions = {_region(corpus, r["start_index"], len(text)) for r in refs}
        if len(regions) != 1:
            continue
        split, doc = regions.pop()
        relevant: list[PassageText] = []
        spans: list[Span] = []
        index_of: dict[int, int] = {}
        for r in refs:
            for j, (a, b) in enumerate(cuts[corpus]):
                s, e = max(a, r["start_index"]), min(b, r["end_index"])
                if e - s < 10:
                    continue
                if j not in index_of:
                    index_of[j] = len(relevant)
                    relevant.append(PassageText(corpus, text[a:b], doc))
                piece = text[s:e].strip()
                s = text.index(piece, s) - a
                spans.append(Span(index_of[j], s, s + len(piece)))
        if spans:
            out[split].append(Item(f"chunking_eval/{i}", f"chunking_eval/{corpus}", doc, row.question, relevant, spans))
    for split in out:
        _add_distractors(out[split], pools[split])
    return out


def _region(corpus: str, offset: int, length: int) -> tuple[str, str]:
    if corpus == "state_of_the_union":
        return HELDOUT, corpus
    region = min(3, offset * 4 // max(length, 1))
    return (HELDOUT if region == 3 else TRAIN), f"{corpus}#{region}"


def scifact_items(root: Path) -> dict[str, list[Item]]:
    stored, claims = read_scifact(root)
    abstracts = {d: (title, [s.strip() for s in sentences]) for d, (title, sentences) in stored.items()}
    passages_of: dict[int, list[tuple[PassageText, list[int]]]] = {}
    pools: dict[str, list[PassageText]] = {TRAIN: [], HELDOUT: []}
    for doc_id, (title, sentences) in abstracts.items():
        split = split_of(f"scifact:{doc_id}")
        groups: list[list[int]] = [[]]
        for k, s in enumerate(sentences):
            words = sum(len(sentences[j].split()) for j in groups[-1])
            if groups[-1] and words + len(s.split()) > MAX_WORDS:
                groups.append([])
            groups[-1].append(k)
        passages_of[doc_id] = []
        for g in groups:
            p = PassageText(title, " ".join(sentences[k] for k in g), f"scifact:{doc_id}")
            passages_of[doc_id].append((p, g))
            pools[split].append(p)
    out: dict[str, list[Item]] = {TRAIN: [], HELDOUT: []}
    for r in claims:
        if r.evidence_doc is None:
            cited = [d for d in r.cited_docs if d in abstracts]
            if not cited:
                continue
            doc = f"scifact:{cited[0]}"
            item = Item(f"scifact/{r.id}/none", "scifact", doc, r.claim, [], [],
                        [p for p, _ in passages_of[cited[0]]])
            out[split_of(doc)].append(item)
            continue
        doc_id = r.evidence_doc
        if doc_id not in abstracts:
            continue
        evidence = set(r.evidence_sentences)
        relevant: list[PassageText] = []
        spans: list[Span] = []
        for p, group in passages_of[doc_id]:
            hits = [k for k in group if k in evidence]
            if not hits:
                continue
            relevant.append(p)
            sentences = abstracts[doc_id][1]
            for k in hits:
                s = p.text.index(sentences[k])
                spans.append(Span(len(relevant) - 1, s, s + len(sentences[k])))
        if spans:
            doc = f"scifact:{doc_id}"
            out[split_of(doc)].append(Item(f"scifact/{r.id}/{doc_id}", "scifact", doc, r.claim, relevant, spans))
    for split in out:
        _add_distractors(out[split], pools[split])
    return out


def synthetic_items(root: Path, max_per_section: int = 6, seed: int = 0,
                    scifact_docs: int = 1500) -> dict[str, list[Item]]:
    """Rule-based questions (qgen.py) over real prose, each answered by its source sentence.

    Text: the Debian handbook (split by chapter file: held-out chapters give held-out items), plus, for
    training only, the training regions of the chunking_eval corpora and `scifact_docs` training abstracts.
    """
    from .qgen import Section, handbook_sections, load_nlp, questions_for

    nlp = load_nlp()
    rng = random.Random(seed)
    sections: list[tuple[str, str, Section]] = []  # (split, source, section)
    for sec in handbook_sections(root / "docs" / "debian-handbook-en"):
        sections.append((split_of(f"handbook:{sec.doc}"), "synthetic/handbook", sec))
    for path in sorted((root / "qa" / "chunking_eval" / "corpora").glob("*.md")):
        text = path.read_text(encoding="utf-8")
        for a, b in pack_passages(text, max_words=400):
            split, doc = _region(path.stem, a, len(text))
            if split == TRAIN:
                sections.append((TRAIN, "synthetic/corpora", Section(doc, path.stem, text[a:b])))
    picked = 0
    for doc_id, (title, sentences) in read_scifact(root)[0].items():
        doc = f"scifact:{doc_id}"
        if picked < scifact_docs and split_of(doc) == TRAIN:
            sections.append((TRAIN, "synthetic/scifact", Section(doc, title, " ".join(sentences))))
            picked += 1
    out: dict[str, list[Item]] = {TRAIN: [], HELDOUT: []}
    pools: dict[str, list[PassageText]] = {TRAIN: [], HELDOUT: []}
    for n, (split, source, sec) in enumerate(sections):
        cuts = pack_passages(sec.text)
        for a, b in cuts:
            pools[split].append(PassageText(sec.title, sec.text[a:b], sec.doc))
        for k, qa in enumerate(questions_for(sec, nlp, max_per_section=max_per_section, rng=rng)):
            for a, b in cuts:
                if a <= qa.start and qa.end <= b:
                    p = PassageText(sec.title, sec.text[a:b], sec.doc)
                    out[split].append(Item(f"{source}/{n}/{k}", source, sec.doc, qa.question,
                                           [p], [Span(0, qa.start - a, qa.end - a)]))
                    break
    for split in out:
        _add_distractors(out[split], pools[split])
    return out


def _add_distractors(items: list[Item], pool: list[PassageText], depth: int = 12) -> None:
    """Top BM25 passages of the pool for each question that are not (and do not contain) a relevant one."""
    if not pool:
        return
    # surface forms, as when the bundled model was trained: its distractors (and held-out data) stay the same
    index = BM25Index.build(range(len(pool)), (f"{p.title}\n{p.text}" for p in pool), stemmed=False)
    for item in items:
        keep = {p.text for p in item.relevant} | {p.text for p in item.distractors}
        evidence = [item.relevant[s.passage].text[s.start:s.end] for s in item.spans]
        _, ids = index.search(item.question, depth + len(keep) + 4)
        extra = [pool[int(i)] for i in ids if pool[int(i)].text not in keep
                 and not any(e in pool[int(i)].text for e in evidence)]
        item.distractors = item.distractors + extra[:depth]


def rgb_items(root: Path) -> dict[str, list[Item]]:
    """RGB news questions, read as the rgb evaluation set reads them (`evaluation.datasets.load_rgb`): the answer
    is the sentence (as the featurizer splits them) of a positive passage that holds an accepted answer; the
    question's own negative passages (the same event, another year or another fact) are its hard
    distractors. Split by question."""
    from evaluation.datasets import load_rgb

    from ..features import sentence_spans

    ds = load_rgb(root)
    texts = {doc_id: text for doc_id, _, text in ds.documents}
    out: dict[str, list[Item]] = {TRAIN: [], HELDOUT: []}
    for q in sorted(ds.items, key=lambda q: int(q.id.removeprefix("rgb-"))):
        n, answers = q.id.removeprefix("rgb-"), [a.lower() for a in q.aliases]
        found = next(((texts[d], span) for d in q.gold_sources for span in sentence_spans(texts[d])
                      if any(a in texts[d][span[0]:span[1]].lower() for a in answers)), None)
        if found is None:
            continue
        text, (start, end) = found
        doc = f"rgb:{n}"
        negatives = [PassageText("", t, doc) for d, t in texts.items() if d.startswith(f"{q.id}-neg") and t.strip()
                     and not any(a in t.lower() for a in answers)]
        out[split_of(doc)].append(Item(f"rgb/{n}", "rgb", doc, q.question, [PassageText("", text, doc)],
                                       [Span(0, start, end)], negatives))
    return out


# Debian documentation that training may read. None of these packages is used by an evaluation set or a
# benchmark (apache2-doc, bash-doc, git-doc: manuals; python-psycopg2/sqlalchemy/celery/peewee/requests/pytest/
# aiohttp/tornado/scrapy/hypothesis/django-doc, exim4-doc-html, postfix-doc, zsh-doc, haproxy-doc, libpam-doc,
# gnutls-doc, slony1-2-doc, graphviz-doc, mutt, bind9-doc, postgis-doc, lmdb-doc, python-psutil-doc,
# python-cryptography-doc, libxml2-doc: the library manuals; python-jinja2-doc: site_builds and a library set;
# sphinx-doc, debian-reference: their sets), and none is reserved for the product's blind judgement
# (postgresql-doc-*, python3*-doc, sqlite3-doc).
TRAINING_DOC_PACKAGES = ("debian-policy", "maint-guide", "debmake-doc", "python-flask-doc", "python-werkzeug-doc",
                         "python-click-doc", "python-attr-doc", "python-babel-doc")
NOT_FOR_TRAINING = re.compile(r"^(postgresql-doc|python3[^/]*-doc|sqlite3-doc|apache2-doc|bash-doc|git-doc|"
                              r"python-(psycopg2|sqlalchemy|celery|peewee|requests|pytest|aiohttp|tornado|jinja2|"
                              r"scrapy|hypothesis|django|psutil|cryptography|pymongo)-doc|sphinx-doc|debian-reference|"
                              r"exim4-doc|postfix-doc|zsh-doc|haproxy-doc|libpam-doc|gnutls-doc|slony1-2-doc|"
                              r"graphviz-doc|mutt|bind9-doc|postgis-doc|lmdb-doc|libxml2-doc)")


# indexes, search pages, module listings, release notes (lists of versions) and translations (the questions are
# English; "ch01.de.html" is debmake-doc's German chapter 1)
SKIP_PAGE = re.compile(r"(^|/)(_modules|releases|changes?(log)?)(/|\.)|genindex|search\.html$|modindex\.html$"
                       r"|\.(?!en\.)[a-z]{2}(?:[-_][a-z]{2})?\.html?$", re.I)


def debian_doc_files(doc_root: Path = Path("/usr/share/doc"), packages: Sequence[str] = TRAINING_DOC_PACKAGES,
                     per_package: int = 60) -> list[tuple[str, Path, str]]:
    """(package, page, document id) for up to `per_package` HTML pages of each installed package, spread over its pages
    (every n-th in path order) so a large manual gives all its parts, not its first chapter."""
    out: list[tuple[str, Path, str]] = []
    for package in packages:
        if NOT_FOR_TRAINING.match(package):
            raise ValueError(f"{package} is kept for evaluation; training must not read it")
    missing = [p for p in packages if not (doc_root / p).is_dir()]
    if missing:
        raise ValueError(f"documentation packages not installed: apt-get install {' '.join(missing)}")
    for package in packages:
        pages = sorted(p for p in (doc_root / package).rglob("*.htm*")
                       if p.is_file() and not SKIP_PAGE.search(p.relative_to(doc_root / package).as_posix())
                       and p.stat().st_size > 2000)
        step = max(1, len(pages) // per_package)
        out.extend((package, p, f"{package}:{p.relative_to(doc_root / package).as_posix()}")
                   for p in pages[::step][:per_package])
    return out


def example_doc_files(root: Path) -> list[tuple[str, Path, str]]:
    """("examples", file, document id) for the example documents the business_docs evaluation set does not use."""
    from evaluation.datasets import BUSINESS_DOCS, BUSINESS_DOCS_FILES

    base = root / BUSINESS_DOCS
    skip = set(BUSINESS_DOCS_FILES)
    return [("examples", p, f"examples:{p.relative_to(base).as_posix()}") for p in sorted(base.rglob("*"))
            if p.is_file() and p.relative_to(base).as_posix() not in skip and p.suffix.lower() not in IMAGE_SUFFIXES
            and "language-docs" not in p.relative_to(base).parts]  # other languages: the questions are English


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tiff", ".heic", ".zip", ".p7s", ".xsl"}


def document_items(files: Sequence[tuple[str, Path, str]], source: str, max_per_section: int = 4, seed: int = 0,
                   workers: int = 2, max_per_file: int = 40) -> dict[str, list[Item]]:
    """Rule-based questions (qgen.py) over documents as the product serves them: each file is parsed and chunked
    by ingest (`process_file`, the same text, element lines and sections a retrieved passage has), a chunk is
    a passage, and a question's answer is a sentence of one chunk. A file that does not parse is skipped.
    A file gives at most `max_per_file` questions, spread over it (a novel would outweigh every manual).
    Split by file; distractors are the BM25-nearest chunks of the same split (the same manual's other pages)."""
    from concurrent.futures import ProcessPoolExecutor

    from .qgen import Section, load_nlp, questions_for

    nlp = load_nlp()
    rng = random.Random(seed)
    out: dict[str, list[Item]] = {TRAIN: [], HELDOUT: []}
    pools: dict[str, list[PassageText]] = {TRAIN: [], HELDOUT: []}
    with ProcessPoolExecutor(workers) as pool:
        parsed = list(pool.map(_chunk_file, [str(p) for _, p, _ in files], chunksize=4))
    for (group, path, doc), chunks in zip(files, parsed):
        split = split_of(doc)
        by_section: dict[str, list[str]] = {}
        for section, text in chunks:
            by_section.setdefault(section, []).append(text)
            pools[split].append(PassageText(section, text, doc))
        asked: list[Item] = []
        for n, (title, texts) in enumerate(by_section.items()):
            # one block per line (ingest keeps element boundaries as lines), remembering each line's chunk
            blocks, where = [], []
            for c, text in enumerate(texts):
                pos = 0
                for line in text.split("\n"):
                    if line.strip():
                        blocks.append(line)
                        where.append((c, pos))
                    pos += len(line) + 1
            section = Section(doc, title, "\n\n".join(blocks))
            starts = np.cumsum([0] + [len(b) + 2 for b in blocks])
            for k, qa in enumerate(questions_for(section, nlp, max_per_section=max_per_section, rng=rng)):
                b = int(np.searchsorted(starts, qa.start, side="right")) - 1
                c, pos = where[b]
                a = pos + qa.start - int(starts[b])
                passage = PassageText(title, texts[c], doc)
                if passage.text[a:a + qa.end - qa.start] == section.text[qa.start:qa.end]:
                    asked.append(Item(f"{source}/{doc}/{n}/{k}", f"{source}/{group}", doc, qa.question,
                                      [passage], [Span(0, a, a + qa.end - qa.start)]))
        step = len(asked) / max_per_file
        out[split].extend(asked if step <= 1 else [asked[int(i * step)] for i in range(max_per_file)])
    for split in out:
        _add_distractors(out[split], pools[split])
    return out


def _chunk_file(path: str) -> list[tuple[str, str]]:
    """(section, text) of each chunk ingest makes of the file; [] when it does not parse."""
    from ingest.process import Processed, process_file
    from pipeline.config import EmbeddingSettings, IngestSettings
    from pipeline.embedding import resolve_model_path

    # the default settings' chunks: ingest counts tokens with the embedding model's tokenizer
    result = process_file(path, Path(path).stat().st_size, IngestSettings(),
                          str(resolve_model_path(EmbeddingSettings().model)))
    return [(c.section, c.text) for c in result.chunks] if isinstance(result, Processed) else []


def debian_docs_items(root: Path) -> dict[str, list[Item]]:
    return document_items(debian_doc_files(), "docs")


def example_docs_items(root: Path) -> dict[str, list[Item]]:
    return document_items(example_doc_files(root), "docs")


MAKERS = {"chunking_eval": chunking_eval_items, "scifact": scifact_items, "synthetic": synthetic_items,
          "rgb": rgb_items, "debian_docs": debian_docs_items, "example_docs": example_docs_items}
SOURCES = tuple(MAKERS)


def build_items(root: Path, sources: Sequence[str] = ("chunking_eval", "scifact", "synthetic")) -> dict[str, list[Item]]:
    """All items of the named sources (SOURCES), by split."""
    unknown = [s for s in sources if s not in MAKERS]
    if unknown:
        raise ValueError(f"unknown training source(s) {unknown}; choose from {', '.join(SOURCES)}")
    out: dict[str, list[Item]] = {TRAIN: [], HELDOUT: []}
    for name in sources:
        got = MAKERS[name](root)
        for split in out:
            out[split].extend(got[split])
    return out


def corpus_of(source: str) -> str:
    """The corpus an item's text comes from (what leave-one-corpus-out leaves out): chunking_eval's questions and
    the synthetic questions over its corpora are one corpus, SciFact's claims and the synthetic questions over
    its abstracts another; "docs/<package>" is debian_docs, "docs/examples" example_docs."""
    if source.startswith("chunking_eval") or source == "synthetic/corpora":
        return "chunking_eval"
    if source.startswith("scifact") or source == "synthetic/scifact":
        return "scifact"
    if source == "synthetic/handbook":
        return "handbook"
    if source.startswith("docs/"):
        return "example_docs" if source == "docs/examples" else "debian_docs"
    return source


CORPORA = ("chunking_eval", "scifact", "handbook", "rgb", "debian_docs", "example_docs")


def without(items: list[Item], exclude: Sequence[str]) -> list[Item]:
    """The items whose corpus (corpus_of) is not in `exclude`."""
    unknown = [c for c in exclude if c not in CORPORA]
    if unknown:
        raise ValueError(f"unknown corpus {unknown}; the corpora are {', '.join(CORPORA)}")
    return [it for it in items if corpus_of(it.source) not in set(exclude)]


# ---------------------------------------------------------------- examples


@dataclass
class Example:
    """What the model sees: question, numbered passages (1-based in order), gold answer as segments."""

    id: str
    source: str
    doc: str
    question: str
    passages: list[PassageText]
    relevant: list[bool]
    segments: list[Span]  # Span.passage indexes `passages`; each segment is followed by its marker
    answerable: bool

    @property
    def gold(self) -> str:
        if not self.answerable:
            return REFUSAL
        return " ".join(f"{self.passages[s.passage].text[s.start:s.end]} [{s.passage + 1}]" for s in self.segments)

    def to_json(self) -> dict:
        return {
            "id": self.id, "source": self.source, "doc": self.doc, "question": self.question,
            "passages": [{"number": i + 1, "title": p.title, "text": p.text, "relevant": r}
                         for i, (p, r) in enumerate(zip(self.passages, self.relevant))],
            "gold": self.gold, "answerable": self.answerable,
            "segments": [asdict(s) for s in self.segments],
        }

    @classmethod
    def from_json(cls, d: dict) -> "Example":
        passages = [PassageText(p["title"], p["text"]) for p in d["passages"]]
        return cls(d["id"], d["source"], d["doc"], d["question"], passages,
                   [p["relevant"] for p in d["passages"]], [Span(**s) for s in d.get("segments", [])],
                   d["answerable"])


def make_example(item: Item, rng: random.Random, k: int, unanswerable: bool = False) -> Example | None:
    """k passages: the relevant ones plus the top distractors, shuffled; unanswerable drops the relevant."""
    relevant = [] if unanswerable else list(item.relevant)
    if len(relevant) > k:
        return None
    room = k - len(relevant)
    pool = item.distractors[: max(room + 2, room)]
    distractors = rng.sample(pool, min(room, len(pool)))
    if not relevant and not distractors:
        return None
    order = list(range(len(relevant) + len(distractors)))
    rng.shuffle(order)
    passages = [(relevant + distractors)[i] for i in order]
    new_index = {old: new for new, old in enumerate(order)}
    segments = [] if unanswerable else [Span(new_index[s.passage], s.start, s.end) for s in item.spans]
    flags = [order[j] < len(relevant) for j in range(len(order))]
    return Example(item.id + ("/u" if unanswerable and item.answerable else ""), item.source, item.doc,
                   item.question, passages, flags, segments, bool(segments))


def sample_examples(items: Iterable[Item], rng: random.Random, k_range: tuple[int, int] = (3, 6),
                    unanswerable_share: float = 0.15) -> list[Example]:
    """One example per item (random k, order, and sometimes the unanswerable variant)."""
    out: list[Example] = []
    for item in items:
        k = rng.randint(*k_range)
        drop = item.answerable and rng.random() < unanswerable_share
        ex = make_example(item, rng, k, unanswerable=drop)
        if ex is not None:
            out.append(ex)
    return out


def heldout_examples(root: Path, k: int = 5, seed: int = 0, items: list[Item] | None = None) -> list[Example]:
    """The fixed held-out evaluation set: k passages each, 15% of answerable items made unanswerable."""
    items = items if items is not None else build_items(root)[HELDOUT]
    return sample_examples(sorted(items, key=lambda it: it.id), random.Random(seed), (k, k))


def write_jsonl(examples: Iterable[Example], path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for ex in examples:
            f.write(json.dumps(ex.to_json(), ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: Path) -> list[Example]:
    with Path(path).open(encoding="utf-8") as f:
        return [Example.from_json(json.loads(line)) for line in f if line.strip()]
