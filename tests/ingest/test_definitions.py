"""HTML definition lists: a term is joined to its definition, so the sentence that defines it names it."""

from __future__ import annotations

from ingest.definitions import MAX_TERMS, join_definitions
from ingest.parse import parse_file
from pipeline.config import Settings

ASCIIDOC = """<?xml version="1.0" encoding="UTF-8"?>
<html><body><h2>OPTIONS</h2><div class="dlist"><dl>
<dt class="hdlist1">--autostash</dt>
<dt class="hdlist1">--no-autostash</dt>
<dd>
<p>
        Automatically create a temporary stash entry before the operation begins, and apply it after the
        operation ends.
</p>
<div class="paragraph"><p>This means that you can run rebase on a dirty worktree.</p></div>
</dd>
<dt class="hdlist1">--onto &lt;newbase&gt;</dt>
<dd><p>Starting point at which to create the new commits.</p></dd>
</dl></div></body></html>"""

MAN2HTML = """<HTML><BODY><DL COMPACT>
<DT><B>--noprofile</B>

<DD>
Do not read either the system-wide startup file
<I>/etc/profile</I>
or any of the personal initialization files.
<DT><B>--norc</B>

<DD>
Do not read and execute the personal initialization file
<A HREF="file:~/.bashrc"><I>~/.bashrc</I></A>
if the shell is interactive.
</DL></BODY></HTML>"""


def text_of(markup: str) -> str:
    import lxml.html

    return " ".join(lxml.html.document_fromstring(markup).text_content().split())


def test_terms_are_written_into_the_first_line_of_their_definition():
    out = join_definitions(ASCIIDOC)
    text = text_of(out)
    assert ("--autostash, --no-autostash: Automatically create a temporary stash entry before the operation begins"
            in text)
    assert "--onto <newbase>: Starting point at which to create the new commits." in text
    assert "<dt" not in out.lower()
    # a further paragraph of the definition opens with its terms too: alone, it would not say what it is about
    assert "--autostash, --no-autostash: This means that you can run rebase on a dirty worktree." in text
    assert text.count("--autostash, --no-autostash") == 2


def test_unclosed_man_page_terms_are_joined_too():
    text = text_of(join_definitions(MAN2HTML))
    assert "--noprofile: Do not read either the system-wide startup file /etc/profile" in text
    assert "--norc: Do not read and execute the personal initialization file ~/.bashrc if the shell is interactive." in text


def test_definitions_that_open_with_code_and_overlong_terms_stay_apart():
    code_first = "<dl><dt>Example</dt><dd><pre>git stash push -u</pre><p>Stashes everything.</p></dd></dl>"
    assert join_definitions(code_first) is None
    nested = "<dl><dt>Example</dt><dd><div><pre>git stash push -u</pre></div><p>Stashes everything.</p></dd></dl>"
    assert join_definitions(nested) is None  # not "Example: Stashes everything." after the code
    synopsis = "x" * (MAX_TERMS + 1)
    assert join_definitions(f"<dl><dt>{synopsis}</dt><dd><p>Save your changes.</p></dd></dl>") is None
    assert join_definitions("<html><body><p>No lists here.</p></body></html>") is None
    # a term without a definition after it is left alone; one with a definition is still joined
    mixed = "<dl><dt>lonely</dt><dt>temp</dt><dd>Returns a temporary redirect status (302).</dd><dt>dangling</dt></dl>"
    assert "lonely, temp: Returns a temporary redirect status (302)." in text_of(join_definitions(mixed))


def test_a_faq_question_stays_a_line_above_its_answer():
    """A FAQ written as a definition list: the question titles the answer; joined, the answer's first sentence
    would open with the question, and a quote of it too."""
    faq = ("<dl><dt>Why does the build fail with \"no such file\"?</dt><dd><p>The headers are missing.</p></dd>"
           "<dt>--quiet</dt><dd><p>Print nothing.</p></dd></dl>")
    text = text_of(join_definitions(faq))
    assert "--quiet: Print nothing." in text and "?:" not in text
    assert join_definitions(faq.split("<dt>--quiet")[0] + "</dl>") is None


