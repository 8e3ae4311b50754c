"""Plain text wrapped by hand in a <pre>: read as paragraphs, lists and examples, not as one code block."""

from __future__ import annotations

from ingest.plaintext import read_plain_text
from ingest.parse import parse_file
from pipeline.config import Settings

# a guide written as plain text and published in a <pre> (as HAProxy's dconv or the IETF's renderings do),
# written for this test
GUIDE = """\
Every few months, someone reports that after a reboot the relay service did
not come up, although starting it by hand works. Usually the relay is set to
listen on a shared address that a failover daemon moves between two hosts,
and the address does not belong to the host yet when the relay starts.

The cure is not to delay the relay's start (a restart would fail the same
way), but to let the system bind to addresses it does not own yet. On Linux
this is the net.ipv4.ip_nonlocal_bind sysctl, set to 1.

The relay keeps these limits per process:

  - about 9000 idle client connections per GB of memory, buffers included,
    when no TLS is used;

  - about 4000 connections per GB of memory when both sides use TLS;

  - check-sni

A minimal setup looks like this:

    global
        maxconn 2000
        log 127.0.0.1:514 local0

Example :
"""


def test_wrapped_prose_reads_as_paragraphs_lists_and_examples():
    nodes = read_plain_text(GUIDE)
    assert [n.kind for n in nodes] == ["p", "p", "p", "li", "li", "li", "p", "pre", "p"]
    assert nodes[0].text.startswith("Every few months, someone reports that after a reboot the relay service did "
                                    "not come up,")
    assert nodes[1].text.endswith("On Linux this is the net.ipv4.ip_nonlocal_bind sysctl, set to 1.")
    assert nodes[3].children[0].text == ("about 9000 idle client connections per GB of memory, buffers included, when "
                                         "no TLS is used;")
    assert nodes[5].children[0].text == "check-sni"  # (a name, not a sentence: still an item of the list)
    assert nodes[7].text == "global\n    maxconn 2000\n    log 127.0.0.1:514 local0"
    assert nodes[8].text == "Example :"


def test_code_logs_and_tables_in_a_pre_are_left_alone():
    code = ("def deliver(message, relay):\n    for attempt in range(relay.retries):\n"
            "        if relay.send(message):\n            return True\n    return False\n")
    log = ("warning: queue-id: cleanup_chg_from: ignoring ESMTP arguments for this message\n"
           "warning: queue-id: cleanup_add_rcpt: ignoring ESMTP arguments for this message\n"
           "warning: queue-id: cleanup_add_rcpt: ignoring ESMTP arguments for this message\n")
    table = ("name              kind            section\n"
             "relay-send        plumbing        transport and delivery of messages\n"
             "relay-queue       porcelain       queue management for the operators\n")
    config = ("# Cache valid responses for two days. This reduces load on the upstream\n"
              "# servers and avoids transient errors caused by frequent queries:\n"
              "CacheDefaultExpire 172800\n")
    short = "Send the job.\nThen wait for it.\n"  # (narrower than any wrapped text)
    for text in (code, log, table, config, short, ""):
        assert read_plain_text(text) is None, text


def test_a_plain_text_guide_in_html_parses_to_whole_sentences(tmp_path):
    path = tmp_path / "relay-guide.html"
    markup = GUIDE.replace("net.ipv4.ip_nonlocal_bind", '<a href="#sysctl">net.ipv4.ip_nonlocal_bind</a>')
    path.write_text(f"<html><head><title>Relay guide</title></head><body><h1>Traps</h1><pre class=\"text\">{markup}"
                    "</pre></body></html>", encoding="utf-8")
    elements = parse_file(path, "HTML", "text/html", None, Settings().ingest).elements
    texts = [e.text for e in elements]
    assert ("The cure is not to delay the relay's start (a restart would fail the same way), but to let the system "
            "bind to addresses it does not own yet. On Linux this is the net.ipv4.ip_nonlocal_bind sysctl, set to 1."
            in texts)
    assert any(e.kind == "ListItem" and e.text.startswith("about 4000 connections per GB") for e in elements)
    assert any("maxconn 2000" in t and "\n" in t for t in texts)  # (the example keeps its lines)
