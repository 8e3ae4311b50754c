"""Text rules every package shares: citation markers, sentences, words, stopwords, the refusal.

One definition each, so the generator that writes a marker, the validator that reads it and the app that
draws it can never disagree. Where two packages need a rule to behave differently (the sentence cut of
ingestion against the one of answers, the stop lists of BM25, of the question features and of claims), the
variants are defined here, side by side, each named for what it is and derived from the base where it can
be; the differences are explained next to them.

Only the standard library (re, math, collections): importing this module is light. The stemming word rule (PyStemmer) is in `pipeline.words`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Iterable, Sequence

# --- citation markers ---------------------------------------------------------------------------------

# what is between the brackets of a marker: "3", "1, 2" (only plain integers are markers)
MARKER_NUMBERS = r"\d+(?:\s*,\s*\d+)*"
# one marker: "[3]", "[1, 2]"; "[1][2]" is two matches. group(1): the numbers
MARKER_RE = re.compile(rf"\[({MARKER_NUMBERS})\]")
# a run of markers, "[3]", "[1, 2]" or "[1][2]" (finalize_citations writes "[1, 2]" as "[1][2]"), no group
MARKER_RUN_RE = re.compile(rf"(?:\[{MARKER_NUMBERS}\])+")


def find_markers(text: str) -> list[int]:
    """Passage numbers cited in `text`, in order of appearance (with repeats)."""
    out: list[int] = []
    for m in MARKER_RE.finditer(text):
        out.extend(int(n) for n in m.group(1).split(","))
    return out


def strip_markers(text: str) -> str:
    """Text without [n] markers, no space left before punctuation, whitespace collapsed."""
    text = MARKER_RE.sub(" ", text)
    return " ".join(re.sub(r"\s+([.,;:!?])", r"\1", text).split())


# --- sentences ----------------------------------------------------------------------------------------

# The sentence boundary of answers and passages: the whitespace after ".", "!" or "?" when a capital, a
# digit, a quote, "(" or "[" follows. The extractive generator, the validator (per line, see
# validation.text.sentence_spans), the support checker and the sculpt model's features (its checkpoint was
# trained with these sentences) all cut here. It also cuts before a marker written after the full stop
# ("... in 1889. [2] It ..."); the validator gives such markers back to the sentence they close.
# Not after an initial or a title that precedes a name or a number: "Robert B. Saucier", "J. F. Lawton",
# "Bankr. P. 2003", "Mr. Zender", "Dr. Smith", "St. Andrew", "No. 1", "0.72 vs. 1.45". On the eval
# stores this keeps ~3% of the cuts whole, nearly all of them inside names and legal citations; a capital
# letter that does end a sentence ("... Appendix A. The ...") is read on into the next. Nor after the Latin
# abbreviations that introduce an example or a gloss, which never end a sentence ("... much slower (eg. 20 to
# 30 times) ...", "e.g. PostgreSQL", 'i.e. "strict"': common in manuals, where the cut left a quote at "(eg.").
TITLES = ("Mr", "Mrs", "Ms", "Dr", "Prof", "St", "No", "Nos", "Fig", "vs")
GLOSSES = ("e\\.g", "E\\.g", "i\\.e", "I\\.e", "eg", "Eg", "ie", "cf", "Cf", "viz", "approx", "incl", "resp")
NOT_AFTER = (r"(?<![\s(][A-Z]\.)(?<!^[A-Z]\.)" + "".join(rf"(?<!\b{t}\.)" for t in TITLES)
             + "".join(rf"(?<!\b{g}\.)" for g in GLOSSES))
SENTENCE_RE = re.compile(NOT_AFTER + r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
# Nor after the number that opens a title line ("6.34.4. EXAMPLES", "19.4.1. Memory", "Chapter 19. Server
# Configuration", "Table 9.33. Date/Time Operators"): DocBook and most manuals number their titles so, and the
# number alone is no sentence. A list's "1." stays apart from its item, which is quoted without it. A lookbehind
# cannot see where the line starts, so the cuts are taken through `sentence_cuts`.
LEADING_NUMBER_RE = re.compile(r"\s*(?:(?i:chapter|section|part|appendix|table|figure|example)\s+[A-Z\d]{1,3}"
                               r"(?:\.\d{1,3})*|\d{1,3}(?:\.\d{1,3})+)\.")


def sentence_cuts(text: str, start: int = 0, end: int | None = None) -> list[re.Match]:
    """SENTENCE_RE's cuts in text[start:end], one line, but none right after the number that opens it as a title's
    (LEADING_NUMBER_RE)."""
    end = len(text) if end is None else end
    return [m for m in SENTENCE_RE.finditer(text, start, end) if not LEADING_NUMBER_RE.fullmatch(text, start, m.start())]


def line_sentences(line: str) -> list[str]:
    """A line's sentences (`sentence_cuts`), as `SENTENCE_RE.split` would give them."""
    out, at = [], 0
    for m in sentence_cuts(line):
        out.append(line[at:m.start()])
        at = m.end()
    return [*out, line[at:]]

