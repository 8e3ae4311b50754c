"""Document metadata: title, date, author, entity and period, read from what the document states.

`extract_metadata` is a pure function over the parsed elements (the first page, at most FIRST_ELEMENTS
of them) and the hints a parser or the file's own properties give (an e-mail's sender, subject and date;
an Office file's core properties; a PDF's info dictionary). `document_metadata` gathers those hints.

Conservative by design: a field is filled only when the document says it in a form that leaves no
doubt (a filing's "(Exact name of registrant as specified in its charter)" line, "For the quarterly
period ended July 1, 2023", "by and between A and B"); otherwise it stays empty. A wrong entity on every
chunk of a document would mislead retrieval more than no entity at all.
"""

from __future__ import annotations

import logging
import re
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

if TYPE_CHECKING:
    from .parse import Element

log = logging.getLogger(__name__)

FIRST_ELEMENTS = 60  # where a cover page states who and when
MAX_FIELD = 160

MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
DATE = rf"(?:{MONTH}\s+\d{{1,2}},?\s+\d{{4}}|\d{{1,2}}(?:st|nd|rd|th)?\s+{MONTH},?\s+\d{{4}})"
PERIOD_RES = [
    re.compile(
        rf"\bfor the (?:fiscal |quarterly |transition |financial |half[- ])?(?:year|quarter|period|half[- ]year|"
        rf"(?:three|six|nine|twelve) months)\s+ended\s+{DATE}",
        re.IGNORECASE,
    ),
    re.compile(rf"\b(?:quarter|year|period|half[- ]year)\s+ended\s+{DATE}", re.IGNORECASE),
    re.compile(r"\b(?:Q[1-4]|H[12]|(?:first|second|third|fourth) quarter(?: of)?)\s+(?:fiscal\s+|FY\s?)?(?:19|20)\d\d\b", re.IGNORECASE),
    re.compile(r"\b(?:annual report|fiscal year|financial year|FY)\s+(?:19|20)\d\d(?:\s?[-–/]\s?\d{2,4})?\b", re.IGNORECASE),
]
REGISTRANT_RE = re.compile(r"^\(?\s*exact name of (?:the )?(?:small business )?(?:registrant|issuer|company)\b", re.IGNORECASE)
COMPANY_RE = re.compile(
    r"^[A-Z0-9][\w&.,'’\- ]{1,80}?,?\s(?:Inc|Incorporated|Corp|Corporation|Company|Co|Ltd|Limited|LLC|L\.L\.C|LLP|LP|"
    r"PLC|plc|N\.V|S\.A|SE|AG|GmbH|Holdings|Group)\.?$"
)
PARTIES_RE = re.compile(
    r"\b(?:by and )?between\s+(?P<a>[A-Z][^,;()]{1,80}?)\s*(?:\([^)]{0,80}\))?,?\s+and\s+(?P<b>[A-Z][^,;()]{1,80}?)\s*(?:\(|,|;|\.(?:\s|$)|$)"
)
FORM_RE = re.compile(r"^FORM\s+(10-K|10-Q|8-K|20-F|40-F|6-K|S-1|10-KT|10-QT)\b", re.IGNORECASE)
BAD_TITLES = re.compile(r"^(?:untitled|microsoft (?:word|excel|powerpoint)|document\d*|slide \d+|title)\b|\.(?:docx?|pdf|xlsx?|pptx?)$", re.IGNORECASE)


@dataclass
class DocumentMeta:
    """What a document says about itself; empty strings where it does not say."""

    title: str = ""
    date: str = ""  # ISO 8601 where known ("2023-07-28" or a full timestamp)
    author: str = ""
    entity: str = ""  # the filer, the parties ("A; B"), the sender
    period: str = ""  # "For the quarterly period ended July 1, 2023", "Q3 2023"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def context_line(self, section_path: str = "") -> str:
        """"title | entity | period | section path", each part once: what leads a chunk's indexed text."""
        parts: list[str] = []
        for p in (self.title, self.entity, self.period, section_path):
            p = " ".join(p.split())[:MAX_FIELD]
            if p and not any(p.lower() in q.lower() for q in parts):
                parts.append(p)
        return " | ".join(parts)


def _clean(text: str) -> str:
    return " ".join(text.split()).strip(" ,;:")[:MAX_FIELD]


def find_period(texts: Sequence[str]) -> str:
    """The first reporting-period statement in `texts`, in the document's own words."""
    for rx in PERIOD_RES:
        for t in texts:
            if m := rx.search(t):
                return _clean(m.group(0))
    return ""


