"""Text helpers for validation: sentence spans, content terms, numbers and names, refusals, SQuAD normalisation.

Sentences are cut with the project's one sentence rule (`pipeline.text.SENTENCE_RE`) inside each line,
keeping character offsets into the answer, so a failing sentence can be remasked in place. Markers, words,
stopwords and refusals are the core's text rules (`pipeline.text`), the ones the generators write with, so
the validator reads an answer the way the generators write it, whichever generator wrote it.
"""

from __future__ import annotations

import re
import string
from collections import Counter

from pipeline.text import MARKER_NUMBERS, MARKER_RE, REFUSAL_PHRASES, WORD_RE, find_markers, strip_markers
from pipeline.text import CLAIM_STOPWORDS as STOPWORDS  # the stop list of claims (one of the core's variants)
from pipeline.text import SENTENCE_RE as SENT_RE  # the one sentence rule, under the name validation always used
from pipeline.text import sentence_cuts

__all__ = [
    "MARKER_RE", "SENT_RE", "WORD_RE", "STOPWORDS", "find_markers", "sentence_spans", "strip_markers",
    "content_terms", "numbers", "key_terms", "is_refusal", "normalize", "token_f1",
]

# "3.5", "1,000", "2019"; thousands separators are dropped so "1,000" matches "1000"
NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*")
# a capitalised word or acronym ("Facebook", "PrP", "UK"); at a sentence start it is only a name if it has a
# second capital or a digit, since any first word is capitalised
NAME_RE = re.compile(r"\b[A-Z][A-Za-z0-9]*[A-Za-z]\b")
ARTICLES_RE = re.compile(r"\b(a|an|the)\b")
PUNCT = str.maketrans("", "", string.punctuation)
_LEADING_MARKERS_RE = re.compile(rf"(?:\s*{MARKER_RE.pattern})+")  # used with .match(text, pos)
# the space after a marker that the next claim follows: not a lower-case word ("[1] and ...", which reads on),
# punctuation or another marker
AFTER_MARKER_RE = re.compile(rf"\[(?:{MARKER_NUMBERS})\](\s+)(?=[^\sa-z,.;:!?)\]\[])")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) char offsets of the sentences of `text`, whitespace trimmed.

    Lines are cut at SENT_RE. SENT_RE also cuts before a "[", so markers written after the full stop
    ("... in 1889. [2] It is ...") open the next fragment: they are given back to the sentence they close.
    A marker also closes its sentence when what follows opens another one without a full stop between them
    (AFTER_MARKER_RE): "... startup file [1] --rcfile file: Execute ... [2]" is two claims, each checked
    against its own citation, as a quote of a table row, a list item or a definition ends without one.
    """
    spans: list[tuple[int, int]] = []
    for line in re.finditer(r"[^\n]+", text):
        cuts = sorted([m.span() for m in sentence_cuts(line.group())]
                      + [m.span(1) for m in AFTER_MARKER_RE.finditer(line.group())])
        cuts.append((len(line.group()), len(line.group())))
        pos = 0
        for k, (cut_start, cut_end) in enumerate(cuts):
            start, end = line.start() + pos, line.start() + cut_start
            lead = _LEADING_MARKERS_RE.match(text, start, end)
            pos = cut_end
            if lead and k > 0:
                spans[-1] = (spans[-1][0], lead.end())
                start = lead.end()
            while start < end and text[start].isspace():
                start += 1
            while end > start and text[end - 1].isspace():
                end -= 1
            if start < end:
                spans.append((start, end))
    return spans


def _stem(word: str) -> str:
    """A crude suffix stripper, applied alike to claim and evidence ("acquired", "acquires" -> "acquir")."""
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def numbers(text: str) -> list[str]:
    """The numbers in `text`, as written minus thousands separators ("1,000" -> "1000"; "3.5" kept)."""
    out = []
    for n in NUMBER_RE.findall(text):
        out.append(n.replace(",", "") if re.fullmatch(r"\d{1,3}(?:,\d{3})+", n) else n)
    return out


def content_terms(text: str) -> set[str]:
    """Lowercased, stemmed words without stopwords and without numbers (numbers are matched by `numbers`)."""
    return {_stem(w) for w in WORD_RE.findall(text.lower()) if w not in STOPWORDS and not w.isdigit()}


def key_terms(text: str) -> set[str]:
    """Terms a supporting passage must contain exactly: numbers and names (lowercased)."""
    keys = set(numbers(text))
    first = re.match(r"\W*(\w+)", text)
    for m in NAME_RE.finditer(text):
        word = m.group()
        is_first = first is not None and m.start() == first.start(1)
        if is_first and not any(c.isupper() or c.isdigit() for c in word[1:]):
            continue
        if word.lower() not in STOPWORDS:
            keys.add(word.lower())
    return keys


def normalize(text: str) -> str:
    """SQuAD normalisation after removing markers: lowercase, no punctuation, no articles, single spaces."""
    text = MARKER_RE.sub(" ", text).lower().translate(PUNCT)
    return " ".join(ARTICLES_RE.sub(" ", text).split())


_REFUSALS = tuple(normalize(p) for p in REFUSAL_PHRASES)  # pipeline.text.REFUSAL_PHRASES, normalised


def is_refusal(text: str) -> bool:
    """The normalised text contains a refusal phrase as whole words (loose, like benchmarks/generator_eval)."""
    padded = f" {normalize(text)} "
    return any(f" {p} " in padded for p in _REFUSALS)


def token_f1(pred: str, gold: str) -> float:
    """SQuAD token F1 over `normalize`d words; a refusal scores 1 against a refusal gold, else 0."""
    if is_refusal(gold):
        return float(is_refusal(pred))
    if is_refusal(pred):
        return 0.0
    p, g = normalize(pred).split(), normalize(gold).split()
    if not p or not g:
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)