# Ingestion's variant, used only to pack chunks (ingest/chunk.py): closing quotes and brackets after the
# stop ('... Prussia." He') are part of the boundary, and an opening quote or bracket starts a sentence
# only before a capital or a digit (so not before "[2]" or '"...'). It is kept apart because chunk texts,
# and with them every stored chunk and its id, depend on it; on the shared example documents the two
# rules cut ~0.6% of lines differently. The closing quotes and brackets are group 1: they end the sentence
# before the cut, and the text is cut at the whitespace only (`ingest.chunk.split_sentences`: "(See [2].) Then"
# -> "(See [2].)", "Then"; a plain `split` would drop them, as chunking did up to format v9).
CHUNK_SENTENCE_RE = re.compile(r"(?<=[.!?])([\"')\]]*)\s+(?=[\"'(\[]?[A-Z0-9])")

# a line that opens with the term it defines: "-M buildername: Alternative to -b. Uses the ...", or an API
# reference's parameter as Sphinx writes it, "timeout (float) – The number of seconds to wait ... Defaults to
# 30.0.", with its default where it has one, "pool_timeout=30 – number of seconds to wait ..." (ingest keeps
# such an entry in one chunk; the sculpt generator reads its later sentences with the term)
TERM_RE = re.compile(r"^\s*([^\n:]{1,80}?):\s|^\s*([\w.*-]{1,60}(?:=[^\s–—]{1,40})?(?:\s\([^()\n]{1,40}\))?)\s[–—]\s")

# an API reference's entry as Sphinx's Python domain writes it once its term is joined to its text
# (ingest/definitions.py): "psutil.cpu_freq(percpu=False): Return CPU frequency ...", "class
# jinja2.ChoiceLoader(loaders): This loader works ...", "rlimit(resource, limits=None) → tuple: Get or set ...",
# "classmethod AESCCM.generate_key(bit_length): Securely generates ..." (a method's kind before it)
API_ENTRY_RE = re.compile(r"^\s*(?:(?:abstract|abstractmethod|async|classmethod|static|staticmethod) )*"
                          r"(class |exception )?([A-Za-z_][\w.-]*)"  # the name, then its parameters and
                          r"\((?:[^()\n]|\([^()\n]*\))*\)(?: → [^\n:]{1,60})?: ")  # what it returns, then the text


def api_entry(text: str) -> str:
    """The name of the API entry that `text` opens ("psutil.cpu_freq()", "jinja2.ChoiceLoader"), or "". Its
    later paragraphs follow it without naming it ("Availability: Linux, FreeBSD"): ingest puts a chunk cut
    from the entry in the entry's section (ingest.chunk), and the sculpt generator reads the lines below it in
    a passage as the entry's (generator/sculpt/relevance.section_heads)."""
    m = API_ENTRY_RE.match(text)
    return "" if m is None else m.group(2) + ("" if m.group(1) else "()")


# An entry's name as a reference titles it: a setting ("PASSWORD_RESET_TIMEOUT", "worker_lost_wait"), a function
# ("os.uptime()"), an option ("--num-callers"), a class ("HttpRequest"); one word of code, not a topic ("Caching")
ENTRY_NAME_RE = re.compile(r"^(?:--?[A-Za-z][\w-]*|[A-Za-z_]\w*(?:(?:\.|::)[A-Za-z_]\w*)*(?:\s?\(\))?)$")


