"""Evaluation runs: a dataset through retrieval, any generators and validation, into one report dict.

    run = EvalRun(dataset=load_dataset("rgb", limit=20), generators=("extractive", "sculpt"), k=5)
    write_report(run_eval(run), "runs/eval/rgb")          # report.json + report.html (evaluation.report)

An `EvalRun` describes one run (what is asked, of what, by whom, how); `run_eval` carries it out. The
runner is model-agnostic: a generator is a registered name asked through `RagPipeline.ask`, and only the
`Answer` it returns is read (text, citations, passages, validation, trace, timings). Per question and
generator it records:

- retrieval: a passage is relevant when its document is one of the item's gold sources; recall@k, hit@k,
  MRR and nDCG@k over the distinct documents of the k passages (evaluation.metrics);
- the answer, its citations, and the validation verdict with per-sentence reasons: the pipeline's own
  validation stage, repairs included, as the settings configure it (the runner validates the answer
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
gold passage, so its rows count as unanswerable in the refusal metrics. A hit that is not from a gold
document but states an accepted answer (news sites copy each other; a date in any common spelling, "Nov 15"
or "6/19/2020": metrics.states_answer) is neither: it is left out of the distractors, as RGB builds its
negatives from documents that lack the answer. An item with no gold hit in its pool
is skipped below level 1; an item the dataset marks unanswerable keeps its retrieved passages at every
level. Records are per (item, level) with a "slice" key; report["slices"] holds each level's summary and
report["summary"] the level-0 one (else the first level's).

The store is built (and reused) by evaluation.stores.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.groups import parse_groups
from pipeline.types import Answer, Hit
from validation.validate import Validator, ground_truth

from .datasets import EvalDataset, EvalItem
from .metrics import contains_answer, retrieval_metrics, states_answer, summarize
from .stores import DEFAULT_STORES, SourceIndex, build_store, slug

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]  # (asks done, asks in all, current question)
UNANSWERABLE = 1.0  # the noise level with no gold passage at all


@dataclass(frozen=True)
class EvalRun:
    """One evaluation run: the questions, who answers them, over what, asked by whom.

    dataset     the questions and the documents to ask them of (evaluation.datasets)
    generators  registered generator names, compared side by side (duplicates run once)
    k           passages per question
    limit       ask only the first `limit` items of the dataset (None: all)
    store_dir   the evaluation store (default runs/eval-stores/<dataset>; reused, and only one eval made)
    groups      the groups the questions are asked with and the documents are ingested for (None: the
                settings' default_groups); recorded in the report
    noise       the distractor shares of a noise sweep, each in [0, 1] (see the module docstring); None:
                each item is asked once over its retrieved top-k
    settings    everything else (default: Settings() from the environment); the run's store replaces its
                store folder and database URL
    """

    dataset: EvalDataset
    generators: Sequence[str]
    k: int = 5
    limit: int | None = None
    store_dir: Path | None = None
    groups: Sequence[str] | None = None
    noise: Sequence[float] | None = None
    settings: Settings | None = None

    def __post_init__(self) -> None:
        if isinstance(self.generators, str):
            object.__setattr__(self, "generators", (self.generators,))
        if not self.generators:
            raise ConfigError("give at least one generator name")
        if self.k < 1:
            raise ConfigError(f"k must be at least 1, got {self.k}")
        if self.noise is not None:
            object.__setattr__(self, "noise", check_levels(self.noise))
        if self.store_dir is not None:
            object.__setattr__(self, "store_dir", Path(self.store_dir))

    @property
    def store(self) -> Path:
        return self.store_dir if self.store_dir is not None else DEFAULT_STORES / slug(self.dataset.name)

    @property
    def items(self) -> list[EvalItem]:
        items = self.dataset.items
        return list(items[:self.limit] if self.limit is not None else items)


def run_eval(run: EvalRun, *, embedder: Any = None, checker: Any = None, progress: Progress | None = None) -> dict:
    """Ask every item of the run with each generator; the JSON-ready report.

    The keywords are the run's machinery, not part of its description: `embedder` (an
    `pipeline.embedding.Embedder`) is shared by ingestion, retrieval and the default support checker so MiniLM loads
    once; `checker` replaces that checker (and then judges every answer); `progress` is called after each ask.
    A generator that fails to load is reported with its error and left out; the others still run.
    """
    from pipeline.embedding import make_embedder
    from pipeline.rag import RagPipeline
    from pipeline.retrieve import Retriever
    from pipeline.store import Store
    from validation.support import checker_from_settings

    k, levels = run.k, run.noise
    settings = (run.settings or Settings()).model_copy(update={"store_dir": run.store, "database_url": None})
    embedder = embedder or make_embedder(settings.embedding)
    items = run.items

    t0 = time.perf_counter()
    groups = parse_groups(settings.default_groups if run.groups is None else run.groups)
    store_info, sources = build_store(run.dataset, settings, embedder=embedder, groups=groups)
    store = Store(settings)
    # the pipeline's own validation stage judges each answer (and repairs failing ones, as configured), with
    # `checker` when given; `validator` judges the answers itself when that stage is switched off
    validator = Validator(checker if checker is not None else checker_from_settings(settings.validation, embedder))
    validator.warm_up()
    rag = RagPipeline(settings, store=store, retriever=Retriever(store, embedder=embedder, settings=settings),
                      validator=validator if checker is not None else None)
    if items:
        rag.retrieve(items[0].question, groups, k)  # loads indexes, untimed

    status: dict[str, dict] = {}
    for name in dict.fromkeys(run.generators):
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
        "dataset": run.dataset.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": {"generators": list(status), "k": k, "limit": run.limit, "items": len(items),
                   "store_dir": str(run.store), "groups": list(groups),
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
                if sources.names(hit, rag.store) & gold_names:
                    gold.append(hit)
                elif not (item.aliases and states_answer(hit.text, item.aliases)):  # one that states the
                    distractors.append(hit)  # answer is no distractor, wherever it comes from (RGB's rule)
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
    if verdict.status == "not run":  # the pipeline's validation stage is off: judge the answer here
        verdict = validator.validate(answer.text, [(i + 1, h.text) for i, h in enumerate(answer.passages)],
                                     markers={c.marker: c.passage_number for c in answer.citations})
    truth = ground_truth(answer.text, {c.passage_number for c in answer.citations}, item.gold_answer,
                         gold_numbers or None)
    trace = answer.trace
    row = {
        "text": answer.text,
        "citations": [{"marker": c.marker, "passage": c.passage_number,
                       "source": sources.label(answer.passages[c.passage_number - 1]), "title": c.document_title,
                       "gold": c.passage_number in gold_numbers} for c in answer.citations],
        "status": verdict.status,
        "reasons": verdict.reasons,
        "sentences": [{"text": s.text, "status": s.status, "reasons": s.reasons, "markers": s.markers,
                       "supported": s.supported} for s in verdict.sentences],
        "refusal": verdict.refusal,
        "repairs": len(verdict.repair),
        "citation_recall": verdict.citation_recall,
        "citation_precision": verdict.citation_precision,
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
        "passages": [{"number": i + 1, "source": sources.label(h), "gold": bool(n & gold), "section": h.section,
                      "text": h.text} for i, (h, n) in enumerate(zip(answer.passages, names))],
    }
    return row


def _checker_name(validator: Any) -> str:
    checker = getattr(validator, "checker", validator)
    return getattr(checker, "name", type(checker).__name__)
