"""Evaluation harness: a dataset through retrieval, any generators and validation, into one report dict.

    report = run_eval(load_dataset("rgb", limit=20), ["extractive", "sculpt"], k=5)
    write_report(report, "runs/eval/rgb")          # report.json + report.html

The harness is model-agnostic: a generator is a registered name asked through `RagPipeline.ask`, and only
the `Answer` it returns is read (text, citations, passages, validation, trace, timings). Per question and
generator it records:

- retrieval: a passage is relevant when its document is one of the item's gold sources; recall@k, hit@k,
  MRR and nDCG@k over the distinct documents of the k passages;
- the answer, its citations, and the validation verdict with per-sentence reasons: the pipeline's own
  validation stage, repairs included, as the settings configure it (the harness validates the answer
  itself only when that stage is off);
- token F1 / exact match against the gold answer, "answer contains" an accepted short answer (items with
  aliases), evidence recall (share of the gold passages given that the answer cites; None when no gold
  passage was retrieved);
- latency of the whole `ask` (models loaded and warmed up first, untimed), generation time, and tokens/s
  when the trace reports it.

Noise sweep (`noise=(0, 0.4, 0.8, 1)`, RGB-style): each answerable item is asked once per level over a fixed
passage set instead of its retrieved top-k. A pool of max(4k, 20) hits is retrieved (access control
applies), split into gold hits and distractors (rank order kept); level r gives the top k - round(r*k) gold
hits and the top round(r*k) distractors (never more distractors than that when gold hits run short, so the
noise share stays at most r), shuffled with a seed from (item id, r). Level 1 is the unanswerable slice: no
gold passage, so its rows count as unanswerable in the refusal metrics. An item with no gold hit in its pool
is skipped below level 1; an item the dataset marks unanswerable keeps its retrieved passages at every
level. Records are per (item, level) with a "slice" key; report["slices"] holds each level's summary and
report["summary"] the level-0 one (else the first level's).

The store lives under `runs/eval-stores/<dataset>` by default and is reused: the dataset's documents are
written as .txt files into its `documents/` folder (identical texts share one file, since the store
rejects duplicate content) and ingested with prune, so a rerun embeds only what changed.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import unquote, urlparse

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.groups import parse_groups
from pipeline.types import Answer, Hit

from .datasets import EvalDataset, EvalItem
from .text import normalize
from .validate import Validator, ground_truth

log = logging.getLogger(__name__)

DEFAULT_STORES = Path("runs/eval-stores")
Progress = Callable[[int, int, str], None]  # (asks done, asks in all, current question)
UNANSWERABLE = 1.0  # the noise level with no gold passage at all


def run_eval(dataset: EvalDataset, generators: Sequence[str], *, limit: int | None = None, k: int = 5,
             store_dir: str | Path | None = None, settings: Settings | None = None, embedder: Any = None,
             checker: Any = None, groups: Sequence[str] | None = None,
             progress: Progress | None = None, noise: Sequence[float] | None = None) -> dict:
    """Ask every item (the first `limit`) of `dataset` with each generator; the JSON-ready report.

    `settings` gives everything but the store folder (`store_dir`, default runs/eval-stores/<name>).
    `embedder` (an `ingest.embed.Embedder`) is shared by ingestion, retrieval and the default support
    checker so MiniLM loads once; `checker` replaces that checker. A generator that fails to load is
    reported with its error and left out; the others still run. `noise`: the distractor shares of a noise
    sweep (each in [0, 1]; see the module docstring); without it, each item is asked once over its top-k.
    """
    from ingest.embed import SentenceTransformerEmbedder
    from pipeline.rag import RagPipeline
    from pipeline.retrieve import Retriever
    from pipeline.store import Store

    from .support import OverlapEmbeddingChecker

    if not generators:
        raise ConfigError("give at least one generator name")
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    levels = check_levels(noise) if noise is not None else None
    base = settings or Settings()
    store_dir = Path(store_dir) if store_dir is not None else DEFAULT_STORES / _slug(dataset.name)
    settings = base.model_copy(update={"store_dir": store_dir, "database_url": None})
    embedder = embedder or SentenceTransformerEmbedder(settings.embedding)
    items = list(dataset.items[:limit] if limit is not None else dataset.items)

    t0 = time.perf_counter()
    groups = parse_groups(settings.default_groups if groups is None else groups)
    store_info, sources = build_store(dataset, settings, embedder=embedder, groups=groups)
    store = Store(settings)
    # the pipeline's own validation stage judges each answer (and repairs failing ones, as configured), with
    # `checker` when given; `validator` judges the answers itself when that stage is switched off
    validator = Validator(checker if checker is not None else OverlapEmbeddingChecker(embedder))
    validator.warm_up()
    rag = RagPipeline(settings, store=store, retriever=Retriever(store, embedder=embedder, settings=settings),
                      validator=validator if checker is not None else None)
    if items:
        rag.retrieve(items[0].question, groups, k)  # loads indexes, untimed

    status: dict[str, dict] = {}
    for name in dict.fromkeys(generators):
        try:
            t = time.perf_counter()
            rag.generator(name)  # load and warm up outside the timed asks
            status[name] = {"status": "ok", "load_s": time.perf_counter() - t}
        except Exception as e:  # noqa: BLE001 - any load failure leaves that generator out, not the run
            log.warning("generator %s could not be loaded: %s", name, e)
            status[name] = {"status": "error", "error": f"{type(e).__name__}: {e}"}
    ready = [g for g, s in status.items() if s["status"] == "ok"]

    done, total = 0, len(items) * len(ready) * len(levels or [None])

    def ask(item: EvalItem, hits: Sequence[Hit] | None = None) -> dict:
        nonlocal done
        record = _item_record(item)
        for name in ready:
            row = _ask(rag, validator, sources, item, name, k, groups, hits)
            passages = row.pop("passages", None)
            if passages is not None and "passages" not in record:
                record["passages"] = passages
            record["answers"][name] = row
            done += 1
            if progress:
                progress(done, total, item.question)
        return record

    def skip(item: EvalItem) -> None:
        nonlocal done
        done += len(ready)
        if progress and ready:
            progress(done, total, item.question)

    slices = None
    if levels is None:
        records = [ask(item) for item in items]
        summary = _summaries(records, ready)
    else:
        records, slices = _noise_sweep(rag, sources, items, k, groups, levels, ask, skip)
        for name, s in slices.items():
            s["summary"] = _summaries([r for r in records if r["slice"] == name], ready)
        summary = slices[slice_name(0.0 if 0.0 in levels else levels[0])]["summary"]

    report = {
        "dataset": dataset.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": {"generators": list(status), "k": k, "limit": limit, "items": len(items),
                   "store_dir": str(store_dir), "groups": list(groups),
                   "checker": _checker_name(rag.validator or validator),
                   "repair_rounds": settings.validation.repair_rounds if rag.validator is not None else 0},
        "store": store_info,
        "generators": status,
        "summary": summary,
        "items": records,
        "seconds": time.perf_counter() - t0,
    }
    if slices is not None:
        report["config"].update(noise=levels, pool=pool_size(k))
        report["slices"] = slices
    return report


def _summaries(records: Sequence[dict], ready: Sequence[str]) -> dict:
    return {name: summarize([r["answers"][name] for r in records], records) for name in ready}


# -- the noise sweep -------------------------------------------------------------------------------------
def check_levels(noise: Sequence[float]) -> list[float]:
    """The distinct noise levels as floats, in the order given; ConfigError for none or one outside [0, 1]."""
    levels: list[float] = []
    for r in noise:
        try:
            x = float(r)
        except (TypeError, ValueError):
            raise ConfigError(f"noise level {r!r} is not a number: give shares of distractor passages in "
                              "[0, 1], e.g. 0,0.4,0.8,1") from None
        if not 0.0 <= x <= 1.0:  # (NaN fails too)
            raise ConfigError(f"noise level {r!r} is outside [0, 1]: it is the share of distractor passages "
                              "among the k, e.g. 0,0.4,0.8,1")
        if x not in levels:
            levels.append(x)
    if not levels:
        raise ConfigError("give at least one noise level, e.g. 0,0.4,0.8,1")
    return levels


def parse_levels(text: str) -> list[float]:
    """A comma list of noise levels ("0,0.4,0.8,1") -> check_levels of it."""
    parts = [p.strip() for p in text.split(",")]
    if any(not p for p in parts):
        raise ConfigError(f"noise levels {text!r}: give numbers in [0, 1] separated by commas, e.g. 0,0.4,0.8,1")
    return check_levels(parts)


def slice_name(level: float) -> str:
    return f"noise={level:g}"


def pool_size(k: int) -> int:
    """How many hits a noise sweep retrieves per question to draw gold passages and distractors from."""
    return max(4 * k, 20)


def noise_passages(gold: Sequence[Hit], distractors: Sequence[Hit], k: int, level: float,
                   seed: str) -> list[Hit]:
    """The passage set for one level: the top k - round(level*k) gold hits and the top round(level*k)
    distractors (fewer gold hits: no more distractors, so their share stays at most `level`), shuffled."""
    n_noise = round(level * k)
    chosen = list(gold[:k - n_noise]) + list(distractors[:n_noise])
    random.Random(seed).shuffle(chosen)
    return chosen


def _noise_sweep(rag: Any, sources: SourceIndex, items: Sequence[EvalItem], k: int, groups: Sequence[str],
                 levels: Sequence[float], ask: Callable[..., dict],
                 skip: Callable[[EvalItem], None]) -> tuple[list[dict], dict[str, dict]]:
    """Records per (item, level), and per level (by slice name) the items skipped, by reason."""
    slices = {slice_name(r): {"level": r, "skipped": 0, "skipped_why": {}} for r in levels}
    records = []
    for item in items:
        gold_names = set(item.gold_sources)
        gold: list[Hit] = []
        distractors: list[Hit] = []
        if item.answerable and gold_names:
            for hit in rag.retrieve(item.question, groups, pool_size(k)):
                (gold if sources.names(hit, rag.store) & gold_names else distractors).append(hit)
        for r in levels:
            name = slice_name(r)
            s = slices[name]
            hits = None  # an unanswerable item: its own retrieved top-k
            if item.answerable:
                why = ("no_gold_sources" if not gold_names else "no_gold_in_pool" if not gold and r < UNANSWERABLE
                       else "no_distractors" if not distractors and r >= UNANSWERABLE else None)
                if why:
                    s["skipped"] += 1
                    s["skipped_why"][why] = s["skipped_why"].get(why, 0) + 1
                    skip(item)
                    continue
                hits = noise_passages(gold, distractors, k, r, f"{item.id}|{r}")
            record = ask(item, hits)
            record["slice"] = name
            record["answerable"] = item.answerable and r < UNANSWERABLE  # level 1: a refusal is expected
            records.append(record)
    return records, slices


# -- the store -------------------------------------------------------------------------------------------
class SourceIndex:
    """Which gold-source names a retrieved hit's document answers to."""

    def __init__(self, documents_dir: Path, ids_by_stem: dict[str, list[str]], corpus: Path | None) -> None:
        self.documents_dir = documents_dir.resolve()
        self.ids_by_stem = ids_by_stem
        self.corpus = corpus.resolve() if corpus is not None else None

    def names(self, hit: Hit, store: Any = None) -> set[str]:
        """A written document: its doc ids. A corpus file: its name, stem and path relative to the corpus.
        With `store`, also the names of the documents whose identical chunks retrieval folded into the hit
        (look-alike copies of one text are all retrieved when one is)."""
        names = self.names_of(hit.document.source_uri)
        if store is not None and hit.duplicates:
            rows = store.chunks(hit.duplicates)
            for doc in store.documents_by_id({r.document_id for r in rows}).values():
                names |= self.names_of(doc.source_uri)
        return names

    def names_of(self, source_uri: str) -> set[str]:
        path = Path(unquote(urlparse(source_uri).path))
        if path.parent == self.documents_dir:
            return set(self.ids_by_stem.get(path.stem, [path.stem]))
        names = {path.name, path.stem, str(path)}
        if self.corpus is not None and self.corpus in path.parents:
            names.add(path.relative_to(self.corpus).as_posix())
        return names

    def label(self, hit: Hit) -> str:
        names = self.names_of(hit.document.source_uri)
        path = Path(unquote(urlparse(hit.document.source_uri).path))
        return sorted(names)[0] if path.parent == self.documents_dir else path.name


