"""HTML page chrome: the page's own text, without the site around it, before unstructured reads it.

Documentation sites wrap every page in the same chrome: a navigation bar, breadcrumbs, a sidebar with the
site's table of contents and a search box, "Prev | Up | Home | Next" bars, a footer, and a "¶" permalink
after every heading. unstructured reads all of it as text, so on a Sphinx page the document's title was
"Navigation", every section was "Getting Started¶ > Adding content¶", and the sidebar's forty links were
chunks of their own that retrieval could return. `strip_chrome` removes, in this order:

1. everything outside the page's main content, when the page marks it (`<main>`, `role="main"`: Sphinx,
   MkDocs, Javadoc and most site themes do);
2. navigation by its markup: `<nav>`; `role="navigation" | "search" | "banner" | "contentinfo"`; a
   `<header>` or `<footer>` that belongs to the page rather than to an article or section (the roles
   HTML gives them); an element whose class or id names navigation ("nav...", "docnav", "breadcrumb(s)",
   "sphinxsidebar") or a footer;
3. blocks that are nearly all links (at least MIN_LINKS links holding LINK_SHARE of the block's letters and
   digits), and short ones (LINK_LETTERS on average: labels, not the titles of a reference list): menus,
   breadcrumbs, tables of contents, "Prev / Next" bars that say nothing of their own;
4. permalink anchors: a same-page link whose whole text is "¶", "§", "#", "◆", a link symbol or one icon-font
   glyph (a character of Unicode's private use area: the Read the Docs theme's headings end in Font Awesome's
   link icon, U+F0C1, which read "SOA minimum\uf0c1: The last field in the SOA is ..."); and the links of
   Sphinx's code viewer, by their class ("viewcode-link": "[source]" after every documented function, which
   read "prepare_cookies(cookies)[source]: Prepares the given HTTP cookie data."; "viewcode-back": "[docs]");
5. paging links outside a navigation block: a link of a few words marked as the previous or next page by its
   rel or class ("<a class="previous_page">&lt;-previous</a>", which read "<-previousnext->" above every
   chapter of the Exim manual);
6. a site banner: a heading that opens the page and is nothing but a link to the site's home or to another
   site, with a heading of the page after it ("<h1 id="header"><a href="http://www.exim.org">Exim Internet
   Mailer</a></h1>" above "Chapter 30 - The smtp transport" made every chapter's title "Exim Internet Mailer").

Code (`<pre>`, `<code>`) and headings are never removed on their own, and nothing is judged by its words: a
DocBook "sidebar" (a boxed note) is content and stays. When dropping the blocks of links would leave less
than KEEP_AT_LEAST of the page's text (of its main content, when it marks one: however short, that is
taken as marked), they stay (a page that is itself an index of links); when the chrome found by markup
holds that much, the page stays whole but for its permalinks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_LINKS = 3
LINK_SHARE = 0.7  # of a block's letters and digits inside links
LINK_LETTERS = 40  # at most, on average: navigation links are labels; a reference list's links are titles
KEEP_AT_LEAST = 0.3  # of the page's letters and digits, else the page is its links: keep it
MIN_MAIN = 200  # letters and digits a marked main content needs to be taken as the page

_DROP_TAGS = frozenset({"nav", "script", "style", "noscript", "template"})
_DROP_ROLES = frozenset({"navigation", "search", "banner", "contentinfo"})
_SECTIONING = frozenset({"article", "aside", "main", "nav", "section"})
_BLOCKS = frozenset({"div", "ul", "ol", "p", "table", "dl", "header", "footer", "aside", "section"})
HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_KEEP = HEADINGS | {"pre", "code"}
_NAV_TOKENS = frozenset({"docnav", "breadcrumb", "breadcrumbs", "sphinxsidebar", "footer"})
_PERMALINK_TEXT = frozenset({"¶", "§", "#", "🔗", "⚓", "◆"})  # (Doxygen: "◆ mdb_env_open()")
_VIEWCODE = frozenset({"viewcode-link", "viewcode-back"})  # Sphinx's "[source]" and "[docs]" links
_TOKEN = re.compile(r"[\s_-]+")
_ALNUM = re.compile(r"\w", re.UNICODE)


@dataclass
class Chrome:
    """What `strip_chrome` removed from one page: letters and digits before and after."""

    before: int = 0
    after: int = 0
    main: bool = False  # the page's marked main content was taken
    blocks: int = 0  # chrome and link blocks removed
    permalinks: int = 0


def strip_chrome(doc) -> Chrome:
    """Remove `doc`'s (an lxml.html document) chrome in place (see the module docstring). What goes is decided
    before anything is removed, so a page is never copied (a large page costs no more memory than its tree)."""
    body = doc.find("body") if _tag(doc) == "html" else None
    found = Chrome()
    if body is None:
        return found
    found.permalinks = _drop_permalinks(body)
    found.before = _letters(body)
    main = _main(body)
    root = body if main is None else main  # the page, or its marked main content (taken as it is marked)
    counts = _counts(root)
    base = counts[root][0]
    chrome = _find(root, _is_chrome)
    if base - sum(counts[el][0] for el in chrome) < KEEP_AT_LEAST * base:  # the page is its own chrome
        found.after = found.before
        return found
    if main is not None:
        _keep_only(body, main)
        found.main = True
    for el in chrome:
        el.drop_tree()  # (its tail, the text after it, stays)
    found.blocks = len(chrome)
    counts = _counts(root)
    links = _find(root, lambda el: _link_block(el, counts))
    if counts[root][0] - sum(counts[el][0] for el in links) >= KEEP_AT_LEAST * base:  # else a page of links
        for el in links:
            el.drop_tree()
        found.blocks += len(links)
    found.blocks += _drop_paging_links(body) + _drop_banner(body)
    found.after = _letters(body)
    return found


def _letters(el) -> int:
    return len(_ALNUM.findall(el.text_content()))


def _tag(el) -> str:
    return el.tag.lower() if isinstance(el.tag, str) else ""


def _permalink_text(text: str) -> bool:
    """A permalink's whole text: a symbol of _PERMALINK_TEXT, or one icon-font glyph (Unicode's private use area)."""
    return text in _PERMALINK_TEXT or len(text) == 1 and "\ue000" <= text <= "\uf8ff"


def _drop_permalinks(body) -> int:
    n = 0
    for a in list(body.iter("a")):
        viewer = any(_VIEWCODE & set((el.get("class") or "").split()) for el in a.iter())
        if viewer or (a.get("href") or "").startswith("#") and len(a) == 0 and _permalink_text((a.text or "").strip()):
            a.drop_tree()  # (its tail, the text after it, stays)
            n += 1
    return n


_PAGING = frozenset({"prev", "previous", "next"})
PAGING_WORDS = 3  # at most, in a paging link's text ("<-previous", "Next page", "« Previous")
_PAGING_TEXT = re.compile(r"(?<![^\W_])(?:prev|previous|next|back|forward)(?![^\W_])|^\W*$", re.I)  # or only arrows
_HOME_HREF = re.compile(r"^(?:[a-z][\w+.-]*:)?//|^(?:\.?/|(?:\.\./)*index\.html?)?$", re.I)  # another site, or home


def _drop_paging_links(body) -> int:
    """Links to the previous or next page by their rel or class, of at most PAGING_WORDS words that say so (or
    only arrows): a link in prose may carry rel="next" too, and is text (item 5)."""
    n = 0
    for a in list(body.iter("a")):
        marks = {t for v in (a.get("rel"), a.get("class")) if v for t in _TOKEN.split(v.lower()) if t}
        text = a.text_content()
        if a.get("href") is not None and marks & _PAGING and len(text.split()) <= PAGING_WORDS \
                and _PAGING_TEXT.search(text.strip()):
            a.drop_tree()  # (its tail stays)
            n += 1
    return n


def _drop_banner(body) -> int:
    """The site banner (item 6): the first heading, when no text comes before it, it is all one link to another
    site or to the home page, and another heading follows it."""
    headings = list(body.iter(*HEADINGS))
    if len(headings) < 2:
        return 0
    first = headings[0]
    links = [a for a in first.iter("a") if a.get("href") is not None]
    text = " ".join(first.text_content().split())
    if len(links) != 1 or not text or " ".join(links[0].text_content().split()) != text \
            or not _HOME_HREF.match(links[0].get("href").strip()) or _ALNUM.search("".join(_text_before(body, first))):
        return 0
    first.drop_tree()
    return 1


def _text_before(body, stop):
    """The text of `body` before element `stop` (in any order)."""
    enclosing = list(stop.iterancestors())  # (their tails come after `stop`)
    for el in body.iter():
        if el is stop:
            return
        if isinstance(el.tag, str) and _tag(el) not in _DROP_TAGS and el.text:
            yield el.text
        if el.tail and el not in enclosing:
            yield el.tail


def _main(body):
    """The page's marked main content, when it marks exactly one (outermost) with enough text; else None."""
    marked = [el for el in body.iter() if _tag(el) == "main" or (el.get("role") or "").lower() == "main"]
    outer = [el for el in marked if not any(a in marked for a in el.iterancestors())]
    return outer[0] if len(outer) == 1 and _letters(outer[0]) >= MIN_MAIN else None


