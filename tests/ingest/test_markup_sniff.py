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
