"""C prototypes wrapped over lines in a <pre> (a C library's reference): one declaration to a line."""

from __future__ import annotations

from ingest.chunk import chunk_elements
from ingest.declarations import declarations
from ingest.parse import parse_file
from ingest.validate import validate_parsed
from pipeline.config import Settings
from pipeline.embedding import resolve_model_path, token_counter

# a function's entry as gtk-doc writes it (GnuTLS's reference; the HTML written for this test)
ENTRY = """<html><head><title>DTLS</title></head><body><h2>Functions</h2>
<div class="refsect2"><h3>gnutls_dtls_set_timeouts ()</h3>
<pre class="programlisting"><span class="returnvalue">void</span>
gnutls_dtls_set_timeouts (<em class="parameter"><code><a href="#t">gnutls_session_t</a> session</code></em>,
                          <em class="parameter"><code>unsigned <span class="type">int</span> retrans_timeout</code></em>,
                          <em class="parameter"><code>unsigned <span class="type">int</span> total_timeout</code></em>);</pre>
<p>This function will set the timeouts required for the DTLS handshake protocol.</p>
<p>The DTLS protocol recommends the values of 1 sec and 60 seconds respectively, and these are the default
values.</p>
<h4>Parameters</h4>
<table><tr><td><p>session</p></td><td><p>A <a href="#t">gnutls_session_t</a> type</p></td><td> </td></tr>
<tr><td><p>retrans_timeout</p></td><td><p>The time at which a retransmission will occur in milliseconds</p></td><td> </td></tr>
<tr><td><p>total_timeout</p></td><td><p>The time at which the connection will be aborted, in milliseconds.</p></td><td> </td></tr>
</table>
<pre class="programlisting">ret = gnutls_handshake(session,
        flags);
if (ret &lt; 0) { fail(); }</pre>
</div></body></html>"""


def test_a_prototype_wrapped_over_lines_is_one_line():
    assert declarations("unsigned int\ngnutls_dtls_get_mtu (gnutls_session_t session);") == [
        "unsigned int gnutls_dtls_get_mtu (gnutls_session_t session);"]
    # SQLite's style: several prototypes, a comment beside each parameter (its parentheses are its own)
    assert declarations("int sqlite3_open(\n  const char *filename,   /* Database filename (UTF-8) */\n"
                        "  sqlite3 **ppDb          /* OUT: SQLite db handle */\n);\n"
                        "int sqlite3_close(sqlite3*);") == [
        "int sqlite3_open(const char *filename, /* Database filename (UTF-8) */ sqlite3 **ppDb /* OUT: SQLite db "
        "handle */);", "int sqlite3_close(sqlite3*);"]
    assert declarations("PGconn *PQconnectdbParams(const char * const *keywords,\n"
                        "                          int expand_dbname);") == [
        "PGconn *PQconnectdbParams(const char * const *keywords, int expand_dbname);"]
    assert declarations("int gnutls_init (gnutls_session_t *session, unsigned int flags);") is None  # one line
    assert declarations("ret = gnutls_handshake(session,\n    flags);") is None  # a call, not a declaration
    assert declarations("#include <stdio.h>\nint main(void) {\n  return 0;\n}") is None  # a program
    assert declarations("void f(int a,\n       int b);\nprintf(\"done\");\nx = 1;") is None  # not only prototypes


def test_a_c_reference_entry_reads_as_its_prototype_description_and_parameters(tmp_path):
    path = tmp_path / "gnutls-dtls.html"
    path.write_text(ENTRY, encoding="utf-8")
    settings = Settings().ingest
    parsed = parse_file(path, "HTML", "text/html", None, settings)
    texts = [e.text for e in parsed.elements]
    assert ("void gnutls_dtls_set_timeouts (gnutls_session_t session, unsigned int retrans_timeout, unsigned int "
            "total_timeout);") in texts
    assert not any(t.strip() in ("void", "unsigned int retrans_timeout,") for t in texts)
    assert any("ret = gnutls_handshake(session,\n" in t for t in texts)  # an example keeps its lines
    count = token_counter(resolve_model_path(Settings().embedding.model))
    chunks = chunk_elements(validate_parsed(parsed, settings).elements, count, settings, parsed.metadata)
    text = "\n".join(c.text for c in chunks)
    # the parameters' table has no header row: its first row is a parameter like the others (it was taken for
    # the column names: "retrans_timeout | A gnutls_session_t type: The time at which ...")
    assert "session | A gnutls_session_t type" in text
    assert "retrans_timeout | The time at which a retransmission will occur in milliseconds" in text