def entry_name(title: str) -> bool:
    """The title names a reference entry: one word of code (`ENTRY_NAME_RE`) that a plain word is not: with an
    underscore, a dot or "::" inside, a call's "()" (gtk-doc writes "gnutls_hash_copy ()"), a leading dash, or a
    capital after a small letter."""
    t = title.strip()
    return bool(ENTRY_NAME_RE.match(t)) and ("_" in t or "." in t or "::" in t or t.endswith("()")
                                             or t.startswith("-") or re.search(r"[a-z][A-Z]", t) is not None)


# --- words --------------------------------------------------------------------------------------------

# A word of lowercased text: letters and digits ("don't" is "don", "t"). Question matching, the extractive
# scores, the sculpt features and the validator's content terms use it.
WORD_RE = re.compile(r"[a-z0-9]+")
# A BM25 term before stemming (pipeline.words.tokenize), cased input: letters and digits with one
# apostrophe suffix ("kernel's", "kernel’s"). It is part of every lexical index's terms.
BM25_TOKEN_RE = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)?")


def words(text: str) -> list[str]:
    """The WORD_RE words of `text`, lowercased, in order (stopwords included)."""
    return WORD_RE.findall(text.lower())


def idf_cover(asked: Iterable[str], texts: Sequence[set[str]]) -> list[float]:
    """The share of the question's IDF mass that each text covers, in [0, 1]: `asked` the question's words,
    `texts` each text's set of words, IDF log(1 + n / (1 + df)) over those n texts. The extractive
    baseline's score and the sculpt model's cover feature and relevance rule.

    The sums are exact (`math.fsum`): a float sum taken in a set's iteration order, which changes with
    PYTHONHASHSEED from one process to the next, could differ in its last bit between two texts that cover
    the same words, and so break their tie differently in each process: the same question over the same
    passages must get the same answer everywhere."""
    asked = set(asked)
    df = Counter(w for t in texts for w in t & asked)
    n = max(len(texts), 1)
    idf = {w: math.log(1 + n / (1 + df[w])) for w in asked}
    total = math.fsum(idf.values()) or 1.0
    return [math.fsum(idf[w] for w in asked & t) / total for t in texts]


# --- stopwords ----------------------------------------------------------------------------------------
# Four lists, each a superset of QUESTION_STOPWORDS. Each one's exact members are part of something that
# must not change without a reason: a trained checkpoint, stored indexes, calibrated thresholds.

# Words of a question that never count as a match: the extractive generator's scores.
QUESTION_STOPWORDS = frozenset(
    "a an and are as at be by for from has have how in is it its of on or that the this to was were what when "
    "where which who why will with does do did can".split()
)
# The sculpt model's question match and relevance terms: the checkpoint was trained with "not" left out too.
SCULPT_STOPWORDS = QUESTION_STOPWORDS | {"not"}
# BM25 terms (pipeline.words.tokenize): pronouns, modals and negations too. Indexes are built with it.
BM25_STOPWORDS = QUESTION_STOPWORDS | frozenset(
    "about been but could he her his i into no not she should than their them then there these they those "
    "whom would you your".split()
)
# The validator's content terms of a claim: claims also carry auxiliaries, pronouns and hedges, and talk
# about "the passage" (validation.text.content_terms, key_terms).
CLAIM_STOPWORDS = QUESTION_STOPWORDS | frozenset(
    "about after all also am any because been before being between both but could each during had having he her "
    "here hers him his i if into more most much my no nor not now of off once only other our ours out over own "
    "same she should so some such than their theirs them then there these they those through too under until up "
    "us very we while whom would you your yours according passage passages states stated said says".split()
)

# --- the refusal --------------------------------------------------------------------------------------

# The sentence a generator answers with when the passages do not hold the answer (every generator writes
# exactly this; the prompt asks the model to say it).
REFUSAL = "The passages do not contain the answer."
# What counts as a refusal when reading an answer (validation.text.is_refusal matches them, normalised, as
# whole words): the canonical sentence and the looser phrasings models write.
REFUSAL_PHRASES = (REFUSAL, "do not contain the answer", "does not contain the answer",
                   "do not contain this information", "does not contain this information")