def test_an_html_file_parses_to_one_element_per_defined_term(tmp_path):
    path = tmp_path / "git-rebase.html"
    path.write_text(ASCIIDOC, encoding="utf-8")
    texts = [e.text for e in parse_file(path, "HTML", "text/html", None, Settings().ingest).elements]
    assert any(t.startswith("--autostash, --no-autostash: Automatically create a temporary stash entry") for t in texts)
    assert "--autostash" not in texts and "--no-autostash" not in texts
    # a file that is not UTF-8 is parsed as before, by unstructured alone
    latin = tmp_path / "latin.html"
    latin.write_bytes("<html><body><dl><dt>caf\xe9</dt><dd><p>A place.</p></dd></dl></body></html>".encode("latin-1"))
    texts = [e.text for e in parse_file(latin, "HTML", "text/html", None, Settings().ingest).elements]
    assert "A place." in texts


DOCBOOK_OUTLINE = """<html><body><div class="itemizedlist"><ul class="itemizedlist">
<li class="listitem"><p> "Suggests" </p>
  <div class="itemizedlist"><ul class="itemizedlist">
    <li class="listitem"><p> This declares a weak dependency. Many users may benefit from it. </p></li>
  </ul></div></li>
<li class="listitem"><p> "Enhances" </p>
  <div class="itemizedlist"><ul class="itemizedlist">
    <li class="listitem"><p> This declares a weak dependency like Suggests but works in the opposite direction. </p></li>
  </ul></div></li>
</ul></div></body></html>"""


def test_an_outline_items_label_is_written_into_its_sub_lists_first_item():
    text = text_of(join_definitions(DOCBOOK_OUTLINE))
    assert '"Enhances": This declares a weak dependency like Suggests but works in the opposite direction.' in text
    assert '"Suggests": This declares a weak dependency. Many users may benefit from it.' in text
    assert text.count('"Enhances"') == 1  # the label line itself is gone
    # a label as the item's own text, with a colon: joined to the first item; the others stay as they are
    plain = text_of(join_definitions("<ul><li>Hard link:<ul><li>Duplicate name for a file</li><li>Same inode</li></ul></li></ul>"))
    assert "Hard link: Duplicate name for a file" in plain and "Same inode" in plain and plain.count("Hard link") == 1


def test_sentences_links_and_code_are_not_outline_labels():
    # a whole sentence is not a label; a table of contents' link is not one either; code opens no prose
    assert join_definitions("<ul><li><p>Install it first.</p><ul><li>apt-get install foo</li></ul></li></ul>") is None
    assert join_definitions('<ul><li><a href="#a">1. Intro</a><ul><li><a href="#b">1.1 Goals</a></li></ul></li></ul>') is None
    assert join_definitions("<ul><li><p>Example</p><ul><li><pre>git stash push -u</pre></li></ul></li></ul>") is None
    assert join_definitions("<ul><li><p>Example</p><p>More text.</p><ul><li>first</li></ul></li></ul>") is None
    long_label = "x" * 81
    assert join_definitions(f"<ul><li><p>{long_label}</p><ul><li>first</li></ul></li></ul>") is None


def test_an_html_outline_parses_to_one_element_per_labelled_item(tmp_path):
    path = tmp_path / "ch02.html"
    path.write_text(DOCBOOK_OUTLINE, encoding="utf-8")
    texts = [e.text for e in parse_file(path, "HTML", "text/html", None, Settings().ingest).elements]
    assert '"Enhances": This declares a weak dependency like Suggests but works in the opposite direction.' in texts
    assert '"Enhances"' not in texts


SPHINX_PARAMETERS = """<html><body><dl class="py function"><dt>sqlalchemy.create_engine(*args, **kwargs)</dt><dd>
<ul class="simple">
<li><p><span class="target" id="p.pool_timeout"></span><strong>pool_timeout=30</strong> – <p>number of seconds to wait
before giving up on getting a connection from the pool. This is only used with
<a href="pooling.html#QueuePool"><code>QueuePool</code></a>.</p>
</p></li>
<li><p><strong>pool_use_lifo=False</strong> – <p>use LIFO when retrieving connections.</p></p></li>
<li><p><strong>query_cache_size</strong> – <p>size of the cache used to cache the SQL string
form of queries.  Set to zero to disable caching.</p>
<p>The cache is pruned of its least recently used items when its size reaches
N * 1.5.  Defaults to <code>500</code>, meaning the cache will always store at least
500 SQL statements when filled.</p>
<div class="admonition note"><p class="admonition-title">Note</p><p>Caching is per statement.</p></div>
</p></li>
</ul></dd></dl><p>Engine Creation API</p><p>Keep this paragraph apart.</p></body></html>"""


