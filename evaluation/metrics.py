"""Evaluation metrics, pure functions: retrieval, answers, citations, speed, and the summaries over them.

- retrieval (`retrieval_metrics`): recall@k, hit@k, MRR and nDCG@k of the gold sources among the distinct
  documents retrieved, computed by ir-measures (trec_eval's definitions, through pytrec_eval);
- answers: SQuAD token F1 / exact match (validation.text, the same rules the validation stage reports),
  "answer contains" an accepted short answer (`contains_answer`), refusals;
- citations of a generator's answer over given passages (`citation_correct`, `well_formed`), repetition
  (`repeated_ngram_rate`) and verbatim faithfulness of quotes (`verbatim_faithful`);
- speed: `percentile` (numpy's linear rule), medians;
- summaries: `summarize` (one generator's rows of `sculptrag eval`) and `summarize_predictions` (one system's
  predictions in benchmarks/generator_eval.py), the dicts the report tables show.
"""

from __future__ import annotations

import re
import statistics
from typing import Iterable, Sequence

from pipeline.text import MARKER_RE, find_markers
from pipeline.types import GenerationResult
from validation.text import is_refusal, normalize, strip_markers, token_f1

__all__ = [
    "retrieval_metrics", "contains_answer", "states_answer", "token_f1", "is_refusal", "citation_correct", "well_formed",
    "repeated_ngram_rate", "verbatim_faithful", "percentile", "summarize", "summarize_predictions", "mean",
]


# -- retrieval -------------------------------------------------------------------------------------------
def retrieval_metrics(passage_names: Sequence[set[str]], gold: set[str], k: int) -> dict:
    """Recall@k, hit@k, MRR and nDCG@k over the distinct documents of the passages, in rank order.

    `passage_names`: for each passage, the names its document answers to. A document counts once, at the
    rank of its first passage (passages with the same names are one document); a document is relevant when
    one of its names is a gold source. Recall is the share of the gold sources among the names retrieved (a
    document stored once for two gold ids finds both). Hit, MRR and nDCG (binary gains) rank the documents;
    the ideal ranking holds min(len(gold), k) relevant documents, more when more relevant ones were found.
    """
    from ir_measures import RR, Success, nDCG, R

    if not gold:
        raise ValueError("retrieval metrics need at least one gold source")
    ranked: list[set[str]] = []
    for names in passage_names[:k]:
        if names and not any(names == seen for seen in ranked):
            ranked.append(names)
    found = set().union(*ranked) & gold if ranked else set()
    relevant = [f"d{i}" for i, names in enumerate(ranked) if names & gold]
    # the documents as ranked (scores strictly falling, so trec_eval keeps this order); qrels: the relevant
    # ones retrieved, topped up with stand-ins to len(gold), so the ideal ranking holds len(gold) relevant
    # documents (cut at k by nDCG@k), as many as the gold sources when no document covers two of them
    run = {"q": {f"d{i}": float(len(ranked) - i) for i in range(len(ranked))}}
    qrels = {"q": {**{d: 1 for d in relevant}, **{f"missing{j}": 1 for j in range(len(gold) - len(relevant))}}}
    docs = _calc([Success @ k, RR @ k, nDCG @ k], qrels, run) if relevant else {}
    # recall counts names: the gold sources are the relevant documents, the ones found the run
    at = R @ len(gold)
    names = _calc([at], {"q": {g: 1 for g in sorted(gold)}}, {"q": {g: 1.0 for g in sorted(found)}}) if found else {}
    return {"recall": names.get(at, 0.0), "hit": docs.get(Success @ k, 0.0) > 0,
            "mrr": docs.get(RR @ k, 0.0), "ndcg": docs.get(nDCG @ k, 0.0)}


def _calc(measures, qrels: dict, run: dict) -> dict:
    import ir_measures

    return {m.measure: m.value for m in ir_measures.iter_calc(measures, qrels, run)}


# -- answers ---------------------------------------------------------------------------------------------
def contains_answer(text: str, aliases: Sequence[str]) -> bool:
    """An accepted answer occurs in the answer, as whole words after SQuAD normalisation (markers removed), or
    as a whole part of a dotted or punctuated name in it: SQuAD's normalisation deletes punctuation, so the
    answer's "django.core.mail.BadHeaderError" is one word, "djangocoremailbadheadererror", which the accepted
    "BadHeaderError" is not; read with its punctuation as spaces, the answer holds it."""
    wanted = [a for a in (normalize(x) for x in aliases) if a]
    padded, spaced = f" {normalize(text)} ", f" {normalize(JOINERS.sub(' ', text))} "
    return any(f" {a} " in padded or f" {a} " in spaced for a in wanted) or any(
        _names(text, x) for x in aliases if JOINERS.search(x))


