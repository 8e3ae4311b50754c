"""How the bundled model answers: when it refuses, where quotes start and stop, how several passages are cited.

These pin behaviour on small real texts with the shipped checkpoint; quality is measured by `sculptrag eval`
(docs/benchmarks.md), not here.
"""

from __future__ import annotations

import json
import re
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from generator.prompt import REFUSAL
from generator.sculpt import SculptGenerator, featurize
from generator.sculpt import relevance as relevance_module
from generator.sculpt.generator import ANSWER_THRESHOLD, _Decoding
from generator.sculpt.grammar import choose, forced
from generator.sculpt.runtime import log_softmax
from generator.sculpt.checkpoint import bundled_checkpoint, checkpoint_meta, load_tokenizer
from generator.sculpt.features import (_word_at, cell_gaps, clause_starts, passage_windows, sentence_id, sentence_spans,
                                       word_joins)
from generator.sculpt.config import SculptConfig
from generator.sculpt.relevance import (ADVICE, ADVICE_QUESTION, ANTECEDENT_WORDS, DEFINITION_QUESTION, DEPENDENT_RE, LIST_STEP, OTHER_YEAR, SCAFFOLD_LINE,
                                       other_entry, other_entry_passages, other_field,
                                       TYPE_WEIGHT, answer_type, asked_names, asked_years, asks_for_list, combine, parts,
                                       cell_stops, code_examples, definition_heads, dependent_heads, has_answer_type,
                                       is_credit, is_header_row, is_heading, is_lead_in, is_referral, is_code_line, labelled_row,
                                       lines_of, named_entry,
                                       listed_items_answer, position_terms, question_proper, relevance, section_heads,
                                       question_parts, question_sentences, sentence_texts, speaker_names, sub_questions,
                                       terms, unsigned,
                                       unnamed)
from pipeline.text import idf_cover
from pipeline.types import GenerationRequest, Passage

APACHE_GRANT = (
    "Grant of Patent License. Subject to the terms and conditions of this License, each Contributor hereby grants "
    "to You a perpetual, worldwide, non-exclusive, no-charge, royalty-free, irrevocable (except as stated in this "
    "section) patent license to make, have made, use, offer to sell, sell, import, and otherwise transfer the Work. "
    "If You institute patent litigation against any entity (including a cross-claim or counterclaim in a lawsuit) "
    "alleging that the Work or a Contribution incorporated within the Work constitutes direct or contributory "
    "patent infringement, then any patent licenses granted to You under this License for that Work shall "
    "terminate as of the date such litigation is filed.")
APACHE_DEFS = (
    "Definitions.\n\"License\" shall mean the terms and conditions for use, reproduction, and distribution as "
    "defined by Sections 1 through 9 of this document.\n\"Licensor\" shall mean the copyright owner or entity "
    "authorized by the copyright owner that is granting the License.")
MEMO = ("Delivery report\nTo Whom it May Concern:\nThere were 20,000 bottles of water, 10,000 blankets, and 200 "
        "laptops delivered on January 23, 2023. A total of 3 trucks were used for 15 hours.\nBest Regards,")
COVER = ("Galaxy Gaming, Inc. (Exact name of small business issuer as specified in its charter)\n"
         "Nevada (State or other jurisdiction of incorporation or organization) | 20-8143439 (IRS Employer "
         "Identification No.)\n6480 Cameron Street Ste. 305 – Las Vegas , NV 89118 (Address of principal executive "
         "offices)")
APT = "Package archives are listed in /etc/apt/sources.list, one repository per line. APT reads it on update."
SYSTEMD = "Systemd starts services in parallel. Its unit files live in /lib/systemd/system."


@pytest.fixture(scope="module")
def sculpt() -> SculptGenerator:
    g = SculptGenerator()
    g.warm_up()
    return g


def ask(gen: SculptGenerator, question: str, *texts: str):
    passages = tuple(Passage(number=i + 1, text=t, context=CONTEXTS.get(t, "")) for i, t in enumerate(texts))
    return gen.generate(GenerationRequest(question=question, passages=passages))


CONTEXTS: dict[str, str] = {}  # what ingest would say a passage is about (its file, document, entity), by its text


def quotes(raw: str) -> list[tuple[str, int]]:
    return [(m.group(1).strip(), int(m.group(2))) for m in re.finditer(r"\s*(.*?)\s*\[(\d+)\]", raw, re.S)]


def test_a_line_break_always_ends_a_sentence():
    text = "Delivery report\nTo Whom it May Concern:\nThere were 200 laptops. A total of 3 trucks.\n  \n Regards,"
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        "Delivery report", "To Whom it May Concern:", "There were 200 laptops.", "A total of 3 trucks.", "Regards,"]


def test_clauses_open_after_clause_punctuation_not_inside_numbers_or_dates():
    tok = load_tokenizer()
    text = "There were 20,000 bottles of water, 10,000 blankets, and 200 laptops delivered on January 23, 2023."
    batch = featurize(tok, SculptConfig(), ["q"], [[text]])
    offsets = batch.offsets[0][0]
    opened = [text[offsets[i][0]:] for i in np.flatnonzero(clause_starts(batch)).tolist()]
    assert [o.split()[0] for o in opened] == ["10,000", "200"]  # after ", and" the clause opens on its word
    table = "Totals, by year:\nCash and cash equivalents, end of period | 2021: $16,058,714 | 2020: $5,993,388"
    batch = featurize(tok, SculptConfig(), ["q"], [[table]])
    offsets = batch.offsets[0][0]
    opened = [table[offsets[i][0]:] for i in np.flatnonzero(clause_starts(batch)).tolist()]
    assert [o.split()[0] for o in opened] == ["by"]  # a table row is quoted from its label, never from a cell


def test_a_quote_cannot_stop_inside_a_word():
    tok = load_tokenizer()
    text = "Delivered on January 23, 2023 by the unified toolkit."
    batch = featurize(tok, SculptConfig(), ["q"], [[text]])
    offsets = batch.offsets[0][0]
    joined = {text[offsets[i][0]:offsets[i][1]] for i in np.flatnonzero(word_joins(batch)).tolist()}
    pieces = tok.tokenize(text)
    assert joined == {p.removeprefix("##") for p in pieces if p.startswith("##")} and joined  # only word pieces


TRANSFER_AGENT = ("TRANSFER AGENT\nOur stock transfer agent and registrar is Philadelphia Stock Transfer, Inc. located "
                  "at 2320 Haverford Street, Ardmore, PA 19003. Their telephone number is (484) 416-3124.")
REDEMPTION = ("On May 6, 2019, we redeemed all 23,271,667 shares of our common stock held by Triangulum Partners, LLC "
              "(“Triangulum”), an entity controlled by Robert B. Saucier, Galaxy Gaming's founder, and, prior to the "
              "redemption, the holder of a majority of our outstanding common stock.")


def test_a_further_quote_never_opens_on_a_clause_that_would_drop_what_the_question_lacks(sculpt):
    """A quote may open on a clause only where what it leaves out restates the question (`clause_choice`).
    A sentence too long to fit whole after the first quote was once quoted from its last clause that fit,
    a fragment without its subject: '... Ardmore, PA 19003. [1] LLC (“Triangulum”), an entity controlled by
    Robert B. Saucier, ... [2]' (and, over the passages retrieved for this business_docs question, 'Inc. located
    at 2320 Haverford Street ...')."""
    question = "Who is Galaxy Gaming's stock transfer agent and registrar?"
    request = GenerationRequest(question=question, passages=(Passage(number=1, text=TRANSFER_AGENT),
                                                             Passage(number=2, text=REDEMPTION)))
    run = _Decoding(sculpt, request)
    assert run.selection.start_score is not None
    assert not (run.selection.starts & ~np.isfinite(run.selection.start_score)).any()
    quoted = [q for q, _ in quotes(sculpt.generate(request).raw_text)]
    assert quoted[0].startswith("Our stock transfer agent and registrar is Philadelphia Stock Transfer, Inc.")
    assert all(q.startswith(("Our stock", "On May 6")) for q in quoted)  # whole sentences only


SEGMENTS = ("Revenue and results by product, in millions of CHF\n"
            "Water | January–June 2023 Sales: 1706 | Underlying Trading operating profit (a): 187 | Trading "
            "operating profit: 57 | Net other trading income/(expenses) (b): -130 | of which restructuring costs: -94\n"
            "PetCare | January–June 2023 Sales: 9373 | Underlying Trading operating profit (a): 1959 | Trading "
            "operating profit: 1939 | Net other trading income/(expenses) (b): -20 | of which restructuring costs: -11")


@pytest.mark.parametrize("question,ends", [
    ("What was the trading operating profit of Water in January–June 2023?", ["57", "1939"]),
    ("What were PetCare sales in January–June 2023?", ["1706", "9373"]),
    ("What restructuring costs did PetCare record?", []),  # the last cell: the whole row is the quote
    ("How is the water business doing?", []),  # no column named: the decoder decides
    ("In the sales and restructuring table, what trading operating profit did Water make?", ["57", "1939"]),
])
def test_a_table_row_quote_stops_at_the_column_the_question_names(question: str, ends: list[str]):
    tok = load_tokenizer()
    batch = featurize(tok, SculptConfig(), [question], [[SEGMENTS]])
    offsets = batch.offsets[0][0]
    stops = [SEGMENTS[:offsets[i][1]].rsplit(" ", 1)[-1] for i in np.flatnonzero(cell_stops(batch, question)).tolist()]
    assert stops == ends  # the word each stop ends (its last WordPiece)


def test_two_columns_the_question_names_alike_leave_the_row_whole():
    tok = load_tokenizer()
    row = "Loan forgiveness | 2021: $— | 2020: $835,300 | 2019: $12,000"
    for question, ends in [("In the 2021 statement, what was the loan forgiveness in 2020?", []),
                           ("What was the loan forgiveness in 2020?", ["$835,300"])]:
        batch = featurize(tok, SculptConfig(), [question], [[row]])
        offsets = batch.offsets[0][0]
        found = np.flatnonzero(cell_stops(batch, question)).tolist()
        assert [row[:offsets[i][1]].rsplit(" ", 1)[-1] for i in found] == ends


LONG_ROW = "Segment results\nWidgets division | " + " | ".join(
    f"{name} margin: {1000 + 37 * k:,}" for k, name in enumerate(
        ["Northern", "Southern", "Eastern", "Western", "Central", "Coastal", "Mountain", "Island", "Border",
         "Harbour", "Valley", "Prairie", "Desert", "Forest", "Lakeside", "Riverside"]))


def test_cell_gaps_measure_the_next_cell_of_a_row():
    tok = load_tokenizer()
    batch = featurize(tok, SculptConfig(), ["q"], [[LONG_ROW]])
    offsets, gaps = batch.offsets[0][0], cell_gaps(batch)
    at = np.flatnonzero(gaps).tolist()
    cells = [LONG_ROW[:offsets[i][1]].rsplit("| ", 1)[-1].split("\n")[-1] for i in at[:2]]
    assert cells == ["Widgets division", "Northern margin: 1,000"]
    nxt = at[1]  # "Northern margin: 1,000" ends here; the next cell is "Southern margin: 1,037"
    assert LONG_ROW[offsets[nxt][1]:offsets[nxt + int(gaps[nxt])][1]] == " | Southern margin: 1,037"


def test_a_table_row_longer_than_the_canvas_is_quoted_to_a_whole_cell(sculpt):
    result = ask(sculpt, "How did the Widgets division do across its regions?", LONG_ROW)
    (quote, _), = quotes(result.raw_text)
    assert quote.startswith("Widgets division | Northern margin: 1,000") and quote != LONG_ROW.split("\n")[1]
    assert LONG_ROW.startswith(" | ", LONG_ROW.index(quote) + len(quote))  # ends where a cell does


def test_an_answer_from_a_table_row_ends_at_the_value_asked_for(sculpt):
    result = ask(sculpt, "What was the trading operating profit of the Water category in January–June 2023?", SEGMENTS)
    assert quotes(result.raw_text) == [("Water | January–June 2023 Sales: 1706 | Underlying Trading operating profit "
                                        "(a): 187 | Trading operating profit: 57", 1)]


# A cover page's registration table: its values are words, not figures (Galaxy Gaming's 10-K, as ingest writes it).
REGISTRATION = ("Securities registered under Section 12(b) of the Act:\n"
                "Common stock | Trading symbol: GLXZ | Name of exchange on which registered: OTCQB marketplace")


# more sentences than the embedder reads (relevance.EMBED_TOP) that name the stock and not its symbol
HOLDINGS = "\n".join(f"Director {n} holds {1000 * (n + 1):,} shares of our common stock." for n in range(14))


def test_a_table_row_whose_values_are_words_answers_the_column_asked_for(sculpt):
    result = ask(sculpt, "Under what trading symbol is Galaxy Gaming's common stock registered?", REGISTRATION, HOLDINGS)
    assert quotes(result.raw_text) == [("Common stock | Trading symbol: GLXZ", 1)]


# A statement the model reads 200 tokens of: the row asked for is its last line, past the 200th token.
STATEMENT = "\n".join(
    ["In millions of CHF | January–June 2023 | January–June 2022"]
    + [f"{name} | January–June 2023: {7000 - 97 * i} | January–June 2022: {6500 - 89 * i}"
       for i, name in enumerate(["Underlying trading operating profit (a) as per Note 3.1",
                                 "Net other trading income/(expenses) as per Note 5.1",
                                 "Trading operating profit as per Note 3.1",
                                 "Impairment of goodwill and non-commercialized intangible assets",
                                 "Net other operating income/(expenses)", "Operating profit",
                                 "Net financial income/(expense)"])]
    + ["Profit before taxes, associates and joint ventures | January–June 2023: 6565 | January–June 2022: 6185"])


def test_a_long_passage_is_read_in_windows_that_keep_its_number_and_its_text():
    tok = load_tokenizer()
    cfg = SculptConfig()
    assert len(tok(STATEMENT, add_special_tokens=False)["input_ids"]) > cfg.max_passage_tokens
    short = Passage(number=1, text=APT)
    windows = passage_windows(tok, [Passage(number=2, text=STATEMENT), short], cfg.max_passage_tokens, 16)
    assert [w.number for w in windows] == [2, 1, 2] and windows[1] is short  # the rest after the passages
    assert all(w.text in STATEMENT and len(tok(w.text, add_special_tokens=False)["input_ids"]) <= cfg.max_passage_tokens
               for w in windows if w.number == 2)
    assert "\n".join(w.text for w in windows if w.number == 2) == STATEMENT  # cut at line ends, nothing lost
    assert passage_windows(tok, [Passage(number=2, text=STATEMENT), short], cfg.max_passage_tokens, 2) == \
        [windows[0], short]  # no room: the passages come first


def test_a_window_starts_where_a_sentence_does_when_its_text_holds_a_sentence_end():
    tok = load_tokenizer()
    long_one = ("On May 6, 2019, we redeemed all shares of our common stock held by Triangulum Partners, LLC, "
                + "an entity that held, prior to the redemption, shares of several classes, " * 14 + "for cash.")
    text = f"Share Redemption. {long_one} The redemption was financed by a term loan."
    windows = passage_windows(tok, [Passage(number=1, text=text)], 200, 16)
    assert len(windows) > 2 and [w.number for w in windows] == [1] * len(windows)
    assert windows[0].text == "Share Redemption." and windows[1].text.startswith("On May 6, 2019")
    assert " ".join(w.text for w in windows) == text  # nothing lost