def _keep_only(body, main) -> None:
    """Remove everything beside the path from `body` down to `main`."""
    node = main
    while node is not body:
        parent = node.getparent()
        for sibling in list(parent):
            if sibling is not node:
                parent.remove(sibling)  # (with its tail: text between chrome elements is chrome too)
        parent.text = None
        node.tail = None
        node = parent


def _counts(body) -> dict:
    """element -> (letters and digits, of them inside links, links) of its subtree, its tail excluded. (Keyed
    by the element itself: that keeps lxml's proxy alive, where an id() could be reused by another one.)"""
    out: dict = {}

    def walk(el, in_link: bool) -> tuple[int, int, int]:
        link = _tag(el) == "a" and el.get("href") is not None
        in_link = in_link or link
        own = len(_ALNUM.findall(el.text or ""))
        total, linked, links = own, own if in_link else 0, int(link)
        for child in el:
            t, l, n = walk(child, in_link)
            tail = len(_ALNUM.findall(child.tail or ""))
            total, linked, links = total + t + tail, linked + l + (tail if in_link else 0), links + n
        out[el] = (total, linked, links)
        return total, linked, links

    walk(body, False)
    return out


def _is_chrome(el) -> bool:
    """Navigation by its markup (item 2 of the module docstring)."""
    tag = _tag(el)
    if tag in _DROP_TAGS or (el.get("role") or "").lower() in _DROP_ROLES:
        return True
    if tag in ("header", "footer") and not any(_tag(a) in _SECTIONING for a in el.iterancestors()):
        return True
    tokens = {t for v in (el.get("class"), el.get("id")) if v for t in _TOKEN.split(v.lower()) if t}
    return any(t.startswith("nav") for t in tokens) or bool(tokens & _NAV_TOKENS)


def _link_block(el, counts: dict) -> bool:
    """A block that is nearly all links (item 3)."""
    total, linked, links = counts.get(el, (0, 0, 0))
    return (_tag(el) in _BLOCKS and links >= MIN_LINKS and linked >= LINK_SHARE * total
            and linked <= LINK_LETTERS * links)


def _find(root, test) -> list:
    """Top down under `root`: the elements `test(el)` accepts, without looking inside them; code and headings
    are never taken (nor looked inside)."""
    found = []
    stack = list(root)
    while stack:
        el = stack.pop()
        tag = _tag(el)
        if not tag or tag in _KEEP:
            continue
        if test(el):
            found.append(el)
            continue
        stack.extend(el)
    return found
