"""A Markdown page with a JavaScript example is read as Markdown, not as source code.

libmagic calls such a page "application/javascript" and unstructured then reads it as plain text: Node.js's
API pages kept "## `os.EOL`", "```js" and "<!-- YAML" in their chunks, and their headings were never titles.
"""

from __future__ import annotations

from pathlib import Path

from ingest.parse import sniff
from ingest.process import Processed, process_file
from pipeline.config import IngestSettings
from pipeline.embedding import SentenceTransformerEmbedder

PAGE = """# Timers

The timer module exposes a global API for scheduling functions.

```js
import { setTimeout } from "node:timers";
const t = setTimeout(() => {}, 10);
```

## `timeout.unref()`

When called, the active timer does not keep the event loop running.

## `timeout.ref()`

* Returns: {Timeout}

When called, requests that the event loop not exit so long as the timer is active.
"""


def test_a_markdown_page_with_a_code_example_is_read_as_markdown(tmp_path: Path):
    page = tmp_path / "timers.md"
    page.write_text(PAGE)
    assert sniff(page)[0] == "MD"
    done = process_file(str(page), page.stat().st_size, IngestSettings(), str(SentenceTransformerEmbedder().path))
    assert isinstance(done, Processed) and done.file_type == "MD", done
    text = "\n".join(c.text for c in done.chunks)
    assert "##" not in text and "```" not in text
    assert "timeout.unref()" in {c.section for c in done.chunks}  # a heading is a section's title
    unref = next(c for c in done.chunks if c.section == "timeout.unref()")
    assert "does not keep the event loop running" in unref.text

    plain = tmp_path / "timers.txt"  # the same text under a plain-text name stays plain text
    plain.write_text(PAGE)
    assert sniff(plain)[0] == "TXT"


# A Sphinx page as Django's documentation ships it: a blank line before the doctype, and a jQuery snippet in the
# head, which makes libmagic call the page "application/javascript".
SCRIPT = """(function($) {
    if (!template_builtins) {
       // builtins missing, do nothing.
       return;
    }
    $(document).ready(function() {
        var base = "ref/templates/builtins.html";
        if (base == "#") {
            base = "";
        }
        $("div.highlight span.k").each(function(i, elem) {
            var tagname = $(elem).text();
            if ($.inArray(tagname, template_builtins.ttags) != -1) {
                var fragment = tagname.replace(/_/, '-');
                $(elem).html("<a href='" + base + "#" + fragment + "'>" + tagname + "</a>");
            }
        });
    });
})(jQuery);
"""
SPHINX_PAGE = f"""
<!DOCTYPE html>

<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>Glossary &#8212; Example 3.2 documentation</title>
    <link rel="stylesheet" type="text/css" href="_static/pygments.css" />
    <script src="_static/jquery.js"></script>
<script>
{SCRIPT * 3}
</script>
  </head><body>
  <div class="document"><div class="body" role="main">
  <h1>Glossary</h1>
  <dl class="glossary">
  <dt id="term-queryset">queryset</dt>
  <dd><p>An object representing some set of rows to be fetched from the database.</p></dd>
  <dt id="term-slug">slug</dt>
  <dd><p>A short label for something, containing only letters, numbers, underscores or hyphens.</p></dd>
  </dl>
  </div></div>
  </body></html>
"""


def test_a_web_page_with_a_script_in_its_head_is_read_as_html(tmp_path: Path):
    import magic

    page = tmp_path / "glossary.html"
    page.write_text(SPHINX_PAGE)
    assert magic.from_file(str(page), mime=True) != "text/html"  # what made unstructured read it as text
    assert sniff(page)[0] == "HTML"
    done = process_file(str(page), page.stat().st_size, IngestSettings(), str(SentenceTransformerEmbedder().path))
    assert isinstance(done, Processed) and done.file_type == "HTML", done
    text = "\n".join(c.text for c in done.chunks)
    assert "<" not in text and "jQuery" not in text and "function" not in text
    assert "queryset: An object representing some set of rows to be fetched from the database." in text

    for name in ("page", "page.txt"):  # a page under another name is still a page: it opens with its doctype
        other = tmp_path / name
        other.write_text(SPHINX_PAGE)
        assert sniff(other)[0] == "HTML"
    script = tmp_path / "builtins.txt"  # and a script that mentions a page's tags is not a page
    script.write_text(SCRIPT * 3)
    assert sniff(script)[0] == "TXT"


def test_punctuation_that_a_malformed_page_leaves_is_not_text(tmp_path: Path):
    """pod2html's pages in lintian's documentation nest a script tag inside another's attribute; the parser reads
    the rest, '">', as a line of text, and every page had a chunk of nothing but that."""
    page = tmp_path / "EWI.html"
    page.write_text('<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">\n<html><head><title>EWI</title>\n'
                    '<script type="text/javascript" src="<script type="text/javascript" src="_podly.js"></script>\n'
                    '"></script>\n</head><body>\n<h1 id="NAME">NAME</h1>\n<p>Lintian::Output::EWI - standard hint '
                    'output</p>\n<h1 id="SYNOPSIS">SYNOPSIS</h1>\n<pre><code>    use Lintian::Output::EWI;\n    });'
                    '</code></pre>\n</body></html>\n')
    done = process_file(str(page), page.stat().st_size, IngestSettings(), str(SentenceTransformerEmbedder().path))
    assert isinstance(done, Processed), done
    lines = [line for c in done.chunks for line in c.text.split("\n")]
    assert '">' not in lines and "Lintian::Output::EWI - standard hint output" in lines
    assert "    });" in lines or "});" in [line.strip() for line in lines]  # code keeps its punctuation