def test_the_answer_in_the_last_row_of_a_long_table_is_found(sculpt):
    result = ask(sculpt, "What was the profit before taxes, associates and joint ventures for January–June 2023?",
                 STATEMENT)
    assert "6565" in result.text and [n for _, n in quotes(result.raw_text)] == [1]
    assert [c.passage_number for c in result.citations] == [1]


def test_a_quote_cannot_stop_inside_an_abbreviation_or_a_number():
    tok = load_tokenizer()
    text = "Citibank, N.A. received $14.3 billion, about 1,000 times what it didn't get."
    batch = featurize(tok, SculptConfig(), ["q"], [[text]])
    offsets = batch.offsets[0][0]
    stop_ok = [text[:offsets[t][1]] for t in range(len(offsets) - 1)
               if offsets[t][0] >= 0 and offsets[t + 1][0] >= 0 and not word_joins(batch)[t + 1]]
    for cut in ("Citibank, N.", "received $14.", "about 1,", "didn'"):
        assert not any(s.endswith(cut) for s in stop_ok), cut
    assert any(s.endswith("Citibank, N.A") for s in stop_ok) and any(s.endswith("$14.3") for s in stop_ok)


@pytest.mark.parametrize("question,kind", [
    ("When was the memo sent?", "date"), ("What was Tesla's revenue in Q2 2020?", "number"),
    ("How many laptops were delivered?", "number"), ("In which state is Galaxy Gaming incorporated?", "name"),
    ("Who won the 2021 US Open?", "name"), ("What is LayoutParser?", None),
    ("Which git rebase option stashes my changes before it starts?", "code"),
    ("How do I see the changes I've already staged?", "code"), ("Which mod_dir directive sends requests on?", "code"),
    ("Which log format code records how long the request took?", "code"),  # it asks for the code, not the time
    ("What specific programs in San Francisco promote green building?", None),
    ("What is the function of the LNvs in Drosophila?", None),
    # a bare "How?" after what the user wants asks how to do it, as "How do I do that?" does
    ("My server has several network interfaces and the client must send from one of them. How?", "code"),
    ("How does the scheduler order its jobs?", None),
    # a "how much" inside another ask asks for no number: the function, the way
    ("Which function tells me how much application data really fits?", "code"),
    ("I'd like to allocate the buffer exactly. How do I find out how big it has to be?", "code"),
    ("When the pool is full, how many connections wait?", "number"), ("Do you know how long it waits?", "number"),
    ("By default, how often does the client check a POP3 mailbox for new mail?", "number"),  # (every 60 seconds)
    # a quantity the question names is asked for only where its question word asks what or which of it
    ("What is the default size of the statement cache?", "number"), ("Which interest rate applies?", "number"),
    ("Is a single Environment safe to share between threads?", None),  # yes or no
    ("How is the value that render() returns decided?", None),  # a way
    ("What happens to a client whose score reaches the threshold?", None),
    ("Which filter splits a sequence into lists of a fixed number of items?", None),  # the filter
    # a way asked in the passive is asked as "How can I ...?" is
    ("How can the server be made to write out its TLS session keys?", "code"),
    ("How can a Jinja Environment be configured to look like Mako?", "code"),
    # a version ("2.1.0", "PostgreSQL 9.5"), not a release date
    ("In which PostGIS version did ST_Slope change its output to degrees?", "version"),
    ("Since which GnuTLS version is gnutls_pbkdf2() available?", "version"),
    ("What is the release date of the game?", None)])
def test_factoid_questions_say_what_kind_of_value_they_ask_for(question, kind):
    assert answer_type(question) == kind


def test_a_typed_value_must_be_one_the_question_does_not_already_name():
    q = "What was Tesla's revenue in Q2 2020?"
    assert has_answer_type("Revenue was $6.04 billion in Q2 2020.", q, "number")
    assert not has_answer_type("Tesla reported its Q2 2020 results.", q, "number")  # only the question's own 2020
    assert not has_answer_type("Galaxy Gaming, Inc.", "Where is Galaxy Gaming based?", "name")
    q = "which city hosted the olympic games in 2004?"  # a name the question says in another form is not new
    assert not has_answer_type("The costs of hosting the Olympics have skyrocketed since the 2004 games.", q, "name")
    assert has_answer_type("Athens 2004 Olympic Games, athletic festival held in Athens.", q, "name")
    q = "Which git rebase option stashes my uncommitted changes first?"
    for holds in ("--autostash, --no-autostash: Automatically create a temporary stash entry.",
                  "Set rebase.autoStash to true.", "Patterns go into the $GIT_DIR/info/exclude file.",
                  "The USR1 or graceful signal restarts the server.", "Use FallbackResource /index.php instead.",
                  "pipefail: If set, the return value of a pipeline is that of the last command to fail."):
        assert has_answer_type(holds, q, "code"), holds
    assert not has_answer_type("Automatically create a temporary stash entry before the rebase begins.", q, "code")
    assert not has_answer_type("The git rebase option is described below.", q, "code")  # the question's own words
    assert not has_answer_type("Note: the stash is kept.", q, "code")
    q = "How many times does the pool retry the ping?"
    assert has_answer_type("It will try up to three times before giving up.", q, "number")  # a number in words
    assert not has_answer_type("One of the connections is tested before use.", q, "number")  # not "one"
    q = "What is the default size of SQLAlchemy 1.4's SQL compilation cache?"  # a version is no quantity
    assert not has_answer_type("New in version 1.4.", q, "number")
    assert has_answer_type("Defaults to 500.", q, "number") and not has_answer_type("New in version 1.3.", q, "number")
    assert has_answer_type("Changed in version 1.3: the cache holds 500 statements.", q, "number")
    # nor is another version of a product the question gives one: "SQLAlchemy 1.3" beside "SQLAlchemy 1.4"
    assert not has_answer_type("It makes SQLAlchemy 1.4 faster than SQLAlchemy 1.3 at compiling.", q, "number")
    assert has_answer_type("It makes SQLAlchemy 1.4 two times faster than SQLAlchemy 1.3.", q, "number")
    assert has_answer_type("Item 8 lists 12 risks.", "How many risks does Item 7 list?", "number")
    assert not has_answer_type("See Item 8.", "How many risks does Item 7 list?", "number")
    assert has_answer_type("Revenue rose in Q3 2024.", "How much revenue in Q3 2023?", "number")  # a year: no version
    q = "When you build a BRIN index, how many table blocks does each range cover?"  # nor is any product's version
    for version in ("It is an index method introduced in PostgreSQL 9.5.", "Availability: 2.3.0 BRIN support.",
                    "Changed: 2.1.0 the index covers more blocks."):
        assert not has_answer_type(version, q, "number"), version
    assert has_answer_type("The default number of blocks in a range is 128.", q, "number")
    assert has_answer_type("A range costs 9.5 milliseconds to scan.", q, "number")  # a value after a plain word
    q = "In which PostGIS version did ST_Slope change its default output?"
    for holds in ("ST_Slope - Changed: 2.1.0 In prior versions, return values were in radians.", "New in version 3.",
                  "PostgreSQL 12 and newer are supported.", "It needs Python 3.7 or newer."):
        assert has_answer_type(holds, q, "version"), holds
    assert not has_answer_type("Returns the slope (in degrees by default) of an elevation raster band.", q, "version")
    assert not has_answer_type("PostGIS can be built with 2 threads.", q, "version")


def test_a_sentence_that_adds_nothing_to_the_question_ranks_below_one_that_answers(sculpt):
    q = "In which state is Galaxy Gaming incorporated?"
    echo, answer = relevance(sculpt._model.embed_hidden, sculpt._tokenizer, q, [
        "Galaxy Gaming, Inc.", "Nevada (State or other jurisdiction of incorporation or organization)"])
    assert answer > echo


def test_the_answer_is_given_when_a_passage_states_it(sculpt):
    result = ask(sculpt, "When do the patent licenses granted under the Apache License terminate?", APACHE_DEFS,
                 APACHE_GRANT)
    assert result.text != REFUSAL
    assert "litigation is filed" in result.raw_text and "[2]" in result.raw_text
    result = ask(sculpt, "In which state is Galaxy Gaming incorporated?", COVER)
    assert "Nevada" in result.text


def test_the_answer_is_refused_when_no_passage_holds_it(sculpt):
    result = ask(sculpt, "What is the boiling point of mercury in kelvin?", APT, SYSTEMD)
    assert result.text == REFUSAL and not result.citations


def test_the_answer_threshold_is_the_checkpoints_own_unless_set(sculpt, tmp_path):
    # the learned share in the relevance moves with the weights, so a checkpoint carries the threshold chosen with it
    assert sculpt.answer_threshold == checkpoint_meta(bundled_checkpoint()).get("answer_threshold", ANSWER_THRESHOLD)
    folder = tmp_path / "strict"
    shutil.copytree(bundled_checkpoint(), folder)
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "answer_threshold": 50.0}))
    strict = SculptGenerator(model_path=folder)
    strict.warm_up()
    assert strict.answer_threshold == 50.0
    assert ask(strict, "In which state is Galaxy Gaming incorporated?", COVER).text == REFUSAL  # nothing reaches 50
    chosen = strict.with_options(answer_threshold=0.5)  # a setting overrides the checkpoint's
    assert chosen.answer_threshold == 0.5 and "Nevada" in ask(chosen, "In which state is Galaxy Gaming incorporated?",
                                                              COVER).text


def test_a_quote_starts_where_the_answer_does_never_on_a_heading(sculpt):
    result = ask(sculpt, "How many laptops were delivered on January 23, 2023?", MEMO)
    assert "200 laptops" in result.text
    for quote, _ in quotes(result.raw_text):
        assert not quote.startswith(("Delivery report", "To Whom")) and "\n" not in quote
        end = MEMO.index(quote) + len(quote)
        assert end == len(MEMO) or not MEMO[end].isalnum()  # never ends mid-word


GIT_ADD = ("Git tracks content not files\nMany revision control systems provide an add command that tells the "
           "system to start tracking changes to a new file. Git's add command does something simpler and more powerful.")
GIT_IGNORE = ("Ignoring files\nA gitignore file specifies intentionally untracked files that Git should ignore. "
              "To stop tracking a file that is currently tracked, use git rm --cached.")


def test_a_line_the_document_marks_as_a_section_title_is_not_quoted_as_the_answer(sculpt):
    question = ("Adding a file to .gitignore didn't stop git from tracking it. "
                "How do I stop tracking a file that is already tracked?")
    passages = (Passage(number=1, text=GIT_ADD, section="Git tracks content not files"),
                Passage(number=2, text=GIT_IGNORE, section="Ignoring files"))
    result = sculpt.generate(GenerationRequest(question=question, passages=passages))
    assert quotes(result.raw_text)[0] == ("To stop tracking a file that is currently tracked, use git rm --cached.", 2)
    assert "Git tracks content not files" not in result.text  # (without the sections, it was the answer)


def test_a_quote_leaves_out_a_preamble_that_only_restates_the_question(sculpt):
    text = ("In 2019, the company moved its headquarters from Boston to Austin, where it had opened a lab. "
            "Its first office was in a garage.")
    result = ask(sculpt, "Where did the company move its headquarters in 2019?", text)
    assert result.raw_text.startswith("the company moved its headquarters from Boston to Austin")
    # a prefix that says something the question does not is kept: it may be the answer
    result = ask(sculpt, "Who won the men's singles title at the 2021 US Open?",
                 "Daniil Medvedev defeated Novak Djokovic, 6-4, 6-4, 6-4, to win the men's singles title at the "
                 "2021 US Open.")
    assert "Daniil Medvedev" in result.text


def test_a_quote_keeps_the_name_of_the_setting_a_code_question_asks_for(sculpt):
    # the term's words ("autodoc", "member", "order") are all in the question, but the name is the answer
    text = ("autodoc_member_order: This value selects if automatically documented members are sorted "
            "alphabetical (value 'alphabetical'), by member type (value 'groupwise') or by source order "
            "(value 'bysource'). The default is alphabetical.")
    question = "Which autodoc setting lets me list members in source order instead of alphabetically?"
    assert answer_type(question) == "code"
    assert ask(sculpt, question, text).raw_text.startswith("autodoc_member_order: This value selects")
    # a question that does not ask for code still leaves out a preamble that only restates it
    assert ask(sculpt, "How are autodoc members ordered?", text).raw_text.startswith("This value selects")


SPHINX_BUILD = ("-b buildername: The most important option: it selects a builder.\n"
                "-M buildername: Alternative to -b. Uses the Sphinx make_mode module, which provides the same "
                "build functionality as a default Makefile or Make.bat.\n"
                "-j N: Distribute the build over N processes in parallel.")
MAKEFILES = ("The Makefile and make.bat files created by sphinx-quickstart usually run sphinx-build only with "
             "the -b and -d options.")


def test_a_code_question_is_answered_with_the_term_a_definition_describes(sculpt):
    result = ask(sculpt, "Which sphinx-build option is the alternative to -b that uses make mode?", SPHINX_BUILD,
                 MAKEFILES)
    # the line's second sentence matches the question best, but only its first names the option
    assert quotes(result.raw_text)[0] == ("-M buildername: Alternative to -b.", 1)


def test_each_quote_of_a_multi_passage_answer_cites_its_own_passage(sculpt):
    result = ask(sculpt, "Where are package archives listed, and where do systemd unit files live?", SYSTEMD, APT)
    pieces = quotes(result.raw_text)
    assert len(pieces) >= 2 and {n for _, n in pieces} == {1, 2}
    texts = {1: SYSTEMD, 2: APT}
    assert all(quote in texts[n] for quote, n in pieces)  # verbatim, and from the passage its marker names
    assert "/etc/apt/sources.list" in result.text and "/lib/systemd/system" in result.text


RELEASE = ("Release checklist for the 4.2 update, kept by the platform team.\nRequired steps:\nFreeze the branch\n"
           "Run the migration dry run\nTag the release\n\nQuestions about the release go to the platform channel.")


def test_lines_group_sentences_and_mark_blank_lines():
    text = "Intro. Two here.\nRequired steps:\nFreeze\n\nAfter."
    spans = sentence_spans(text)
    assert [[text[slice(*spans[k])] for k in line] if line else None for line in lines_of(text)] == [
        ["Intro.", "Two here."], ["Required steps:"], ["Freeze"], None, ["After."]]


@pytest.mark.parametrize("question,wanted", [
    ("What important points are listed in the test e-mail?", True), ("What does the attachment include?", True),
    ("Which steps are required for the release?", True), ("According to the memo, what items were delivered?", True),
    ("Who signed the memo?", False), ("When was the release tagged?", False), ("Does the plan include dental?", False)])
def test_a_question_that_asks_for_a_list_says_so(question, wanted):
    assert asks_for_list(question) is wanted