EVAL_MARK = ".sculptrag-eval"  # in a store folder: eval made this store, so it may write to it


def build_store(dataset: EvalDataset, settings: Settings, *, embedder: Any = None,
                groups: Sequence[str] | None = None) -> tuple[dict, SourceIndex]:
    """Bring the store in `settings.store_dir` up to date with the dataset's documents (incrementally).

    Only a store this harness created is written to (it marks it): pointed at a product store, eval would
    add or prune that store's documents. Documents are ingested for `groups` (the groups the questions are
    asked with); a document already stored keeps its groups.
    Returns a summary of the ingest (counts, rejected files) and the index from hits to gold-source names.
    """
    from pipeline.ingestion import ingest
    from pipeline.store import Store

    store_dir = Path(settings.store_dir)
    folder = store_dir / "documents"
    paths: list[Path] = ([folder] if dataset.documents else []) + ([dataset.corpus] if dataset.corpus else [])
    if not paths:
        raise ConfigError(f"dataset {dataset.name!r} has neither documents nor a corpus to ingest")
    if store_dir.is_dir() and any(store_dir.iterdir()) and not (store_dir / EVAL_MARK).is_file():
        raise ConfigError(f"{store_dir} is not a store made by `sculptrag eval` and eval only writes to stores it "
                          "made: pass a new --store folder (or none, for runs/eval-stores/<dataset>)")
    store_dir.mkdir(parents=True, exist_ok=True)
    (store_dir / EVAL_MARK).write_text("made by sculptrag eval; it ingests into and prunes this store\n")
    store = Store(settings)
    foreign = [d.source_uri for d in store.documents() if not _under(d.source_uri, paths)]
    if foreign:
        raise ConfigError(
            f"the store {settings.store_dir} holds {len(foreign)} document(s) that are not part of {dataset.name!r} "
            f"(e.g. {foreign[0]}), which retrieval would search too: delete that folder or pass another --store")
    ids_by_stem = _write_documents(dataset.documents, folder)
    report = ingest(paths, settings, groups=groups, prune=True, store=store, embedder=embedder)
    counts = store.counts()
    info = {
        "dir": str(settings.store_dir), "documents": counts["documents"], "chunks": counts["chunks"],
        "ingested": report.ingested, "updated": report.updated, "unchanged": report.unchanged,
        "removed": report.removed, "rejected": [{"path": o.path, "reason": o.reason, "detail": o.detail}
                                                for o in report.rejections()],
        "ingest_s": report.seconds,
    }
    return info, SourceIndex(folder, ids_by_stem, dataset.corpus)