def _names(text: str, name: str) -> bool:
    """`name`, a name with punctuation in it ("local_addr", "content_type=None"), occurs in `text` as written (case
    and spacing aside) and whole: not inside a longer word or number. Both normalisations above split or join it
    with what stands around it: "TCPConnector(local_addr=('127.0.0.1', 0))" reads "tcpconnectorlocaladdr127001 0"
    and "tcpconnector local addr 127 0 0 1 0", neither of which holds "localaddr"."""
    name = " ".join(name.split())
    return bool(name) and re.search(r"(?<!\w)(?<!\d[.,])" + re.escape(name) + r"(?!\w)(?![.,]\d)",
                                    " ".join(text.split()), re.I) is not None


JOINERS = re.compile(r"[._:/()\[\]{}<>=,;'\"`](?<!\d[.,](?=\d))")  # what joins a name's parts (not "2.5", "1,000")


MONTHS = {m[:3]: i for i, m in enumerate(("january", "february", "march", "april", "may", "june", "july",
                                           "august", "september", "october", "november", "december"), 1)}
_MONTH = r"(?P<{}>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_DAY = r"(?P<{}>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?P<{}>1[89]\d\d|20\d\d)"
DATE_RE = re.compile(  # "April 29, 2015", "Apr. 29", "29 April 2015", "29th of April", "June 2020", "6/19/2020"
    rf"\b(?:{_MONTH.format('m1')}\s+{_DAY.format('d1')}\b(?:,?\s+{_YEAR.format('y1')})?"
    rf"|{_DAY.format('d2')}\s+(?:of\s+)?{_MONTH.format('m2')}(?:,?\s+{_YEAR.format('y2')})?"
    rf"|{_MONTH.format('m3')},?\s+{_YEAR.format('y3')}"
    rf"|(?P<m4>[01]?\d)/(?P<d4>[0-3]?\d)/(?P<y4>(?:19|20)?\d\d))\b", re.I)


def dates_in(text: str) -> set[tuple[int | None, int, int | None]]:
    """The calendar dates `text` states, as (year or None, month, day or None)."""
    out = set()
    for m in DATE_RE.finditer(text):
        g = {k: v for k, v in m.groupdict().items() if v}
        month = next(g[k] for k in ("m1", "m2", "m3", "m4") if k in g)
        month = int(month) if month.isdigit() else MONTHS[month[:3].lower()]
        day = next((int(g[k]) for k in ("d1", "d2", "d4") if k in g), None)
        year = next((g[k] for k in ("y1", "y2", "y3", "y4") if k in g), None)
        year = None if year is None else int(year) + (2000 if len(year) == 2 else 0)
        if 1 <= month <= 12 and (day is None or 1 <= day <= 31):
            out.add((year, month, day))
    return out


def states_answer(text: str, aliases: Sequence[str]) -> bool:
    """`contains_answer`, or, for a date answer, the same date in any common spelling: "Nov 15" or "6/19/2020"
    states "November 15 2020" / "June 19 2020" (a year the text gives must agree); a month answer ("June
    2020") needs its year. For keeping a passage that holds the answer out of an unanswerable slice, where
    saying too much is the safe side: news snippets often drop the year."""
    if contains_answer(text, aliases):
        return True
    gold = {d for a in aliases for d in dates_in(a) if d[0] is not None}
    if not gold:
        return False
    for year, month, day in dates_in(text):
        for g_year, g_month, g_day in gold:
            if month != g_month or (year is not None and year != g_year):
                continue
            if (g_day is not None and day == g_day) or (year is not None and None in (day, g_day)):
                return True  # ("May 2012" states "May 15 2012" closely enough to answer "when")
    return False


# -- a generator's answer over given passages (benchmarks/generator_eval.py) ------------------------------
WORD_RE = re.compile(r"\w+")
SENT_END_RE = re.compile(r"(?<=[.!?])\s+")


def citation_correct(result: GenerationResult, relevant: set[int], answerable: bool) -> bool:
    """Answerable: cites >=1 passage, all of them `relevant` (passage numbers). Unanswerable: a refusal
    citing nothing."""
    cited = {c.passage_number for c in result.citations}
    if not answerable:
        return is_refusal(result.text) and not cited
    return bool(cited) and cited <= relevant


def well_formed(result: GenerationResult, given: set[int]) -> bool:
    """Every raw marker names a `given` passage, and a non-refusal has at least one marker."""
    markers = find_markers(result.raw_text or result.text)
    if not markers and not is_refusal(result.text):
        return False
    return all(m in given for m in markers)


def repeated_ngram_rate(texts: Sequence[str], n: int = 3) -> float:
    """Word n-grams repeating an earlier n-gram of the same text, over all n-grams of all texts (0 if none)."""
    repeats = total = 0
    for text in texts:
        words = WORD_RE.findall(MARKER_RE.sub(" ", text).lower())
        grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
        total += len(grams)
        repeats += len(grams) - len(set(grams))
    return repeats / total if total else 0.0


def _four_grams(text: str) -> list[tuple[str, ...]]:
    words = WORD_RE.findall(text.lower())
    return [tuple(words[i:i + 4]) for i in range(len(words) - 3)]