def test_the_lines_under_a_lead_in_answer_a_question_about_what_it_lists(sculpt):
    # the items share no word with the question; the lead-in does, and they are its list
    pieces = quotes(ask(sculpt, "Which steps are required for the 4.2 release?", RELEASE, SYSTEMD).raw_text)
    assert pieces[:2] == [("Freeze the branch", 1), ("Run the migration dry run", 1)]


def test_a_list_ends_at_a_blank_line_or_the_next_lead_in(sculpt):
    text = "Required steps:\nFreeze the branch\n\nNot a step\nOptional steps:\nWrite the blog post"
    batch = featurize(sculpt._tokenizer, sculpt._model.cfg, ["Which steps are required?"], [[text]])
    keys, texts = sentence_texts(batch)
    lifted = dict(zip(texts, listed_items_answer(batch, "Which steps are required?", keys, [0.0] * len(keys),
                                                 [1.0 if t.endswith(":") else 0.0 for t in texts])))
    assert lifted["Freeze the branch"] == pytest.approx(1.0 + TYPE_WEIGHT - LIST_STEP)
    assert lifted["Not a step"] == 0.0  # after the blank line
    assert lifted["Write the blog post"] == pytest.approx(1.0 + TYPE_WEIGHT - LIST_STEP)  # its own lead-in's list



LAYOUT = ("LayoutParser provides a unified toolkit to support deep learning based document image analysis.\n"
          "To address these challenges, LayoutParser is built with the following components:\n"
          "1. An off-the-shelf toolkit for applying models for layout detection and character recognition\n"
          "2. A rich repository of pre-trained neural network models")


def test_a_lead_in_is_not_quoted_without_its_list_nor_a_list_number_as_an_item(sculpt):
    pieces = [q for q, _ in quotes(ask(sculpt, "What is LayoutParser?", LAYOUT).raw_text)]
    assert pieces and not any(q.endswith(":") for q in pieces)  # "... the following components:" promises, gives nothing
    assert not any(re.fullmatch(r"\d+\.?", q) for q in pieces)  # "1." is a list's number, not its item
    assert is_lead_in("It includes:") and not is_lead_in("Price: | 1.99:") and not is_lead_in("Best regards,")
    assert is_lead_in("To enable all drivers, set this environment variable as follows")  # (its colon left out)
    assert not is_lead_in("It is built as follows.") and not is_lead_in("if it meets any of the following")

def test_a_question_that_asks_what_a_thing_is_is_answered_by_a_sentence_that_names_it(sculpt):
    # its parts, listed under "LayoutParser is built with the following components:", never say what it is
    question = "What is LayoutParser?"
    batch = featurize(sculpt._tokenizer, sculpt._model.cfg, [question], [[LAYOUT]])
    keys, texts = sentence_texts(batch)
    leads = [1.0 if t.endswith(":") else 0.0 for t in texts]
    kept = listed_items_answer(batch, question, keys, [0.0] * len(keys), leads)
    assert [x for x, t in zip(kept, texts) if not t.endswith(":")] == [0.0] * (len(texts) - 1)  # not lifted
    assert kept[texts.index(next(t for t in texts if t.endswith(":")))] < 0.0  # and the promise below them
    lifted = listed_items_answer(batch, "Which components is LayoutParser built with?", keys, [0.0] * len(keys), leads)
    assert lifted[texts.index("A rich repository of pre-trained neural network models")] > 0.0  # what it lists
    assert DEFINITION_QUESTION.match("What are wheels?") and DEFINITION_QUESTION.match("What is Spring?")
    assert not any(DEFINITION_QUESTION.match(q) for q in (  # a value, or what happens, is no definition
        "What is the default KeepAliveTimeout?", "What is going on?", "What is causing it?"))
    pieces = [q for q, _ in quotes(ask(sculpt, question, LAYOUT).raw_text)]
    assert pieces and "LayoutParser" in pieces[0]


TOUR = ("Egan Bernal officially won the 2019 Tour de France on Sunday.",
        "On Sunday Egan Bernal officially won the 2019 Tour de France in Paris.",
        "Geraint Thomas finished second in the 2019 Tour de France, ahead of Steven Kruijswijk.")


def test_a_further_quote_that_only_repeats_the_answer_is_left_out(sculpt):
    question = "Who won the 2019 Tour de France?"
    assert quotes(ask(sculpt, question, *TOUR).raw_text) == [(TOUR[0], 1)]  # [2] adds only "Paris"
    repeated = quotes(ask(sculpt.with_options(novelty=0.0), question, *TOUR).raw_text)
    assert repeated == [(TOUR[0], 1), (TOUR[1], 2)]  # what the answer was without the test


def test_position_terms_are_the_content_words_the_question_does_not_hold(sculpt):
    question = "Who won the 2019 Tour de France?"
    batch = featurize(sculpt._tokenizer, sculpt._model.cfg, [question], [list(TOUR[:2])])
    ids, per_sentence = position_terms(batch, question)
    T = batch.shape[2]
    words = {}  # term id -> the words of passage 2 that carry it (the "." after "Paris" carries none)
    for t, (a, b) in enumerate(batch.offsets[0][1]):
        if a >= 0 and int(ids[T + t]) >= 0:
            words.setdefault(int(ids[T + t]), set()).add(_word_at(TOUR[1], a, b))
    assert sorted(w for ws in words.values() for w in ws) == ["bernal", "egan", "officially", "paris", "sunday"]
    assert all(len(ws) == 1 for ws in words.values())
    first, second = per_sentence[sentence_id(0, 0)], per_sentence[sentence_id(1, 0)]
    assert len(first) == 4 and [words[i] for i in second - first] == [{"paris"}]


def test_a_possessive_s_is_no_content_word(sculpt):
    """"Galaxy Gaming's" asks about Galaxy Gaming: its "s" matched every possessive of the passages ("Galaxy
    Gaming's founder") as a rare question word, and lifted a sentence about a redemption over the one naming
    the transfer agent."""
    assert terms("Who is Galaxy Gaming's stock transfer agent?") == terms("Who is Galaxy Gaming stock transfer agent?")
    assert terms("it’s Bob's") == {"bob"} and "s" in terms("the s key")  # (a letter of its own stays a word)
    question = "Who is Galaxy Gaming's stock transfer agent and registrar?"
    batch = featurize(sculpt._tokenizer, sculpt._model.cfg, [question], [[REDEMPTION]])
    ids, _ = position_terms(batch, question)
    carried = {_word_at(REDEMPTION, a, b) for t, (a, b) in enumerate(batch.offsets[0][0]) if a >= 0 and ids[t] >= 0}
    assert "s" not in carried and "founder" in carried


def test_the_learned_selector_is_still_there_for_comparison(sculpt):
    old = sculpt.with_options(selector="learned", clauses=False)
    result = old.generate(GenerationRequest(question="Where are package archives listed?",
                                            passages=(Passage(number=1, text=SYSTEMD), Passage(number=2, text=APT))))
    assert result.text == REFUSAL or all(q in (SYSTEMD + APT) for q, _ in quotes(result.raw_text))
    assert old._model is sculpt._model  # a variant shares the loaded weights


@pytest.mark.parametrize("text", ["NFL Commissioners and Presidents", "3.2 Products", "6.4 Internal PXC",
                                  "CHAPTER 6 – BUDGETS", "Item 7A. Quantitative and Qualitative Disclosures",
                                  "IV. Results", "1. Introduction", "Table 9.33. Date/Time Operators",
                                  "Asyncio Platform Installation Notes (Including Apple M1)", "HTTP/2 Support"])
def test_a_title_line_is_a_heading_with_or_without_its_section_number(text: str):
    assert is_heading(text)


@pytest.mark.parametrize("text", ["200 laptops were delivered", "2021 Annual Report", "A total of 3 trucks",
                                  "3.2 million units were sold.", "Revenue grew 12% in 2023"])
def test_a_line_with_a_figure_or_a_sentence_is_not_a_heading(text: str):
    assert not is_heading(text)


@pytest.mark.parametrize("text, referral", [
    ("See git-credential-cache(1) for details.", True), ("Refer to Section 19.4.", True),
    ("For more background, see Asyncio Platform Installation Notes (Including Apple M1).", True),
    ("Seeding is random.", False), ("The default is 5432; see Section 34.1.", False),
    ("See the example: engine = create_engine(url) builds it.", False)])
def test_a_sentence_that_only_sends_the_reader_elsewhere_is_a_referral(text: str, referral: bool):
    assert is_referral(text) is referral


def test_a_referral_is_never_the_answer(sculpt):
    # read with its entry's term ("cache") it matched the question better than the entry's own prose did, and
    # its man-page section "(1)" passed for the number asked: it was quoted first
    text = ("cache: Cache credentials in memory for a short period of time. See git-credential-cache(1) for details.\n"
            "store: Store credentials indefinitely on disk. See git-credential-store(1) for details.\n"
            "You may also have third-party helpers installed; search for credential-* in the output of git help -a, "
            "and consult the documentation of individual helpers.")
    result = ask(sculpt, "Where does git credential-cache keep my credentials?", text)
    said = quotes(result.raw_text)
    assert ("Cache credentials in memory for a short period of time.", 1) in said
    assert not any("See " in quote for quote, _ in said)
    # asked for a duration by default, the entry gives none ("a short period of time"), nor does "(1)": refused
    result = ask(sculpt, "How long does git credential-cache keep my credentials in memory by default?", text)
    assert result.text == REFUSAL


def test_a_manual_page_s_credits_are_no_answer_unless_the_question_asks_who(sculpt):
    asked = "The same script is called by pam_exec from several stacks. How can it tell which module type it runs for?"
    credit = "pam_exec was written by Thorsten Kukuk <kukuk@thkukuk.de> and Josh Triplett <josh@joshtriplett.org>."
    assert is_credit(credit, asked)
    assert is_credit("Authors: Oleg Bartunov <oleg@sai.msu.su>, Teodor Sigaev", asked)
    assert is_credit("Oleg Bartunov <oleg@sai.msu.su>, Moscow, Moscow University, Russia", asked)
    assert not is_credit(credit, "Who wrote pam_exec?")
    assert not is_credit("Its lyrics were written by Seiko Fujibayashi, who had worked on the album.", asked)  # (prose)
    assert not is_credit("author: the name of the document's author.", asked)  # (an entry)
    assert not is_credit("Send questions to Bob Smith <bob@example.org> for help.", asked)
    # the page's AUTHOR section (its own passage) names its subject and "written": it was quoted first, and the
    # answer not at all
    described = ("6.6.1. DESCRIPTION\npam_exec is a PAM module that can be used to run an external command.\n"
                 "The child's environment is set to the current PAM environment list, as returned by pam_getenvlist(3) "
                 "In addition, the following PAM items are exported as environment variables: PAM_RHOST, PAM_RUSER, "
                 "PAM_SERVICE, PAM_TTY, PAM_USER and PAM_TYPE, which contains one of the module types: account, auth, "
                 "password, open_session and close_session.\nCommands called by pam_exec need to be aware of that the "
                 "user can have control over the environment.")
    question = ("The same script is called by pam_exec from several stacks. How can the script tell which module type "
                "it was invoked for?")
    result = ask(sculpt, question, described, "6.6.6. AUTHOR\n" + credit)
    assert "PAM_TYPE" in result.raw_text
    assert "written by" not in result.raw_text
    text = described + "\n" + credit
    assert "written by" in ask(sculpt, "Who wrote pam_exec?", text).raw_text


def test_a_c_prototype_is_code_and_its_parameters_are_no_words_of_its_own():
    # one line since ingest joins a <pre>'s wrapped prototype (ingest/declarations.py); on GnuTLS's reference it
    # was quoted first for questions that named its function ("int gnutls_cipher_add_auth (...); [1]")
    prototype = "int gnutls_cipher_add_auth (gnutls_cipher_hd_t handle, const void *text, size_t text_size);"
    assert unsigned(prototype) == "int gnutls_cipher_add_auth ();"
    assert unsigned("PGconn *PQconnectdbParams(const char * const *keywords, int expand_dbname);") == \
        "PGconn *PQconnectdbParams();"
    assert unsigned("Set the value (in seconds);") == "Set the value (in seconds);"  # prose
    assert is_code_line(prototype) and not is_code_line("This function can only be called once.")
    assert is_code_line("#define GNUTLS_TPM_KEY_USER (1<<3)")


def test_table_rows_header_rows_name_columns_and_labelled_rows_hold_the_asked_value():
    assert is_header_row("Disability Category | Participants | Ballots Completed | Results Accuracy")
    assert is_header_row("In millions of CHF | January–June 2023 | January–June 2022")  # years are no values
    assert not is_header_row("Mobility | Participants: 3 | Results Accuracy: 95.4%")
    assert not is_header_row(REGISTRATION.split("\n")[1])  # values in words, each cell naming its column
    assert is_header_row("Title of each class | Trading symbol | Name of exchange on which registered")
    asked = terms("What inventory did Galaxy Gaming report on its balance sheet at December 31, 2020?")
    assert labelled_row("Inventory | 2021: $770,248 | 2020: $668,525", asked)
    assert not labelled_row("Prepaid expenses | 2021: $1,001 | 2020: $987", asked)  # another line item
    assert not labelled_row("Inventory | see note", asked)  # no value
    assert answer_type("What inventory did Galaxy Gaming report at December 31, 2020?") == "number"
    assert answer_type("What net profit did Reliance report for the year ended March 31, 2022?") == "number"
    assert answer_type("On what date did Galaxy Gaming complete the acquisition?") == "date"
    assert answer_type("What activities are promised for the first annual family day?") is None
    assert answer_type("According to the example MIME e-mail, who sent the first networked email?") == "name"
    assert answer_type("In Galaxy Gaming's 2021 annual report, when was the acquisition completed?") == "date"
    assert answer_type("In which country is the plant?") == "name"  # no comma: not a leading clause
    assert answer_type("In which state, if any, is Galaxy Gaming incorporated?") == "name"  # the clause asks


FIXED_CASES = [("When do the patent licenses granted under the Apache License terminate?", (APACHE_DEFS, APACHE_GRANT)),
               ("How many laptops were delivered on January 23, 2023?", (MEMO,)),
               ("Where are package archives listed, and where do systemd unit files live?", (SYSTEMD, APT))]