def _under(uri: str, roots: Sequence[Path]) -> bool:
    path = Path(unquote(urlparse(uri).path))
    return any(path == r or r in path.parents for r in (Path(r).resolve() for r in roots))


def _write_documents(documents: Sequence[tuple[str, str, str]], folder: Path) -> dict[str, list[str]]:
    """One .txt file per distinct text ("title\\n\\ntext"); other .txt files there are deleted (pruned).

    Returns file stem -> the doc ids sharing that file.
    """
    contents: dict[str, list[str]] = {}
    for doc_id, title, text in documents:
        contents.setdefault(f"{title.strip()}\n\n{text.strip()}\n" if title.strip() else f"{text.strip()}\n",
                            []).append(str(doc_id))
    folder.mkdir(parents=True, exist_ok=True)
    ids_by_stem: dict[str, list[str]] = {}
    for content, ids in contents.items():
        stem = base = _slug(ids[0])
        n = 1
        while stem in ids_by_stem:
            n += 1
            stem = f"{base}-{n}"
        ids_by_stem[stem] = ids
        path = folder / f"{stem}.txt"
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
    for path in folder.glob("*.txt"):
        if path.stem not in ids_by_stem:
            path.unlink()
    return ids_by_stem


# -- one question ----------------------------------------------------------------------------------------
def _item_record(item: EvalItem) -> dict:
    return {"id": item.id, "question": item.question, "gold_answer": item.gold_answer,
            "gold_sources": item.gold_sources, "answerable": item.answerable, "aliases": item.aliases,
            "answers": {}}


