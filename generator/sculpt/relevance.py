"""Sentence relevance: how well each passage sentence answers the question, from signals that hold out of domain.

relevance(s) = cos(q, s) + COVER_WEIGHT * cover(s) + TYPE_WEIGHT * typed(s)
               - max(HEADING * heading(s), TITLE * title(s), REFERRAL * referral(s))
               + ROW_LABEL * (labelled_row(s) or named_entry(s))
               - NOTHING_NEW * nothing_new(s) - OTHER_YEAR * other_year(s) - OTHER_ENTRY * other_entry(s)
               + LEARNED_WEIGHT * selector(s)

A sentence whose text an earlier passage already holds (a look-alike document) is not scored again: an
answer never quotes the same words twice.

- cos: the pretrained embedder's question-sentence similarity. The bundled model fine-tunes the top layers
  of all-MiniLM-L6-v2; the untouched ones are kept beside them (sharing the embeddings and the frozen
  lower layers), so the process has the pretrained sentence embedder as sentence-transformers computes it
  (mean pooling, L2 norm) at no extra load. It reads the EMBED_TOP sentences with the most lexical evidence
  (the terms below); the others count cos 0. A question of several sentences (a user's situation, then what
  they ask) is compared whole and sentence by sentence (`question_parts`), and the closest counts.
- cover: the share of the question's IDF-weighted content words the sentence holds (the extractive
  baseline's score, on Snowball stems: "incorporated" meets "incorporation"; a possessive's "s" is no word),
  in [0, 1]; for a question of several sentences, the larger of that and its share of one part's words (a
  sentence of the question, or its question proper: `part_cover`), as cos compares it with each.
- typed: 1 when a factoid question asks for a date, a number, a name or a piece of code and the sentence
  holds one the question does not already name ("When was X released?" wants a sentence with a date in it;
  "What inventory did X report?" a number; "Which rebase option stashes my changes first?" or "How do I
  see what is staged?" an option, a command, a path or an identifier: "--autostash", "git diff --cached").
- heading: a title line (short, capitalised, unpunctuated; a section number or a caption's label before it,
  "Table 9.33. Date/Time Operators", and a name with a digit in it, "HTTP/2 Support", allowed; a number standing
  alone is not) or a table's header row (cells without values) loses HEADING: it names a topic or columns.
- referral: a short sentence that only sends the reader elsewhere ("See git-credential-cache(1) for details.",
  "For more background, see ...", `is_referral`) loses REFERRAL, as much as a marked title: it names the topic
  it points at, so it matches a question on it as well as the answer does, and says nothing; its figures are an
  address ("Section 19.4", "(1)"), never the value asked for. A credit ("pam_exec was written by Thorsten Kukuk
  <kukuk@...>", "Author: ...", `is_credit`) loses it too unless the question asks who made something: a manual
  page's AUTHOR section names the page's subject, so it matched every question about it.
- title: a line the document itself marks as a section title (a passage's `section`, which ingest takes
  from the parsed document's title elements) loses TITLE, whatever its case: "Git tracks content not
  files" is a heading in git's manual, though a sentence-case one that the look of a line cannot tell.
- labelled row: a table row whose label (first cell) is what the question asks about and which holds a
  value gains ROW_LABEL ("Inventory | 2021: $770,248 | 2020: $668,525" for "What inventory did ... report?").
  Where the best sentence is a row that names the column asked for, no further quote is a row that names it
  less well (`off_column_rows`): a long row's other piece under the same label holds other columns' values.
- labelled entry: a definition list's entry whose term the question names gains ROW_LABEL as such a row does
  ("cpu: maximum CPU time (minutes)" for "... what unit is the value of the cpu item in?"; DocBook's
  variablelists, Sphinx's parameters): the term written as a name of its own, as code or, in lower case,
  quoted or followed by what it is ("its delay= option", "the 'sufficient' keyword", "the cpu item";
  `named_entry`), and the entry's later sentences with it (read with their term: "maintenance_work_mem
  (integer): It defaults to 64 megabytes.").
- nothing new: a text whose content words are all in the question ("Galaxy Gaming, Inc." for "In which
  state is Galaxy Gaming incorporated?") loses NOTHING_NEW, so it is never quoted: it cannot hold the answer.
- other year: a sentence that names years (with what it is read with), none of them the one the question asks
  about, loses OTHER_YEAR: "The 2019 Nobel Prize in Literature was awarded to ..." does not answer "Who was
  awarded the 2021 Nobel Prize in Literature?", nor does last year's revenue this year's (`asked_years`: not a
  year the question is only bounded by, "since 2019", nor one it quotes, "'Error 2006: ...'"; a span, "2020-21",
  names each of its years). A sentence that names no year is not judged. Chosen on rgb's and business_docs' dev
  halves: 0.5 and 1.0 gave rgb one more answer of 50 with the fact and changed no refusal; 1.0 (F1 .103 -> .112,
  against .109) keeps such a sentence out of a further quote beside one it ties with (the generator's MORE_MARGIN).
- other entry: a reference entry's field line ("Default: | disabled - httpd will return 404 (Not Found)") read
  under a title that names code ("FallbackResource Directive"), where the question names code and none of it is
  in that title or the line's passage ("What is the default value of the MaxRequestWorkers directive?"), loses
  OTHER_ENTRY, as much as another year's sentence: it gives another entry's value (`other_entry`). So does every
  sentence of a passage that is another entry's (its section names one, or a part of one: `passage_entry`) where
  the question names an entry that a passage is and asks for no code (`other_entry_passages`): "What does
  gnutls_pkcs12_mac_info() return ...?" is not answered by gnutls_pkcs12_generate_mac()'s "Returns".
- a definition's term: for a question that asks for code, the first sentence of a line that opens with a
  term ("-M buildername: Alternative to -b. Uses the Sphinx make_mode module ...") scores at least what the
  line's later sentences do (`defined_terms_answer`): they describe the term, only it names it.
- a lead-in's list: the lines under a line that ends with a colon ("Important points:", "It includes:") score
  at least what the lead-in does, plus TYPE_WEIGHT when the question asks for a list
  (`listed_items_answer`): the items answer "What important points are listed ...?" though they share no
  word with it. The lead-in itself loses LEAD_IN unless it holds a value of the asked kind: quoted alone
  ("... is built with the following components:") it promises an answer and gives none. For a question that
  does not ask for code, a list stops at its first line of code, and a lead-in whose list opens with one
  keeps its score: "The requests-oauthlib library allows Requests users to easily make OAuth 1 authenticated
  requests:" is the statement, its example (">>> import requests", "<Response [200]>") says nothing. A
  question that asks what a thing is by its name alone ("What is LayoutParser?", DEFINITION_QUESTION) is not
  answered by its parts: the items keep their own scores and the lead-in ranks below them.
- context: a sentence is read together with what it is about where that adds a word the question asks and
  the sentence lacks; its words count in its cover and the embedder reads "context: sentence". A later
  sentence of a definition is read with its term ("maintenance_work_mem (integer): It defaults to 64
  megabytes."); any other sentence with the title of its section (`section_heads`), where the title adds at
  least SECTION_WORDS such words ("Building an MPM as a DSO module: This feature is enabled using the
  --enable-mpms-shared option ..." for "Which configure option builds the MPMs as DSO modules?"). One
  shared word is not enough: a manual's titles repeat its product's name ("Git tracks content not files").
- a sentence that cannot be read alone (`dependent_heads`): one that leans on the sentence before it ("By
  default this is set to 3 minutes.", "Defaults to 30.0.", "Note that this cursor ...": a back-reference or
  a subject-less verb first) is read after that sentence, and a definition entry's field line ("Default:
  10.0 seconds." under "worker_lost_wait") after the entry's prose, where it adds to that what the question
  asks: a value of the asked kind or a question word that it lacks (`adds_to`); the embedder keeps the
  closer of its readings with and without it. A section title that names what is asked is read instead.
- API references: a signature's parameter list is left out of what is compared with the question ("class
  sqlalchemy.pool.QueuePool(creator, pool_size=5, max_overflow=10, ...): A Pool that ..." is read as "class
  sqlalchemy.pool.QueuePool(): A Pool that ..."; its defaults still count as values), and a parameter's entry
  as Sphinx writes it ("timeout (float) – The number of seconds to wait ... Defaults to 30.0.") is a
  definition whose later sentences are read with the parameter's name (`unsigned`, TERM_RE); where a passage
  holds the entry of a parameter the question names, its signature ranks below that entry
  (`signatures_under_named_entries`).
- questions in the text: a line that ends with a question (a FAQ's entry, an interviewer's line) answers
  nothing and loses TITLE; it titles the lines under it, which are read with it as with a section's title.
- code: for a question that does not ask for code, a line of code (">>> cur.fetchmany(2)", an import, an
  assignment, a bare call, a C prototype) loses HEADING (`is_code_line`): it shares the question's names and says
  nothing.
  An example's scaffolding (an import, a def or class header line: SCAFFOLD_LINE) loses it for every
  question, and is never lifted as a list item.
- what is asked: a question that also tells the user's situation ("... hostnames are resolved on my machine.
  How do I make the proxy resolve them?") is typed by its question proper, the sentences that open with a
  question word and end with "?" (`question_proper`); "Is there a setting / an option ...?" asks for code, as
  "Which setting ...?" does, and so does a bare "How?" after what the user wants ("... send its requests from one
  particular IP address. How?"), as "How do I ...?" does.
  Only the question proper's names must be named by a passage (`unnamed`): "... fails in CI." is the user's.
- several things asked: a question that asks two things ("Does Requests retry failed connections? If not, how
  do I turn retries on?", "Why ..., and how can I test them?": `sub_questions`) is also scored per thing; the
  generator quotes the best sentence for each next after the best overall (`each_part_quoted`).
- what to do: a question that asks for a fix, a change or what the manual suggests ("What's the fix?", "How do
  I turn that off?", "How should I install it?", `asks_advice`) is typed by a sentence that says what to do
  ("To fix this, make sure you ...", "... set it to READ-COMMITTED.", "... could be enabled with show_index",
  ADVICE), as a number types a "how many"; and such a sentence that opens with "To fix this" or "In order to
  change this behavior" is read after what it changes (REMEDY_RE), for that question only, whatever words it
  shares with the question: the change is what is asked.
- an entry's name: a sentence under a section title that names a reference entry (`entry_name`: a setting, a
  function, an option) and that does not name it is quoted after that name (`entry_leads`; the grammar's lead).
- selector: the learned sentence selector's logit, with a small weight (it ranks well on the corpora it
  was trained on and on text near them, such as financial tables, poorly on Python library manuals; ranking
  without it and keeping it for answer-or-refuse only was measured and lost on manuals and business_docs:
  docs/benchmarks.md, "Twenty-sixth round"). Questions of several sentences, which it never trained on, are
  ranked without it (the generator's `told_rank`; "Thirty-first round") and decided with half of it
  (`told_share`; "Fiftieth round").

The weights and the answer threshold that uses this score were chosen on corpora the model never trained
on (docs/benchmarks.md, "choosing the answer rule").
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Callable, Iterator, Sequence

import numpy as np

from pipeline.text import SCULPT_STOPWORDS, TERM_RE, api_entry, entry_name, idf_cover, words
from pipeline.words import ENTITY_NOISE, stem

from .features import _word_at, sentence_id, sentence_spans, split_sentence_id

WORD_MAX_TOKENS = 256  # the embedder's max_seq_length
COVER_WEIGHT = 1.0
TYPE_WEIGHT = 0.5
LEARNED_WEIGHT = 0.05
HEADING = 0.5  # taken off a heading line ("NFL Commissioners and Presidents"): it names a topic, answers nothing
REFERRAL = 1.0  # taken off a sentence that only sends the reader elsewhere ("See ... for details."): no answer
TITLE = 1.0  # taken off a line the document marks as a section title: surely a heading, so more than HEADING
EMBED_TOP = 12  # texts the embedder reads per request, by lexical evidence (12, 16 and 24 rank alike on the dev sets)
SENTENCE_TOKENS = 128  # and of each, its first tokens (sentences of over ~100 words are rare and say their topic early)
ROW_LABEL = 0.5  # added to a table row labelled with what the question asks about, holding a value
OTHER_YEAR = 1.0  # taken off a sentence that names years and none the question asks about
OTHER_ENTRY = OTHER_YEAR  # taken off a reference entry's field line ("Default: ...") of an entry the question does
# not name, where it names one (`other_entry`)
NOTHING_NEW = 10.0  # taken off a text that adds no content word to the question's: it cannot be the answer


Hidden = Callable[[np.ndarray, Sequence[int]], np.ndarray]  # (n, T) ids, real lengths -> (n, T, d) states


def embed(hidden: Hidden, tokenizer, texts: Sequence[str], batch_size: int = 16,
          max_tokens: int = WORD_MAX_TOKENS, seen: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """(n, d) unit vectors: mean of the last hidden states over real tokens (all-MiniLM-L6-v2's pooling), from
    `hidden`, the pretrained encoder of either runtime (SculptNumpy.embed_hidden, or the torch one's).
    Texts go through in batches of similar length (sorted by token count), so short sentences are not
    padded to the longest one. `seen`: vectors by text, read where they are there and kept for the texts
    embedded (one request's sentences, read again for each thing its question asks)."""
    if seen is not None:
        new = [t for t in texts if t not in seen]  # (as they come, so a first call batches as it would alone)
        seen.update(zip(new, embed(hidden, tokenizer, new, batch_size, max_tokens)))
        return np.stack([seen[t] for t in texts]) if texts else np.zeros((0, 0), dtype=np.float32)
    ids = tokenizer(list(texts), truncation=True, max_length=max_tokens)["input_ids"] if texts else []
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out: np.ndarray | None = None
    for b in range(0, len(order), batch_size):
        rows = order[b: b + batch_size]
        lengths = [len(ids[i]) for i in rows]
        input_ids = np.full((len(rows), max(lengths)), tokenizer.pad_token_id, dtype=np.int64)
        for j, i in enumerate(rows):
            input_ids[j, : len(ids[i])] = ids[i]
        states = hidden(input_ids, lengths)
        if out is None:
            out = np.empty((len(ids), states.shape[-1]), dtype=np.float32)
        mask = (np.arange(states.shape[1])[None] < np.array(lengths)[:, None])[..., None]
        mean = (states * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
        out[rows] = mean / np.maximum(np.linalg.norm(mean, axis=-1, keepdims=True), 1e-12)
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


# ---------------------------------------------------------------- expected answer type
NUMBER_RE = re.compile(r"(?<![\w.])[$€£]?\d[\d,.]*(?:\s?(?:%|percent|million|billion|thousand|bn|m|k)\b)?")
NUMBER_WORDS = re.compile(r"\b(two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|"
                          r"sixty|seventy|eighty|ninety|hundred|dozen|twice|thrice)\b", re.I)  # not "one": "one of the"
# a name written with an inner capital or a digit: "PostgreSQL", "psycopg2"
CODED_NAME = r"[A-Za-z][\w+-]*[A-Z0-9][\w+-]*"
# a version: "version 1.4", "v2.0.1", "Availability: 2.3.0", "Changed: 2.1.0", "since 3.1", a dotted triple ("2.3.0"),
# or a decimal after a CODED_NAME ("PostgreSQL 9.5", "psycopg2 2.9")
VERSION_RE = re.compile(r"\b(?:(?i:versions?|releases?|v|since|introduced in|availability:|changed:|enhanced:)\s?"
                        rf"\d+(?:\.\w+)*|\d+\.\d+\.\d+\w*)|(?<![\w.]){CODED_NAME}\s+\d{{1,3}}\.\d+\b")
DOTTED_RE = re.compile(r"(?<![\w.])\d+\.\d+(?:\.\w+)*")  # "3.7", "2.1.0", "1.4b2"
# "which version", "what PostgreSQL release" (not "what is the release date"; lower case: as `answer_type` reads it)
VERSION_QUESTION = re.compile(r"\b(?:which|what)\s+(?:[\w.+-]+\s+){0,2}?(?:version|release)s?\b(?!\s+dates?\b)")
# a name with a version or a number, as (name, number) ("SQLAlchemy 1.4", "PostgreSQL 11", "psycopg2 2.9"): a
# CODED_NAME or a capitalised word, then a number of at most three digits (not a year: "Q3 2023" is a period)
NUMBERED_NAME_RE = re.compile(rf"(?<![\w.])({CODED_NAME}|[A-Z][\w+-]+)\s+v?(\d{{1,3}}(?:\.\d+)*)\b(?![.,]?\d)")
YEAR_RE = re.compile(r"\b(1[5-9]\d\d|20\d\d)\b")
# a span of years: "2020-21", "2019–2020", "2020/21" (a season, a fiscal or school year)
YEAR_SPAN_RE = re.compile(r"\b(1[5-9]\d\d|20\d\d)\s?[-–/]\s?(\d\d(?:\d\d)?)\b")
# a year the question is bounded by, not about: "since 2019", "before 2020", "between 2018 and 2021"
BOUND_YEAR_RE = re.compile(r"\b(?:since|after|before|until|till|through|by|from|between|and|to|prior to|as of)\s+"
                           r"(?:(?:the\s+)?(?:end|start|beginning)\s+of\s+)?(1[5-9]\d\d|20\d\d)\b", re.I)
MONTH_RE = re.compile(r"\b(jan(uary)?|feb(ruary)?|mar(ch)?|apr(il)?|may|june?|july?|aug(ust)?|sep(t(ember)?)?|"
                      r"oct(ober)?|nov(ember)?|dec(ember)?)\b", re.I)
NAME_RE = re.compile(r"(?<!^)(?<![.!?]\s)\b[A-Z][a-zA-Z&\-]+")
QUANTITY_NOUNS = re.compile(r"\b(revenue|sales|income|profit|loss|price|cost|population|salary|number of|total|"
                            r"amount|value|rate|ratio|margin|percentage|share|growth|earnings|expenses?|assets|"
                            r"liabilit(y|ies)|equity|debt|cash|inventory|dividends?|impairment|tax|budget|"
                            r"accuracy|score|range|capacity|temperature|weight|size|intensity|duration|delay|timeout|"
                            r"interval|length|maximum|minimum|longest|shortest|largest|smallest)\b")
REPORTED = re.compile(r"^\s*what\b[^?]*\b(did|does|do|was|were|is|are)\b[^?]*\b(report|record|reach|post|earn|"
                      r"spend|pay|generate)(s|ed)?\b")  # "What inventory did X report ...?": a figure


# ---------------------------------------------------------------- the names a question asks about
ASKED_NAME_RE = re.compile(r"(?<![\w'’-])(?:[A-Z][\w&-]*|[a-z]+[A-Z][\w&-]*)")  # Vodafone, SNB22-3, PetCare, iPhone
NOT_NAMES = frozenset(("i", "table", "figure", "column", "row", "section", "chapter", "item", "note", "part", "page",
                       "appendix", "exhibit", "schedule", "monday", "tuesday", "wednesday", "thursday", "friday",
                       "saturday", "sunday", "kb", "mb", "gb", "tb", "kib", "mib", "gib", "tib", "ms"))  # (units)


# an identifier written with underscores: "final_timeout", "worker_max_memory_per_child", "vcs_info" (not a
# user's own: "my_table", "our_queue")
IDENTIFIER_RE = re.compile(r"(?<![\w.-])(?!(?:my|our|your)_)[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+(?![\w-])", re.I)


def identifiers(text: str) -> list[str]:
    """The identifiers `text` writes with underscores (IDENTIFIER_RE), in order."""
    return IDENTIFIER_RE.findall(text)


def asked_names(question: str) -> list[str]:
    """The names a question asks about: its words written with a capital ("Vodafone", "Bruins", "SNB22-3",
    "PetCare", "iPhone"), bar the first word of each of its sentences, "I", month and weekday names, the words
    that point into a document ("Table 1") and an abbreviation the question spells out (`spelled_out`); a
    possessive's "'s" dropped. None when most of its words are capitalised (a title-case or shouted question
    says nothing by its capitals). And, wherever they stand, the identifiers it writes with underscores
    (IDENTIFIER_RE: an option, a parameter, a function), which a passage that answers it names too."""
    out = identifiers(question)
    found = [m for m in ASKED_NAME_RE.finditer(question) if m.group(0) not in out]
    if len(found) * 2 > len(re.findall(r"[^\W\d_]+", question)):
        return out
    for m in found:
        before = question[:m.start()].rstrip(" \"'“‘(")
        if not before or before[-1] in ".?!":
            continue
        word = m.group(0).rstrip("-")
        if len(word) > 1 and word.lower() not in NOT_NAMES and not MONTH_RE.fullmatch(word) \
                and not spelled_out(question, m.start(), word):
            out.append(word)
    return out


def spelled_out(question: str, start: int, word: str) -> bool:
    """"diastolic blood pressure (DBP)": an abbreviation in brackets after the words it stands for is their
    short name; a passage that names the words names it."""
    if not (question[start - 1:start] == "(" and question[start + len(word):start + len(word) + 1] == ")"):
        return False
    capitals = [c for c in word if c.isupper()]
    before = re.findall(r"[^\W\d_]+", question[:start - 1])[-len(capitals):]
    return len(before) == len(capitals) > 1 and all(w[0].lower() == c.lower() for w, c in zip(before, capitals))


FOLD = str.maketrans({**{c: unicodedata.name(c).split()[-1][0].lower()  # "μ" as "m", "κ" as "k"; hyphens dropped
                          for c in map(chr, range(0x391, 0x3CA)) if c.isalpha()}, "-": "", "‐": "", "‑": ""})


def fold(text: str) -> str:
    """How names are compared: lower case, without accents or hyphens, a Greek letter as its Latin initial
    ("Nestlé" meets "NESTLE", "NF-kB" meets "NF-κB", "iPSCderived" meets "iPSC-Derived")."""
    text = unicodedata.normalize("NFKC", text).translate(FOLD)
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


# who is speaking: "according to President Biden", "in President Biden's speech", "What did Senator Warren say"
PERSON_TITLE = (r"(?:President|Vice[- ]President|Senator|Governor|Mayor|Secretary|Minister|Prime\s+Minister|Chancellor|"
                r"CEO|CFO|Chairman|Chairwoman|Chair|Director|Professor|Dr\.?|Mr\.?|Mrs\.?|Ms\.?|Judge|Justice)")
SPEAKER_RE = re.compile(rf"\b{PERSON_TITLE}(?:\s+[A-Z][\w.'’-]*)+")
FIRST_PERSON = re.compile(r"(?<![\w'’])(?:I|my|we|our|us)(?![\w'’])")


def speaker_names(question: str) -> set[str]:
    """The names that say who speaks or writes, not what is spoken of: a person named with a title ("President
    Biden", "Dr. Chen"). A speech, a letter or an interview says "I" and "we" and seldom names its speaker.
    (Not "according to Vodafone": a company's report says "we" too, and so does a look-alike company's.)"""
    return {w for m in SPEAKER_RE.finditer(question) for w in ASKED_NAME_RE.findall(m.group(0))}


def unnamed(question: str, passages: Sequence[str]) -> list[str]:
    """The names the question asks about (`asked_names`), and the years (`asked_years`), that none of `passages`
    (each a passage's text with what it is about: its title, section, file name, document entity and period)
    names. A name counts as named where a word starts with it, or with all but its last two letters when it is
    longer than five ("RewriteRules" is named by "RewriteRule", a mistyped "Definite Edition" by "Definitive
    Edition"); a year where a passage names it or a span that holds it (`years_named`). The
    speaker's names (`speaker_names`) count as named by a passage written in the first person. Only the question
    proper's names count (`question_proper`): what a user says of their situation ("... fails in CI. How do I ...?")
    need not be in the manual that answers them."""
    proper = question_proper(question)
    names, years = asked_names(proper), asked_years(proper)  # (a year is a name too: of an event, a period)
    if not names and not years:
        return []
    if any(FIRST_PERSON.search(p) for p in passages):
        speakers = speaker_names(question)
        names = [n for n in names if n not in speakers]
    text = fold("\n".join(passages))
    out = sorted(years) if years and not any(years & years_named(p) for p in passages) else []
    for name in names:
        n = fold(re.sub(r"(?:-[a-z]+)+$", "", name))  # "NF-kB-dependent" names NF-kB
        head = n if len(n) <= 5 else n[:len(n) - 2]
        parts = [fold(w) for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", name)]
        spaced = r"[\s_]?".join(map(re.escape, parts)) if len(parts) > 1 else None  # "ForeignKey": "foreign key"
        if not re.search(r"(?<![a-z0-9])" + re.escape(head), text) and not (
                spaced and re.search(r"(?<![a-z0-9])" + spaced + r"(?![a-z0-9])", text)):
            out.append(name)
    return out


# what a manual's user asks for: "Which option / directive / command / variable ... ?", "How do I ...?"
CODE_QUESTION = re.compile(
    r"\b(which|what)\s+(?:(?!(?:is|are|was|were|do|does|did|has|have)\b)[\w.\-\"']+\s+){0,3}?(option|flag|switch|"
    r"directive|command|variable|setting|parameter|function|module|code|utility|tool|keyword|argument|signal|"
    r"handler|container|extension|field|property|attribute|macro|operator|file|directory|folder|line)s?\b"
    r"|^\s*how (do|can|should|would) (i|you|we)\b|^\s*how\s*\?"  # (a bare "How?" after what the user wants)
    r"|^\s*how (?:can|should|could|must) [^?]*?\bbe (?!\w+(?:ly|able|ible|ful)\b)\w+"  # "How can named be made to
    # write ...?" (a way, in the passive)
    r"|^\s*is there (?:a|an|any) (?:[\w-]+ )?(?:option|flag|switch|setting|parameter|command|variable|function)s?\b")
# code in prose: "--autostash", "-u", "%D", "$GIT_DIR", "rc.local", "/usr/local/apache2", "mod_dir",
# "useHttpPath", "XBitHack", "USR1"
CODE_TOKEN = re.compile(r"(?<![\w-])(?:--?[A-Za-z][\w-]*|%[{<>]?[A-Za-z]\w*|\$[A-Za-z_]\w*|[\w-]+(?:[._/][\w-]+)+|"
                        r"/[\w.-]+|[a-z]+[A-Z]\w*|[A-Z][a-z]+[A-Z]\w*|[A-Z]+[0-9_][A-Z0-9_]*|"
                        r"[A-Za-z_][\w.-]*=[^\s,;)]+)")  # and a setting as it is written: "truecolor=true"
DEFINED_TERM = re.compile(r"^[a-z][\w.-]*(?=:\s)")  # "pipefail: If set, ...": a defined lower-case term opens it


LEADING_CLAUSE = re.compile(r"^\s*(according to|based on|regarding|in|on|from|for|per|as of|under|within)\b"
                            r"(?:(?!\b(?:what|which|who|whom|whose|when|where|how)\b)[^,?]){1,120},\s*")  # no wh-word in it
# a leading condition before the question proper: "When a task calls self.retry() without a countdown, how long
# does it wait ...?" asks how long, not when
LEADING_CONDITION = re.compile(r"^\s*(?:when|whenever|if|once|after|before|while)\b[^,?]{1,120},\s*"
                               r"(?=(?:what|which|who|whom|whose|when|where|how|why)\b)")
# what a question proper opens with: a question word or an auxiliary ("Is there ...?", "Can I ...?")
ASKING = re.compile(r"^\W*(?:what|which|who|whom|whose|when|where|why|how|is|are|was|were|can|could|do|does|did|"
                    r"should|would|will|has|have|may|must|shall)\b", re.I)


# "To fix this", "to avoid these": what a sentence that says how to mend a problem opens with, after the problem
REMEDY = (r"(?:in order )?to (?:fix|avoid|prevent|solve|resolve|work around|change|alter|override|enable|disable|"
          r"turn (?:on|off)|switch (?:on|off)|achieve|accomplish|do) (?:this|that|it|these|those|so)\b")
# a question that asks what to do about something: a fix, a workaround, what the manual suggests ("What's the
# fix?", "How should I install it?", "What does the Celery FAQ suggest?", "What value does it recommend choosing?")
ADVICE_QUESTION = re.compile(
    r"\b(?:what(?:'s|’s| is| was| would be)? (?:the |a )?(?:fix|solution|remedy|workaround|cure)|"
    r"how (?:do|can|could|should|would) (?:i|we|you) (?:fix|avoid|prevent|solve|resolve|stop|work around|get around|"
    r"get rid of|deal with|recover|troubleshoot|turn|switch|lift|raise|get|make|change|disable|enable|allow|keep|"
    r"let)\b|how should (?:i|we)|what (?:should|can|must|do) (?:i|we) do|"
    r"(?:suggest|recommend|advise)(?:s|ed)?(?= *\?| (?:using|to|that|choosing|setting|doing)\b)|recommendation|"
    r"advice|best practice)\b", re.I)
# a sentence that tells what to do: "To fix this, make sure you ...", "... if you don't really need that, set it to
# READ-COMMITTED.", "Users who have been unable to migrate should pin to requests<2.28.", "It's a good practice
# to set connect timeouts to ..."
ADVICE = re.compile(
    r"\b(?:you (?:should|must|need to|have to|can|may want to|might want to)|make sure|be sure to|"
    r"consider (?:using|enabling|setting|disabling|adding|calling)|(?:we|is|are) (?:strongly )?recommended?|"
    r"(?:a )?(?:good|best) (?:idea|practice)|" + REMEDY + "|"
    r"should (?:be )?(?:set|used?|pin|enabled?|disabled?|called?|closed?|installed?|added?)|"
    r"set (?:it|this|them) to|the (?:fix|solution|workaround) is|(?:can|could|may) (?:also )?be (?:enabled|"
    r"disabled|changed|set|turned (?:on|off)|configured|overridden|controlled|adjusted|raised|lifted|increased|"
    r"decreased|avoided|fixed|prevented) (?:with|by|via|using|through|in|on))\b"
    r"|^(?:use|set|add|call|install|enable|disable|pass|specify|pin|close|upgrade|configure|increase|decrease|"
    r"ensure)\s",  # (an imperative; "The purpose of X is to ensure that ..." tells no one what to do)
    re.I)


@functools.lru_cache(maxsize=256)
def asks_advice(question: str) -> bool:
    """Whether the question (its question proper) asks what to do (ADVICE_QUESTION). Cached, as
    `answer_type`: `parts` and `sentence_relevance` both ask it of the same question."""
    return bool(ADVICE_QUESTION.search(question_proper(question)))


DOTTED_END = re.compile(r"(?<![\w.])(?:(?:[A-Z]\.){2,}|(?i:mr|mrs|ms|dr|prof|mgr|rev|gen|col|lt|sgt|capt|st|jr|sr|"
                        r"inc|ltd|co|corp|no|vol|fig|al|vs|v|approx|e\.g|i\.e|etc)\.)$")  # "U.S.", "Inc.", "et al."


@functools.lru_cache(maxsize=256)
def question_sentences(question: str) -> tuple[str, ...]:
    """The sentences of a question, split once: the rules that read its question proper or its parts ask for
    them several times per request. Not after a dotted abbreviation ("Who won the men's singles U.S. Open
    2021?" is one sentence, not "... U.S." and "Open 2021?"; nor after "Inc.", "Lt.", "et al.", "v."), which
    the passages' splitter cuts after."""
    out: list[str] = []
    for a, b in sentence_spans(question):
        text = question[a:b].strip()
        if out and DOTTED_END.search(out[-1]):
            out[-1] = f"{out[-1]} {text}"
        else:
            out.append(text)
    return tuple(out)


# where one question sentence asks a second thing: "..., and how can I test them?", "... or which setting ...?"
SECOND_ASK = re.compile(r",?\s+(?:and|or|but)\s+(?=(?:how|what|which|where|why|when|who|whom|whose|is|are|does|do|"
                        r"can|could|should)\b)", re.I)
IF_SO = re.compile(r"^\s*if (?:not|so)\b,?\s*", re.I)  # "If not, how do I turn retries on?" asks "how do I ...?"
SUB_WORDS = 3  # a sub-question this short ("Why") names nothing to find a sentence by


def sub_questions(question: str) -> list[str]:
    """The things a question asks, where it asks several: its question sentences (`ASKING`, or after a condition:
    "If not, how do I turn retries on?"), each cut where it asks a second thing ("Why do my callbacks never
    run in tests, and how can I test them?"); those of SUB_WORDS words or more ("Why, and how can I apply the
    validators myself?" gives the second only). [] for a question that asks one thing."""
    out = []
    for said in (IF_SO.sub("", x, count=1) for x in question_sentences(question)):
        if said.rstrip("\"'”’)").endswith("?") and (ASKING.match(said) or LEADING_CONDITION.match(said.lower())):
            out.extend(x.strip(" ,") for x in SECOND_ASK.split(said))
    return [x for x in out if len(x.split()) >= SUB_WORDS] if len(out) > 1 else []


def each_part_quoted(score: np.ndarray, sentence: np.ndarray, answers: Sequence[np.ndarray], floor: float
                     ) -> np.ndarray:
    """`score` (M,) with the best sentence for each sub-question (`answers`: each its (M,) relevance) lifted to
    just under the best overall, where it scores at least `floor` both for its sub-question and for the whole
    question (a sub-question alone loses what it refers to: "which setting changes it?" is met by "This setting
    is deprecated.") and the best overall sentence is not it: the answer's next quote answers the next thing
    asked, not the sentence that reads on from the first ("Does Requests retry failed connections? If not, how
    do I turn retries on?": "By default, Requests does not retry failed connections." then the sentence about
    max_retries)."""
    top = int(np.argmax(score))
    best, out, lift = float(score[top]), score.copy(), 0
    for answer in answers:
        at = int(np.argmax(answer))
        if min(float(answer[at]), float(score[at])) < floor or sentence[at] == sentence[top]:
            continue
        lift += 1
        mine = sentence == sentence[at]
        out[mine] = np.maximum(out[mine], best - 1e-3 * lift)
    return out


def question_proper(question: str) -> str:
    """The question proper of a question that also says something (a sentence not ending with "?": the
    user's situation, "I want to recycle a child after roughly 12 MB."): its sentences that open with a
    question word and end with "?"; else the whole question."""
    said = question_sentences(question)
    asked = [x for x in said if x.rstrip("\"'”’)").endswith("?") and ASKING.match(x)]  # (not "Open in 2021?",
    return " ".join(asked) if asked and len(asked) < len(said) else question  # split off "Who won the U.S.")


COUNT_QUESTION = re.compile(r"\bhow (?:many|much|long|old|far|big|large|tall|often|frequently)\b|"  # what only a
                            r"\bwhat (?:percentage|share|number|amount|price|rate|proportion)\b", re.I)  # number answers
HOW_TO = re.compile(r"\s*how (?:do|can|should|would) (?:i|you|we)\b")  # (lower case: as `answer_type` reads it)
WH_RE = re.compile(r"\b(?:what|which|who|whom|whose|when|where|why|how)\b", re.I)


def asks_quantity(q: str) -> bool:
    """Whether a question that names a quantity (QUANTITY_NOUNS: "value", "size", "number of", "timeout")
    asks for one (`q` as `answer_type` reads it): its first question word asks what or which of the quantity.
    A question without one asks yes or no ("Is an Environment safe to share between threads?"), "how" asks for
    a way ("How is the value that render() returns decided?", "How can I export it without guessing the size
    of the buffer?"), "what happens" for what happens, and "which" for the thing it names ("Which filter
    splits a sequence into lists of a fixed number of items?"), unless that thing is a quantity ("Which
    interest rate applies?")."""
    wh = WH_RE.search(q)
    if wh is None or wh.group() == "how" or q.startswith("happens", wh.end() + 1):
        return False
    if wh.group() == "which":
        return bool(QUANTITY_NOUNS.search(" ".join(q[wh.end():].split()[:3])))
    return True


def asks_count(question: str) -> bool:
    """The question asks for a number (COUNT_QUESTION) as its own ask, not inside another: "How many retries
    ...?" and "Do you know how long ...?" do; "Which function tells me how much data fits?" asks for a function
    and "How do I find out how big the buffer must be?" for a way (their first question word asks that). Read
    past a leading clause or condition ("When the pool is full, how many ...?"), as `answer_type` reads it."""
    q = LEADING_CONDITION.sub("", LEADING_CLAUSE.sub("", question_proper(question).lower()))
    m = COUNT_QUESTION.search(q)
    return m is not None and m.start() <= WH_RE.search(q).start()


@functools.lru_cache(maxsize=256)
def answer_type(question: str) -> str | None:
    """The kind of value a factoid question asks for: "date", "number", "version", "name", "code", or None
    (anything else).

    A leading clause that sets the scope is read past ("According to the example e-mail, who sent ...?" asks
    who; "In the 2021 statement, when ...?" asks when), and so is what a user says before or after the
    question proper (`question_proper`: "Through a SOCKS proxy, hostnames are resolved on my machine. How do
    I make the proxy resolve them?" asks how)."""
    q = LEADING_CONDITION.sub("", LEADING_CLAUSE.sub("", question_proper(question).lower()))
    if re.match(r"\s*(when|what (year|date|day|month|time)|in (what|which) (year|month))\b", q):
        return "date"
    if (m := CODE_QUESTION.match(q.lstrip())) and m.group(1):  # "Which log format code records how long the
        return "code"  # request took ...?" (not "How do I ...?") asks for the code, whatever the rest asks about
    if asks_count(question):
        return "number"
    if re.match(r"\s*(on|by|at|from)?\s*(what|which)\s+(date|day|year|month)\b", q) or \
            re.match(r"\s*what (is|was) the date\b", q):
        return "date"
    if VERSION_QUESTION.search(q):
        return "version"
    if (QUANTITY_NOUNS.search(q) or REPORTED.search(q)) and asks_quantity(q):
        return "number"
    if re.match(r"\s*(who|whom|whose|where|which (company|person|team|country|city|state|firm|organization)|"
                r"in (which|what) (country|city|state))\b", q):
        return "name"
    if CODE_QUESTION.search(q):
        return "code"
    return None


@functools.lru_cache(maxsize=64)
def numbered_names(question: str) -> re.Pattern | None:
    """What names another version of a product the question gives one ("SQLAlchemy 1.3" for "SQLAlchemy
    1.4's cache", NUMBERED_NAME_RE), or None; made once per question, not once per sentence."""
    names = sorted({name.lower() for name, _ in NUMBERED_NAME_RE.findall(question)})
    if not names:
        return None
    return re.compile(rf"(?<![\w.])(?:{'|'.join(map(re.escape, names))})\s+v?\d{{1,3}}(?:\.\d+)*\b", re.I)


def years_named(text: str) -> set[str]:
    """The years `text` names, each year of a span included ("2020-21": 2020 and 2021)."""
    years = set(YEAR_RE.findall(text))
    for first, last in YEAR_SPAN_RE.findall(text):
        end = int(first[:4 - len(last)] + last)
        if 0 < end - int(first) <= 10:
            years.update(str(y) for y in range(int(first), end + 1))
    return years


QUOTED_RE = re.compile(r"(?<!\w)(['\"`‘“]).+?(?:['\"`’”])(?!\w)")  # 'Error 2006: MySQL server has gone away'


def asked_years(question: str) -> set[str]:
    """The years a question asks about ("Who won the 2021 Nobel Prize in Literature?": 2021), outside what it
    quotes (an error message's "2006" is a code); none when it is bounded by one ("since 2019", "between 2018
    and 2021": the answer may name any year in the range)."""
    question = QUOTED_RE.sub(" ", question)
    return set() if BOUND_YEAR_RE.search(question) else years_named(question)


def other_year(text: str, years: set[str]) -> bool:
    """`text` names years and none of `years`, those a question asks about (`asked_years`)."""
    said = years_named(text) if years else set()
    return bool(said) and not said & years


def other_entry(text: str, title: str, question: str, passage: str = "") -> bool:
    """`text` is a field line of a reference entry ("Default: | disabled - httpd will return 404 (Not Found)")
    under a title that names code ("FallbackResource Directive"), and the question names code, none of it in
    the title or the line's passage ("What is the default value of the MaxRequestWorkers directive?"): the line
    gives another entry's value, as a sentence about another year gives another year's. (Code the entry itself
    names counts: "... how long does Celery wait before it raises WorkerLostError?" is asked of the entry
    worker_lost_wait, whose description names the error.)"""
    if not FIELD_RE.match(text):
        return False
    asked = {t.lower() for t in CODE_TOKEN.findall(question)}
    said = f"{title}\n{passage or text}".lower()
    return bool(asked) and CODE_TOKEN.search(title) is not None and not any(t in said for t in asked)


def has_answer_type(sentence: str, question: str, kind: str | None) -> bool:
    """Whether the sentence holds a value of the asked kind that the question does not already name."""
    if kind is None:
        return False
    asked = set(re.findall(r"\w+", question.lower()))
    if kind == "date":
        years = YEAR_RE.findall(sentence)
        return bool(MONTH_RE.search(sentence) or any(y not in asked for y in years))
    if kind == "version":  # "Changed: 2.1.0", "New in version 3", "PostgreSQL 9.5", "3.7 and newer"
        asked |= {m.lower() for m in DOTTED_RE.findall(question)}
        found = DOTTED_RE.findall(sentence) + re.findall(r"\d+", " ".join(VERSION_RE.findall(sentence))) + \
            [number for _, number in NUMBERED_NAME_RE.findall(sentence)]
        return any(m.lower() not in asked for m in found)
    if kind == "number":  # (a version is not a quantity: "New in version 3.2." answers no "how many", nor
        sentence = VERSION_RE.sub(" ", sentence)  # does "SQLAlchemy 1.3" when the question says "SQLAlchemy 1.4")
        if (versions := numbered_names(question)) is not None:
            sentence = versions.sub(" ", sentence)
        values = [m for m in NUMBER_RE.findall(sentence) if re.search(r"\d", m)] + NUMBER_WORDS.findall(sentence)
        asked |= {re.sub(r"\W", "", m).lower() for m in NUMBER_RE.findall(question)}  # "1.4" as "14" on both sides
        return any(re.sub(r"\W", "", m).lower() not in asked for m in values)  # "will try up to three times"
    if kind == "code":
        asked |= {t.lower() for t in CODE_TOKEN.findall(question)} | set(re.findall(r"[\w-]+", question.lower()))
        found = CODE_TOKEN.findall(sentence) + DEFINED_TERM.findall(sentence)
        return any(t.lower() not in asked for t in found)
    asked |= {stem(w) for w in asked}  # (a name the question says in another form is no new one: "Olympics")
    return any(stem(w.lower()) not in asked and stem(w.lower()) not in ENTITY_NOISE for w in NAME_RE.findall(sentence))


def relevance(hidden: Hidden, tokenizer, question: str, texts: Sequence[str],
              titles: frozenset[str] = frozenset()) -> list[float]:
    """The zero-shot relevance of each text for the question (`combine` of its `parts`; the learned
    selector's share is added by the caller, where it has one). IDF for cover is over `texts`."""
    return [combine(x) for x in parts(hidden, tokenizer, question, texts, titles)]


def combine(x: dict[str, float], tables: bool = True) -> float:
    """cos + COVER_WEIGHT * cover + TYPE_WEIGHT * typed - max(HEADING * heading, TITLE * title, REFERRAL * referral)
    + ROW_LABEL * labelled - NOTHING_NEW * nothing_new - OTHER_YEAR * other_year, from one text's `parts`
    (tables=False: without the table-row parts, for comparison)."""
    heading = max(x["heading"], x["header_row"]) if tables else x["heading"]
    return (x["cos"] + COVER_WEIGHT * x["cover"] + TYPE_WEIGHT * x["typed"]
            - max(HEADING * heading, TITLE * x.get("title", 0.0), REFERRAL * x.get("referral", 0.0))
            + (ROW_LABEL * x["labelled"] if tables else 0.0) - NOTHING_NEW * x["nothing_new"]
            - OTHER_YEAR * x.get("other_year", 0.0))


def parts(hidden: Hidden, tokenizer, question: str, texts: Sequence[str],
          titles: frozenset[str] = frozenset(), heads: Sequence[str] | None = None,
          alone: frozenset[int] = frozenset(), seen: dict[str, np.ndarray] | None = None) -> list[dict[str, float]]:
    """Each text's relevance parts for the question: cos, cover, typed, heading, header_row, title, labelled,
    nothing_new (also where it only repeats a message the question quotes: `echoes`), other_year (the flags as
    0/1; `titles`: the section titles of the request's passages, as `title_key` gives them). The embedder reads
    only the EMBED_TOP texts with the most lexical evidence (a text without it rarely wins, and embedding every
    sentence of k passages would cost as much again as encoding them); the others have cos 0. `heads`: per text,
    what it is read with (its context, or ""): the term its definition defines when the text is a later sentence
    of one (`definition_heads`), or its section's title (`section_heads`); its words count in the text's cover,
    and the embedder reads the text after it ("maintenance_work_mem (integer): It defaults to 64 megabytes.").
    `alone`: the indices of texts the embedder also reads without their head, keeping the closer reading (a
    sentence that leans on the one before it may match a two-part question better alone). `seen`: the request's
    vectors by text (`embed`)."""
    full, texts = texts, [unsigned(t) for t in texts]  # (a signature's defaults still count as values)
    asked = terms(question)  # a compound one side hyphenates and the other writes as one word counts as that word
    words = [terms(t) | (compounds(t) & asked) for t in texts]  # ("time-out" for "timeout"; where both hyphenate
    asked |= compounds(question) & set().union(*words)  # it, its parts match: no third term counts them twice)
    quoted = quoted_terms(question)
    echo = [echoes(w, quoted, asked) for w in words]
    read = list(texts)  # what the embedder reads of each
    if heads is not None:  # "It defaults to 64 megabytes." is about the term its line defines: read it so
        heads = [unsigned(h) for h in heads]
        words = [w | terms(h) if h else w for w, h in zip(words, heads)]
        read = [f"{h}: {t}" if h else t for t, h in zip(texts, heads)]
    kind = answer_type(question)
    years = asked_years(question)
    heads_or = heads or [""] * len(texts)
    # (ENTITY_NOISE in the nothing-new test: "Galaxy Gaming, Inc." says no more than "Galaxy Gaming")
    advice = asks_advice(question)  # (what to do is a kind of its own)
    referral = [is_referral(t) or is_credit(t, question) for t in texts]  # (its figures are an address: "Section
    # 19.4", "cache(1)"; a credit's are an e-mail address)
    out = [{"cos": 0.0, "cover": v,
            "typed": float(not sent and (has_answer_type(f, question, kind) or (advice and bool(ADVICE.search(f))))),
            "heading": float(is_heading(t)), "header_row": float(is_header_row(t)), "referral": float(sent),
            "title": float(title_key(t) in titles),
            "labelled": float(labelled_row(t, asked) or named_entry(t, question)
                              or bool(h) and named_entry(f"{h}: {t}", question)),  # (read with its term or title)
            "nothing_new": float(not (w - asked - ENTITY_NOISE) or said_back),
            "other_year": float(other_year(f"{h} {f}", years))}
           for t, f, v, w, h, sent, said_back in zip(texts, full, part_cover(question, asked, words), words, heads_or,
                                                     referral, echo)]
    lead_in = [NOTHING_NEW * x["nothing_new"] * is_lead_in(t) for x, t in zip(out, texts)]
    ranked = sorted(range(len(texts)), key=lambda i: -combine(out[i]) - lead_in[i])[:EMBED_TOP]  # (a lead-in that
    # restates the question is read too: its list may be the answer, listed_items_answer)
    if ranked:
        again = [i for i in ranked if i in alone and read[i] != texts[i]]
        told = question_parts(question)
        vectors = embed(hidden, tokenizer, [question, *told, *(read[i] for i in ranked), *(texts[i] for i in again)],
                        batch_size=8, max_tokens=SENTENCE_TOKENS, seen=seen)  # batches of 8 by length pad less:
        asks, vectors = vectors[: 1 + len(told)], vectors[1 + len(told):]  # (1.2x faster than one of 13)
        cosines = (vectors @ asks.T).max(axis=1).tolist()
        for i, c in zip(ranked, cosines):
            out[i]["cos"] = c
        for i, c in zip(again, cosines[len(ranked):]):
            out[i]["cos"] = max(out[i]["cos"], c)
    return out


ECHO_TERMS = 3  # a quoted part of a question this long (in terms) is a message the user saw
ECHO_SHARE = 0.7  # of its terms, what a text must hold to repeat it (an error's placeholders differ: "node %", "N")
ECHO_NEW = 3  # the terms the question lacks that it may add and still only repeat it ("ERROR", "Slony-I": three)


def quoted_terms(question: str) -> list[set[str]]:
    """The terms of each part of the question in quotes of ECHO_TERMS terms or more (an error message)."""
    return [q for m in QUOTED_RE.finditer(question) if len(q := terms(m.group(0))) >= ECHO_TERMS]


def echoes(said: set[str], quoted: Sequence[set[str]], asked: set[str]) -> bool:
    """Whether a text (its terms, `said`) only repeats a message the user quotes: it holds ECHO_SHARE of a quoted
    part's terms and adds at most ECHO_NEW terms the question lacks. "Our slonik DROP NODE script fails with
    'DROP_NODE cannot initiate on the dropped node'. What should we change?" is not answered by "ERROR: Slony-I:
    DROP_NODE cannot initiate on the dropped node": it says nothing new, as a text of the question's words does.
    Numbers are no new terms here: a FAQ titles the message with its section's number ("7.1.5.11. Slony-I: cannot
    add table to currently subscribed set 1")."""
    return any(len(q & said) >= ECHO_SHARE * len(q) for q in quoted) and \
        sum(not t.isdigit() for t in said - asked - ENTITY_NOISE) <= ECHO_NEW


def part_cover(question: str, asked: set[str], words: Sequence[set[str]]) -> list[float]:
    """Each text's cover (`idf_cover`) of the whole question, or of one of its parts where that is larger: its
    sentences of PART_WORDS words or more (`question_parts`) and its question proper (`question_proper`) if as
    long, as the embedder compares a text with each. A user's situation dilutes the question's words: "Does
    Django's SMTP backend have a timeout?" after "When our SMTP relay stops answering, the Celery workers that
    call send_mail hang forever." is covered by "timeout: EMAIL_TIMEOUT", read under its section "SMTP backend",
    at 0.10 of the whole and 0.47 as asked. A one-sentence question has no parts: its cover is the whole's. Nor
    is a part of fewer than PART_TERMS content words one: "What command line does that?" after the user's situation
    names "command" and "line", and "Use the -Tcmap command line option" covered all of it."""
    best = idf_cover(asked, words)
    told = list(question_parts(question))
    proper = question_proper(question)
    if proper != question and proper not in told and len(proper.split()) >= PART_WORDS:  # ("Is that expected?"
        told.append(proper)  # would give any sentence with "expected" in it all of its cover)
    for part in told:
        if len(said := terms(part)) >= PART_TERMS:  # ("What command line does that?" names two words: any line
            best = [max(b, c) for b, c in zip(best, idf_cover(said, words))]  # with "command line" covered it all)
    return best


PART_TERMS = 3  # a part of a question with fewer content words is not compared alone for cover (`part_cover`)


PART_WORDS = 5  # a sentence of a question this long or longer is also compared alone (`question_parts`)


def question_parts(question: str) -> list[str]:
    """The sentences of a question of several (a user's situation, then what they ask), each of PART_WORDS words
    or more: the embedder compares a passage sentence with each as well as with the whole, and keeps the closest.
    A long question dilutes its one vector: "I build URL(..., encoded=True) so that aiohttp does not requote my
    path, and I also pass params= to session.get. The URL still ends up requoted. What's going on?" is far from
    "Passing params overrides encoded=True, never use both options." as a whole, close in its first sentence."""
    said = question_sentences(question)
    return [x for x in said if len(x.split()) >= PART_WORDS] if len(said) > 1 else []


# an API reference's signature: "class sqlalchemy.pool.QueuePool(creator, pool_size=5, max_overflow=10, ...): A
# Pool that ...", "json.dumps(obj, *, indent=None, ...) -> str: Serialize obj ..."
SIGNATURE_RE = re.compile(r"^(\s*(?:[a-z]+\s+){0,2}[\w.]*\w)\(([^\n]*?)\)(?=(?:\s*(?:->|→)\s*[^:\n]{1,60})?:(?:\s|$))")


# a C prototype on one line (ingest/declarations.py): "int gnutls_aead_cipher_encrypt (gnutls_aead_cipher_hd_t handle,
# const void *nonce, size_t tag_size, ...);"
PROTOTYPE_RE = re.compile(r"^(\s*[A-Za-z_][\w \t*]*?\b(?:\w*[_\d]\w*|[A-Za-z]*[a-z][A-Z]\w*)\s*)\((.*)\)\s*;\s*$")  # (a name
# written as code: "gnutls_init", "sqlite3_open", "PQconnectdbParams"; not "Set the value (in seconds);")


def unsigned(text: str) -> str:
    """`text` with the parameter list of a signature it opens with left out: "class
    sqlalchemy.pool.QueuePool(): A Pool that imposes a limit on the number of open connections." A signature
    names every parameter, so it matched every question about one, while the parameter's own description
    says what is asked. (Its defaults still count as values of the asked kind: "timeout=30.0" answers how
    long a pool waits where no sentence says it.) So does a C prototype's: "int gnutls_aead_cipher_encrypt();"."""
    if "(" not in text:
        return text
    if text.rstrip().endswith(";"):
        return PROTOTYPE_RE.sub(r"\1();", text, count=1)
    return SIGNATURE_RE.sub(r"\1()", text, count=1)


def title_key(text: str) -> str:
    """A line as it is compared with section titles: whitespace collapsed, case and the ends kept."""
    return " ".join(text.split())


def named_value(cell: str) -> tuple[str, str] | None:
    """(column, value) of a table cell as ingest writes a body row's cells ("Trading symbol: GLXZ"), or None
    when the cell does not name a column before a value."""
    name, colon, value = cell.partition(": ")
    return (name, value) if colon and value.strip() else None


def is_header_row(text: str) -> bool:
    """A table's header row: three or more cells ("a | b | c") and no value in any of them: no digits (bar
    years), and no cell after the first that names its column before a value. Ingest writes body rows as
    "label | column: value | ..." (ingest.tables.render_rows), so "Common stock | Trading symbol: GLXZ |
    Name of exchange on which registered: OTCQB marketplace" is a row of values, not a header: it names
    columns, answers nothing only when it holds no value."""
    cells = text.split("|")
    return len(cells) >= 3 and not any(re.search(r"\d", YEAR_RE.sub("", c)) for c in cells) \
        and not any(named_value(c) for c in cells[1:])


def labelled_row(text: str, asked: set[str]) -> bool:
    """A table row whose label (its first cell) is what the question asks about and that holds a value:
    "Inventory | 2021: $770,248 | 2020: $668,525" for "What inventory did ... report at December 31, 2020?".
    At least half of the label's content words are the question's. A value is a figure, not a digit inside a
    name: "pkcs12 | A pkcs12 type" holds none."""
    if "|" not in text:
        return False
    label, rest = text.split("|", 1)
    words = terms(label)
    return bool(words) and len(words & asked) * 2 >= len(words) and bool(re.search(r"(?<!\w)\d", rest))


ENTRY_TERM_WORDS = 3  # a defined term this long at most is a name ("cpu", "delay=N", "PAM_IGNORE", "fork safety")


# what a question calls a reference entry it names: "the cpu item", "its delay= option", "the 'sufficient' keyword"
ENTRY_NOUN_RE = re.compile(
    r"\s*['\"`’”]?\s*(?:items?|options?|arguments?|args?|keywords?|parameters?|params?|settings?|flags?|fields?|"
    r"directives?|variables?|values?|methods?|controls?|modules?|entry|entries|commands?|attributes?|"
    r"propert(?:y|ies)|keys?|columns?|switch(?:es)?|tokens?|actions?|modes?|types?|macros?|functions?|pragmas?|"
    r"clauses?)\b", re.I)


def named_entry(text: str, question: str) -> bool:
    """The first sentence of a definition list's entry whose term the question names, as a table row's label:
    "cpu: maximum CPU time (minutes)" for "In limits.conf, what unit is the value of the cpu item in?",
    "sufficient: [success=done new_authtok_reqd=done default=ignore]" for "... the equivalent of the
    'sufficient' control keyword?". The term is the entry's name without its argument or type ("delay=N",
    "wait (float)", "<item>"). The question names it as a word of its own (not "conf" in "limits.conf", nor
    "ok" in "[success=ok]"), and as a name: written as code ("delay=", "PAM_TTY", "CASCADE"), or in lower case
    quoted or followed by what it is ("'sufficient'", "the cpu item", ENTRY_NOUN_RE). "module type" does not name
    the entry "type=type", nor does a quoted title ("Pretty Woman") the line "Pretty Woman: The Musical ...".
    An entry's field ("Default: ...", FIELD_RE) is none."""
    if "|" in text or FIELD_RE.match(text) or not (m := TERM_RE.match(text)) or len(text) <= m.end() + 2:
        return False
    term = (m.group(1) or m.group(2)).strip()
    name = re.sub(r"\s*\(.*?\)|=.*|[<>]", " ", term).split()
    if not 0 < len(name) <= ENTRY_TERM_WORDS or not any(c.isalpha() for c in "".join(name)):
        return False
    said = r"\s+".join(map(re.escape, name))
    code = any("_" in w or (w.isupper() and len(w) > 1) or re.search(r"[a-z][A-Z]", w) for w in name)  # PAM_TTY,
    # CASCADE, setLevel (not "Xenoblade Chronicles X", a title's words)
    for found in re.finditer(r"(?<![\w.=/<-])(['\"`‘“]?)" + said + r"(=?)(?![\w.=/>-])", question, re.I):
        quoted, eq = found.group(1), found.group(2)
        if eq and "=" not in term or not code and not found.group(0).lstrip("'\"`‘“").islower():
            continue  # (a quoted title, "Pretty Woman", names a work, not an entry)
        if code or eq or (quoted and question[found.end():found.end() + 1] in tuple("'\"`’”")) or \
                ENTRY_NOUN_RE.match(question, found.end()):
            return True
    return False


SECTION_NUMBER_RE = re.compile(  # "3.2 ", "1. ", "IV. ", "B) ", "Item 7A. ", "CHAPTER 13 ", "Note 4: ", and a
    # caption's label: "Table 9.33. ", "Figure 2: ", "Example 3-1. "
    r"^(?:(?i:item|section|part|chapter|article|note|table|figure|fig\.|example|listing|exhibit)\s+\d+[A-Z]?"
    r"(?:[.-]\d+)*[.:]?|\d+(?:\.\d+)+\.?|\d+[.)]|"
    r"[IVXLC]+[.)]|[A-Z][.)])\s+(?=\S)")  # letters upper case only: "n. a." and "a. had" are not numbers


def is_heading(text: str) -> bool:
    """A title line: at most 10 words, no final punctuation, no numbers or table-cell bars, and its words
    capitalised (short function words aside); a section number or a caption's label before it is allowed
    ("3.2 Products", "CHAPTER 6 – BUDGETS", "Table 9.33. Date/Time Operators"), and so is a name that holds a
    digit ("Asyncio Platform Installation Notes (Including Apple M1)", "HTTP/2 Support"): a number standing
    alone ("Revenue 2022") is a value, not a title's word."""
    if m := SECTION_NUMBER_RE.match(text):
        text = text[m.end():]
    words = text.split()
    if not words or len(words) > 10 or text.rstrip()[-1] in ".!?:;," or "|" in text or has_number_word(text):
        return False
    if FIELD_LINE_RE.match(text):  # "Availability: Linux, Windows, FreeBSD": a field and its values
        return False
    words = [w.lstrip("(\"'“‘[") for w in words]  # ("(Including Apple M1)")
    content = [w for w in words if w and (len(w) > 3 or w[0].isupper())]
    return bool(content) and all(w[0].isupper() for w in content)


FIELD_LINE_RE = re.compile(r"^\s*\w+:\s+\S[^,]*,")  # a label, its colon and a list of values

NUMBER_WORD_RE = re.compile(r"[\d.,:/%$€£+-]*\d[\d.,:/%+-]*")  # a word that is a number: "2022", "$1.2", "10%"


def has_number_word(text: str) -> bool:
    """Whether a word of `text`, its brackets and quotes aside, is a number ("2022", "(1990)", "$1.2m" is not:
    it holds a letter, as "M1" and "HTTP/2" do)."""
    return any(NUMBER_WORD_RE.fullmatch(w.strip("()[]{}\"'“”‘’,.;:!?")) for w in text.split())


# a sentence that only sends the reader elsewhere: "See git-credential-cache(1) for details.", "For more background,
# see Asyncio Platform Installation Notes.", "Refer to Section 19.4."
REFERRAL_RE = re.compile(r"^\W*(?:(?:for|to)\b[^,]{0,80},\s*)?(?:please\s+)?(?:see|refer\s+to|consult)\b", re.I)
REFERRAL_WORDS = 20


# who wrote a manual page's subject, with an e-mail address: "pam_exec was written by Thorsten Kukuk
# <kukuk@thkukuk.de> and ...", "Oleg Bartunov <oleg@sai.msu.su>, Moscow University", or an "Authors: ..." field
CREDIT_RE = re.compile(r"\b(?i:was|were|is|are|has been|have been)\s+(?:\w+ly\s+)?(?i:written|developed|authored|"
                       r"contributed|created|maintained|implemented)\s+by\s+[A-Z]"
                       r"|^\W*[A-Z][\w'’.-]*(?:\s+[A-Z][\w'’.-]*){1,3}\s*<[^<>\s]+@")
CREDIT_FIELD_RE = re.compile(r"^\W*(?:(?:Original|Main|Primary)\s+)?(?:[Aa]uthors?|[Mm]aintainers?|[Cc]redits?)\s*:\s*"
                             r"[A-Z][\w'’.-]*\s+[A-Z]")
EMAIL_RE = re.compile(r"<?[\w.+-]+@[\w-]+(?:\.[\w-]+)+>?")
ASKS_WHO = re.compile(r"\b(?:who|whom|whose|author\w*|wr[io]t\w*|maintain\w*|develop\w*|creat\w*|contribut\w*|"
                      r"implement\w*|credit\w*|contact\w*|e-?mail\w*|address\w*)\b", re.I)


def is_credit(text: str, question: str) -> bool:
    """A sentence that credits its subject's authors, with their e-mail addresses or as an "Authors:" field, for a
    question that does not ask who made something: a manual page's AUTHOR section ("pam_exec was written by
    Thorsten Kukuk <kukuk@...> and Josh Triplett <josh@...>.") names the page's subject, so it matched any
    question about it, and answers none. (Prose that says who wrote a song or founded a company, without an
    address, is left alone: a question may ask that in words this test does not know.)"""
    if ASKS_WHO.search(question):
        return False
    return bool(CREDIT_FIELD_RE.match(text)) or bool(CREDIT_RE.search(text)) and bool(EMAIL_RE.search(text))


def is_referral(text: str) -> bool:
    """A sentence of at most REFERRAL_WORDS words that opens by sending the reader elsewhere ("See ...", "For
    details, see ...", "Refer to ..."): it names the topic it points at, so it matches a question on that topic
    as well as the answer does, and answers nothing itself."""
    return bool(REFERRAL_RE.match(text)) and len(text.split()) <= REFERRAL_WORDS and ":" not in text.rstrip()[:-1]


POSSESSIVE_RE = re.compile(r"(?<=\w)['’]s\b", re.I)  # "Gaming's", "it's": the "s" is no word of its own


def terms(text: str) -> set[str]:
    """The content words of `text` (the model's stop list left out) as Snowball stems. A possessive's "s" is
    none: "Who is Galaxy Gaming's stock transfer agent?" is not matched by "... Galaxy Gaming's founder" for it."""
    return {stem(w) for w in words(POSSESSIVE_RE.sub("", text)) if w not in SCULPT_STOPWORDS}


HYPHENATED_RE = re.compile(r"(?<![\w-])[A-Za-z]+(?:-[A-Za-z]+)+(?![\w-])")  # "pretty-printed", "e-mail"


def compounds(text: str) -> set[str]:
    """The hyphenated words of `text` written as one, as `terms` ("pretty-printed" as "prettyprinted"): a manual
    writes "prettyprinted", "timeout" or "email" where a user writes "pretty-printed", "time-out" or "e-mail", and
    the other way round. Options are none ("--enable-shared")."""
    return {stem(m.group(0).replace("-", "").lower()) for m in HYPHENATED_RE.finditer(text)} if "-" in text else set()


def dispensable(prefix: str, asked: set[str], also: frozenset[str] = frozenset()) -> bool:
    """Whether the part of a sentence before a clause start can be left out of a quote: it says nothing the
    question does not already say (its content words are all the question's), so what follows carries the
    answer. "As for the patent license, it terminates ..." loses "As for the patent license,"; "Daniil Medvedev
    defeated Novak Djokovic, 6-4, ..." keeps its subject, which is the answer. `asked`: the question's terms."""
    return not (terms(prefix) - asked - also)


NOVELTY = 0.3  # a further quote must bring this share of its content words new to the answer (and question)


def position_terms(batch, question: str) -> tuple[np.ndarray, dict[int, frozenset[int]]]:
    """For the first request of `batch`: (M,) the id of the content term (`terms`' stem) of the word each
    passage token is in, -1 where none (a stopword, punctuation, a word of the question, off passages); and
    each sentence's set of those ids. What `grammar.redundant` reads: a quote that would repeat what the
    answer already says is not added ("Egan Bernal officially won the 2019 Tour de France on Sunday. [1]
    Egan Bernal (Team Ineos) won the 2019 Tour de France in Paris ... [2]")."""
    asked = terms(question)
    ids: dict[str, int] = {}
    sid = batch.sentence[0].tolist()
    out = [-1] * len(sid)
    T = batch.shape[2]
    for p, (text, offs) in enumerate(zip(batch.texts[0], batch.offsets[0])):
        for t, (a, b) in enumerate(offs):
            if a < 0 or sid[p * T + t] < 0 or not text[a:a + 1].isalnum():  # (punctuation is no word)
                continue
            word = _word_at(text, a, b)
            if word == "s" and a > 0 and POSSESSIVE_RE.match(text, a - 1):  # (as `terms` reads it)
                continue
            if word not in SCULPT_STOPWORDS and (w := stem(word)) not in asked:
                out[p * T + t] = ids.setdefault(w, len(ids))
    own: dict[int, set[int]] = {}
    for k, w in zip(sid, out):
        if k >= 0:
            own.setdefault(k, set())
            if w >= 0:
                own[k].add(w)
    return np.array(out, dtype=np.int64), {k: frozenset(v) for k, v in own.items()}


SECTION_WORDS = 2  # a sentence is read under its section's title where the title adds this many question words (or
# one, where the title is a name the question asks: "AIX", `asked_names`)


def entry_section(section: str, context: str) -> str:
    """A passage's section as `section_heads` reads it: "ENTRY\nPART" where the section is a part of a reference
    entry chunked apart from it (its path, the end of `context`, goes "... > gnutls_pkcs12_mac_info () > Returns"
    and the entry filled its own chunk), else the section itself."""
    path = context.rpartition(" | ")[2].split(" > ")
    if len(path) >= 2 and title_key(path[-1]) == title_key(section) and entry_name(title_key(path[-2])) \
            and not entry_name(title_key(section)):
        return f"{title_key(path[-2])}\n{section}"
    return section


def section_heads(batch, sections: Sequence[str], titles: frozenset[str] = frozenset()) -> dict[int, str]:
    """Sentence id -> the title of the section it is in: the last heading line above it in its passage, or the
    passage's own section title (`sections`, per passage of the first request) before the first. A heading
    line is one `is_heading` takes for a title or one of `titles` (the request's section titles, `title_key`):
    "Log rotation" is a title only where a document marks it as one. In a passage of a reference entry (its
    section's title names one, `entry_name`, or its section is a part of one, `entry_section`), a part's heading
    is read with the entry's name: "Since: 3.6.13" under "Returns" is about "gnutls_pbkdf2 () Returns". A line
    that opens an API entry (`api_entry`: "psutil.disk_io_counters(perdisk=False): Return ...") heads the lines
    below it as a title does: its fields ("read_time: time spent reading from disk (in milliseconds)") are its
    own, not the previous entry's."""
    out: dict[int, str] = {}
    for p, text in enumerate(batch.texts[0]):
        section = sections[p] if p < len(sections) else ""
        entry, current = passage_entry(section), section.rpartition("\n")[2]
        if entry and title_key(current) != entry:
            current = f"{entry} {current}"
        spans, lines = layout(text)
        for line in lines:
            if not line:
                continue
            first = text[spans[line[0]][0]:spans[line[0]][1]]
            if len(line) == 1 and (is_heading(first) or title_key(first) in titles):
                current = first.strip() if not entry or title_key(first) == entry else f"{entry} {first.strip()}"
            elif asks(text, spans, line):  # a FAQ's question titles its answer
                current = " ".join(text[spans[line[0]][0]:spans[line[-1]][1]].split())
            elif name := api_entry(first):  # an API entry's signature line: the lines below are the entry's
                current = name
            for k in line:
                out[sentence_id(p, k)] = current
    return out


def passage_entry(section: str) -> str:
    """The reference entry a passage is (of), by its section (`entry_section`): "gnutls_pbkdf2 ()" for the entry's
    own passage and for "gnutls_pbkdf2 ()\nReturns"; "" for a passage that is no entry's."""
    entry, _, own = section.rpartition("\n")
    return entry or (title_key(own) if entry_name(title_key(own)) else "")


def bare_entry(name: str) -> str:
    """An entry's name without its call's "()": "gnutls_hash_copy ()" -> "gnutls_hash_copy"."""
    return re.sub(r"\s?\(\)$", "", name)


def other_entry_passages(sections: Sequence[str], question: str, texts: Sequence[str] = ()) -> set[int]:
    """The passages that are entries of a reference (`passage_entry`) other than those the question names, where
    the question names one that a passage is: "What does gnutls_pkcs12_mac_info() return when ...?" is not
    answered by gnutls_pkcs12_generate_mac()'s entry, nor "What tag_size should I pass to
    gnutls_aead_cipher_encrypt()?" by gnutls_cipher_tag()'s. Its sentences lose OTHER_ENTRY, as another entry's
    field line does (`other_entry`). Not for a question that asks for code ("Which function removes it?"): that
    answer is in another entry by design (`sentence_relevances` leaves it out). A passage is an entry where it
    opens with the entry's title or is a part of one; one cut from an API entry for size (its section the
    entry's name, `texts` its text) goes on to whatever follows the entry on the page ("scroll()" and then
    "arraysize: ... It defaults to 1 ..."), and is no one entry's."""
    entries = {p: passage_entry(section) for p, section in enumerate(sections)
               if "\n" in section or p >= len(texts) or title_key(texts[p].partition("\n")[0]) == title_key(section)}
    named = {p for p, entry in entries.items()
             if entry and re.search(r"(?<![\w.-])" + re.escape(bare_entry(entry)) + r"(?![\w-])", question)}
    return {p for p, entry in entries.items() if entry and p not in named} if named else set()


def entry_leads(batch, sections: Sequence[str]) -> np.ndarray:
    """(M,) for each position of the first request of `batch`, the sentence id of the line that names the
    reference entry its sentence belongs to, where the sentence does not name it itself; -1 elsewhere. A
    reference cut into one section per entry has its name as the section's title, the passage's first line
    ("PASSWORD_RESET_TIMEOUT / Default: 259200 (3 days, in seconds) / The number of seconds a password reset
    link is valid for."), and its sentences say what the entry is without naming it: quoted alone, "259200 (3
    days, in seconds)" answers "How long is a password reset link valid, and which setting changes it?" with
    half the answer. The answer grammar opens such a quote with the name (`grammar.Selection.lead`)."""
    sid = batch.sentence[0]
    out = np.full(sid.shape, -1, dtype=np.int64)
    present = set(np.unique(sid).tolist())
    for p, text in enumerate(batch.texts[0]):
        name = title_key(sections[p]) if p < len(sections) else ""
        if not entry_name(name):
            continue
        spans = layout(text)[0]
        head = next((k for k, (a, b) in enumerate(spans) if title_key(text[a:b]) == name), None)
        if head is None or sentence_id(p, head) not in present:
            continue
        bare = bare_entry(name)  # (a sentence that says "gnutls_hash_copy()" names it)
        led = [sentence_id(p, k) for k, (a, b) in enumerate(spans[head + 1:], head + 1) if bare not in text[a:b]]
        out[np.isin(sid, led)] = sentence_id(p, head)
    return out


CODE_LINE = re.compile(r"^\s*(?:>>>|\$ |from [\w.]+ import |import [\w.]+\s*$|import [\w.]+\s+import |"
                       r"[\w.\[\]'\"]+\s*=\s*[\w.]+\(|[\w.]+\(.*\)\s*;?\s*$|[\w.]+\($|\)+[,;]?\s*$)")


# "#define GNUTLS_TPM_KEY_USER (1<<3)", "#include <gnutls/gnutls.h>"
PREPROCESSOR_RE = re.compile(r"^\s*#\s*(?:define|include|if|ifn?def|undef|pragma)\b")


def is_code_line(text: str) -> bool:
    """A line of code, not prose: a console prompt (">>> cur.fetchmany(2)", "$ make"), an import, an
    assignment from a call, a bare call or a call's dangling parenthesis, a C prototype ("int gnutls_init
    (gnutls_session_t *session, unsigned int flags);", PROTOTYPE_RE) or a preprocessor line ("#define ...").
    (Not "... the director said", nor "P = 0.03 for the treated group".)"""
    return bool(CODE_LINE.match(text) or PROTOTYPE_RE.match(text) or PREPROCESSOR_RE.match(text))


# an example's scaffolding: an import, a function's or a class's header line; it answers no question, not even
# one that asks for code ("How can I override that?" is not answered by "from celery.utils.log import ...")
SCAFFOLD_LINE = re.compile(r"^\s*(?:(?:>>>|\.\.\.)\s+)?(?:import [\w.]+(?:\s+as\s+\w+)?\s*$|"
                           r"from [\w.]+ import [\w.,\s()*]+$|(?:async\s+)?def\s+\w+\s*\(.*\)\s*(?:->[^:]*)?:\s*$|"
                           r"class\s+\w+\s*(?:\(.*\))?\s*:\s*$)")


# "Q. When I have a red edge ... JPEG.", "Question 3: ..." (not "Q1: Revenue grew 4%.", a quarter's line; a numbered
# FAQ question that ends with "?" asks as any line does)
FAQ_QUESTION = re.compile(r"^\s*(?:Q|Question(?:\s?\d+)?)\s?[.:)]\s+\S")


def asks(text: str, spans: Sequence[tuple[int, int]], line: Sequence[int]) -> bool:
    """Whether a line of `text` (sentence indices into `spans`) asks: its last sentence ends with a question
    mark, or it opens as a FAQ's question does ("Q.", "Question:"), which may tell a situation and end with a
    full stop."""
    return text[spans[line[-1]][0]:spans[line[-1]][1]].rstrip().rstrip("\"'”’)").endswith("?") \
        or bool(FAQ_QUESTION.match(text[spans[line[0]][0]:spans[line[0]][1]]))


def question_lines(batch) -> set[int]:
    """The sentence ids of the lines of the first request of `batch` that end with a question ("I can't compile
    psycopg2: the compiler says error: Python.h: No such file or directory. What am I missing?"): a FAQ's
    entry or an interviewer's line. They ask; the lines under them answer."""
    out: set[int] = set()
    for p, text in enumerate(batch.texts[0]):
        spans, lines = layout(text)
        out.update(sentence_id(p, k) for line in lines if line and asks(text, spans, line) for k in line)
    return out


def sentence_relevance(hidden: Hidden, tokenizer, batch, question: str, titles: frozenset[str] = frozenset(),
                       learned: np.ndarray | None = None, sections: Sequence[str] | None = None,
                       seen: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """(M,) the relevance of each position's sentence, for the first request of `batch`; -inf off sentences
    and on each copy but the best-read one of a sentence that several passages hold (the earliest on a tie).
    `titles`: the passages' section titles (`title_key`); `learned`: (M,) the learned selector's share at each
    position, added to its sentence's; `sections`: each passage's section title (`Passage.section`), for
    `section_heads`; `seen`: the request's sentence vectors by text, shared by its calls (`embed`)."""
    return sentence_relevances(hidden, tokenizer, batch, question, titles, (learned,), sections, seen)[0]


def sentence_relevances(hidden: Hidden, tokenizer, batch, question: str, titles: frozenset[str] = frozenset(),
                        shares: Sequence[np.ndarray | None] = (None,), sections: Sequence[str] | None = None,
                        seen: dict[str, np.ndarray] | None = None) -> list[np.ndarray]:
    """`sentence_relevance` with each of `shares` (a learned share, or None for none), from one reading of the
    passages: the generator ranks a question of several sentences without the share and decides with it."""
    sid = batch.sentence[0]
    keys, texts = sentence_texts(batch)
    said = dict(zip(keys, (terms(t) for t in texts)))
    asked = terms(question)
    defined = definition_heads(batch)  # a later sentence is read with its term where it adds a word the
    heads = {key: (term, head) for key, (term, head) in defined.items()  # question asks and the first lacks
             if key in said and head in said and (said[key] & asked) - said[head]}
    context = [heads[key][0] if key in heads else "" for key in keys]  # what each sentence is read with
    kind = answer_type(question)  # else what it leans on, where it adds what is asked (`adds_to`)
    text_of = dict(zip(keys, texts))
    advice = asks_advice(question)
    leaning = {key: (head, at) for key, (head, at) in dependent_heads(batch).items() if key not in heads and
               key in said and (advice if REMEDY_RE.match(text_of[key])  # (a remedy: it is what is asked, or
                                else adds_to(text_of[key], said[key], head, question, kind, asked))}  # nothing)
    for i, key in enumerate(keys):
        if key in leaning:
            context[i] = leaning[key][0]
    entry_of: dict[int, str] = {}
    if sections is not None:  # else its section's title, where that names what is asked and the sentence does not
        under = entry_of = section_heads(batch, sections, titles)
        named = {title_key(name) for name in asked_names(question)}  # (a title that is a name the question asks,
        # "AIX", is read for the one word it adds)
        for i, key in enumerate(keys):
            title = under.get(key, "")
            if (not context[i] or key in leaning) and title and title_key(title) != title_key(texts[i]) \
                    and (len(new := (terms(title) & asked) - said[key]) >= SECTION_WORDS
                         or bool(new) and title_key(title) in named):  # (a title that names what is
                if key in leaning and FIELD_RE.match(texts[i]):  # asked is read first; a field line ("Default:
                    context[i] = f"{title}: {leaning[key][0]}"  # 10.0 seconds.") with its entry's prose too)
                else:
                    leaning.pop(key, None)
                    context[i] = title
    found = parts(hidden, tokenizer, question, texts, titles, context,
                  frozenset(i for i, key in enumerate(keys) if key in leaning), seen)
    base = [combine(x) for x in found]
    code = kind == "code"
    asking = question_lines(batch)
    # a lead-in introduces, its list answers (unless it holds the value asked for: "... only four lines of
    # code:"); a question answers nothing (it titles what follows); a line of code answers only a question
    # that asks for code
    examples = set() if code else code_examples(batch)  # a lead-in whose list is code: it is the statement
    elsewhere = set() if code or sections is None else other_entry_passages(sections, question, batch.texts[0])
    loss = [LEAD_IN * (is_lead_in(t) and not x["typed"] and key not in examples) + TITLE * (key in asking)
            + HEADING * ((not code and is_code_line(t)) or bool(SCAFFOLD_LINE.match(t)))
            + OTHER_ENTRY * (other_entry(t, entry_of.get(key, ""), question, batch.texts[0][split_sentence_id(key)[0]])
                             or split_sentence_id(key)[0] in elsewhere)
            for x, t, key in zip(found, texts, keys)]
    says = [not x["nothing_new"] and any(c.isalpha() for c in t) and not SCAFFOLD_LINE.match(t)
            for x, t in zip(found, texts)]
    first = first_positions(sid)
    signed = signatures_under_named_entries(question, keys, texts, defined)
    out = []
    for learned in shares:
        scores = list(base)
        leads = [r + NOTHING_NEW * x["nothing_new"] for r, x in zip(scores, found)]  # a lead-in may restate it
        if learned is not None:  # (the share is the same at every position of a sentence: read it at its first)
            at = learned.tolist()
            share = {key: at[first[key]] for key in keys}
            for key, (_, head) in [*heads.items(), *leaning.items()]:  # a definition's later sentence, or one
                if key in share and head in share:  # that leans on another, shares the selector's view of that one
                    share[key] = max(share[key], share[head])
            scores = [x + share[key] for key, x in zip(keys, scores)]
            leads = [x + share[key] for key, x in zip(keys, leads)]
        if code:
            scores = defined_terms_answer(question, keys, scores, defined)
        scores = [r - lost for r, lost in zip(scores, loss)]
        scores = listed_items_answer(batch, question, keys, scores, leads, says, code_ends=not code)
        scores = [min(x, min(scores[j] for j in signed[i]) - TERM_EDGE) if i in signed else x  # (a signature
                  for i, x in enumerate(scores)]  # ranks below the entry of a parameter the question names)
        rel = np.full(sid.shape, -np.inf, dtype=np.float32)
        best: dict[str, int] = {}  # a text that several passages hold (overlapping chunks, look-alike copies) is
        for i, text in enumerate(texts):  # quoted once, from the copy read best (its term or title may differ)
            same = " ".join(text.lower().split())
            if same not in best or scores[i] > scores[best[same]]:
                best[same] = i
        for i in best.values():
            rel[sid == keys[i]] = scores[i]
        out.append(rel)
    return out


LIST_ITEMS = 8  # lines under a lead-in ("Important points:") that are its list
# a question that asks what a thing is, by its name alone ("What is LayoutParser?", "What are wheels?"; not "What is
# the default KeepAliveTimeout?", which asks for a value, nor "What is going on?" or "What is causing it?")
DEFINITION_QUESTION = re.compile(r"^\s*what\s+(?:is|are)\s+(?:an?\s+)?(?!(?:the|it|this|that|these|those|they|wrong|"
                                 r"new|up)\b)(?-i:(?![a-z]+ing\b))[\w.+#/-]+(?:\s+[\w.+#/-]+){0,2}\s*\?\s*$", re.I)
LIST_QUESTION = re.compile(r"^\s*(what|which)\b[^?]*\b(list(s|ed)?|includ(e|es|ed|ing)|points|items|steps)\b")
LIST_STEP = 0.01  # what each further item scores below the one before it, so a list is quoted in its order


def lines_of(text: str, spans: Sequence[tuple[int, int]] | None = None) -> list[list[int] | None]:
    """The sentences of `text` (indices into `spans`, its `sentence_spans`) grouped by line, and a None entry
    where a blank line separates two lines."""
    spans = sentence_spans(text) if spans is None else spans
    out: list[list[int] | None] = []
    for k, (a, b) in enumerate(spans):
        gap = text[spans[k - 1][1]:a] if k else ""
        if k and "\n" not in gap:
            out[-1].append(k)
            continue
        if gap.count("\n") > 1:
            out.append(None)
        out.append([k])
    return out


@functools.lru_cache(maxsize=1024)
def layout(text: str) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, ...] | None, ...]]:
    """A passage's `sentence_spans` and `lines_of`, computed once per text: the rules that read a passage by
    its lines (definitions, section titles, questions, lead-ins) all ask for them, for every request."""
    spans = tuple(sentence_spans(text))
    return spans, tuple(None if line is None else tuple(line) for line in lines_of(text, spans))


LEAD_IN = HEADING  # taken off a lead-in's own score: "... is built with the following components:" says nothing


# a lead-in that the page wrote without its colon, its example set apart below it ("... set this environment
# variable as follows" over "POSTGIS_GDAL_ENABLED_DRIVERS=ENABLE_ALL")
UNPUNCTUATED_LEAD = re.compile(r"\b(?:as follows|like (?:this|so))$", re.I)


def is_lead_in(text: str) -> bool:
    """A line that ends with a colon, or with "as follows" and no stop (UNPUNCTUATED_LEAD), and is not a table
    row: it introduces what follows it."""
    text = text.rstrip()
    return (text.endswith(":") or bool(UNPUNCTUATED_LEAD.search(text))) and "|" not in text


def lead_in_lines(text: str) -> Iterator[tuple[int, tuple[int, ...]]]:
    """(j, line) for each line of `layout(text)`'s lines (j its index there) whose last sentence is a lead-in."""
    spans, lines = layout(text)
    for j, line in enumerate(lines):
        if line and is_lead_in(text[spans[line[-1]][0]:spans[line[-1]][1]]):
            yield j, line


def asks_for_list(question: str) -> bool:
    """"What important points are listed ...?", "What does the attachment include?": a list is the answer."""
    return bool(LIST_QUESTION.search(LEADING_CLAUSE.sub("", question.lower())))


def listed_items_answer(batch, question: str, keys: Sequence[int], scores: Sequence[float],
                        leads: Sequence[float], says: Sequence[bool] | None = None,
                        code_ends: bool = False) -> list[float]:
    """The lines under a lead-in answer what the lead-in names: "What important points are listed in the test
    e-mail?" is answered by "Roses are red" and "Violets are blue", the lines under "Important points:",
    though they share no word with the question. A lead-in is a line that ends with a colon (not a table
    row); its list, the next lines up to LIST_ITEMS, a blank line or another lead-in. Each item's sentences
    score at least what the lead-in does (`leads`: its relevance, the nothing-new loss left out: "Important
    points:" restates the question, as a lead-in should), plus TYPE_WEIGHT when the question asks for a list
    (`asks_for_list`: the list is a value of the asked kind, as a date is for "when"), LIST_STEP less per
    item, so the first items are quoted, in order. An item that answers better on its own keeps its own score;
    a sentence that says nothing (`says` False: a list number "1.", a line of the question's own words) is not
    lifted, nor an item that names a field the question does not ask (`other_field`). `code_ends`: a list ends
    at its first line of code (`is_code_line`; for a question that does not ask for code, an example and its
    output answer nothing). A question that asks what a thing is
    (DEFINITION_QUESTION: "What is LayoutParser?") is not answered by its parts ("LayoutParser is built with the
    following components:" and a list that never names it): there the items keep their own scores, and the
    lead-in, a promise of them, ranks LIST_STEP below the best of them."""
    out = list(scores)
    defines = bool(DEFINITION_QUESTION.match(question_proper(question)))
    typed = TYPE_WEIGHT if asks_for_list(question) else 0.0
    place = {key: i for i, key in enumerate(keys)}
    named = {name.lower() for name in identifiers(question)}
    for p, text in enumerate(batch.texts[0]):
        spans, lines = layout(text)
        for j, line in lead_in_lines(text):
            lead = place.get(sentence_id(p, line[-1]))
            if lead is None:
                continue
            items = []  # (rank in the list, index) of the list's sentences that say something
            for n, item in enumerate(lines[j + 1: j + 1 + LIST_ITEMS], start=1):
                if item is None or is_lead_in(text[spans[item[-1]][0]:spans[item[-1]][1]]) or \
                        code_ends and is_code_line(text[spans[item[0]][0]:spans[item[0]][1]]):
                    break
                if named and other_field(text[spans[item[0]][0]:spans[item[0]][1]], named):
                    continue  # (it keeps its own score)
                items += [(n + m, i) for m, k in enumerate(item)
                          if (i := place.get(sentence_id(p, k))) is not None and (says is None or says[i])]
            if not defines:
                for rank, i in items:
                    out[i] = max(out[i], leads[lead] + typed - LIST_STEP * rank)
            elif items:
                out[lead] = min(out[lead], max(scores[i] for _, i in items) - LIST_STEP)
    return out


def other_field(item: str, named: set[str]) -> bool:
    """A list item that opens with a field's name other than those the question names (`named`: its
    identifiers, lower case): "In what unit are the read_time and write_time fields of disk_io_counters()
    expressed?" is not answered by "read_count: number of reads", the first line under "... a named tuple
    including the following fields:", which its lead-in lifts otherwise."""
    m = TERM_RE.match(item)
    term = (m.group(1) or m.group(2) or "").strip() if m else ""
    return bool(IDENTIFIER_RE.fullmatch(term)) and term.lower() not in named


def first_positions(sid: np.ndarray) -> dict[int, int]:
    """Each sentence id of a request's positions (`Batch.sentence[0]`) -> the first position it holds."""
    first: dict[int, int] = {}
    for pos, key in enumerate(sid.tolist()):
        first.setdefault(key, pos)
    return first


def list_leads(batch, code_ends: bool = False) -> np.ndarray:
    """(M,) for the first request of `batch`: at each position of a lead-in (`is_lead_in`, the last sentence of
    its line) with a line below it (a blank line between allowed: a code block often stands apart), the position
    where that line's first sentence starts; -1 elsewhere.
    A lead-in promises what follows it ("You can do that by adding the following to your my.cnf:" over "[mysqld]"),
    so a quote of one is followed by its first line (grammar: `Selection.follow`). `code_ends`: not where that line
    is code (`is_code_line`; as in `listed_items_answer`, for a question that does not ask for code an example
    answers nothing, and its lead-in is the statement)."""
    sid = batch.sentence[0]
    out = np.full(sid.shape, -1, dtype=np.int64)
    first = first_positions(sid)
    for p, text in enumerate(batch.texts[0]):
        spans, lines = layout(text)
        for j, line in lead_in_lines(text):
            below = next((x for x in lines[j + 1:j + 3] if x), None)
            if below and not (code_ends and is_code_line(text[spans[below[0]][0]:spans[below[0]][1]])):
                lead, item = sentence_id(p, line[-1]), first.get(sentence_id(p, below[0]))
                if item is not None and lead in first:
                    out[sid == lead] = item
    return out


def code_examples(batch) -> set[int]:
    """The sentence ids of the lead-ins (`is_lead_in`) of the first request of `batch` whose next line, before
    any blank line, is a line of code (`is_code_line`): "You can pass verify the path to a CA_BUNDLE file
    ...:" over ">>> requests.get('https://github.com', verify='/path/to/certfile')"."""
    out: set[int] = set()
    for p, text in enumerate(batch.texts[0]):
        spans, lines = layout(text)
        for j, line in lead_in_lines(text):
            below = lines[j + 1] if j + 1 < len(lines) else None
            if below and is_code_line(text[spans[below[0]][0]:spans[below[0]][1]]):
                out.add(sentence_id(p, line[-1]))
    return out


TERM_EDGE = 0.01  # what a definition's first sentence scores above the best of its line's later ones


def defined_terms_answer(question: str, keys: Sequence[int], scores: Sequence[float],
                         heads: dict[int, tuple[str, int]]) -> list[float]:
    """For a question that asks for code: the first sentence of a definition (a line that opens with a term
    holding code the question does not name, "-M buildername: Alternative to -b.") scores at least what any
    later sentence of that line does, and TERM_EDGE more, so it is quoted first. The later sentences
    describe the term ("Uses the Sphinx make_mode module ...") and may match the question better, but the
    term is the answer and only the first sentence holds it. `heads`: `definition_heads` of the request."""
    out = list(scores)
    place = {key: i for i, key in enumerate(keys)}
    for key, (term, head) in heads.items():
        if key in place and head in place and has_answer_type(term, question, "code"):
            out[place[head]] = max(out[place[head]], scores[place[key]] + TERM_EDGE)
    return out


def signatures_under_named_entries(question: str, keys: Sequence[int], texts: Sequence[str],
                                   heads: dict[int, tuple[str, int]]) -> dict[int, list[int]]:
    """An API reference's signature ("class depot.Pool(factory, size=4, spill=8, wait=15.0, **options): A pool
    that ...") names every parameter with its default; where its passage also holds the entry of a parameter the
    question names ("wait (float) – Seconds to wait for a free session. Defaults to 15.0."), that entry says what
    is asked, and the signature ranks TERM_EDGE below each of the entry's sentences (`sentence_relevances`).
    Where no entry of an asked parameter is given, the signature's default may still answer. Returns each such
    signature's index -> the indices of those entries' sentences. `heads`: `definition_heads` of the request."""
    asked = terms(question)
    place = {key: i for i, key in enumerate(keys)}
    entries: dict[int, list[int]] = {}  # passage -> the indices of the sentences of its entries the question names
    for key, (term, head) in heads.items():
        named = terms(re.sub(r"\s*\(.*?\)|=\S*", "", term))  # "wait (float)", "wait=15.0": the parameter's name
        if named and named <= asked:
            entries.setdefault(int(split_sentence_id(key)[0]), []).extend(
                place[k] for k in (key, head) if k in place)
    return {i: entries[p] for i, (key, text) in enumerate(zip(keys, texts))
            if (p := int(split_sentence_id(key)[0])) in entries and SIGNATURE_RE.match(text)}


def definition_heads(batch) -> dict[int, tuple[str, int]]:
    """Sentence id -> (the term its line defines, the id of the line's first sentence), for each later
    sentence of a definition (a line whose first sentence opens with a term and a colon, as ingest writes a
    definition list's entries: "maintenance_work_mem (integer): Specifies the maximum amount of memory ...
    It defaults to 64 megabytes (64MB)."), for the first request of `batch`. The later sentences say the
    term's default, type or effect without naming it; the learned selector, which reads each sentence
    apart, gives them -10 to -18 where it gives the first sentence about 0."""
    out: dict[int, tuple[str, int]] = {}
    for p, text in enumerate(batch.texts[0]):
        spans, lines = layout(text)
        for line in lines:
            if line and len(line) > 1 and (m := TERM_RE.match(text[spans[line[0]][0]:spans[line[0]][1]])):
                out.update((sentence_id(p, k), (m.group(1) or m.group(2), sentence_id(p, line[0]))) for k in line[1:])
    return out


# a sentence that leans on the one before it for its subject: "By default this is set to 3 minutes.", "Defaults to
# 30.0.", "This pool class is useful only for single-threaded applications.", "Note that this cursor ...",
# "For example, version 10.2 as 100002." (a connective, then a back-reference or a subject-less verb); or that
# opens with a connective and its comma, whatever follows: "Instead, the dump is delayed by up to 15 minutes, ..."
# after "This is not done immediately after each dynamic update ..." (not "If not self.get_cookie(...)": code)
CONNECTIVE = (r"(?:however|also|otherwise|instead|thus|hence|therefore|then|so|note that|in addition|additionally|"
              r"moreover|furthermore|by default|if (?:so|not)|in (?:this|that|such|which|either|each|both) cases?|"
              r"for (?:example|instance)|e\.g\.)")
DEPENDENT_RE = re.compile(
    r"^(?:" + CONNECTIVE + r",\s|note that\s)|"
    r"^(?:" + CONNECTIVE + r"[,:]?\s+)*"
    r"(?:it|its|it's|this|these|that|those|they|their|them|such|the (?:former|latter|default|same)|"
    r"in (?:this|that|such|these|those|either|each|both) (?:cases?|situations?|scenarios?|events?|modes?|"
    r"circumstances?)|" + REMEDY + r"|defaults? (?:to|is)|for example|for instance|e\.g\.)(?![\w'’-])", re.I)
# "... recommends the values of 1 sec and 60 seconds respectively": the things it gives values of are named before it
RESPECTIVELY_RE = re.compile(r"\brespectively\b", re.I)
# "Using truecolor=true avoids this problem.": the problem is told before it
THIS_PROBLEM_RE = re.compile(r"\b(?:this|that|these|those|such an?|the same)\s+(?:problem|issue|error|bug|behaviou?r|"
                             r"effect|situation|limitation|symptom|failure|crash|warning|artifact)s?\b", re.I)
# "these", "those" or "such" before a plural: "Also, a different location for these files may be desired which can
# be changed via the $tmpdir variable." after "Mutt uses many temporary files for viewing messages, ...", "You can
# fix such threads by using the <break-thread> function" after the sentence that tells how they come about (a plural
# of three letters or more, not "-ss": "such as" names examples, "these address" is no plural)
THESE_THINGS_RE = re.compile(r"\b(?:these|those|such)\s+[a-z][\w-]*[a-rt-z]s\b", re.I)
# "To fix this, ...": it leans on the problem before it, and is read after it only for a question that asks what to
# do (`asks_advice`); for any other it would rise with the problem it follows ("To avoid these error messages,
# ..." after the sentence that says which status is returned)
REMEDY_RE = re.compile("^" + REMEDY, re.I)
# a definition entry's field line ("Default: 10.0 seconds.", "Type: int (kilobytes)"): its value is the entry's
FIELD_RE = re.compile(r"^(?:defaults?|type|values?|range|units?|examples?|minimum|maximum)\s*:\s*\S", re.I)
PROSE_END = re.compile(r"[.!?;:][\"'”’)\]]*\s*$")  # a sentence's end (a title or a label has none)
ANTECEDENT_WORDS = 40  # of the sentences a dependent one is read after, their last words


def dependent_heads(batch) -> dict[int, tuple[str, int]]:
    """Sentence id -> (what it is read after, the id of the sentence that is), for each sentence of the first
    request of `batch` that cannot be read alone:
    - one that leans on the sentence before it (DEPENDENT_RE: "By default this is set to 3 minutes." after
      "When a task is to be retried, ... the default delay is defined by the default_retry_delay attribute.";
      RESPECTIVELY_RE: "The DTLS protocol recommends the values of 1 sec and 60 seconds respectively";
      THIS_PROBLEM_RE: "Using truecolor=true avoids this problem."; THESE_THINGS_RE: "You can fix such threads
      by using the <break-thread> function"):
      it is read after the sentences before it, in its line and the lines above, up to ANTECEDENT_WORDS words
      (not across a blank line, not after a title or a line that asks: `section_heads` reads those), as "In
      order to change this behavior, set ..." is about the two sentences that say what the default is and why;
      the sentence right before it is its head;
    - a definition entry's field line (FIELD_RE: "Default: 10.0 seconds." under "worker_lost_wait"): it is read
      after the entry's first line of prose below it ("In some cases a worker may be killed without proper
      cleanup, ..."), up to a blank line or a title.
    The embedder and the lexical cover then see what the sentence is about, as a reader does; the learned
    selector, which reads each sentence apart, gave these -13 to -20 on the library manuals."""
    out: dict[int, tuple[str, int]] = {}
    for p, text in enumerate(batch.texts[0]):
        spans, lines = layout(text)
        flat = [k for line in lines for k in (line or (None,))]  # sentence indices in order, None at a blank line
        line_of = {k: line for line in lines if line for k in line}
        for n, k in enumerate(flat):
            if k is None:
                continue
            sentence = text[spans[k][0]:spans[k][1]]
            if FIELD_RE.match(sentence):
                for run in (flat[n + 1:], flat[n - 1::-1] if n else []):  # the prose below it, else above it
                    if (prose := entry_prose(text, spans, line_of, run)) is not None:
                        out[sentence_id(p, k)] = (prose[0], sentence_id(p, prose[1]))
                        break
            elif n and flat[n - 1] is not None and (DEPENDENT_RE.match(sentence) or RESPECTIVELY_RE.search(sentence)
                                                    or THIS_PROBLEM_RE.search(sentence)
                                                    or THESE_THINGS_RE.search(sentence)):
                words: list[str] = []  # of the sentences before it, back to a blank line, a title or a line
                for m in flat[n - 1::-1]:  # that asks (or, past the first, a line that does not end as prose does)
                    before = None if m is None else text[spans[m][0]:spans[m][1]]
                    if before is None or is_heading(before) or asks(text, spans, [m]) or \
                            (words and not PROSE_END.search(before)):
                        break
                    words[:0] = before.split()
                    if len(words) >= ANTECEDENT_WORDS:
                        break
                if words:
                    out[sentence_id(p, k)] = (" ".join(words[-ANTECEDENT_WORDS:]), sentence_id(p, flat[n - 1]))
    return out


def adds_to(text: str, said: set[str], head: str, question: str, kind: str | None, asked: set[str]) -> bool:
    """Whether a sentence that cannot be read alone adds, to what it is read after (`head`), what the question
    asks: a value of the asked kind that `head` lacks ("By default this is set to 3 minutes." for "how long",
    after a sentence with no duration), or a word of the question that `head` lacks ("Its unit files live in
    ..." for "where do systemd unit files live?"). Only then is it read after it: a sentence that adds neither
    would match the question as well as the one it leans on and be quoted after it, for nothing ("This
    information is essential for the correct configuration of the cross-connect.")."""
    return (has_answer_type(text, question, kind) and not has_answer_type(head, question, kind)) \
        or bool((said & asked) - terms(head))


def entry_prose(text: str, spans, line_of: dict[int, Sequence[int]],
                run: Sequence[int | None]) -> tuple[str, int] | None:
    """The first line of prose along `run` (sentence indices of `text` going away from a field line, None at a
    blank line), before a blank line or a title: its first ANTECEDENT_WORDS words and its first sentence's
    index, or None. `line_of`: each sentence's line (`lines_of`)."""
    for m in run:
        if m is None:
            return None
        other = text[spans[m][0]:spans[m][1]]
        if is_heading(other):
            return None
        if not FIELD_RE.match(other) and len(other.split()) > 3:
            line = line_of[m]
            words = text[spans[line[0]][0]:spans[line[-1]][1]].split()
            return " ".join(words[:ANTECEDENT_WORDS]), line[0]
    return None


def sentence_texts(batch) -> tuple[list[int], list[str]]:
    """The sentence ids of the first request of `batch` that hold featurized tokens, and their texts."""
    present = set(np.unique(batch.sentence[0]).tolist())
    keys, texts = [], []
    for p, text in enumerate(batch.texts[0]):
        for k, (a, b) in enumerate(layout(text)[0]):
            if sentence_id(p, k) in present:
                keys.append(sentence_id(p, k))
                texts.append(text[a:b])
    return keys, texts


DEFAULT_QUESTION = re.compile(r"\bdefaults?\b", re.I)  # "What is its usual default?", "... by default?"
STATES_DEFAULT = re.compile(r"\bdefault", re.I)  # "default 10m", "defaults to 30", "by default", "The default is"
UNTYPED = 1.0  # taken off, for answer-or-refuse only, a sentence without the kind of value the question asks for


def decision_score(batch, question: str, score: np.ndarray) -> float:
    """The best sentence's relevance (`score`, over the first request's positions) for answer-or-refuse: a
    sentence without the kind of value the question asks for counts UNTYPED less there, and a title line
    (`is_heading`) not at all: it names a topic and answers nothing ("What parameters does SLONIK CLONE PREPARE
    take?" was answered with a passage's title "SLONIK CLONE PREPARE/SLONIK CLONE FINISH").
    - A "how many" or "how long" question (`asks_count`) needs a number the question does not give
      (`has_answer_type`). Not every question `answer_type` reads as asking for a number: a default "value"
      may be "false" or "unset".
    - A question that asks for a default needs a sentence that states one ("default 10m", "defaults to", "by
      default"): "What is the default value of the redirect router's one_time option?" is refused over "The
      headers_add option cannot be used for a redirect router that has the one_time option set."
      Where the question names a setting with underscores, not another setting's default (`other_default`).
    - A "when" question needs no date: "When do the patent licenses ... terminate?" is answered by "... as of
      the date such litigation is filed."
    Only the decision reads it. Ranking with it put the gold sentence first less often on the dev halves: an
    answer may give its value without the word ("... but is typically 500." after "The default value is
    determined when the shell is configured,")."""
    proper = question_proper(question)
    count, default = asks_count(question), bool(DEFAULT_QUESTION.search(proper))
    first = first_positions(batch.sentence[0])  # (a sentence's relevance is the same at each of its positions)
    named = [name.lower() for name in identifiers(question)] if default else []
    keys, texts = sentence_texts(batch)
    best = -np.inf
    for i, (key, text) in enumerate(zip(keys, texts)):
        if is_heading(text):
            continue
        prior = texts[i - 1] if named and i and split_sentence_id(keys[i - 1])[0] == split_sentence_id(key)[0] \
            else ""  # (the sentence before it in its passage, read only where the question names a setting)
        top = float(score[first[key]])
        typed = (not count or has_answer_type(text, question, "number")) and \
            (not default or (bool(STATES_DEFAULT.search(text)) and not other_default(text, prior, named)))
        best = max(best, top if typed else top - UNTYPED)
    return float(best)


def other_default(text: str, before: str, named: Sequence[str]) -> bool:
    """Whether a sentence that states a default states another setting's: the question names settings
    (`named`, IDENTIFIER_RE's, lower case), the sentence names some, and neither it nor the sentence before it
    (`before`: "monitor_interval (integer): ..." then "The default is 500.") names one of the question's (a
    longer name holding one counts: "slon_conf_sync_interval" names "sync_interval"). "What is the default
    value of slon's monitor_interval setting?" is not answered by "... slon_conf_sync_interval_timeout; if the
    timeout value (which defaults to 10000, implying 10s) is kept low, ..."."""
    found = identifiers(text) if named else []
    return bool(found) and not any(a in b.lower() for a in named for b in found + identifiers(before))


def clause_choice(batch, question: str, starts: np.ndarray) -> np.ndarray:
    """(M,) over the allowed quote starts of the first request of `batch`: a sentence start scores 0; a clause
    start whose prefix in its sentence is `dispensable` (and whose rest is not) scores 1 + its index, so the
    latest such start wins (everything before it only restates the question); any other -inf (never opened:
    its prefix may hold the answer). A question that asks for code keeps a prefix holding code it does not
    name: "autodoc_member_order: This value selects ... by source order" answers "Which setting lists members
    in source order?" with its name, though the name's words are all in the question."""
    sid = batch.sentence[0]
    out = np.full(sid.shape, -np.inf, dtype=np.float32)
    T = batch.shape[2]
    spans = [layout(text)[0] for text in batch.texts[0]]
    asked = terms(question)
    code = answer_type(question) == "code"
    for pos in np.flatnonzero(starts).tolist():
        p, k = split_sentence_id(int(sid[pos]))
        text = batch.texts[0][p]
        a = spans[p][k][0]
        s = max(a, batch.offsets[0][p][pos - p * T][0])
        if s == a:
            out[pos] = 0.0
        elif (dispensable(text[a:s], asked) and not dispensable(text[s:spans[p][k][1]], asked, ENTITY_NOISE)
              and not (code and has_answer_type(text[a:s], question, "code"))):
            out[pos] = 1.0 + pos  # (the rest must say something new: "Galaxy Gaming, Inc." is not cut to "Inc.")
    return out


def cell_stops(batch, question: str) -> np.ndarray:
    """(M,) bool for the first request of `batch`: where a quote of a table row stops because the question
    names one of its columns. In each row ("label | column: value | ..."), the cell whose column name has the
    largest share of its content words in the question (at least one word; then the one with more) is the
    one asked for; its last token is a stop, unless the cell ends the row. "Water | January–June 2023 Sales:
    1706 | Underlying Trading operating profit (a): 187 | Trading operating profit: 57 | ..." is quoted up to
    "57" for "What was the trading operating profit of the Water category in January–June 2023?": the label,
    the cells before it (a quote is verbatim) and the value asked for, not the rest of the row. Two cells
    that score the same leave the row whole: "2021: $— | 2020: $835,300" for a question that names both
    years, or "Price: 1.99 | # In stock: 739" for "In the price table, how many are in stock?"."""
    sid = batch.sentence[0]
    out = np.zeros(sid.shape, dtype=bool)
    T = batch.shape[2]
    asked = terms(question)
    for p, text in enumerate(batch.texts[0]):
        ends = set()
        for a, b in layout(text)[0]:
            cells = text[a:b].split(" | ")
            keys = column_keys(cells, asked)
            best = max((key for key, _ in keys), default=None)
            at = [j for key, j in keys if key == best]
            if len(at) == 1 and at[0] < len(cells) - 1:  # (two cells that score the same: the row whole)
                ends.add(a + sum(len(c) for c in cells[:at[0] + 1]) + 3 * at[0])
        if ends:
            for t, (s0, e) in enumerate(batch.offsets[0][p]):
                if 0 <= s0 < e and e in ends:
                    out[p * T + t] = True
    return out & (sid >= 0)


def column_keys(cells: Sequence[str], asked: set[str]) -> list[tuple[tuple[float, int], int]]:
    """For a table row split into its cells ("label | column: value | ..."): (key, index) of each cell after
    the label whose column name shares a word with the question (`asked`: its terms); key = (the share of the
    column name's words that are asked, how many are)."""
    out = []
    for j, cell in enumerate(cells[1:], start=1):
        if (cell_name := named_value(cell)) is None:
            continue
        named = terms(cell_name[0])
        if hit := len(named & asked):
            out.append(((hit / len(named), hit), j))
    return out


def off_column_rows(batch, question: str, score: np.ndarray) -> np.ndarray:
    """`score` (M,) of the first request of `batch`, less the table rows that name the column asked for less well
    than the best-scoring sentence does, where that sentence is a table row naming it (`column_keys`): they
    score -inf, so no further quote is such a row. A long row that ingest split keeps its label on each piece,
    so "Zone NA | January–June 2023 Impairment of goodwill ... (c): 0" (another piece of the row, or another
    table's) would otherwise be quoted after "Zone NA | January–June 2023 Sales (a): 12553" for "What were
    Zone NA's sales in January–June 2023?": its label is asked and it holds a value, but not the value asked
    for. Rows that name the asked column as well (another document's "Maple Leafs | Location: TOR | Stanley
    Cups: 0" beside "... Stanley Cups: 13", or another row of the same table) keep their scores, and so does
    every sentence that is no table row."""
    keys, texts = sentence_texts(batch)
    asked = terms(question)
    best = {k: max((key for key, _ in column_keys(t.split(" | "), asked)), default=None)
            for k, t in zip(keys, texts) if " | " in t}
    sid = batch.sentence[0]
    top = int(sid[int(np.argmax(score))])
    if best.get(top) is None:
        return score
    worse = [k for k, key in best.items() if k != top and (key is None or key < best[top])]
    return np.where(np.isin(sid, worse), -np.inf, score) if worse else score