@pytest.mark.parametrize("question,texts", FIXED_CASES)
@pytest.mark.parametrize("selector", ["relevance", "learned"])
def test_slots_the_grammar_fixes_need_no_decoder_call_and_change_nothing(sculpt, question, texts, selector):
    """The naive sampler asks the decoder for every slot. Where `forced` says a slot's value is fixed (a quote
    opening on the selection's sentence, a word's next piece, a citation at a stop, the end), the decoder's
    choice is that value, and so is the choice under any other scores; the fast sampler commits those slots
    without a call and writes the same answer."""
    gen = sculpt if selector == "relevance" else sculpt.with_options(selector="learned", clauses=False)
    naive = gen.with_options(sampler="naive")
    request = GenerationRequest(question=question, passages=tuple(Passage(number=i + 1, text=t)
                                                                  for i, t in enumerate(texts)))
    noise = np.random.default_rng(0)
    fixed = 0
    run = _Decoding(naive, request)
    while not run.done:
        rows, only = run.rows()
        slot, sentence = int(only[0]), run.batch.sentence[0]
        value = forced(run.canvas, slot, run.space, run.eos, sentence, run.selection)
        logp = naive._model.forward_many([rows], [run.memory.expand(1)], [only])[0][:, 0]
        run.advance(logp)
        if value is not None:
            fixed += 1
            assert int(run.canvas[slot]) == value
            other = log_softmax(noise.standard_normal(logp.shape).astype(np.float32))
            assert int(choose(other, rows, only, run.space, run.eos, sentence, run.selection)[0]) == value
    slow, fast = naive.generate(request), gen.with_options(sampler="fast").generate(request)
    assert fast.raw_text == slow.raw_text
    if slow.text != REFUSAL:
        assert fixed > 0
        # each fast call commits at least one slot the decoder decides: no call is spent on a fixed one
        assert fast.trace.nfe - 1 <= slow.trace.steps - fixed


@pytest.mark.parametrize("question,texts", FIXED_CASES)
def test_the_parallel_sampler_reads_the_drafts_from_one_row_and_decides_a_doubted_slot_exactly(sculpt, question, texts,
                                                                                                monkeypatch):
    """The default sampler puts a span's drafts in one canvas row instead of a row each; a draft it is not sure
    of goes to the fast sampler's exact step. So with accept=1.0 (never sure) it writes the fast sampler's answer
    whatever the model says, and with the default threshold these fixtures' answers are the fast sampler's too,
    from fewer canvas rows."""
    assert sculpt.config.sampler == "parallel"
    request = GenerationRequest(question=question, passages=tuple(Passage(number=i + 1, text=t)
                                                                  for i, t in enumerate(texts)))
    model, rows = sculpt._model, []
    real = model.forward_many

    def counted(canvases, memories, only=None):
        rows.append(sum(c.shape[0] for c in canvases))
        return real(canvases, memories, only)

    monkeypatch.setattr(model, "forward_many", counted)
    fast = sculpt.with_options(sampler="fast").generate(request)
    fast_rows, rows[:] = sum(rows), []
    parallel = sculpt.generate(request)
    parallel_rows, rows[:] = sum(rows), []
    doubting = sculpt.with_options(accept=1.0).generate(request)
    assert parallel.raw_text == fast.raw_text
    assert doubting.raw_text == fast.raw_text
    if fast.text != REFUSAL:
        assert parallel_rows < fast_rows


SETTINGS_LIST = ("shared_buffers (integer): Sets the amount of memory the database server uses for shared memory "
                 "buffers. This setting must be at least 128 kilobytes.\n"
                 "maintenance_work_mem (integer): Specifies the maximum amount of memory to be used by maintenance "
                 "operations, such as VACUUM and CREATE INDEX. If this value is specified without units, it is taken "
                 "as kilobytes. It defaults to 64 megabytes (64MB).")


RESOURCES = ("Each line names a resource in its third field, one of:\ncore: largest core dump size (KB)\n"
             "data: largest data segment (KB)\nnofile: open file descriptors\ncpu: processor time (minutes)\n"
             "nproc: number of processes\nrss: resident set size (KB)\n"
             "Every resource accepts the values -1, unlimited or infinity for no limit, except priority and nice.")


def test_the_entry_of_a_term_the_question_names_is_what_it_asks_about(sculpt):
    """A definition list's entry whose term the question names ("the cpu item", "the 'nofile' item", "its
    delay= option") is about what is asked, as a table row labelled with it is; the word must be the question's
    own name for it, not part of another ("conf" in "limits.conf", "ok" in "[success=ok]"), nor a plain word
    ("module type" does not name the entry "type=type")."""
    assert named_entry("cpu: processor time (minutes)", "In limits.conf, what unit is the cpu item in?")
    assert named_entry("nofile: open file descriptors", "What does the 'nofile' item limit?")
    assert named_entry("delay=N: Set the delay on failure to N microseconds.", "What unit does its delay= option take?")
    assert named_entry("wait (float) – Seconds to wait.", "What does the wait parameter do?")
    assert named_entry("CASCADE: Drop the objects that depend on it.", "What does CASCADE do in DROP TABLE?")
    assert not named_entry("conf=/path/to/limits.conf: Read another file.", "What is the cpu item in limits.conf?")
    assert not named_entry("ok: The return code counts.", "What does [success=ok user_unknown=ignore] do?")
    assert not named_entry("type=type: Only run for this type.", "How can the script tell which module type it runs for?")
    assert not named_entry("Default: 10", "What is the default value item?")  # a field of an entry, not one
    assert not named_entry("cpu | 10 | minutes", "What is the cpu item?")  # a table row: labelled_row's
    assert not named_entry("Pretty Woman: The Musical features songs by Bryan Adams.",  # a work's title, quoted
                           'Who is the director of "Pretty Woman"?')
    # one passage, the entry the question names: answered with it (without the rule, the selector's share left
    # every sentence below the answer threshold and the answer was the refusal)
    assert "open file descriptors [1]" in ask(sculpt, "What does the 'nofile' item limit?", RESOURCES).text


def test_a_definitions_later_sentence_answers_for_its_term(sculpt):
    """A definition list's entry names its term once; "It defaults to 64 megabytes" is about that term. Read
    apart, it shares no word with the question and the learned selector scores it far below the entry's
    first sentence, so the answer quoted what the setting is instead of its default."""
    heads = definition_heads(featurize(sculpt._tokenizer, sculpt._model.cfg, ["q"], [[SETTINGS_LIST]]))
    first, term = sentence_id(0, 2), "maintenance_work_mem (integer)"
    assert heads == {sentence_id(0, 1): ("shared_buffers (integer)", sentence_id(0, 0)), sentence_id(0, 3): (term, first),
                     sentence_id(0, 4): (term, first)}
    result = ask(sculpt, "What is the default of maintenance_work_mem?", SETTINGS_LIST)
    assert quotes(result.text)[0] == ("It defaults to 64 megabytes (64MB).", 1)


def test_a_sentence_two_passages_hold_is_quoted_from_the_one_that_reads_it_best(sculpt):
    """Overlapping chunks and look-alike entries repeat a sentence. It is quoted once, from the copy that
    answers best: here the copy under maintenance_work_mem, not the first-retrieved one under work_mem (which
    used to be the only copy scored, so the default was never quoted)."""
    other = ("work_mem (integer): Sets the base maximum amount of memory to be used by a query operation before "
             "writing to temporary disk files. It defaults to 64 megabytes (64MB).")
    result = ask(sculpt, "What is the default of maintenance_work_mem?", other, SETTINGS_LIST)
    assert quotes(result.raw_text)[0] == ("It defaults to 64 megabytes (64MB).", 2)


ROTATION = "Log rotation\nThe job runs at 04:00 and keeps 7 copies."
BACKUPS = "Nightly backups\nThe job runs at 02:00 and keeps 14 copies."


def test_a_table_row_s_value_is_a_figure_not_a_digit_inside_a_name():
    asked = terms("What does gnutls_pkcs12_mac_info() return when the PKCS#12 structure contains no MAC?")
    assert not labelled_row("pkcs12 | should contain a gnutls_pkcs12_t type", asked)
    assert labelled_row("pkcs12 | 12 bags", asked) and labelled_row("pkcs12 | $1.2m", asked)


def test_section_heads_are_the_heading_above_or_the_passages_section():
    tok = load_tokenizer()
    text = "The job runs at 01:00.\nLog rotation\nThe job runs at 04:00 and keeps 7 copies."
    batch = featurize(tok, SculptConfig(), ["q"], [[text, "It keeps 3 copies."]])
    heads = section_heads(batch, ["Maintenance", "Archive"], frozenset({"Log rotation"}))
    assert heads == {sentence_id(0, 0): "Maintenance", sentence_id(0, 1): "Log rotation",
                     sentence_id(0, 2): "Log rotation", sentence_id(1, 0): "Archive"}
    # a line in sentence case is a title only where a document marks it as one
    assert section_heads(batch, ["Maintenance", "Archive"])[sentence_id(0, 2)] == "Maintenance"


DISK_IO = ("Note\nOn diskless machines this function returns None.\n"
           "psutil.disk_io_counters(perdisk=False): Return disk I/O statistics as a named tuple including the "
           "following fields:\nread_count: number of reads\nwrite_count: number of writes\n"
           "read_bytes: number of bytes read\nread_time: time spent reading from disk (in milliseconds)\n"
           "Availability: Linux, Windows, FreeBSD")


def test_an_api_entry_s_line_heads_the_lines_below_it_and_a_field_line_is_no_title():
    """psutil's manual (as Python's is written): an entry's fields and its "Availability: Linux, FreeBSD" line
    follow its signature line in a passage that opened under another entry's "Note". They were read under that
    "Note" heading, and the Availability line was taken for a title (capitalised words, no stop), so it was no
    sentence at all and headed the lines below it."""
    batch = featurize(load_tokenizer(), SculptConfig(), ["q"], [[DISK_IO]])
    heads = section_heads(batch, ["psutil.disk_usage()"])
    assert heads[sentence_id(0, 1)] == "psutil.disk_usage() Note"  # (the earlier entry's part, as before)
    assert {heads[sentence_id(0, k)] for k in range(2, 8)} == {"psutil.disk_io_counters()"}
    assert not is_heading("Availability: Linux, Windows, FreeBSD") and is_heading("Process Class")
    assert is_heading("Tutorial: Getting Started")  # (one value after the colon: a title's subtitle)


def test_a_passage_cut_from_an_api_entry_is_no_one_entry_s_passage():
    """A reference's entry passages (gtk-doc's: the passage opens with the entry's title, or is a part of it)
    lose OTHER_ENTRY where the question names another entry. A chunk cut from an API entry for size is in the
    entry's section too (ingest.chunk, format v22), but goes on to what follows the entry on the page:
    psycopg2's "scroll()" chunk holds "arraysize: ... It defaults to 1 meaning to fetch a single row at a time.",
    the answer to "If I call fetchmany() without passing a size, how many rows does it return by default?"."""
    question = "If I call fetchmany() without passing a size, how many rows does it return by default?"
    sections = ["fetchmany()", "scroll()", "gnutls_rnd ()"]
    texts = ["The number of rows to fetch per call is specified by the parameter.",
             "The method can be used both for client-side cursors and server-side cursors.\narraysize: This "
             "read/write attribute specifies the number of rows to fetch at a time with fetchmany().",
             "gnutls_rnd ()\nThis function will generate random data."]
    assert other_entry_passages(sections, question) == {1, 2}  # (read by the section alone)
    assert other_entry_passages(sections, question, texts) == set()  # (no passage that is one entry's is named)
    gtk = ["gnutls_rnd ()\nThis function will generate random data.", "gnutls_pbkdf2 ()\nThis function derives keys."]
    assert other_entry_passages(["gnutls_rnd ()", "gnutls_pbkdf2 ()"], "What does gnutls_rnd() return?", gtk) == {1}


def test_a_list_item_that_names_another_field_is_not_lifted_by_its_lead_in():
    """A lead-in lifts its first lines to its own score, and for any question about psutil's tuple of disk
    counters "... as a named tuple including the following fields:" lifted "read_count: number of reads" and
    "read_bytes: number of bytes read" to the top: "In what unit are the read_time and write_time fields ...
    expressed?" was answered with them. An item whose field the question does not name keeps its own score."""
    batch = featurize(load_tokenizer(), SculptConfig(), ["q"], [[DISK_IO]])
    keys, texts = sentence_texts(batch)
    leads = [1.0 if t.endswith("fields:") else 0.0 for t in texts]
    for question, lifted in [("In what unit are the read_time and write_time fields expressed?",
                              {"read_time", "Availability"}),  # (a line that names no field is lifted as before)
                             ("What fields does psutil.disk_io_counters() return?",
                              {"read_count", "write_count", "read_bytes", "read_time", "Availability"})]:
        scores = listed_items_answer(batch, question, keys, [0.0] * len(keys), leads)
        assert {t.split(":")[0] for t, x in zip(texts, scores) if x > 0.5 and not t.endswith("fields:")} == lifted
    assert other_field("read_count: number of reads", {"read_time"}) and \
        not other_field("read_time: time spent reading", {"read_time"}) and not other_field("Note: x", {"read_time"})


@pytest.mark.parametrize("given", ["in the text", "as the passage's section"])
def test_a_sentence_is_read_with_its_section_where_the_section_names_what_is_asked(sculpt, given):
    """Two sections of a manual say the same words about different things ("The job runs at ... and keeps ...
    copies."); only the section title says which job. The sentence is read under its title where the title
    adds a word of the question the sentence lacks, so the answer quotes the section asked about, whether
    the passage opens with its title or starts inside the section (the title is then its `section`)."""
    if given == "in the text":
        passages = (Passage(number=1, text=BACKUPS, section="Nightly backups"),
                    Passage(number=2, text=ROTATION, section="Log rotation"))
    else:
        passages = (Passage(number=1, text=BACKUPS.split("\n")[1], section="Nightly backups"),
                    Passage(number=2, text=ROTATION.split("\n")[1], section="Log rotation"))
    result = sculpt.generate(GenerationRequest(question="How many copies does log rotation keep?", passages=passages))
    assert quotes(result.raw_text)[0] == ("The job runs at 04:00 and keeps 7 copies.", 2)


def test_the_names_a_question_asks_about():
    assert asked_names("What was Vodafone's mobile churn in the quarter to 30 June 2023?") == ["Vodafone"]
    assert asked_names("In Nestlé's half-year report, what were PetCare sales in Table 2 on Monday?") == [
        "Nestlé", "PetCare"]  # not the first word, a month, a weekday, or what points into the document
    assert asked_names("Adding a file didn't stop Git. How do I stop it?") == ["Git"]  # each sentence's first word
    assert asked_names("Which grade, SNB22-3 or the iPhone's, is harder?") == ["SNB22-3", "iPhone"]
    assert asked_names("HOW DO I STOP THE SERVER?") == [] and asked_names("How Do I Stop The Server?") == []
    passages = ["NESTLE S.A. half-year report", "The RewriteRule directive", "Xenoblade Chronicles Definitive Edition"]
    assert unnamed("What did Nestlé report?", passages) == []  # accents and case aside
    assert unnamed("Do the RewriteRules apply to Apache?", passages) == ["Apache"]  # a plural is named by its word
    assert unnamed("When was the Definite Edition released?", passages) == []  # and a near miss of a long name
    assert unnamed("What did Vodafone report?", passages) == ["Vodafone"]
    sqlite = ["SQLite parses FOREIGN KEY clauses, but does not enforce them by default."]
    assert unnamed("Why is my ForeignKey not enforced?", sqlite) == []  # a CamelCase name is named by its words
    assert unnamed("Why is my ForeignKeys not enforced?", ["The foreign keyword list"]) == ["ForeignKeys"]
    # an identifier with underscores is a name wherever it stands, in lower case too; its words name it
    assert asked_names("worker_max_memory_per_child: what unit does Celery expect?") == [
        "worker_max_memory_per_child", "Celery"]
    exim = ["receive_timeout (use main, type time, default 0s): the timeout for accepting a non-SMTP message."]
    assert unnamed("What is the default of the smtp transport's final_timeout?", exim) == ["final_timeout"]
    assert unnamed("What is the default of receive_timeout?", exim) == []
    assert unnamed("What is the default of final_timeout?", ["The final timeout is ten minutes."]) == []
    assert asked_names("How do I send my_dict as a form?") == []  # a user's own name is no manual's


