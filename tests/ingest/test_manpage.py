"""Manual pages rendered as text in a <pre>: read as sections, paragraphs and entries, not as one code block."""

from __future__ import annotations

from ingest.manpage import read_manpage
from ingest.parse import parse_file
from pipeline.config import Settings

# `man`'s layout (80 columns, justified, hyphenated at line ends), written for this test: a daemon's page.
PAGE = """
SPOOLD(8)                                                            SPOOLD(8)

NAME
       spoold - print spool daemon

SYNOPSIS
       spoold [-v] [-c config_dir]

DESCRIPTION
       The  spoold(8)  daemon  accepts print jobs from local users and hands
       each  one  to  a  printer  driver.  It keeps a job in the spool until
       the driver reports that the printer is finished with it; a job  that
       cannot  be printed is moved to the hold directory for later  inspec-
       tion.

       Jobs are sent in the order in which they were queued, and a failing
       printer  never  holds up another. The daemon reads its main configu-
       ration file only at start-up.

SPOOL DIRECTORIES
       incoming
              Jobs that users have submitted and the daemon has not  yet  ac-
              cepted.

       hold   Jobs that could not be printed, kept until an operator sets them
              free.

       active Jobs  that  a driver is printing now. Only a limited number of
              jobs may be active at one time.

CONFIGURATION PARAMETERS
       spool_job_limit (100)
              The maximal number of jobs that the daemon keeps in the  active
              directory.

       spool_retry_time (300s)
              The time between attempts to hand a failed job to its driver again.

       spool_transport_destination_concurrency_limit ($default_spool_concur-
       rency_limit)
              A transport-specific override for the default concurrency limit.

       -e job_id

       -f job_id
              Expire the named job: it is removed from the spool and its owner
              is told.

       OK     The job was printed.

       Example configuration:

           /etc/spool/main.cf:
               spool_job_limit = 20
               spool_retry_time = 60s

       Some options come in single-process variants. A single-process spool
       runs one driver at a time.

SEE ALSO
       lpr(1), submit print jobs
       spool(5), spool file format

                                                                     SPOOLD(8)
"""


def entries(nodes, out=None):
    out = [] if out is None else out
    for n in nodes:
        out.append((n.kind, n.text))
        entries(n.children, out)
    return out


def test_a_man_page_reads_as_sections_paragraphs_and_entries():
    found = entries(read_manpage(PAGE))
    kinds = [k for k, _ in found]
    assert ("h2", "NAME") in found and ("h2", "SPOOL DIRECTORIES") in found and ("h2", "SEE ALSO") in found
    assert not any("SPOOLD(8)" in text for _, text in found)  # the header and footer lines go
    assert ("p", "spoold - print spool daemon") in found
    # a filled paragraph is one line: the justifying spaces collapsed, a word hyphenated at a line's end whole
    description = [t for k, t in found if k == "p" and t.startswith("The spoold(8) daemon")]
    assert description == ["The spoold(8) daemon accepts print jobs from local users and hands each one to a "
                           "printer driver. It keeps a job in the spool until the driver reports that the printer "
                           "is finished with it; a job that cannot be printed is moved to the hold directory for "
                           "later inspection."]
    assert any("reads its main configuration file only at start-up." in t for _, t in found)
    # tags: on their own line, on the text's first line, wrapped over two lines, several sharing one text
    for tag in ("incoming", "hold", "active", "spool_job_limit (100)", "spool_retry_time (300s)",
                "spool_transport_destination_concurrency_limit ($default_spool_concurrency_limit)",
                "-e job_id, -f job_id", "OK"):
        assert ("dt", tag) in found, tag
    at = found.index(("dt", "hold"))
    assert found[at + 1] == ("p", "Jobs that could not be printed, kept until an operator sets them free.")
    # an example keeps its lines (less their common indent); a short list of references too
    assert ("pre", "/etc/spool/main.cf:\n    spool_job_limit = 20\n    spool_retry_time = 60s") in found
    assert ("pre", "lpr(1), submit print jobs\nspool(5), spool file format") in found
    assert kinds.count("dt") == 8


def test_a_word_the_page_writes_with_its_hyphen_keeps_it():
    text = [t for k, t in entries(read_manpage(PAGE)) if t.startswith("Some options")]
    assert text == ["Some options come in single-process variants. A single-process spool runs one driver at a "
                    "time."]
    wrapped = PAGE.replace(
        "       Some options come in single-process variants. A single-process spool\n       runs one driver at a time.",
        "       Some options come in single-process variants, and a spool of that single-\n"
        "       process kind runs one driver at a time.")
    text = [t for k, t in entries(read_manpage(wrapped)) if t.startswith("Some options")]
    assert text == ["Some options come in single-process variants, and a spool of that single-process kind runs one "
                    "driver at a time."]


def test_code_and_prose_in_a_pre_are_no_man_page():
    assert read_manpage("def main():\n    print('NAME')\n\nMAIN\n    return 0\n") is None
    assert read_manpage("NAME\nSYNOPSIS\nThese lines are all at the left margin.\nSo is this one.\n") is None
    assert read_manpage("") is None


def test_a_man_page_in_html_parses_to_one_line_per_entry(tmp_path):
    path = tmp_path / "spoold.8.html"
    markup = PAGE.replace("spool_job_limit (100)", "<b>spool_job_limit (100)</b>").replace(
        "lpr(1)", '<a href="lpr.1.html"><b>lpr</b>(1)</a>')
    path.write_text(f"<html><head><title>spoold(8)</title></head><body><pre>{markup}</pre></body></html>",
                    encoding="utf-8")
    elements = parse_file(path, "HTML", "text/html", None, Settings().ingest).elements
    texts = [e.text for e in elements]
    assert ("spool_job_limit (100): The maximal number of jobs that the daemon keeps in the active directory."
            in texts)
    assert "hold: Jobs that could not be printed, kept until an operator sets them free." in texts
    assert any(e.kind == "Title" and e.text == "CONFIGURATION PARAMETERS" for e in elements)
    assert not any("SPOOLD(8)" in t for t in texts)