def _ask(rag: Any, validator: Any, sources: SourceIndex, item: EvalItem, name: str, k: int,
         groups: Sequence[str] | None, hits: Sequence[Hit] | None = None) -> dict:
    """One generator's answer to one item, with retrieval, validation and ground-truth metrics.

    `hits`: a fixed passage set to answer over instead of retrieving (no retrieval metrics then)."""
    t = time.perf_counter()
    try:
        answer: Answer = rag.ask(item.question, generator=name, k=k, groups=groups, hits=hits)
    except Exception as e:  # noqa: BLE001 - one failing question is recorded, the run goes on
        log.warning("%s failed on %s: %s", name, item.id, e)
        return {"error": f"{type(e).__name__}: {e}", "seconds": time.perf_counter() - t}
    seconds = time.perf_counter() - t
    gold = set(item.gold_sources)
    names = [sources.names(h, rag.store) for h in answer.passages]
    gold_numbers = [i + 1 for i, n in enumerate(names) if n & gold]
    verdict = answer.validation
    if verdict.get("status") not in ("pass", "warn", "fail"):  # the pipeline's validation stage is off
        verdict = validator.validate(answer.text, [(i + 1, h.text) for i, h in enumerate(answer.passages)],
                                     markers={c.marker: c.passage_number for c in answer.citations}).to_dict()
    truth = ground_truth(answer.text, {c.passage_number for c in answer.citations}, item.gold_answer,
                         gold_numbers or None)
    trace = answer.trace
    row = {
        "text": answer.text,
        "citations": [{"marker": c.marker, "passage": c.passage_number,
                       "source": sources.label(answer.passages[c.passage_number - 1]), "title": c.document_title,
                       "gold": c.passage_number in gold_numbers} for c in answer.citations],
        "status": verdict["status"],
        "reasons": verdict.get("reasons", []),
        "sentences": [{"text": s["text"], "status": s["status"], "reasons": s.get("reasons", []),
                       "markers": s.get("markers", []), "supported": s.get("supported")}
                      for s in verdict.get("sentences", [])],
        "refusal": bool(verdict.get("refusal")),
        "repairs": len(verdict.get("repair", [])),
        "citation_recall": verdict.get("citation_recall"),
        "citation_precision": verdict.get("citation_precision"),
        "token_f1": truth.token_f1 if truth else None,
        "exact_match": truth.exact_match if truth else None,
        "evidence_recall": truth.evidence_recall if truth else None,
        "contains_gold": contains_answer(answer.text, item.aliases) if item.aliases else None,
        "gold_given": len(gold_numbers),
        "retrieval": retrieval_metrics(names, gold, k) if gold and hits is None else None,
        "seconds": seconds,
        "retrieve_s": answer.timings.get("retrieve_s"),
        "generate_s": answer.timings.get("generate_s"),
        "validate_s": answer.timings.get("validate_s"),
        "tokens_per_s": trace.tokens_per_s if trace and trace.tokens_per_s > 0 else None,
        "passages": [{"number": i + 1, "source": sources.label(h), "gold": bool(n & gold), "text": h.text}
                     for i, (h, n) in enumerate(zip(answer.passages, names))],
    }
    return row