def test_only_the_question_proper_must_be_named_and_a_unit_is_no_name():
    """What a user says of their situation need not be in the manual that answers them: "My suite fails in CI
    with ValueError." names two things the pytest manual's answer never mentions."""
    manual = ["Use the --maxfail option to stop after the first failures."]
    assert unnamed("My suite fails in CI with ValueError. How do I stop after the first failure?", manual) == []
    assert unnamed("How do I stop the CI run after the first ValueError?", manual) == ["CI", "ValueError"]
    assert unnamed("What unit does the worker expect? I want to recycle a child after roughly 12 MB.",
                   ["The maximum resident memory, in kilobytes."]) == []
    assert asked_names("Is the limit 12 MB or 12 GB per Worker?") == ["Worker"]


def test_a_speech_need_not_name_its_speaker_and_a_spelled_out_abbreviation_is_named_by_its_words():
    """A State of the Union transcript says "I", never "Biden": every question "according to President Biden"
    was refused. A person named with a title is the speaker, named by a passage in the first person; a
    company is not ("we" is in every company's report, a look-alike's too)."""
    speech = ["We've already cut the federal deficit by over $1 trillion. I signed the law."]
    question = "How much has President Biden signed to cut from the federal deficit?"
    assert speaker_names(question) == {"President", "Biden"}
    assert unnamed(question, speech) == []
    assert unnamed(question, ["The federal deficit was cut by $1 trillion."]) == ["President", "Biden"]
    assert unnamed("How much did Contoso cut, according to its report?", ["We cut costs by 3%."]) == ["Contoso"]
    claim = "Decreased diastolic blood pressure (DBP) is associated with abdominal aortic aneurysm."
    assert asked_names(claim) == []
    assert asked_names("Is the DBP (diastolic blood pressure) lower?") == ["DBP"]  # only a bracketed short name


def test_a_question_about_what_a_speaker_said_is_answered_from_the_speech(sculpt):
    speech = ("Folks, I know the health care law works. Over 100 million of you can no longer be denied health "
              "insurance because of a preexisting condition. We're not going back.")
    result = ask(sculpt, "How many people are no longer denied health insurance due to preexisting conditions "
                         "according to President Biden?", speech)
    assert "100 million" in result.text


def test_a_question_about_something_no_passage_names_is_refused(sculpt):
    """A look-alike passage about another company holds a value of the asked kind and most of the question's
    words; quoting it answers a question nobody asked. A name is also found in what ingest says a passage is
    about (`Passage.context`: its document, entity and period), which the text itself need not repeat."""
    other = Passage(number=1, text="Mobile churn was 1.4% in the quarter to 30 June 2023.",
                    context="Q1 FY24 trading update | Northwind Telecom plc | Quarter to 30 June 2023")
    question = "What was Contoso's mobile churn in the quarter to 30 June 2023?"
    assert sculpt.generate(GenerationRequest(question=question, passages=(other,))).text == REFUSAL
    own = other.model_copy(update={"context": "Q1 FY24 trading update | Contoso Ltd | Quarter to 30 June 2023"})
    assert "1.4%" in sculpt.generate(GenerationRequest(question=question, passages=(own,))).text
    lenient = sculpt.with_options(names=False)
    assert "1.4%" in lenient.generate(GenerationRequest(question=question, passages=(other,))).text


CONTEXTS.update({APACHE_GRANT: "LICENSE apache 2 0 txt | Apache License, Version 2.0",
                 APACHE_DEFS: "LICENSE apache 2 0 txt | Apache License, Version 2.0",
                 REGISTRATION: "example 10k html | Form 10-K | Galaxy Gaming, Inc. | For the fiscal year ended 2021",
                 HOLDINGS: "example 10k html | Form 10-K | Galaxy Gaming, Inc. | For the fiscal year ended 2021"})


POOL_API = ("class depot.Pool(factory, size=4, spill=8, wait=15.0, **options): A pool that caps the number of open "
            "sessions to a store.\nParameters\nfactory – a callable that opens a new session.\n"
            "size – How many sessions the pool keeps open. Sessions above this number are opened on demand.\n"
            "spill – The number of extra sessions allowed beyond size. Once handed back, the extra sessions are "
            "closed and thrown away.\nwait (float) – Seconds to wait for a free session. Defaults to 15.0.")


def test_an_api_reference_is_answered_from_the_parameters_description_not_the_signature(sculpt):
    """A class's signature names every parameter and default, so it matched every question about one; the
    parameter's own entry ("spill – ...", as Sphinx writes a parameter list) says what is asked, and its later
    sentences are read with the parameter's name."""
    assert definition_heads(featurize(load_tokenizer(), SculptConfig(), ["q"], [[POOL_API]])) != {}
    raw = ask(sculpt, "In depot's Pool, what happens to the extra spill sessions once they are returned?", POOL_API).text
    assert "closed and thrown away" in raw and "size=4" not in raw, raw
    raw = ask(sculpt, "How long does the depot Pool wait for a free session by default?", POOL_API).text
    assert "15.0" in raw and "size=4" not in raw, raw
    raw = ask(sculpt, "Does depot's Pool close the spill sessions or keep them open?", POOL_API).text
    assert "closed and thrown away" in raw and "size=4" not in raw, raw
    raw = ask(sculpt, "How many sessions does the depot Pool keep open by default?", POOL_API).text
    assert "size=4" in raw, raw  # where only the signature says it, the signature answers
    # a parameter written with its default ("pool_timeout=30 – ...", ingest/definitions.py) is a defined term too
    entry = "pool_timeout=30 – number of seconds to wait for a session. It is only used with a pool."
    heads = definition_heads(featurize(load_tokenizer(), SculptConfig(), ["q"], [[entry]]))
    assert [term for term, _ in heads.values()] == ["pool_timeout=30"]


FAQ = ("Frequently asked questions\n"
       "Why does the client fail with \"cannot convert\" when I run a query?\n"
       "The client turns each Python value into SQL text by looking at the value's class. "
       "The error is raised when no converter is registered for the class of a value you pass.\n"
       "Can I share one session between threads?\n"
       "Sessions are thread safe, but they cannot be shared between processes.")


def test_a_faq_question_is_never_quoted_and_titles_the_answer_under_it(sculpt):
    raw = ask(sculpt, "Why does the client fail with \"cannot convert\" errors?", FAQ).text
    assert "no converter is registered" in raw and "Why does" not in raw, raw
    raw = ask(sculpt, "Can sessions be shared across threads?", FAQ).text
    assert raw.lstrip().startswith("Sessions are thread safe") and "Can I share" not in raw, raw


FETCH = ("fetchmany([size=cursor.arraysize]): Fetch the next set of rows of a query result.\n"
         "The number of rows to fetch per call is specified by the parameter. If it is not given, the cursor's "
         "arraysize determines the number of rows to be fetched. It defaults to 1, meaning one row at a time.\n"
         ">>> cur.fetchmany(2)\n"
         "[(1, 100, 'abc'), (2, None, 'dada')]")


def test_a_line_of_code_answers_only_a_question_that_asks_for_code(sculpt):
    """A console line (">>> cur.fetchmany(2)") shares the question's words but says nothing about them; it was
    quoted as a second quote after the answer."""
    text = ask(sculpt, "How many rows does fetchmany() return by default when no size is given?", FETCH).text
    assert text != REFUSAL and ">>>" not in text, text
    assert [is_code_line(t) for t in (">>> cur.fetchmany(2)", "from sqlalchemy import create_engine",
                                      "engine = create_engine(url)", "$ pip install psycopg2-binary",
                                      "It defaults to 1, meaning one row at a time.", "Import the module first.")] \
        == [True, True, True, True, False, False]


# a manual's value often comes in the sentence after the one that says what it is for, or in a field line
RELAY = ("When a message cannot be delivered, the relay keeps it in the deferred queue and tries again later. "
         "By default this is set to 5 days, after which the message is returned to its sender.\n"
         "The queue is scanned by the queue manager process.")
RETURNS = "Undeliverable messages are returned to the sender with a report that explains the failure."
LOCK_ENTRY = ("lock_wait\nDefault: 30 seconds.\nIf another session holds the row, a writer waits for the lock to be "
              "released. This value sets how long it waits before it gives up with a LockTimeout error.")
LOCK_ERROR = "A LockTimeout error means the statement was rolled back; run it again after the other session commits."


def test_a_sentence_that_leans_on_the_one_before_it_is_read_after_it():
    text = ("timeout – The number of seconds to wait before giving up on returning a connection. Defaults to 30.0.\n"
            "Pool Sizing\nThis pool keeps five connections open.\n\nIt is not thread safe.")
    batch = SimpleNamespace(texts=[[text]])
    heads = dependent_heads(batch)
    assert heads[sentence_id(0, 1)] == ("timeout – The number of seconds to wait before giving up on returning a "
                                        "connection.", sentence_id(0, 0))
    assert sentence_id(0, 3) not in heads  # after a title: the title is what it is read with (section_heads)
    assert sentence_id(0, 4) not in heads  # not across a blank line
    assert sentence_id(0, 0) not in heads and sentence_id(0, 2) not in heads
    entry = dependent_heads(SimpleNamespace(texts=[[LOCK_ENTRY]]))  # a field line: the entry's prose below it
    assert entry[sentence_id(0, 1)] == (LOCK_ENTRY.split("\n")[2], sentence_id(0, 2))


def test_the_value_in_the_sentence_after_its_description_is_quoted(sculpt):
    result = ask(sculpt, "How long does the relay keep an undeliverable message before returning it to the sender?",
                 RETURNS, RELAY)
    assert "5 days" in quotes(result.raw_text)[0][0]


def test_a_field_line_answers_with_the_prose_of_its_entry(sculpt):
    result = ask(sculpt, "How long does a writer wait for a row lock before it raises LockTimeout?", LOCK_ERROR,
                 LOCK_ENTRY)
    assert quotes(result.raw_text)[0] == ("Default: 30 seconds.", 2)


def test_a_leading_condition_does_not_decide_what_is_asked():
    assert answer_type("When a task calls retry() without a countdown, how long does it wait?") == "number"
    assert answer_type("When was the relay first released, and by whom?") == "date"
    assert answer_type("When did the company move its headquarters?") == "date"


def test_a_leaning_sentence_that_adds_nothing_asked_is_not_quoted_after_the_answer(sculpt):
    text = ("The show ports command lists the link state of every port on the switch. This list is useful when "
            "cabling a new rack.")
    result = ask(sculpt, "Which command lists the link state of every port?", text)
    assert quotes(result.raw_text) == [("The show ports command lists the link state of every port on the switch.", 1)]


# a lead-in over a console example: the lead-in states the answer, the example and its output say nothing
SIGNING = ("Signing requests\n"
           "The hmac-signer package lets clients sign every request with a shared secret key:\n"
           ">>> import client\n"
           ">>> from hmac_signer import Signer\n"
           ">>> client.get(url, auth=Signer(key))\n"
           "<Response [200]>")


def test_a_lead_in_over_a_code_example_answers_a_question_that_does_not_ask_for_code(sculpt):
    result = ask(sculpt, "Our service must sign each request with a shared secret. What does the manual suggest?",
                 SIGNING)
    assert result.text != REFUSAL
    assert quotes(result.raw_text)[0] == ("The hmac-signer package lets clients sign every request with a shared "
                                          "secret key:", 1)
    assert ">>>" not in result.text and "<Response" not in result.text
    batch = featurize(sculpt._tokenizer, sculpt._model.cfg, ["What does the manual suggest?"], [[SIGNING]])
    assert code_examples(batch) == {sentence_id(0, 1)}
    keys, texts = sentence_texts(batch)
    lead = [1.0 if t.endswith(":") else 0.0 for t in texts]
    lifted = dict(zip(texts, listed_items_answer(batch, "What does the manual suggest?", keys, [0.0] * len(keys),
                                                 lead, code_ends=True)))
    assert lifted["<Response [200]>"] == lifted[">>> import client"] == 0.0  # the list ends at its code
    as_list = dict(zip(texts, listed_items_answer(batch, "Which code?", keys, [0.0] * len(keys), lead)))
    assert as_list[">>> import client"] > 0.0  # (without code_ends the example is the lead-in's list)


def test_what_a_user_says_before_the_question_does_not_decide_what_is_asked():
    question = "Through a SOCKS proxy, hostnames are resolved on my machine. How do I make the proxy resolve them?"
    assert question_proper(question) == "How do I make the proxy resolve them?"
    assert answer_type(question) == "code"  # how-to, as if asked alone
    told = "What unit does the worker expect for max_memory? I want to recycle a child after roughly 12 MB."
    assert question_proper(told) == "What unit does the worker expect for max_memory?"
    assert answer_type(told) is None  # (the 12 MB the user mentions is no "how much")
    for whole in ("How many laptops were delivered on January 23, 2023?",
                  "Who won the women's singles U.S. Open in 2021?"):  # (not "Open in 2021?" after "U.S.")
        assert question_proper(whole) == whole
    assert answer_type("My workers lose their database connection. Is there a setting that helps?") == "code"


def test_an_import_or_a_header_line_is_never_the_answer(sculpt):
    assert [bool(SCAFFOLD_LINE.match(t)) for t in (
        "from worker.log import get_logger", ">>> import client", "def test_slow():", "class Meta:",
        "class pool.QueuePool(creator, pool_size=5): A pool that limits connections.", "Import the module first.",
        "@app.task(ignore_result=True)")] == [True, True, True, True, False, False, False]
    text = ("To see a task's log lines, configure the worker logger:\n"
            "from worker.log import get_logger\n"
            "logger = get_logger(__name__)\n\n"
            "Set worker_log_level to DEBUG to see every task's log lines in the worker output.")
    result = ask(sculpt, "My task's log lines never show up in the worker output. How can I make them show?", text)
    assert "import" not in result.text, result.text


def test_the_longest_delay_is_a_number_and_its_default_is_quoted(sculpt):
    assert answer_type("What is the longest delay between two retries?") == "number"
    assert answer_type("What is the maximum length of a channel name?") == "number"
    entry = ("backoff_max\nA number. If backoff is enabled, this option sets the maximum delay in seconds between "
             "automatic retries. By default, this option is set to 600, which is 10 minutes.")
    other = "If backoff is enabled, retries are delayed following the rules of exponential backoff."
    result = ask(sculpt, "With backoff on for a job, what is the longest delay between retries unless I change it?",
                 other, entry)
    assert "600" in quotes(result.raw_text)[0][0], result.raw_text