def find_entity(texts: Sequence[str]) -> str:
    """The filer named above "(Exact name of registrant ...)", a contract's parties, or a company name
    standing alone on the first page; "" when none of these is there."""
    for i, t in enumerate(texts):
        if REGISTRANT_RE.match(t.strip()):
            before = next((s for s in reversed(texts[max(0, i - 3) : i]) if s.strip()), "")
            if before and len(before) <= 120:
                return _clean(before)
    head = " ".join(texts[:15])
    if re.search(r"\b(?:agreement|contract|lease|memorandum of understanding)\b", head, re.IGNORECASE):
        if m := PARTIES_RE.search(head):
            return f"{_clean(m.group('a'))}; {_clean(m.group('b'))}"
    for t in texts[:15]:
        line = " ".join(t.split())
        if len(line) <= 90 and COMPANY_RE.match(line):
            return _clean(line)
    return ""


def _person(address: str) -> str:
    """'Matthew Robinson <mrobinson@x.io>' -> 'Matthew Robinson'; a bare address stays as it is."""
    name = address.split("<")[0].strip().strip('"')
    return _clean(name or address.strip("<> "))


def extract_metadata(
    elements: Sequence["Element"], title: str, file_type: str, hints: Mapping[str, object] | None = None
) -> DocumentMeta:
    """Title, date, author, entity and period from the first elements and the parser's/file's hints.

    `hints` keys (all optional): subject, sent_from (list), date, title, author (from file properties)."""
    hints = hints or {}
    first_page = min((e.page for e in elements if e.page), default=None)
    head = [e for e in elements[:FIRST_ELEMENTS] if e.page in (None, first_page, (first_page or 0) + 1)]
    texts = [e.text for e in head if e.kind != "Table" or len(e.text) < 300]
    meta = DocumentMeta(title=_clean(title))
    if file_type in {"EML", "MSG"}:
        senders = [s for s in (hints.get("sent_from") or []) if isinstance(s, str)]
        meta.title = _clean(str(hints.get("subject") or "")) or meta.title
        meta.author = _person(senders[0]) if senders else ""
        meta.entity = meta.author
        meta.date = str(hints.get("date") or "")
        return meta
    prop_title = _clean(str(hints.get("title") or ""))
    if prop_title and not BAD_TITLES.search(prop_title) and len(prop_title) > 3:
        meta.title = prop_title
    meta.author = _clean(str(hints.get("author") or ""))
    meta.date = str(hints.get("date") or "")
    meta.entity = find_entity(texts)
    meta.period = find_period(texts)
    form = next((m.group(1).upper() for t in texts[:20] if (m := FORM_RE.match(t.strip()))), "")
    if form and (not meta.title or meta.title.isupper() or meta.title == _clean(title)):
        meta.title = f"Form {form}"
    return meta


# -- hints: what the parser and the file's own properties say --------------------------------------------


def parser_hints(raw: Sequence[object]) -> dict[str, object]:
    """An e-mail's subject, sender and date from unstructured's element metadata (first element)."""
    md = getattr(raw[0], "metadata", None) if raw else None
    if md is None:
        return {}
    out: dict[str, object] = {}
    for key in ("subject", "sent_from", "sent_to"):
        if value := getattr(md, key, None):
            out[key] = value
    if getattr(md, "email_message_id", None) and getattr(md, "last_modified", None):
        out["date"] = md.last_modified  # for an e-mail, unstructured takes it from the Date header
    return out


def office_properties(path: Path) -> dict[str, str]:
    """title, author and date (created, else modified) from an Office file's docProps/core.xml."""
    try:
        with zipfile.ZipFile(path) as z:
            core = z.read("docProps/core.xml").decode("utf-8", "replace")
    except (KeyError, zipfile.BadZipFile, OSError):
        return {}

    def tag(name: str) -> str:
        m = re.search(rf"<(?:\w+:)?{name}\b[^>]*>([^<]*)</", core)
        return m.group(1).strip() if m else ""

    return {"title": tag("title"), "author": tag("creator"), "date": tag("created") or tag("modified")}


def pdf_properties(path: Path) -> dict[str, str]:
    """title, author and creation date from a PDF's info dictionary (often empty or a tool's name)."""
    try:
        from pypdf import PdfReader

        info = PdfReader(path).metadata or {}
        created = info.get("/CreationDate") or ""
        m = re.match(r"D:(\d{4})(\d{2})?(\d{2})?", str(created))
        date = "-".join(g for g in m.groups() if g) if m else ""
        return {"title": str(info.get("/Title") or ""), "author": str(info.get("/Author") or ""), "date": date}
    except Exception:  # a damaged info dictionary is no reason to fail a parse
        return {}


def document_metadata(path: Path, file_type: str, raw: Sequence[object], elements: Sequence["Element"], title: str) -> DocumentMeta:
    """extract_metadata with the hints gathered for this file type."""
    hints: dict[str, object] = {}
    if file_type in {"DOCX", "PPTX", "XLSX"}:
        hints.update(office_properties(path))
    elif file_type == "PDF":
        hints.update(pdf_properties(path))
    hints.update(parser_hints(raw))
    return extract_metadata(elements, title, file_type, hints)