# -- metrics (pure) --------------------------------------------------------------------------------------
def retrieval_metrics(passage_names: Sequence[set[str]], gold: set[str], k: int) -> dict:
    """Recall@k, hit@k, MRR and nDCG@k over the distinct documents of the passages, in rank order.

    `passage_names`: for each passage, the names its document answers to. A document counts once, at the
    rank of its first passage; recall is the share of the gold sources among the documents retrieved.
    """
    ranked: list[set[str]] = []
    for names in passage_names[:k]:
        if names and not any(names == seen for seen in ranked):
            ranked.append(names)
    found = set().union(*ranked) & gold if ranked else set()
    relevant = [bool(names & gold) for names in ranked]
    first = next((i for i, r in enumerate(relevant) if r), None)
    dcg = sum(1 / math.log2(i + 2) for i, r in enumerate(relevant) if r)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(gold), k)))
    return {"recall": len(found) / len(gold), "hit": first is not None,
            "mrr": 0.0 if first is None else 1 / (first + 1), "ndcg": dcg / ideal if ideal else 0.0}


def contains_answer(text: str, aliases: Sequence[str]) -> bool:
    """An accepted answer occurs in the answer, as whole words after SQuAD normalisation (markers removed)."""
    padded = f" {normalize(text)} "
    return any(f" {a} " in padded for a in (normalize(x) for x in aliases) if a)