def test_what_to_do_is_answered_by_the_sentence_that_says_it_not_by_the_problem_restated(sculpt):
    """A user who describes their problem and asks for the fix matches the manual's description of the
    problem best; the answer is the sentence that says what to do."""
    assert ADVICE_QUESTION.search("My app loses its connection after an idle night. What's the fix?")
    assert ADVICE_QUESTION.search("What connect timeout does the manual recommend choosing?")
    assert not ADVICE_QUESTION.search("What does the oscillation of clock neurons suggest about their location?")
    assert ADVICE_QUESTION.search("Opening a folder returns 403. How do I get a directory listing instead?")
    assert ADVICE.search("Displaying a folder index instead could be enabled with the show_index parameter.")
    assert not ADVICE.search("When a directory is accessed, the server responds with 403 Forbidden by default.")
    text = ("Connection lost after idle time\n"
            "The relay server closes a client connection that has been idle for eight hours. This typically "
            "happens with long-running web apps that keep one connection open all night. To fix this, make sure "
            "you open a connection for each request and close it when the request is done.")
    result = ask(sculpt, "Our long-running web app loses its relay connection after an idle night. What's the fix?",
                 text)
    assert quotes(result.raw_text)[0][0].endswith("close it when the request is done."), result.raw_text


def test_a_sentence_that_refers_back_to_a_case_leans_on_the_one_before_it():
    for text in ("In this situation, the server assumes ISO-8859-1.", "In such cases the pool blocks.",
                 "In either mode, a worker restarts.", "To fix this, close the connection.",
                 "In order to change this behavior, set upload_tls_only = yes.", "To do so, pass --force.",
                 "To turn off this check, set strict = false."):
        assert DEPENDENT_RE.match(text), text
    assert not DEPENDENT_RE.match("In this module the pool is created.")
    assert not DEPENDENT_RE.match("To fix a broken index, rebuild it.")
    assert not DEPENDENT_RE.match("To change the port, edit gateway.conf.")


# the setting that changes a default comes after the sentences that say what the default is and why: "this
# behavior" is only those sentences' words
UPLOADS = ("Uploads over plain connections\n"
           "When the gateway runs with optional encryption, it may still be useful to accept uploads only over "
           "TLS. To stay compatible with old clients, the default is to accept uploads on plain connections too. "
           "In order to change this behavior, set upload_tls_only = yes.")
REQUIRED = "When encryption is required, the gateway accepts uploads only after the TLS handshake has completed."


def test_a_sentence_that_leans_back_is_read_after_the_sentences_it_leans_on():
    heads = dependent_heads(SimpleNamespace(texts=[[UPLOADS]]))
    head, at = heads[sentence_id(0, 3)]
    assert head == UPLOADS.split("\n")[1].split(" In order")[0] and at == sentence_id(0, 2)  # (not the title)
    longer = dependent_heads(SimpleNamespace(texts=[[UPLOADS.replace("TLS.", "TLS. " + "Old clients vary. " * 9)]]))
    assert len(longer[sentence_id(0, 12)][0].split()) == ANTECEDENT_WORDS


def test_the_change_a_user_asks_for_is_quoted_from_the_sentence_that_makes_it(sculpt):
    result = ask(sculpt, "Encryption is optional on our gateway. How do I make sure clients can only upload after "
                         "they have switched to TLS?", REQUIRED, UPLOADS)
    assert "upload_tls_only = yes" in quotes(result.raw_text)[0][0], result.raw_text


def test_a_field_line_under_its_entry_title_is_read_with_the_title_and_the_prose():
    """A settings reference whose passage opens at the entry: "worker_lost_wait" is the passage's section
    title, "Default: 10.0 seconds." its field line, the prose below it says what the value is. The field line
    is read with both: the title names the setting, the prose what is asked."""
    entry = ("worker_lost_wait\nDefault: 10.0 seconds.\nIn some cases a worker may be killed without proper cleanup. "
             "This value specifies how long we wait for any missing results before raising a WorkerLostError.")
    tok = load_tokenizer()
    question = "How long does the worker wait for missing results before it raises WorkerLostError?"
    batch = featurize(tok, SculptConfig(), [question], [[entry]])
    read = {}
    real = relevance_module.parts
    def spy(hidden, tokenizer, q, texts, titles=frozenset(), heads=None, alone=frozenset(), seen=None):
        read.update(zip(texts, heads))
        return real(hidden, tokenizer, q, texts, titles, heads, alone, seen)
    relevance_module.parts = spy
    try:
        relevance_module.sentence_relevance(lambda ids, lengths: np.ones((*ids.shape, 384), np.float32), tok, batch,
                                            question, sections=["worker_lost_wait"])
    finally:
        relevance_module.parts = real
    assert read["Default: 10.0 seconds."].startswith("worker_lost_wait: In some cases a worker may be killed")


def test_each_sentence_of_a_long_question_is_also_compared_alone():
    question = ("I build the URL with encoded=True so that the client does not requote my path, and I also pass "
                "params= to get(). The URL still ends up requoted. What's going on?")
    assert question_parts(question) == [
        "I build the URL with encoded=True so that the client does not requote my path, and I also pass params= "
        "to get().", "The URL still ends up requoted."]
    assert question_parts("How long does the relay keep an undeliverable message?") == []  # one sentence: itself
    tok = load_tokenizer()
    seen: list[list[str]] = []
    def hidden(ids, lengths):  # a fake encoder: one-hot of the first token, so cos is 1 between texts opening alike
        out = np.zeros((*ids.shape, 384), np.float32)
        for i, row in enumerate(ids):
            seen.append(tok.decode(row[1:lengths[i] - 1]))
            out[i, :, int(row[1]) % 384] = 1.0
        return out
    found = relevance_module.parts(hidden, tok, question, ["The URL is requoted when params are passed.",
                                                           "Passing params overrides encoded=True."])
    assert found[0]["cos"] > 0.99  # it opens as the question's second sentence does; the whole question does not
    assert found[1]["cos"] < 0.01
    assert any(x.lower() == "the url still ends up requoted." for x in seen)


RESET_TIMEOUT = ("PASSWORD_RESET_TIMEOUT\nNew in Django 3.1.\nDefault: 259200 (3 days, in seconds)\n"
                 "The number of seconds a password reset link is valid for.\nUsed by the PasswordResetConfirmView.")
RESET_DAYS = ("PASSWORD_RESET_TIMEOUT_DAYS\nDefault: 3\nThe number of days a password reset link is valid for.\n"
              "Used by the PasswordResetConfirmView.\nDeprecated since version 3.1: This setting is deprecated. "
              "Use PASSWORD_RESET_TIMEOUT instead.")
UPTIME = "os.uptime()\nAdded in: v10.0.0\nReturns: <integer>\nReturns the system uptime in number of seconds."


def test_a_reference_entry_s_sentence_is_quoted_under_the_entry_s_name(sculpt):
    """A reference cut into one section per entry says what the entry does without naming it: the answer opens
    with the name (the section's title, the passage's first line), a colon, then the sentence, one citation."""
    from generator.sculpt.relevance import entry_name
    assert entry_name("PASSWORD_RESET_TIMEOUT") and entry_name("os.uptime()") and entry_name("--num-callers")
    assert not entry_name("Caching") and not entry_name("Python 3.8") and not entry_name("e-mail")

    def answer(question, *passages, **options):
        gen = sculpt.with_options(**options) if options else sculpt
        return gen.generate(GenerationRequest(question=question, passages=tuple(
            Passage(number=i + 1, text=t, section=s) for i, (t, s) in enumerate(passages)))).raw_text

    question = "How long is a Django password reset link valid by default, and which setting changes it?"
    entries = (RESET_TIMEOUT, "PASSWORD_RESET_TIMEOUT"), (RESET_DAYS, "PASSWORD_RESET_TIMEOUT_DAYS")
    assert answer(question, *entries) == "PASSWORD_RESET_TIMEOUT: 259200 (3 days, in seconds) [1]"
    assert answer(question, *entries, leads=False) == "259200 (3 days, in seconds) [1]"
    uptime = "Which method returns the system uptime in seconds?"
    assert answer(uptime, (UPTIME, "os.uptime()")) == "os.uptime(): Returns the system uptime in number of seconds. [1]"
    assert answer(uptime, (UPTIME, "os.uptime()"), sampler="naive") == answer(uptime, (UPTIME, "os.uptime()"))
    # a title that is a topic, not a name, leads nothing; nor does a name the sentence says itself
    assert answer(uptime, (UPTIME.replace("os.uptime()", "Uptime"), "Uptime")).startswith("Returns the system")
    named = "os.uptime()\nos.uptime() returns the system uptime in number of seconds."
    assert answer(uptime, (named, "os.uptime()")) == "os.uptime() returns the system uptime in number of seconds. [1]"


@pytest.mark.parametrize("question,years", [
    ("Who was awarded the 2021 Nobel Prize in Literature?", {"2021"}),
    ("Who won the NBA title in the 2020-21 season?", {"2020", "2021"}),
    ("What was Tesla's revenue in Q2 2020 and Apple's?", {"2020"}),
    ("How has revenue changed since 2019?", set()),  # bounded by a year, not about one
    ("My app fails with 'Error 2006: MySQL server has gone away'. Why?", set()),  # a quoted code
    ("When does season 4 of The Crown premiere?", set()),
])
def test_the_years_a_question_asks_about(question, years):
    assert asked_years(question) == years


def test_a_sentence_about_another_year_does_not_answer_for_the_year_asked(sculpt):
    q = "Who was awarded the Nobel Prize in Literature in 2021?"
    other = "The Nobel Prize in Literature for 2019 was awarded to the Austrian author Peter Handke."
    asked = "In 2021 the Swedish Academy gave the literature prize to Abdulrazak Gurnah."
    undated = "The Nobel Prize in Literature was awarded to the Tanzanian novelist Abdulrazak Gurnah."
    scores = relevance(sculpt._model.embed_hidden, sculpt._tokenizer, q, [other, asked, undated])
    found = parts(sculpt._model.embed_hidden, sculpt._tokenizer, q, [other, asked, undated])
    assert [x["other_year"] for x in found] == [1.0, 0.0, 0.0]  # a sentence that names no year is not judged
    assert scores[0] == pytest.approx(combine({**found[0], "other_year": 0.0}) - OTHER_YEAR)
    CONTEXTS[undated] = "Nobel Prize in Literature 2021 | press release"  # (else no passage names 2021: unnamed)
    result = ask(sculpt, q, other, undated)
    assert "Gurnah" in result.text and "Handke" not in result.text


FALLBACK = ("FallbackResource Directive\n(thus discarding POST data)\nDescription: | Define a default URL for requests "
            "that don't map to a file or handler\nSyntax: | FallbackResource disabled | local-url\nDefault: | disabled - "
            "httpd will return 404 (Not Found)\nContext: | server config, virtual host, directory, .htaccess\nOverride: | "
            "Indexes\nStatus: | Base\nModule: | mod_dir\nCompatibility: | The disabled argument is available in version "
            "2.4.4 and later")
DOS = ("On operating systems that support it, make sure that you use the AcceptFilter directive to offload part of the "
       "request processing to the operating system. This is active by default in Apache httpd, but may require "
       "reconfiguration of your kernel.\nTune the MaxRequestWorkers directive to allow the server to handle the maximum "
       "number of simultaneous connections without running out of resources. See also the performance tuning "
       "documentation.\nThe use of a threaded mpm may allow you to handle more simultaneous connections, thereby "
       "mitigating DoS attacks.")


def test_a_field_line_of_another_entry_does_not_give_the_value_asked_for(sculpt):
    """A reference entry's "Default:" line answers for its own entry. Read under "FallbackResource Directive", it
    was quoted first for the default of the MaxRequestWorkers directive, which no passage gives (Apache's
    manual, as retrieved for the manuals set's unanswerable question)."""
    question = "What is the default value of the MaxRequestWorkers directive in Apache httpd?"
    line = "Default: | disabled - httpd will return 404 (Not Found)"
    assert other_entry(line, "FallbackResource Directive", question)
    assert not other_entry(line, "FallbackResource Directive", "What is the default of FallbackResource?")
    assert not other_entry(line, "Caching", question)  # a title that names no code names no entry
    assert not other_entry("MaxRequestWorkers: Default: 256", "FallbackResource Directive", question)  # no field
    entry = ("worker_lost_wait\nDefault: 10.0 seconds.\n"
             "How long we wait for missing results before raising a WorkerLostError.")
    assert not other_entry("Default: 10.0 seconds.", "worker_lost_wait", "How long does Celery wait for missing "
                           "results before it raises WorkerLostError?", entry)  # code its entry names counts
    passages = (Passage(number=1, text=DOS, section="Denial of Service (DoS) attacks"),
                Passage(number=2, text=FALLBACK, section="FallbackResource Directive"))
    answer = sculpt.generate(GenerationRequest(question=question, passages=passages)).text
    assert "404" not in answer
    own = sculpt.generate(GenerationRequest(question="What is the default value of the FallbackResource directive?",
                                            passages=passages)).text
    assert own.startswith(line)  # its own entry's question still gets it


def test_a_question_about_a_year_no_passage_names_is_refused(sculpt):
    """Passages about the same prize in other years name those years and hold a name of the asked kind; the year
    asked about is named nowhere, so none of them is about it. A passage whose document names the year (its
    period, `Passage.context`) need not repeat it."""
    question = "Who was awarded the 2021 Nobel Prize in Literature?"
    others = (Passage(number=1, text="The 2019 Nobel Prize in Literature was awarded to the Austrian author Peter "
                                     "Handke."),
              Passage(number=2, text="Louise Glück received the Nobel Prize in Literature in 2020."))
    assert unnamed(question, [p.text for p in others]) == ["2021"]
    assert sculpt.generate(GenerationRequest(question=question, passages=others)).text == REFUSAL
    dated = Passage(number=3, text="The Swedish Academy gave the prize to the novelist Abdulrazak Gurnah.",
                    context="Nobel Prize in Literature 2021 | press release")
    assert "Gurnah" in sculpt.generate(GenerationRequest(question=question, passages=(*others, dated))).text
    assert unnamed("How has revenue changed since 2019?", ["Revenue grew 4% in 2022."]) == []


def test_a_sentence_that_covers_what_is_asked_beats_one_that_covers_the_user_s_situation(sculpt):
    """A user's situation fills a question with words that are not what they ask: as a share of the whole
    question's words, the sentence about the situation covers more than the one that answers. Cover is also read
    against each part of the question (`part_cover`), as the embedder compares a sentence with each."""
    question = ("Our nightly export job sends its reports through a mail relay, and when the relay stops answering "
                "the job hangs for hours. Does the SMTP backend have a timeout?")
    texts = ["Mail backends\nThe SMTP backend sends mail through the host and port given by the MAIL_HOST and "
             "MAIL_PORT settings.",
             "MAIL_TIMEOUT\nDefault: None\nA timeout in seconds for blocking operations of the SMTP backend, such "
             "as the connection attempt.",
             "Export jobs\nAn export job writes each report to the reports folder and records when it started and "
             "ended.",
             "The relay queues each message and retries delivery of a message it could not send every ten minutes."]
    answers = "A timeout in seconds for blocking operations of the SMTP backend, such as the connection attempt."
    situation = "An export job writes each report to the reports folder and records when it started and ended."
    words = [relevance_module.terms(t) for t in (answers, situation)]
    asked = relevance_module.terms(question)
    whole = idf_cover(asked, words)
    assert whole[0] <= whole[1]  # of the whole question's words, the situation's sentence holds as many
    cover = relevance_module.part_cover(question, asked, words)
    assert cover[0] > cover[1] and cover[0] > whole[0]
    one = "Does the SMTP backend have a timeout?"  # a question of one sentence has no parts
    assert relevance_module.part_cover(one, relevance_module.terms(one), words) == idf_cover(
        relevance_module.terms(one), words)
    result = ask(sculpt, question, *texts)
    assert answers in result.text and "export job" not in result.text
    # a question part of two content words is not compared alone: a line that holds both does not cover it all
    thin = ("I already have positions for every node in my file and only want it drawn without moving anything. "
            "What command line does that?")
    line = relevance_module.terms("Use the -Tmap command line option.")
    assert relevance_module.part_cover(thin, relevance_module.terms(thin), [line]) == idf_cover(
        relevance_module.terms(thin), [line])