def verbatim_faithful(text: str, passages: Sequence[str]) -> bool | None:
    """True when every quoted sentence is copied exactly, False when one is not, None when none is a quote.

    A quote is a sentence (or line) of >=5 words with >=50% of its word 4-grams found in the passages (the
    passage texts); it is faithful when it is an exact substring of a passage (case and punctuation kept,
    whitespace collapsed, the final . ! ? not required). Sentences end at . ! ? before a space, and at line
    breaks.
    """
    collapsed = [" ".join(p.split()) for p in passages]
    known = {g for p in collapsed for g in _four_grams(p)}
    verdict = None
    sentences = [s for line in text.splitlines() for s in SENT_END_RE.split(strip_markers(line))]
    for sentence in sentences:
        grams = _four_grams(sentence)
        if len(WORD_RE.findall(sentence)) < 5 or not grams:
            continue
        if sum(g in known for g in grams) / len(grams) < 0.5:
            continue  # the model's own words, not a quote
        core = sentence.rstrip().rstrip(".!?")
        verdict = any(core in p for p in collapsed)
        if not verdict:
            return False
    return verdict


# -- speed -----------------------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile, linear between the closest ranks (numpy's default); None for no values."""
    xs = sorted(values)
    if not xs:
        return None
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def median(values: Iterable[float]) -> float | None:
    xs = list(values)
    return statistics.median(xs) if xs else None


# -- summaries -------------------------------------------------------------------------------------------
def mean(values: Iterable) -> float | None:
    """The mean of the values that are not None (booleans count 0/1); None when there are none."""
    xs = [float(v) for v in values if v is not None]
    return sum(xs) / len(xs) if xs else None


def share(values: Sequence[str], what: str) -> float | None:
    return sum(v == what for v in values) / len(values) if values else None


def summarize(rows: Sequence[dict], records: Sequence[dict]) -> dict:
    """Means and shares over one generator's rows of a `sculptrag eval` run (questions it failed on count
    only in `errors`); `records` are the rows' questions (for answerability)."""
    ok = [(r, rec) for r, rec in zip(rows, records) if "error" not in r]
    answered = [r for r, _ in ok]
    seconds = [r["seconds"] for r in answered]
    statuses = [r["status"] for r in answered]
    retrieval = [r["retrieval"] for r in answered if r["retrieval"]]
    return {
        "n": len(answered), "errors": len(rows) - len(answered),
        "token_f1": mean(r["token_f1"] for r in answered),
        "exact_match": mean(r["exact_match"] for r in answered),
        "contains_gold": mean(r["contains_gold"] for r in answered),
        "pass": share(statuses, "pass"), "warn": share(statuses, "warn"), "fail": share(statuses, "fail"),
        "repaired": mean(r["repairs"] > 0 for r in answered),
        "citation_recall": mean(r["citation_recall"] for r in answered),
        "citation_precision": mean(r["citation_precision"] for r in answered),
        "evidence_recall": mean(r["evidence_recall"] for r in answered),
        "refusal_answerable": mean(r["refusal"] for r, rec in ok if rec["answerable"]),
        "refusal_unanswerable": mean(r["refusal"] for r, rec in ok if not rec["answerable"]),
        # the target: answerable questions refused although a gold passage was given
        "refusal_answerable_gold": mean(r["refusal"] for r, rec in ok if rec["answerable"] and r.get("gold_given")),
        "recall_at_k": mean(m["recall"] for m in retrieval),
        "hit_at_k": mean(m["hit"] for m in retrieval),
        "mrr": mean(m["mrr"] for m in retrieval),
        "ndcg": mean(m["ndcg"] for m in retrieval),
        "latency_median_s": median(seconds),
        "latency_p95_s": percentile(seconds, 95),
        "generate_median_s": median(r["generate_s"] for r in answered if r.get("generate_s") is not None),
        "tokens_per_s": median(r["tokens_per_s"] for r in answered if r.get("tokens_per_s")),
    }


def summarize_predictions(preds: Sequence[dict]) -> dict:
    """Means over one system's predictions in benchmarks/generator_eval.py (see its docstring)."""
    answerable = [p for p in preds if p["answerable"]]
    unanswerable = [p for p in preds if not p["answerable"]]
    faithful = [p["verbatim_faithful"] for p in preds if p["verbatim_faithful"] is not None]
    return {
        "n": len(preds),
        "f1": mean(p["f1"] for p in preds),
        "f1_answerable": mean(p["f1"] for p in answerable),
        "citation_accuracy": mean(p["citation_correct"] for p in preds),
        "well_formed": mean(p["well_formed"] for p in preds),
        "repeated_trigram_pct": 100 * repeated_ngram_rate([p["text"] for p in preds], 3),
        "verbatim_faithful": mean(faithful), "answers_with_quotes": len(faithful),
        "refusal_answerable": mean(p["refusal"] for p in answerable),
        "refusal_unanswerable": mean(p["refusal"] for p in unanswerable),
        "median_s": median(p["seconds"] for p in preds),
        "median_words_per_s": median(p["words_per_s"] for p in preds),
        "mean_steps": mean(p["steps"] for p in preds),
        "mean_tokens_per_step": mean(p["tokens_per_step"] for p in preds),
    }