def summarize(rows: Sequence[dict], records: Sequence[dict]) -> dict:
    """Means and shares over one generator's rows (questions it failed on count only in `errors`)."""
    ok = [(r, rec) for r, rec in zip(rows, records) if "error" not in r]
    answered = [r for r, _ in ok]
    seconds = [r["seconds"] for r in answered]
    generate = [r["generate_s"] for r in answered if r.get("generate_s") is not None]
    tps = [r["tokens_per_s"] for r in answered if r.get("tokens_per_s")]
    statuses = [r["status"] for r in answered]
    return {
        "n": len(answered), "errors": len(rows) - len(answered),
        "token_f1": _mean(r["token_f1"] for r in answered),
        "exact_match": _mean(r["exact_match"] for r in answered),
        "contains_gold": _mean(r["contains_gold"] for r in answered),
        "pass": _share(statuses, "pass"), "warn": _share(statuses, "warn"), "fail": _share(statuses, "fail"),
        "repaired": _mean(r["repairs"] > 0 for r in answered),
        "citation_recall": _mean(r["citation_recall"] for r in answered),
        "citation_precision": _mean(r["citation_precision"] for r in answered),
        "evidence_recall": _mean(r["evidence_recall"] for r in answered),
        "refusal_answerable": _mean(r["refusal"] for r, rec in ok if rec["answerable"]),
        "refusal_unanswerable": _mean(r["refusal"] for r, rec in ok if not rec["answerable"]),
        # the target: answerable questions refused although a gold passage was given
        "refusal_answerable_gold": _mean(r["refusal"] for r, rec in ok if rec["answerable"] and r.get("gold_given")),
        "recall_at_k": _mean(r["retrieval"]["recall"] for r in answered if r["retrieval"]),
        "hit_at_k": _mean(r["retrieval"]["hit"] for r in answered if r["retrieval"]),
        "mrr": _mean(r["retrieval"]["mrr"] for r in answered if r["retrieval"]),
        "ndcg": _mean(r["retrieval"]["ndcg"] for r in answered if r["retrieval"]),
        "latency_median_s": statistics.median(seconds) if seconds else None,
        "latency_p95_s": percentile(seconds, 95),
        "generate_median_s": statistics.median(generate) if generate else None,
        "tokens_per_s": statistics.median(tps) if tps else None,
    }


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile, linear between the closest ranks (numpy's default); None for no values."""
    xs = sorted(values)
    if not xs:
        return None
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


# the summary columns shared by the CLI table and the HTML page: (key, header, format)
COLUMNS: list[tuple[str, str, str]] = [
    ("n", "n", "int"), ("token_f1", "F1", "num"), ("exact_match", "EM", "num"),
    ("contains_gold", "contains", "num"), ("pass", "pass", "pct"), ("warn", "warn", "pct"),
    ("fail", "fail", "pct"), ("repaired", "repaired", "pct"), ("refusal_answerable_gold", "refused w/ gold", "pct"),
    ("evidence_recall", "evid. recall", "num"),
    ("citation_precision", "cit. prec.", "num"), ("recall_at_k", "recall@k", "num"), ("mrr", "MRR", "num"),
    ("latency_median_s", "median s", "sec"), ("latency_p95_s", "p95 s", "sec"),
    ("generate_median_s", "gen. median s", "sec"), ("tokens_per_s", "tok/s", "int"),
]


def summary_table(report: dict, summary: dict | None = None) -> tuple[list[str], list[list[str]]]:
    """(headers, rows of strings): one row per generator that ran, columns with no value anywhere dropped.
    `summary`: another summary of the report than report["summary"] (a noise slice's)."""
    summary = report["summary"] if summary is None else summary
    cols = [c for c in COLUMNS if any(s.get(c[0]) is not None for s in summary.values())]
    k = report["config"]["k"]
    headers = ["generator"] + [h.replace("@k", f"@{k}") for _, h, _ in cols]
    rows = [[name] + [fmt(s.get(key), kind) for key, _, kind in cols] for name, s in summary.items()]
    return headers, rows


def noise_table(report: dict) -> tuple[list[str], list[list[str]]]:
    """A noise sweep at a glance: one row per level; per generator, the refusal rates on answerable and on
    unanswerable rows, mean F1 and "contains"."""
    names = list(report["summary"])
    metrics = [("refusal_answerable", "refuses answerable", "pct"),
               ("refusal_unanswerable", "refuses unanswerable", "pct"),
               ("token_f1", "F1", "num"), ("contains_gold", "contains", "num")]
    headers = ["noise", "asked", "skipped"] + [f"{g} {h}" for g in names for _, h, _ in metrics]
    rows = []
    for name, s in report.get("slices", {}).items():
        asked = sum(r.get("slice") == name for r in report["items"])
        rows.append([name.removeprefix("noise="), str(asked), str(s["skipped"])]
                    + [fmt(s["summary"].get(g, {}).get(key), kind) for g in names for key, _, kind in metrics])
    return headers, rows


def fmt(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "int":
        return f"{value:.0f}"
    if kind == "pct":
        return f"{100 * value:.0f}%"
    if kind == "sec":
        return f"{value:.3f}" if value < 1 else f"{value:.2f}"
    return f"{value:.3f}"


def write_report(report: dict, out: str | Path) -> tuple[Path, Path]:
    """Write OUT/report.json and OUT/report.html; returns their paths."""
    from .report_html import render

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "report.json", out / "report.html"
    json_path.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    html_path.write_text(render(report), encoding="utf-8")
    return json_path, html_path


def _checker_name(validator: Any) -> str:
    checker = getattr(validator, "checker", validator)
    return getattr(checker, "name", type(checker).__name__)


def _mean(values) -> float | None:
    xs = [float(v) for v in values if v is not None]
    return sum(xs) / len(xs) if xs else None


def _share(values: Sequence[str], what: str) -> float | None:
    return sum(v == what for v in values) / len(values) if values else None


def _slug(name: str) -> str:
    """A file-name-safe version of a dataset or document name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "doc"
