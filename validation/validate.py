"""Validate an answer against its passages: citations, support per sentence, refusal, injection, ground truth.

The validator sees the answer text and the numbered passages, nothing about how the text was made, so an
autoregressive model's answer is judged exactly as a diffusion model's. Checks, per sentence:

- citations: every [n] names a given passage (else "fail: unknown marker [n]"); a factual sentence (one that
  states something: not a refusal, a question or filler) without a citation warns, and fails when no passage
  supports it either.
- support (ALCE): citation recall: the cited passages together support the sentence (their joined text
  scores >= the checker's threshold), else fail. Citation precision: a cited passage is irrelevant when it
  alone does not support the sentence and the other citations still do without it: "warn: citation [n] does
  not support this sentence".

and for the whole answer: a refusal ("the passages do not contain the answer") passes as a refusal; a
non-refusal none of whose sentences any passage supports fails ("not in the sources"); passages that try to
instruct the model are flagged (warn), and an answer that obeys one (it carries the payload the passage asked
for, or a URL or markup written in it: validation.injection.follows) fails, the sentences carrying it
failing; with a gold answer / gold passages, exact match, token F1 and evidence recall are reported (they do
not change the verdict, which is about grounding). Verdict: fail if any sentence fails or a marker is
unknown; warn if any sentence warns or a passage is flagged; else pass. The failing sentences' character
spans are returned for repair (the generator remasks and re-denoises them).
"""

from __future__ import annotations

from typing import Any, Callable, Collection, Mapping, Sequence

from pipeline.errors import ConfigError

from .injection import follow_flags, scan
from .markup import defang
from pipeline.types import GroundTruth, SentenceReport, Status, ValidationReport
from .support import OverlapEmbeddingChecker, SupportChecker, score_pairs
from .text import content_terms, find_markers, is_refusal, normalize, numbers, sentence_spans, strip_markers, token_f1

MIN_FACT_TERMS = 2  # content words + numbers a sentence needs to state something checkable
_RANK = {"pass": 0, "warn": 1, "fail": 2}


class Validator:
    """Holds a support checker (the default loads MiniLM once in `warm_up`) and validates answers with it.

    `Validator(checker)(answer)` is the hook `pipeline.rag.RagPipeline(validator=...)` expects: it takes a
    `pipeline.types.Answer` and returns its `ValidationReport`.
    """

    def __init__(self, checker: SupportChecker | None = None) -> None:
        self.checker = checker if checker is not None else OverlapEmbeddingChecker()

    def warm_up(self) -> None:
        self.checker.warm_up()

    def __call__(self, answer: Any) -> ValidationReport:
        """An `Answer` (text with markers renumbered, citations, hits as passages 1..k) -> its report."""
        passages = [(i + 1, hit.text) for i, hit in enumerate(answer.passages)]
        markers = {c.marker: c.passage_number for c in answer.citations}
        return self.validate(answer.text, passages, markers=markers)

    def validate(self, text: str, passages: Sequence[Any], *, gold: str | None = None,
                 gold_passages: Collection[int] | None = None,
                 markers: Mapping[int, int] | None = None) -> ValidationReport:
        """The report on `text` (see the module docstring).

        `passages`: (number, text) pairs or objects with `.number` and `.text`. `markers`: the number shown
        in the text -> the passage number, when markers were renumbered after generation (the pipeline's
        answers: `{c.marker: c.passage_number for c in answer.citations}`); without it a marker is a passage
        number. `gold_passages` are passage numbers.
        """
        by_number = _passage_map(passages)
        known = _resolver(markers, by_number)
        tau = self.checker.threshold
        sentences = [_sentence(i, text, span, known) for i, span in enumerate(sentence_spans(text))]
        scores = _score(self.checker, sentences, by_number)
        for s in sentences:
            _judge(s, scores, tau, known, renumbered=markers is not None)

        cited = {n for s in sentences for n in s.passages}
        flags = scan(sorted(by_number.items()), cited=cited)
        for hit in follow_flags(text, by_number, flags):  # an answer obeying a flagged passage fails where it does
            for s in sentences:
                if s.start < hit.end and hit.start < s.end:
                    _flag(s, "fail", f"follows the instructions in passage {hit.passage}: it carries "
                                     f"{defang(hit.evidence)!r}")

        reasons: list[str] = []
        status: Status = "pass"
        refusal = is_refusal(text)
        factual = [s for s in sentences if s.factual]
        grounded = [s for s in factual if s.supported or (s.best_score or 0.0) >= tau]
        if not sentences:
            status = _worst(status, "fail")
            reasons.append("the answer is empty")
        elif refusal and not factual:
            reasons.append("a refusal: the answer says the passages do not contain the answer")
        elif not refusal and not factual:
            status = _worst(status, "warn")
            reasons.append("the answer states nothing checkable and is not a refusal")
        elif not refusal and not grounded:
            status = _worst(status, "fail")
            reasons.append("not in the sources: no sentence of the answer is supported by the passages")
        for s in sentences:
            status = _worst(status, s.status)
            reasons.extend(f"sentence {s.index + 1}: {r}" for r in s.reasons)

        for number in sorted({f.passage for f in flags}):
            names = [f.pattern for f in flags if f.passage == number]
            obeyed = any(f.obeyed for f in flags if f.passage == number)
            status = _worst(status, "fail" if obeyed else "warn")
            reasons.append(f"passage {number} contains text that instructs the model ({', '.join(names)})"
                           + ("; the answer cites it" if number in cited else "")
                           + ("; the answer obeys it" if obeyed else ""))

        precision = [ok for s in sentences for ok in s.precision.values()]
        return ValidationReport(
            status=status, reasons=reasons, sentences=sentences,
            coverage=sum(bool(s.passages) for s in factual) / len(factual) if factual else None,
            citation_recall=sum(bool(s.supported) for s in factual) / len(factual) if factual else None,
            citation_precision=sum(precision) / len(precision) if precision else None,
            unknown_markers=sorted({m for s in sentences for m in s.markers if known(m) is None}),
            refusal=refusal, injection=flags,
            ground_truth=ground_truth(text, cited, gold, gold_passages),
            failing_spans=[(s.start, s.end) for s in sentences if s.status == "fail"],
            checker=getattr(self.checker, "name", type(self.checker).__name__),
            thresholds=dict(getattr(self.checker, "thresholds", {"support": tau})),
        )