def test_a_question_is_not_cut_after_a_dotted_abbreviation():
    assert question_sentences("Who won the men's singles U.S. Open 2021?") == (
        "Who won the men's singles U.S. Open 2021?",)
    assert question_parts("Who won the men's singles U.S. Open 2021?") == []
    assert question_sentences("I moved here last year. How do I file taxes?") == (
        "I moved here last year.", "How do I file taxes?")
    for one in ("What was the value of United Parcel Service, Inc. Class B common stock at the end of 2006?",
                "Who were the officers under Lt. Col. Dunnington's command at Little Rock?",
                "What role does the TCA cycle play according to Gardner et al. 2002?",
                "What impact did the overturning of Roe v. Wade have on Latorya Beasley?"):
        assert question_sentences(one) == (one,)  # (chunking_eval's questions: it is one question each)


@pytest.mark.parametrize("question, asks", [
    ("Does the client retry failed connections automatically? If not, how do I turn retries on?",
     ["Does the client retry failed connections automatically?", "how do I turn retries on?"]),
    ("Why do my callbacks never run in tests, and how can I test them?",
     ["Why do my callbacks never run in tests", "how can I test them?"]),
    ("My signup form accepts a password like 'abc'. Why, and how can I apply the validators myself?",
     ["how can I apply the validators myself?"]),  # ("Why" names nothing to look for)
    ("How long is a reset link valid by default?", []),  # one thing asked
    ("What are the pros and cons of pooling?", []),  # an "and" that joins two words, not two questions
    ("I keep the session in a cookie. How do I make it expire?", []),  # a situation, then one question
])
def test_the_things_a_question_asks(question, asks):
    assert sub_questions(question) == asks


def test_each_thing_a_question_asks_is_answered_by_its_own_quote(sculpt):
    """The sentence that reads on from the first quote ("This applies only to ...") says more about the first
    thing asked; the next quote answers the second thing asked, from another passage."""
    question = "Does the client retry failed connections automatically? If not, how do I turn retries on?"
    texts = ["Retries\nBy default, the client does not retry failed connections. This applies only to failed DNS "
             "lookups, socket connections and connection timeouts, never to requests where data has reached the "
             "server.",
             "Transport adapters\nTo retry failed connections, create an adapter with max_retries set to the "
             "number of attempts and mount it on the session.",
             "Sessions\nA session keeps cookies and connection pools across the requests it sends."]
    result = ask(sculpt, question, *texts)
    assert result.text.startswith("By default, the client does not retry failed connections. [1]")
    assert "create an adapter with max_retries" in result.text and "[2]" in result.text
    # each_part alone brings the second thing's quote (ranked without the learned share, as a question of two
    # sentences is, the adapter's sentence also comes second: told_rank)
    assert "create an adapter with max_retries" in ask(sculpt.with_options(told_rank=False), question, *texts).text
    alone = ask(sculpt.with_options(each_part=False, told_rank=False), question, *texts)
    assert "max_retries" not in alone.text
    one = "How many times does an adapter created with max_retries retry a failed connection?"
    assert ask(sculpt, one, *texts).text == ask(sculpt.with_options(each_part=False), one, *texts).text


@pytest.fixture
def decided(monkeypatch) -> list[float]:
    """Each request's answer-or-refuse score, as the generator reads it (`relevance.decision_score`), in order."""
    scores: list[float] = []
    plain = relevance_module.decision_score

    def recording(batch, question, score):
        scores.append(plain(batch, question, score))
        return scores[-1]

    monkeypatch.setattr(relevance_module, "decision_score", recording)
    return scores


def test_a_higher_answer_threshold_decides_whether_to_answer_not_how_much(sculpt, decided):
    """Further quotes need quote_floor (0.5), not the answer threshold, where that is higher: a checkpoint's
    threshold chosen higher refuses more, and what it answers keeps its further quotes."""
    question = "Does the client retry failed connections automatically? If not, how do I turn retries on?"
    texts = ["Retries\nBy default, the client does not retry failed connections. This applies only to failed DNS "
             "lookups, socket connections and connection timeouts, never to requests where data has reached the "
             "server.",
             "Transport adapters\nTo retry failed connections, create an adapter with max_retries set to the "
             "number of attempts and mount it on the session."]
    both = ask(sculpt, question, *texts).text
    assert "[1]" in both and "max_retries" in both and "[2]" in both
    just = decided[-1] - 1e-3  # the highest threshold that still answers
    assert ask(sculpt.with_options(answer_threshold=just), question, *texts).text == both
    floor = sculpt.with_options(answer_threshold=just, quote_floor=just)  # the floor the threshold was before
    assert "max_retries" not in ask(floor, question, *texts).text
    assert ask(sculpt.with_options(answer_threshold=decided[-1] + 1e-3), question, *texts).text == REFUSAL


def test_a_request_s_sentences_are_embedded_once_for_all_it_asks(sculpt):
    tok, hidden = sculpt._tokenizer, sculpt._model.embed_hidden
    rows: list[int] = []
    def counting(ids, lengths):
        rows.append(ids.shape[0])
        return hidden(ids, lengths)
    texts = ["By default the client does not retry.", "Mount an adapter with max_retries.", "Sessions keep cookies."]
    seen: dict[str, np.ndarray] = {}
    first = relevance_module.embed(counting, tok, texts, seen=seen)
    np.testing.assert_array_equal(first, relevance_module.embed(hidden, tok, texts))  # as it would be alone
    rows.clear()
    again = relevance_module.embed(counting, tok, [texts[1], "How do I turn retries on?"], seen=seen)
    assert sum(rows) == 1  # only the new text went through the encoder
    np.testing.assert_array_equal(again[0], first[1])


def test_a_question_that_tells_a_situation_first_is_ranked_without_the_learned_share(sculpt):
    # the learned selector trained on questions of one sentence; read with it, "Requests officially supports
    # Python 3.7+ and PyPy." outranked the sentence that says what to pin to
    supports = ("Requests officially supports Python 3.7+ and PyPy. Requests is ready for the demands of building "
                "robust and reliable HTTP-speaking applications, for the needs of today.")
    pin = ("Python 3.x Support\nAs of Requests 2.28.0, Requests no longer supports Python 2.7. Users who have been "
           "unable to migrate should pin to requests<2.28. Full Python 3 support is available.")
    question = "Our service is stuck on Python 2.7. Which Requests version constraint should we pin to?"
    result = ask(sculpt, question, supports, pin)
    assert "requests<2.28" in result.text and "Python 3.7+" not in result.text
    assert "Python 3.7+" in ask(sculpt.with_options(told_rank=False), question, supports, pin).text


def test_a_told_question_is_decided_with_told_share_of_the_learned_share(sculpt, decided, monkeypatch):
    """The decision score of a question of several sentences reads `told_share` of the learned selector's share
    (0: the zero-shot rule alone, the same score as with no learned weight at all); a question of one sentence
    reads all of it whatever told_share says, and what is quoted does not move with it."""

    def score(gen, question, *texts):
        decided.clear()
        text = ask(gen.with_options(answer_threshold=-100.0), question, *texts).text
        assert len(decided) == 1
        return decided[0], text

    supports = ("Requests officially supports Python 3.7+ and PyPy. Requests is ready for the demands of building "
                "robust and reliable HTTP-speaking applications, for the needs of today.")
    pin = ("Python 3.x Support\nAs of Requests 2.28.0, Requests no longer supports Python 2.7. Users who have been "
           "unable to migrate should pin to requests<2.28. Full Python 3 support is available.")
    told = "Our service is stuck on Python 2.7. Which Requests version constraint should we pin to?"
    by_share = {share: score(sculpt.with_options(told_share=share), told, supports, pin) for share in (0.0, 0.5, 1.0)}
    assert len({s for s, _ in by_share.values()}) == 3  # the share moves the decision
    assert len({t for _, t in by_share.values()}) == 1 and "requests<2.28" in by_share[0.5][1]  # not the quote
    one = "Which Requests version constraint should a service stuck on Python 2.7 pin to?"
    assert score(sculpt.with_options(told_share=0.0), one, supports, pin) == score(sculpt, one, supports, pin)
    monkeypatch.setattr(relevance_module, "LEARNED_WEIGHT", 0.0)
    assert score(sculpt, told, supports, pin)[0] == pytest.approx(by_share[0.0][0])


# Nestlé's half-year report as ingest writes it: the segment table, its impairment table (the same row labels under
# other columns) and another segment's row.
SEGMENT_TABLES = (
    "In millions of CHF | January–June 2023 Sales (a) | Underlying Trading operating profit (b) | Trading operating profit | Net other trading income/(expenses) (c) | of which impairment of property, plant and equipment | of which restructuring costs | Depreciation and amortization\nZone NA | January–June 2023 Sales (a): 12553 | Underlying Trading operating profit (b): 2713 | Trading operating profit: 2632 | Net other trading income/(expenses) (c): -81 | of which impairment of property, plant and equipment: -29 | of which restructuring costs: -44 | Depreciation and amortization: -337",
    "In millions of CHF | January–June 2023 Impairment of goodwill and non-commercialized intangible assets (c) | Impairment of intangible assets (d) | January–June 2022 Impairment of goodwill and non-commercialized intangible assets (c) | Impairment of intangible assets (d)\nZone NA | January–June 2023 Impairment of goodwill and non-commercialized intangible assets (c): 0 | Impairment of intangible assets (d): -9 | January–June 2022 Impairment of goodwill and non-commercialized intangible assets (c): — | Impairment of intangible assets (d): -285",
    "In millions of CHF | January–June 2023 Sales (a) | Underlying Trading operating profit (b) | Trading operating profit | Net other trading income/(expenses) (c) | of which impairment of property, plant and equipment | of which restructuring costs | Depreciation and amortization\nNestlé Health Science | January–June 2023 Sales (a): 3318 | Underlying Trading operating profit (b): 432 | Trading operating profit: 372 | Net other trading income/(expenses) (c): -60 | of which impairment of property, plant and equipment: -11 | of which restructuring costs: -31 | Depreciation and amortization: -152",
)


def test_no_further_quote_of_a_row_that_lacks_the_column_asked_for(sculpt):
    question = "In Nestlé's half-year analyses by segment, what were Zone NA's sales in January–June 2023 (in millions of CHF)?"
    asked = ("Zone NA | January–June 2023 Sales (a): 12553", 1)
    assert quotes(ask(sculpt, question, *SEGMENT_TABLES).raw_text) == [asked]
    without = quotes(ask(sculpt.with_options(columns=False), question, *SEGMENT_TABLES).raw_text)
    assert without == [asked, ("Zone NA | January–June 2023 Impairment of goodwill and non-commercialized intangible "
                               "assets (c): 0", 2)]  # its label is asked, its value is not
    leafs = ("Stanley Cups Since 67\nMaple Leafs | Location: TOR | Stanley Cups: 0",
             "Stanley Cups\nMaple Leafs | Location: TOR | Stanley Cups: 13")
    both = quotes(ask(sculpt, "How many Stanley Cups have the Maple Leafs won?", *leafs).raw_text)
    assert both == [(leafs[0].split("\n")[1], 1), (leafs[1].split("\n")[1], 2)]  # the column named alike: both


def test_a_quoted_lead_in_is_followed_by_what_it_introduces(sculpt):
    faq = ("MySQL is throwing deadlock errors, what can I do?\nAnswer: MySQL has default isolation level set to "
           "REPEATABLE-READ, if you don't really need that, set it to READ-COMMITTED. You can do that by adding the "
           "following to your my.cnf:\n[mysqld]\ntransaction-isolation = READ-COMMITTED")
    other = "Celery can store task results in a SQL database through SQLAlchemy. Results expire after one day."
    question = "We keep getting deadlock errors from MySQL. How do I change MySQL's isolation level?"
    lead_in = ("You can do that by adding the following to your my.cnf:", 1)
    said = quotes(ask(sculpt, question, faq, other).raw_text)
    assert said[-2:] == [lead_in, ("[mysqld]", 1)]  # the line it promises, cited to the same passage
    assert quotes(ask(sculpt.with_options(follow=False), question, faq, other).raw_text)[-1] == lead_in  # (alone)


ONE_TIME = ("headers_add: Warning: The headers_add option cannot be used for a redirect router that has the one_time "
            "option set.\n"
            "unseen: The unseen option can be set on a redirect router to pass a copy of an address on.")


def test_a_question_that_asks_for_a_default_or_a_number_needs_a_sentence_that_gives_one(sculpt):
    # the router's one_time option is named, but no sentence says what it is by default: refused
    q = "What is the default value of the redirect router's one_time option?"
    assert ask(sculpt, q, ONE_TIME).text == REFUSAL
    entry = ("one_time (use redirect, type boolean, default false): If one_time is set, a redirect router's "
             "generated addresses are delivered once and the original address is then marked as delivered.")
    result = ask(sculpt, q, ONE_TIME, entry)
    assert "default false" in result.raw_text
    # a number: "a short period of time" gives no duration
    q = "How long does git's credential cache keep a password?"
    text = "cache: Cache credentials in memory for a short period of time."
    assert ask(sculpt, q, text).text == REFUSAL
    given = ask(sculpt, q, text + " The cache keeps a password in memory for 900 seconds (15 minutes) by default.")
    assert "900 seconds" in given.raw_text


MONITOR_ENTRY = ("monitor_interval (integer): The number of milliseconds the monitoring thread waits before dumping "
                 "status entries to the database.")
SYNC_TIMEOUT = ("The thresholds for switching between these modes are controlled by the configuration parameters "
                "sync_interval and sync_interval_timeout; if the timeout value (which defaults to 10000, implying 10s) "
                "is kept low, slon returns to listening quickly.")


def test_another_setting_s_default_does_not_answer_for_the_setting_asked(sculpt):
    """Slony-I's manual describes monitor_interval without a default; a FAQ sentence gives sync_interval_timeout's.
    A question for one setting's default is not answered by another's: refused. The asked setting's default, in
    the sentence after the one that names it (its entry's next sentence), is the answer."""
    q = "What is the default value of slon's monitor_interval setting?"
    assert ask(sculpt, q, MONITOR_ENTRY, SYNC_TIMEOUT).text == REFUSAL
    given = ask(sculpt, q, MONITOR_ENTRY + " The default is 500.", SYNC_TIMEOUT)
    assert quotes(given.raw_text)[0] == ("The default is 500.", 1)