def test_a_parameter_and_its_default_are_written_into_the_description_that_follows():
    text = text_of(join_definitions(SPHINX_PARAMETERS))
    assert ("pool_timeout=30 – number of seconds to wait before giving up on getting a connection from the pool. "
            "This is only used with QueuePool.") in text
    assert "pool_use_lifo=False – use LIFO when retrieving connections." in text
    assert text.count("pool_timeout=30") == 1
    # an entry's further paragraphs join its first: the default is on the line that names the parameter
    assert ("query_cache_size – size of the cache used to cache the SQL string form of queries. Set to zero to "
            "disable caching. The cache is pruned of its least recently used items when its size reaches N * 1.5. "
            "Defaults to 500, meaning the cache will always store at least 500 SQL statements when filled.") in text
    import lxml.html

    paragraphs = [" ".join(p.text_content().split())
                  for p in lxml.html.document_fromstring(join_definitions(SPHINX_PARAMETERS)).iter("p")]
    assert paragraphs[-4:] == ["Note", "Caching is per statement.", "Engine Creation API", "Keep this paragraph apart."]
    # a dash after a sentence, a dash before code or before no paragraph: left as they are
    assert join_definitions("<div><p>It is done. –</p><p>Next.</p></div>") is None
    assert join_definitions("<div><p>Example –</p><pre>x = 1</pre></div>") is None
    assert join_definitions("<div><p>Example –</p></div>") is None
    assert join_definitions(f"<div><p>{'x' * 81} –</p><p>Next.</p></div>") is None


def test_a_parameters_description_parses_as_one_line_with_its_name(tmp_path):
    path = tmp_path / "engines.html"
    path.write_text(SPHINX_PARAMETERS, encoding="utf-8")
    texts = [e.text for e in parse_file(path, "HTML", "text/html", None, Settings().ingest).elements]
    assert any(t.startswith("pool_timeout=30 – number of seconds to wait before giving up") for t in texts)
    assert not any(t.strip() in ("pool_timeout=30 –", "pool_timeout=30") for t in texts)
    assert any(t.startswith("query_cache_size – size of the cache") and "Defaults to 500," in t for t in texts)
    assert "Keep this paragraph apart." in texts


def test_each_paragraph_of_a_long_definition_opens_with_its_term():
    """A DocBook option entry (Valgrind's, PostgreSQL's settings) says its effect in a later paragraph without
    naming the option; cut into a chunk of its own, or quoted, that paragraph would not say what it is about."""
    docbook = ("<dl class='variablelist'><dt><span class='term'><code>--track-origins=&lt;yes|no&gt;</code> "
               "[default: no]</span></dt><dd><p>Controls whether Memcheck tracks the origin of uninitialised "
               "values.</p><p>When set to yes, Memcheck keeps track of the origins of all uninitialised values.</p>"
               "<pre>valgrind --track-origins=yes prog</pre><ul><li><p>a heap block</p></li></ul></dd></dl>")
    text = text_of(join_definitions(docbook))
    assert "--track-origins=<yes|no> [default: no]: Controls whether Memcheck tracks" in text
    assert "--track-origins=<yes|no> [default: no]: When set to yes, Memcheck keeps track of the origins" in text
    assert "[default: no]: valgrind" not in text and "[default: no]: a heap block" not in text  # code and lists: no
    # a signature with parameters stays in the first paragraph only: in every one, it makes them all alike
    sphinx = ("<dl class='py class'><dt>class psycopg2.extras.RealDictCursor(*args, **kwargs)</dt><dd><p>A cursor "
              "that uses a real dict as the base type for rows.</p><p>Note that this cursor is extremely "
              "specialized.</p></dd></dl>")
    text = text_of(join_definitions(sphinx))
    assert text.count("RealDictCursor") == 1 and "Note that this cursor is extremely specialized." in text
    api = ("<dl class='py attribute'><dt>protocol_version</dt><dd><p>A read-only integer.</p><p>Currently only "
           "protocol 3 is supported.</p></dd></dl>")  # nor does a Python API entry's name, however short
    assert text_of(join_definitions(api)).count("protocol_version") == 1


EXIM_OPTIONS = """<html><body><h3>Private options for smtp</h3>
<table><tr><td><span class="docbook_option">data_timeout</span></td><td>Use: <em>smtp</em></td>
<td>Type: <em>time</em></td><td>Default: <em>5m</em></td></tr></table>
<p>This sets a timeout for the transmission of each block in the data portion of the message.</p>
<pre>data_timeout = 2m</pre>
<p>Its value must not be zero.</p>
<table><tr><td>dkim_canon</td><td>Use: <em>smtp</em></td><td>Type: <em>string</em></td><td>Default: <em>unset</em></td></tr></table>
<p>DKIM signing option.</p>
<h3>Limits</h3><p>Nothing here names an option.</p>
<table><tr><td>Total</td><td>12</td><td>15</td></tr></table><p>A table row of figures is no box of fields.</p>
</body></html>"""


