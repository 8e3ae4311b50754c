"""HTML for the app, built from escaped text only: pure functions, no Streamlit.

Every string that comes from a document, a question or a generator goes through `html.escape` before it
is put between the tags written here, so a document holding `<script>` or `<img onerror=...>` shows as
text. (`st.html` sanitizes with DOMPurify as well; escaping here means we do not rely on it.)
"""

from __future__ import annotations

import html
import re
from typing import Iterable, Sequence

from pipeline.text import MARKER_RE  # "[3]", "[1, 2]": the markers the generators write and validation reads
from pipeline.types import MASK_GLYPH

STATUS_ICON = {"pass": "✓", "warn": "!", "fail": "✗", "not run": "–"}

CSS = """<style>
.sr-answer { font-size: 1.05rem; line-height: 1.6; }
.sr-written { color: #6b4fa0; }
.sr-cite { font-size: .75em; font-weight: 600; color: #1c5fb8; vertical-align: super; padding: 0 .1em; }
.sr-canvas { font-family: ui-monospace, monospace; white-space: pre-wrap; line-height: 1.5; color: #333; }
.sr-canvas .sr-mask { color: #b9c0cc; }
.sr-passage { white-space: pre-wrap; line-height: 1.55; border-left: 3px solid #c8d3e6; padding: .4em .8em;
              background: #fafbfd; max-height: 24em; overflow-y: auto; }
.sr-passage mark { background: #ffe58a; padding: 0 .1em; }
.sr-badge { display: inline-block; border-radius: .6em; padding: .05em .6em; font-size: .85em; font-weight: 600; }
.sr-pass { background: #dff3e4; color: #17642e; } .sr-warn { background: #fff1cc; color: #7a5300; }
.sr-fail { background: #fde0df; color: #9b1c1c; } .sr-notrun { background: #eceff3; color: #4a5462; }
.sr-sentences { margin: .2em 0; padding-left: 0; list-style: none; }
.sr-sentences li { margin: .25em 0; } .sr-reason { color: #5b6472; font-size: .9em; margin-left: 1.6em; }
.sr-meta { color: #5b6472; font-size: .85em; }
</style>"""


def e(text: object) -> str:
    return html.escape(str(text), quote=True)


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>$:&])")


def md(text: object) -> str:
    """Text for Streamlit calls that render Markdown (button labels, captions, alerts): every character
    Markdown, Streamlit's :color[...] / :icon: syntax or LaTeX could read is backslash-escaped, so a
    document title like `![x](https://tracker/p.png)` shows as written and loads nothing."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def answer_html(text: str, written: Sequence[tuple[int, int]] = ()) -> str:
    """The answer text, escaped, with its [n] markers styled as citation badges and the `written` character
    spans (words the generator wrote rather than quoted; generator.citations.written_spans) set apart."""
    out, pos = [], 0
    for a, b in sorted(written):
        a, b = max(a, pos), min(b, len(text))
        if b <= a:
            continue
        out.append(_markers(e(text[pos:a])))
        out.append(f'<em class="sr-written" title="written by the generator, not quoted">{_markers(e(text[a:b]))}</em>')
        pos = b
    out.append(_markers(e(text[pos:])))
    return f'<div class="sr-answer">{"".join(out)}</div>'


def _markers(escaped: str) -> str:
    return MARKER_RE.sub(lambda m: f'<span class="sr-cite">[{m.group(1)}]</span>', escaped)


def canvas_html(text: str, step: int, masked: int) -> str:
    """One denoising step's canvas: committed text, and the still-masked slots greyed."""
    body = re.sub(f"{MASK_GLYPH}+", lambda m: f'<span class="sr-mask">{m.group()}</span>', e(text))
    return (f'<div class="sr-canvas">{body}</div>'
            f'<div class="sr-meta">step {step}' + (f', {masked} position{"s" if masked != 1 else ""} still masked' if masked else "")
            + "</div>")


def passage_html(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """A source passage, escaped, with the character `spans` highlighted."""
    out, pos = [], 0
    for a, b in sorted(spans):
        a, b = max(a, pos), min(b, len(text))
        if b <= a:
            continue
        out.append(e(text[pos:a]))
        out.append(f"<mark>{e(text[a:b])}</mark>")
        pos = b
    out.append(e(text[pos:]))
    return f'<div class="sr-passage">{"".join(out)}</div>'


def badge(status: str, label: str | None = None) -> str:
    cls = {"pass": "sr-pass", "warn": "sr-warn", "fail": "sr-fail"}.get(status, "sr-notrun")
    return f'<span class="sr-badge {cls}">{STATUS_ICON.get(status, "")} {e(label or status)}</span>'


def sentences_html(sentences: Iterable[tuple[str, str, Sequence[str]]], reasons: Sequence[str] = ()) -> str:
    """Each sentence's verdict and reasons ((status, text, reasons) per sentence), plus the answer-level
    `reasons` that are not about one sentence."""
    items = []
    for status, text, why in sentences:
        why_html = "".join(f'<div class="sr-reason">{e(r)}</div>' for r in why)
        items.append(f"<li>{badge(status)} {_markers(e(text))}{why_html}</li>")
    general = [r for r in reasons if not r.startswith("sentence ")]
    items.extend(f'<li><div class="sr-reason">{e(r)}</div></li>' for r in general)
    return f'<ul class="sr-sentences">{"".join(items)}</ul>'


def meta_line(parts: Iterable[str]) -> str:
    return f'<div class="sr-meta">{" · ".join(e(p) for p in parts if p)}</div>'