def validate(text: str, passages: Sequence[Any], *, gold: str | None = None,
             gold_passages: Collection[int] | None = None, checker: SupportChecker | None = None,
             markers: Mapping[int, int] | None = None) -> ValidationReport:
    """Validate one answer; see `Validator.validate`. Without `checker` a default one is built (and MiniLM
    loaded) per call: for many answers, build one `Validator` or checker and reuse it."""
    return Validator(checker).validate(text, passages, gold=gold, gold_passages=gold_passages, markers=markers)


def ground_truth(text: str, cited: Collection[int], gold: str | None,
                 gold_passages: Collection[int] | None) -> GroundTruth | None:
    """Exact match and token F1 against `gold` (SQuAD normalisation, markers removed; a refusal matches a
    refusal gold), and the share of `gold_passages` the answer cites. None when neither is given."""
    if gold is None and gold_passages is None:
        return None
    em = f1 = recall = None
    if gold is not None:
        em = is_refusal(text) if is_refusal(gold) else normalize(text) == normalize(gold)
        f1 = token_f1(text, gold)
    if gold_passages:
        gold_set = set(gold_passages)
        recall = len(gold_set & set(cited)) / len(gold_set)
    return GroundTruth(exact_match=em, token_f1=f1, evidence_recall=recall)


# -- steps -----------------------------------------------------------------------------------------------
def _passage_map(passages: Sequence[Any]) -> dict[int, str]:
    out: dict[int, str] = {}
    for p in passages:
        number, text = p if isinstance(p, tuple) else (getattr(p, "number", None), getattr(p, "text", None))
        if not isinstance(number, int) or not isinstance(text, str):
            raise ConfigError(f"a passage must be (number, text) or have .number and .text, got {p!r}")
        if number in out:
            raise ConfigError(f"passage number {number} is given twice")
        out[number] = text
    return out


def _resolver(markers: Mapping[int, int] | None, passages: Mapping[int, str]) -> Callable[[int], int | None]:
    """marker shown -> the given passage it names, or None (an unknown marker)."""
    def known(marker: int) -> int | None:
        number = marker if markers is None else markers.get(marker)
        return number if number in passages else None

    return known