def test_an_entry_s_box_of_fields_opens_its_description_and_its_name_every_paragraph():
    """The Exim specification puts each option's name, use, type and default in a one-row table above the
    paragraphs that describe it: read apart, the row has no meaning and the paragraphs no name."""
    text = text_of(join_definitions(EXIM_OPTIONS))
    assert "data_timeout (use smtp, type time, default 5m): This sets a timeout for the transmission" in text
    assert "data_timeout: Its value must not be zero." in text and "data_timeout: data_timeout = 2m" not in text
    assert "dkim_canon (use smtp, type string, default unset): DKIM signing option." in text
    assert "dkim_canon: Nothing here" not in text  # a heading ends the entry
    assert "Total (" not in text and "A table row of figures is no box" in text  # cells that are not fields: left alone


def test_an_exim_option_parses_to_one_line_whose_term_is_its_name_and_fields(tmp_path):
    from pipeline.text import TERM_RE

    path = tmp_path / "ch-the_smtp_transport.html"
    path.write_text(EXIM_OPTIONS, encoding="utf-8")
    texts = [e.text for e in parse_file(path, "HTML", "text/html", None, Settings().ingest).elements]
    line = next(t for t in texts if t.startswith("data_timeout (use smtp"))
    assert TERM_RE.match(line).group(1) == "data_timeout (use smtp, type time, default 5m)"
    assert not any(t.startswith("data_timeout Use:") for t in texts)  # the box is no row of its own


SPHINX_CLASS = """<html><body><dl class="py class">
<dt class="sig sig-object py" id="cryptography.hazmat.primitives.ciphers.aead.AESCCM">
<em class="property"><span class="pre">class</span> </em><span class="sig-prename descclassname"><span class="pre"
>cryptography.hazmat.primitives.ciphers.aead.</span></span><span class="sig-name descname"><span class="pre">AESCCM</span
></span><span class="sig-paren">(</span><em class="sig-param">key</em><span class="sig-paren">)</span></dt>
<dd><div class="versionadded"><p><span class="versionmodified added">New in version 2.0.</span></p></div>
<p>The AES-CCM construction is composed of the AES block cipher.</p>
<dl class="py method">
<dt class="sig sig-object py" id="cryptography.hazmat.primitives.ciphers.aead.AESCCM.generate_key">
<em class="property"><span class="pre">classmethod</span> </em><span class="sig-name descname"><span class="pre"
>generate_key</span></span><span class="sig-paren">(</span><em class="sig-param">bit_length</em><span class="sig-paren">)</span></dt>
<dd><p>Securely generates a random AES-CCM key.</p></dd></dl>
<dl class="py method">
<dt class="sig sig-object py" id="cryptography.hazmat.primitives.ciphers.aead.AESCCM.encrypt">
<span class="sig-name descname"><span class="pre">encrypt</span></span><span class="sig-paren">(</span><em
class="sig-param">nonce</em>, <em class="sig-param">data</em><span class="sig-paren">)</span></dt>
<dd><div class="admonition warning"><p class="admonition-title">Warning</p>
<p>Reuse of a nonce with a given key compromises the security of any message.</p></div>
<p>Encrypts and authenticates the data provided.</p></dd></dl>
</dd></dl>
<dl class="py function"><dt class="sig sig-object py" id="psutil.cpu_freq"><span class="sig-prename descclassname"
><span class="pre">psutil.</span></span><span class="sig-name descname"><span class="pre">cpu_freq</span></span></dt>
<dd><p>Return CPU frequency.</p></dd></dl>
</body></html>"""


def test_a_class_member_s_signature_names_its_class_and_its_text_comes_before_its_notes():
    text = text_of(join_definitions(SPHINX_CLASS))
    # the member's signature names its class, as its anchor does; its text is what it is joined to, not a warning
    assert "AESCCM.encrypt(nonce, data): Encrypts and authenticates the data provided." in text
    assert "Encrypts and authenticates the data provided. Warning Reuse of a nonce" in text
    assert "classmethod AESCCM.generate_key(bit_length): Securely generates a random AES-CCM key." in text
    # the class's own entry opens with its text, its "New in version" note after it
    assert "aead.AESCCM(key): The AES-CCM construction is composed of the AES block cipher. New in version 2.0." in text
    # a signature that names its owner already is left as it is
    assert "psutil.cpu_freq: Return CPU frequency." in text and "psutil.psutil" not in text