def test_the_message_a_user_quotes_is_not_said_back_as_the_answer(sculpt):
    """A user who quotes an error knows it: a line that repeats it (with "ERROR: Slony-I:" before it) says nothing
    new. The answer is what to do about it, and a passage that holds only the message answers nothing."""
    q = "Our slonik DROP NODE script fails with 'DROP_NODE cannot initiate on the dropped node'. What should we change?"
    log = "ERROR: Slony-I: DROP_NODE cannot initiate on the dropped node"
    fix = "The node being dropped cannot be the EVENT NODE: give DROP NODE an EVENT NODE other than the node it drops."
    assert quotes(ask(sculpt, q, f"{log}\n{fix}").raw_text) == [(fix, 1)]
    assert ask(sculpt, q, log).text == REFUSAL
    assert ask(sculpt, q, "4.2.11. Slony-I: DROP_NODE cannot initiate on the dropped node").text == REFUSAL  # (a
    # FAQ's title: its section number is no news)


def test_a_title_decides_nothing(sculpt):
    """A title names a topic and answers nothing: "What parameters does SLONIK CLONE PREPARE take?" was answered
    with the title line "SLONIK CLONE PREPARE/SLONIK CLONE FINISH" of a passage that gives none. The decision
    to answer now rests on the passage's sentences."""
    q = "What parameters does SLONIK CLONE PREPARE take?"
    titled = ("SLONIK CLONE PREPARE/SLONIK CLONE FINISH\nOMIT COPY is used when a node is cloned by copying a "
              "database, rather than by a copy of each table.")
    assert ask(sculpt, q, titled).text == REFUSAL
    given = ask(sculpt, q, titled + "\nSLONIK CLONE PREPARE takes the parameters ID, PROVIDER and COMMENT.")
    assert quotes(given.raw_text) == [("SLONIK CLONE PREPARE takes the parameters ID, PROVIDER and COMMENT.", 1)]


PBKDF2_ENTRY = ("gnutls_pbkdf2 ()\nint gnutls_pbkdf2 (gnutls_mac_algorithm_t mac, const gnutls_datum_t *key, "
                "const gnutls_datum_t *salt, unsigned iter_count, void *output, size_t length);\n"
                "This function will derive a variable length keying material from a password according to PKCS #5 "
                "PBKDF2.\nParameters\nmac | the mac algorithm used internally\nkey | the initial keying material\n"
                "Returns\nZero or a negative error code on error.\nSince: 3.6.13")
OPENPGP_ENTRY = ("gnutls_openpgp_crt_get_version ()\nint gnutls_openpgp_crt_get_version (gnutls_openpgp_crt_t key);\n"
                 "gnutls_openpgp_crt_get_version is deprecated and should not be used in newly-written code.\n"
                 "Returns\nthe version of the OpenPGP key.\nSince: 2.4.0")
MAC_INFO_ENTRY = ("gnutls_pkcs12_mac_info ()\nint gnutls_pkcs12_mac_info (gnutls_pkcs12_t pkcs12, unsigned int *mac, "
                  "void *salt, unsigned int *salt_size, unsigned int *iter_count, char **oid);\n"
                  "This function will provide information on the MAC algorithm used in a PKCS 12 structure. If the "
                  "structure algorithms are unknown the code GNUTLS_E_UNKNOWN_HASH_ALGORITHM will be returned, and only "
                  "oid , will be set.")
MAC_INFO_RETURNS = ("Returns\nGNUTLS_E_INVALID_REQUEST if the provided structure doesn't contain a MAC, "
                    "GNUTLS_E_UNKNOWN_HASH_ALGORITHM if the structure's MAC isn't supported, or another negative error "
                    "code in case of a failure.\nSince: 3.4.0")


def test_a_part_of_a_reference_entry_is_read_with_the_entry_s_name(sculpt):
    """gtk-doc writes a C function's entry as its name, prototype and description, then the parts "Parameters" and
    "Returns" under headings of their own. "Since: 3.6.13" under "Returns" answers "Since which version is
    gnutls_pbkdf2() available?" only when read as part of gnutls_pbkdf2's entry (it was refused: the line shares
    no word with the question but "since"). The part is read with the entry's name where the passage holds the
    whole entry (ingest joins a small part to its entry's chunk) and where the part was chunked apart (its
    section path names the entry), and the quote opens with the entry's name. A digit inside a parameter's type
    ("pkcs12 | A pkcs12 type") is no value: that row no longer outranks what the function returns."""
    passages = (Passage(number=1, text=OPENPGP_ENTRY, section="gnutls_openpgp_crt_get_version ()"),
                Passage(number=2, text=PBKDF2_ENTRY, section="gnutls_pbkdf2 ()"))
    result = sculpt.generate(GenerationRequest(question="Since which GnuTLS version is gnutls_pbkdf2() available?",
                                               passages=passages))
    assert result.text.startswith("gnutls_pbkdf2 (): ") and "3.6.13" in quotes(result.raw_text)[0][0]
    assert quotes(result.raw_text)[0][1] == 2
    assert relevance_module.entry_section("Returns", "gnutls-pkcs12 | Functions > gnutls_pkcs12_mac_info () > Returns") \
        == "gnutls_pkcs12_mac_info ()\nReturns"
    assert relevance_module.entry_section("Returns", "Chapter 3 > Returns") == "Returns"  # (not part of an entry)
    question = "What does gnutls_pkcs12_mac_info() return when the PKCS#12 structure contains no MAC?"
    apart = (Passage(number=1, text=MAC_INFO_ENTRY, section="gnutls_pkcs12_mac_info ()",
                     context="gnutls-pkcs12 | Functions > gnutls_pkcs12_mac_info ()"),
             Passage(number=2, text="Parameters\npkcs12 | should contain a gnutls_pkcs12_t type", section="Parameters",
                     context="gnutls-pkcs12 | Functions > gnutls_pkcs12_verify_mac () > Parameters"),
             Passage(number=3, text=MAC_INFO_RETURNS, section="Returns",
                     context="gnutls-pkcs12 | Functions > gnutls_pkcs12_mac_info () > Returns"))
    result = sculpt.generate(GenerationRequest(question=question, passages=apart))
    assert quotes(result.raw_text)[0][0].startswith("GNUTLS_E_INVALID_REQUEST if the provided structure doesn't")
    assert quotes(result.raw_text)[0][1] == 3


DTLS_TIMEOUTS = ("gnutls_dtls_set_timeouts ()\nThis function will set the timeouts required for the DTLS handshake "
                 "protocol. The retransmission timeout is the time after which a message from the peer is not "
                 "received, the previous messages will be retransmitted. The total timeout is the time after which the "
                 "handshake will be aborted with GNUTLS_E_TIMEDOUT. The DTLS protocol recommends the values of 1 sec "
                 "and 60 seconds respectively, and these are the default values.")
DTLS_GET_TIMEOUT = ("gnutls_dtls_get_timeout ()\nThis function will return the milliseconds remaining for a "
                    "retransmission of the previously sent handshake message.")


def test_a_sentence_that_gives_values_respectively_is_read_after_what_it_gives_them_for(sculpt):
    """"... recommends the values of 1 sec and 60 seconds respectively, and these are the default values." names
    neither timeout: read alone it ranked fourth, under sentences that say what each timeout is. It is read after
    the sentences before it, as a sentence that opens with "This" or "It" is."""
    result = ask(sculpt, "What are the default retransmission and total timeouts of the DTLS handshake in GnuTLS?",
                 DTLS_GET_TIMEOUT, DTLS_TIMEOUTS)
    assert quotes(result.raw_text)[0] == ("The DTLS protocol recommends the values of 1 sec and 60 seconds respectively, "
                                          "and these are the default values.", 2)


RENDER_FAQ = ("Q7. Why are my SVG files so large?\nEvery glyph is written as a path. Use a font that the viewer has.\n"
              "Q. When I export to WebP, thin lines come out blurred, while the same drawing as SVG is sharp.\n"
              "This is a side effect of WebP's lossy encoder. Line art suits a lossless format better.")


def test_a_faq_question_that_ends_with_a_full_stop_is_a_question_and_titles_its_answer(sculpt):
    """A FAQ may tell its question as a situation that ends with a full stop ("Q. When I have a red edge it shows
    up ... but has a black border when rendered to JPEG."). It is a question all the same: it was quoted as the
    answer, and the answer under it ("This is an artifact of JPEG's lossy compression algorithm.") read alone ranked
    far down."""
    result = ask(sculpt, "Exporting to WebP makes our thin lines blurry but SVG output is crisp. Is that a bug?",
                 RENDER_FAQ)
    assert quotes(result.raw_text)[0] == ("This is a side effect of WebP's lossy encoder.", 1)
    assert not relevance_module.FAQ_QUESTION.match("Q1: Revenue grew 4%.")  # (a quarter's line in a report)


PALETTE_ENTRY = ("A palette keeps bitmaps small. However, with a see-through background and a palette, "
                 "smoothed text gets a grey halo around each letter. Setting fullcolor=yes avoids this problem.\n"
                 "dpi: The resolution of bitmaps, in pixels per inch.")


def test_a_sentence_about_this_problem_is_read_after_the_problem(sculpt):
    """"Using truecolor=true avoids this problem." names the problem only as "this problem": read alone it ranked
    far below sentences that share the question's words. It leans on the sentence before it as one that opens
    with "This" does, as it adds what "which attribute" asks: a setting written as name=value is code."""
    assert relevance_module.THIS_PROBLEM_RE.search("Setting fullcolor=yes avoids this problem.")
    assert relevance_module.CODE_TOKEN.findall("Set fullcolor=yes, or --no-palette.") == ["fullcolor=yes",
                                                                                        "--no-palette"]
    result = ask(sculpt, "We draw bitmaps with a transparent background, and antialiased letters come out with a "
                         "light fringe. Which attribute removes that?", PALETTE_ENTRY)
    assert quotes(result.raw_text)[0] == ("Setting fullcolor=yes avoids this problem.", 1)


def test_a_sentence_that_opens_with_a_connective_is_read_after_the_one_before(sculpt):
    """"Instead, the rewrite is put off by up to 15 minutes, ..." says what is delayed only in the sentence before
    it; read alone it shares one word with the question, and the sentence before it, which gives no time, was
    quoted. A connective and its comma make a sentence lean on the one before, as "Instead it ..." did; "If not"
    before code does not ("if not self.get_cookie(...):" is a line of a program)."""
    assert relevance_module.DEPENDENT_RE.match("Note that running the hooks depends on the $move variable.")
    assert not relevance_module.DEPENDENT_RE.match('if not self.get_secure_cookie("user"):')
    journal = ("Every change made through an update is first written to the zone's journal. The server does not "
               "rewrite the whole zone file after each update, which would be too slow for a zone that changes "
               "often. Instead, the rewrite is put off by up to 15 minutes, so that further changes can collect.")
    other = "A zone file holds the records of one zone, one per line, in the master file format."
    result = ask(sculpt, "After an update, how long can the name server wait before it writes the zone file again?",
                 other, journal)
    assert quotes(result.raw_text)[0] == ("Instead, the rewrite is put off by up to 15 minutes, so that further "
                                          "changes can collect.", 2)


def test_these_or_such_things_are_read_after_the_sentence_that_names_them(sculpt):
    """"You can mend such threads with the <break-thread> function" names what it mends only as "such threads";
    the sentence before it tells how they come about, in the user's words, and was quoted over it."""
    assert relevance_module.THESE_THINGS_RE.search("A different place for these files can be set.")
    assert not relevance_module.THESE_THINGS_RE.search("Lists such as these are kept in order.")
    threads = ("Some people open a new discussion on a mailing list by replying to an old message and changing "
               "the subject. You can mend such threads with the <break-thread> function (bound to #), which makes "
               "the subthread from the current message a thread of its own.")
    other = "The index shows one line per message; threads are drawn as a tree to the left of the subjects."
    result = ask(sculpt, "Somebody started a new topic by replying to an old message and changing the subject, so "
                         "it is now buried inside an unrelated thread in my index. How do I split it off?",
                 other, threads)
    assert quotes(result.raw_text)[0][0].startswith("You can mend such threads with the <break-thread> function")


def test_a_section_titled_with_a_name_the_question_asks_is_read_with_it(sculpt):
    """A platform's notes under its own one-word title ("AIX", then "Matt Fago tells us that "--enable-shared=no"
    is required or the executables segfault ...") answer a question that names the platform; the title adds
    one word of the question, fewer than SECTION_WORDS, and the sentence read alone lost to generic advice."""
    notes = ("Platform notes\nSolaris\nUse GNU make; the system make fails on the generated rules.\n"
             "HP-UX\nLink with -lm or the math symbols are missing at run time.\n"
             "Tru64\nWe are told that --disable-threads is required or the programs hang on start-up.")
    result = sculpt.generate(GenerationRequest(
        question="Our build on Tru64 compiles without errors, but the programs hang as soon as they start. Which "
                 "option is reported to fix this?",
        passages=(Passage(number=1, text="configure --help lists every option it accepts.", section="Configure"),
                  Passage(number=2, text=notes, section="Platform notes"))))
    assert quotes(result.raw_text)[0] == ("We are told that --disable-threads is required or the programs hang on "
                                          "start-up.", 2)


def test_a_hyphenated_word_also_matches_its_parts_written_as_one(sculpt):
    """A manual writes "prettyprinted" where a user writes "pretty-printed" (or "email" for "e-mail"). A question's
    hyphenated word also counts as one word where a passage writes it so; where none does, it does not dilute the
    cover of every passage, nor does it count twice in a passage that hyphenates it too."""
    compounds = relevance_module.compounds
    assert compounds("a pretty-printed copy") == relevance_module.terms("prettyprinted")
    assert compounds("Send an e-mail") == relevance_module.terms("email")
    assert compounds("--enable-shared=no") == set()  # (an option is no compound)
    question = "Which output format gives a pretty-printed copy of the input?"
    closed = "The canon format produces a prettyprinted version of the input."
    other = "The dot format is the default."
    found = parts(sculpt._model.embed_hidden, sculpt._tokenizer, question, [closed, other])
    assert found[0]["cover"] == pytest.approx(idf_cover(terms(question) | compounds(question),
                                                        [terms(closed) | compounds(closed), terms(other)])[0])
    assert found[0]["cover"] > idf_cover(terms(question), [terms(closed), terms(other)])[0]
    hyphenated = "The canon format produces a pretty-printed version of the input."  # (its parts match: no third
    found = parts(sculpt._model.embed_hidden, sculpt._tokenizer, question, [hyphenated, other])  # term counts
    assert found[0]["cover"] == pytest.approx(idf_cover(terms(question), [terms(hyphenated), terms(other)])[0])  # them)
    alone = parts(sculpt._model.embed_hidden, sculpt._tokenizer, question, [other])
    assert alone[0]["cover"] == pytest.approx(idf_cover(terms(question), [terms(other)])[0])