def _sentence(index: int, text: str, span: tuple[int, int], known: Callable[[int], int | None]) -> SentenceReport:
    """A sentence's report before judging: its markers, the passages they name, whether it is factual."""
    raw = text[span[0]:span[1]]
    shown = list(dict.fromkeys(find_markers(raw)))
    claim = strip_markers(raw)
    checkable = len(content_terms(claim)) + len(numbers(claim)) >= MIN_FACT_TERMS
    factual = checkable and not is_refusal(claim) and not claim.rstrip().endswith("?")
    named = [known(m) for m in shown]
    return SentenceReport(index=index, text=raw, start=span[0], end=span[1], markers=shown,
                          passages=list(dict.fromkeys(n for n in named if n is not None)), factual=factual)


def _evidence(numbers_: Collection[int], passages: Mapping[int, str]) -> str:
    return "\n\n".join(passages[n] for n in sorted(numbers_))


def _score(checker: SupportChecker, sentences: list[SentenceReport],
           passages: Mapping[int, str]) -> dict[tuple[int, frozenset[int]], float]:
    """One batch of checker scores: each factual sentence against every passage alone, its cited passages
    together, and its cited passages less each one (the last two only when it cites two or more)."""
    keys: list[tuple[int, frozenset[int]]] = []
    for s in sentences:
        if not s.factual:
            continue
        keys.extend((s.index, frozenset([n])) for n in passages)
        cited = frozenset(s.passages)
        if len(cited) > 1:
            keys.append((s.index, cited))
            keys.extend((s.index, cited - {n}) for n in cited if len(cited) > 2)
    keys = list(dict.fromkeys(keys))
    claims = {s.index: strip_markers(s.text) for s in sentences}
    values = score_pairs(checker, [(claims[i], _evidence(ns, passages)) for i, ns in keys]) if keys else []
    return dict(zip(keys, values))


def _judge(s: SentenceReport, scores: Mapping[tuple[int, frozenset[int]], float], tau: float,
           resolve: Callable[[int], int | None], *, renumbered: bool) -> None:
    """Set the sentence's support fields, status and reasons from the scores."""
    known = {m: resolve(m) for m in s.markers if resolve(m) is not None}  # marker -> passage
    for m in s.markers:
        if m not in known:
            _flag(s, "fail", f"unknown marker [{m}]: " + ("it names no passage of this answer" if renumbered
                                                          else f"no passage {m} was given"))
    if not s.factual:
        return
    alone = {ns: v for (i, ns), v in scores.items() if i == s.index and len(ns) == 1}
    if alone:
        # (scores within 1e-5 are a tie, won by the first passage: two passages holding the same sentence
        # must not swap on float noise, e.g. between embedding backends)
        best_set, s.best_score = max(alone.items(), key=lambda kv: (round(kv[1], 5), -min(kv[0])))
        s.best_passage = min(best_set)
    label = {n: m for m, n in known.items()}  # passage -> marker shown
    if not known:
        if (s.best_score or 0.0) >= tau:
            _flag(s, "warn", f"no citation (passage {s.best_passage} supports it)")
        else:
            _flag(s, "fail", "no citation, and no passage supports it")
        return
    cited = frozenset(s.passages)
    s.support_score = scores[(s.index, cited)] if len(cited) > 1 else alone[cited]
    s.supported = s.support_score >= tau
    if not s.supported:
        hint = ""
        if (s.best_score or 0.0) >= tau and s.best_passage not in cited:
            hint = f"; passage {s.best_passage} supports it"
        _flag(s, "fail", f"not supported by its citation{'s' if len(cited) > 1 else ''} "
                         f"{''.join(f'[{label[n]}]' for n in s.passages)}{hint}")
        s.precision = {m: alone[frozenset([n])] >= tau for m, n in known.items()}
        return
    for m, n in known.items():
        rest = cited - {n}
        rest_score = (scores[(s.index, rest)] if len(rest) > 1 else alone[rest]) if rest else 0.0
        relevant = alone[frozenset([n])] >= tau or rest_score < tau  # ALCE: irrelevant = not alone, not needed
        s.precision[m] = relevant
        if not relevant:
            _flag(s, "warn", f"citation [{m}] does not support this sentence")


def _flag(s: SentenceReport, status: Status, reason: str) -> None:
    s.status = _worst(s.status, status)
    s.reasons.append(reason)


def _worst(a: Status, b: Status) -> Status:
    return a if _RANK[a] >= _RANK[b] else b
