"""Discover: paths, folders and globs -> FileRecords (absolute path, URI, size, mtime, sha256), and what was
left out, with a reason.

Inputs are distrusted:
- Only regular files are read. FIFOs, sockets and devices are reported, never opened (a FIFO would block a
  reader forever, and ingest holds the store's lock). Files are opened with O_NOFOLLOW | O_NONBLOCK and
  checked again with fstat, so a file swapped for a link or a FIFO after the walk is refused, not followed.
- A symbolic link inside a folder is followed only when its target lies inside that folder: a link to
  /etc/passwd or to another user's home is refused. A path given by name is the caller's own choice.
- Key material and credentials are never ingested: by name (private keys, .env, .netrc, cloud credential
  files, key stores) and by content (a private key block, a marker with a key's worth of base64 after it,
  or a cloud secret set to a value, not to a manual's placeholder, in the bytes being hashed).
- Hidden files and folders (a leading dot) and system litter are skipped with a report line, not silently.
- A documentation site built by Sphinx (a folder holding `searchindex.js`) or MkDocs (`index.html` beside
  `search/search_index.json`) is read as its rendered pages. What the build writes beside them is skipped
  with a report line: copies of the pages' text (Sphinx's reST sources in `_sources/`, MkDocs' search
  index), Sphinx's highlighted module code (`_modules/`), the theme's scripts, styles and fonts, and the
  generated index, search, sitemap and 404 pages. Given by name (`ingest site/_modules`), such a folder is
  read like any other.

Hashing reads each file once in 1 MiB blocks; the hash is what makes re-ingestion incremental (same hash,
no parsing). Missing paths are returned separately so the caller can report them without stopping.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

SKIP_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}

# What a documentation site's build writes beside its pages: generator -> (folder -> why skipped, names of
# generated pages skipped). `site_build` tells the generator from the build's output.
SITE_BUILDS = {
    "Sphinx": ({
        "_sources": "the reST sources of this Sphinx site's pages: the rendered pages are ingested instead",
        "_modules": "highlighted module code behind this Sphinx site's API pages (their docstrings are those "
                    "pages' text); ingest the folder by name to read it",
        "_static": "scripts, styles and images of this Sphinx site",
        "_images": "the images of this Sphinx site's pages",
    }, ("genindex.html", "genindex-*.html", "*modindex.html", "search.html", "searchindex.js", "objects.inv")),
    "MkDocs": ({
        "search": "the search index of this MkDocs site (every page's text again, as JSON) and its scripts",
        "assets": "scripts, styles and images of this MkDocs site's theme",
        "css": "stylesheets of this MkDocs site's theme", "js": "scripts of this MkDocs site's theme",
        "fonts": "fonts of this MkDocs site's theme", "webfonts": "fonts of this MkDocs site's theme",
    }, ("404.html", "sitemap.xml", "sitemap.xml.gz")),
}


def site_build(folder: str, dirnames: list[str], filenames: list[str]) -> str | None:
    """The generator whose output `folder` is the root of ("Sphinx", "MkDocs"), or None."""
    if "searchindex.js" in filenames:
        return "Sphinx"
    if "index.html" in filenames and "search" in dirnames and os.path.isfile(os.path.join(folder, "search", "search_index.json")):
        return "MkDocs"
    return None


# file names that hold secrets, whatever their content (fnmatch patterns, matched case-insensitively)
SECRET_NAMES = (
    "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "id_ecdsa_sk", "id_ed25519_sk", "id_xmss", "identity",
    "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore", "*.kdbx", "*.gpg", "*.asc", "*.ppk", "*.ovpn",
    ".env", ".env.*", "*.env", ".netrc", "_netrc", ".pgpass", ".git-credentials", ".npmrc", ".pypirc",
    ".htpasswd", "credentials", "credentials.json", "credentials.db", "access_tokens.db", "shadow", "gshadow",
    "known_hosts", "authorized_keys", "secrets.yaml", "secrets.yml", "secrets.json", "kubeconfig",
    "terraform.tfstate", "*.tfstate", "wallet.dat", "service-account*.json",
)
# contents that are secrets wherever they appear (searched in every block while hashing)
SECRET_CONTENT = re.compile(
    rb"PuTTY-User-Key-File-\d"
    rb"|\"private_key\"\s*:\s*\"-----BEGIN"  # a cloud service-account JSON
)
# a cloud secret set to a value (`cloud_secret`): `aws_secret_access_key = ...`, `AWS_SECRET_ACCESS_KEY=...`,
# `"aws_secret_access_key": "..."`
CLOUD_SECRET = re.compile(rb"(?i:aws_secret_access_key)[\"']?[ \t]*[=:][ \t]*[\"']?([^\s\"'`;,\\]*)")
# a value that stands for a secret in a manual or a template: a variable or a slot ("$AWS_SECRET", "<secret>",
# "{{ secret }}", "&lt;key&gt;"), one character repeated ("xxxxxxxx", "****"), or a word that says so
# (AWS's own example key ends in "EXAMPLEKEY")
_PLACEHOLDER = re.compile(rb"[$<{\[%]|&(?:lt|#)|(?i:.*(?:example|your|placeholder|redacted|changeme|\.\.\.))")
# a private key block (PEM, OpenSSH, PGP): its marker, then a key's worth of base64 (`key_block`)
KEY_MARKER = re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
KEY_CHARS = 64  # base64 characters of the smallest private key (Ed25519's PKCS#8 form: 48 bytes)
KEY_SPAN = 16384  # bytes after a marker that hold its body (an 8192-bit RSA key's PEM is about 6.5 KB)
_KEY_LINE = re.compile(rb"\r?\n|\r|(?:\\r)?\\n|<[^<>]{0,40}>")  # line breaks, also as a JSON string ("\n")
# or a web page writes them (<br>, <p>, any tag)
_KEY_WORD = re.compile(rb"\s+|(?=-----)")  # (a key written on one line ends with its END marker)
_KEY_HEADER = re.compile(rb"[A-Za-z][\w-]*: ")  # "Proc-Type: 4,ENCRYPTED", "DEK-Info: ...", "Version: GnuPG v2"
_BASE64 = re.compile(rb"[A-Za-z0-9+/]+={0,2}")
_OVERLAP = 128  # bytes kept between blocks so a marker split by a block boundary is still found


def cloud_secret(data: bytes) -> bool:
    """Whether `data` sets a cloud secret to a value: a credentials file, a config or a note that holds one does;
    a manual's example with a placeholder for it (`AWS_SECRET_ACCESS_KEY=xxxxxxxxxxxx`, `=<your secret>`,
    `=$AWS_SECRET_ACCESS_KEY`) or a template that leaves it empty does not."""
    for m in CLOUD_SECRET.finditer(data):
        value = m.group(1)
        if value and not _PLACEHOLDER.match(value) and len(set(value.lower().strip(b"-_."))) > 2:
            return True
    return False


def key_block(data: bytes) -> bool:
    """Whether `data` holds a private key block: a BEGIN ... PRIVATE KEY marker followed by at least KEY_CHARS
    characters of base64 (`_key_chars`). A manual that names the marker ("a key file that starts with -----BEGIN
    PRIVATE KEY----- must be converted") or shows one with a placeholder for its body ("... (private key in
    base64 encoding) ...") holds no key; a key file, a key pasted into a note or a config, or a manual's complete
    example key does (nothing tells an example from a real key)."""
    return any(_key_chars(data[m.end():m.end() + KEY_SPAN]) >= KEY_CHARS for m in KEY_MARKER.finditer(data))


def _key_chars(body: bytes) -> int:
    """The base64 characters at the start of `body`, after a block's headers, up to the first line that is not
    base64 (the END marker, a placeholder, prose). A line of several words counts only where each word but the
    last is long (a key written flat, not a sentence)."""
    found = 0
    for line in _KEY_LINE.split(body):
        words = [w for w in _KEY_WORD.split(line) if w]
        if not words or (not found and _KEY_HEADER.match(line.strip())):
            continue
        for i, word in enumerate(words):
            if not _BASE64.fullmatch(word) or (i < len(words) - 1 and len(word) < 16):
                return found
            found += len(word.rstrip(b"="))
            if found >= KEY_CHARS:
                return found
    return found


class Refused(Exception):
    """A path that discovery will not read: `reason` and `detail` as a report gives them."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class FileRecord:
    path: Path
    size: int
    mtime: float
    sha256: str

    @property
    def uri(self) -> str:
        return self.path.as_uri()


@dataclass
class Discovery:
    """What expand_paths found: files to read, inputs that matched nothing, the roots given (what `--prune`
    may delete under), and paths left out with (path, status, reason, detail)."""

    files: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    roots: list[Path] = field(default_factory=list)
    left_out: list[tuple[str, str, str, str]] = field(default_factory=list)


def secret_name(name: str) -> bool:
    low = name.lower()
    return any(fnmatch.fnmatchcase(low, pat) for pat in SECRET_NAMES)


def _read_regular(path: Path, block: int = 1 << 20, keep: list[bytes] | None = None) -> tuple[str, os.stat_result]:
    """The file's sha256 and stat, read once in blocks (kept in `keep` when given), with the checks above."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        if e.errno == getattr(os, "ELOOP", 40):
            raise Refused("not permitted", "a symbolic link where a file was expected; links are not followed") from None
        raise
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise Refused("unsupported", f"not a regular file ({_kind(st.st_mode)}); only regular files are read")
        h = hashlib.sha256()
        tail = b""
        while chunk := f.read(block):
            h.update(chunk)
            if keep is not None:
                keep.append(chunk)
            seen = tail + chunk
            if SECRET_CONTENT.search(seen) or cloud_secret(seen) or key_block(seen):
                raise Refused("credentials", "holds key material or a credential (a private key block or a cloud "
                              "secret); such files are never ingested")
            # the next block is read after what this one ends with: a marker near the end, with its body
            near = [m.start() for m in KEY_MARKER.finditer(seen, max(0, len(seen) - KEY_SPAN))]
            tail = seen[near[0]:] if near else seen[-_OVERLAP:]
    return h.hexdigest(), st


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a link")):
        if test(mode):
            return name
    return "not a plain file"


def expand_paths(paths: Iterable[str | Path]) -> Discovery:
    """Expand folders (recursively) and globs into regular files (sorted, de-duplicated)."""
    found = Discovery()
    files: set[Path] = set()
    for raw in paths:
        text = str(raw)
        magic = glob.has_magic(text)
        matches = [Path(m) for m in glob.glob(os.path.expanduser(text), recursive=True)] if magic else []
        candidates = matches or ([Path(text).expanduser()] if not magic else [])
        if not candidates:
            found.missing.append(text)
            continue
        for given in candidates:
            p = given.resolve()
            if p.is_dir():
                found.roots.append(p)
                _walk(p, files, found)
            elif not p.exists():
                found.missing.append(text)
            else:
                found.roots.append(p)
                _admit(Path(os.path.abspath(given)), p.parent, files, found)  # a link given by name: its target
    found.files = sorted(files)
    return found


def _walk(root: Path, files: set[Path], found: Discovery) -> None:
    for dirpath, dirnames, filenames in os.walk(root):  # os.walk does not descend into links to folders
        keep = []
        build = site_build(dirpath, dirnames, filenames)
        folders, pages = SITE_BUILDS[build] if build else ({}, ())
        for d in sorted(dirnames):
            full = Path(dirpath, d)
            if d in folders:
                found.left_out.append((str(full), "skipped", "site build", folders[d]))
            elif d.startswith("."):
                found.left_out.append((str(full), "skipped", "hidden", "a hidden folder (leading dot) is not searched"))
            elif full.is_symlink():
                target = full.resolve()
                if _inside(target, root):
                    found.left_out.append((str(full), "skipped", "link", f"a link to a folder searched as {target}"))
                else:
                    found.left_out.append((str(full), "rejected", "not permitted", "a link to a folder outside the folder being ingested"))
            else:
                keep.append(d)
        dirnames[:] = keep
        for name in filenames:
            full = Path(dirpath, name)
            if name in SKIP_NAMES or name.startswith("~$"):
                continue  # system litter and Office lock files: nothing anyone meant to ingest
            if name.startswith(".") and not secret_name(name):
                found.left_out.append((str(full), "skipped", "hidden", "a hidden file (leading dot) is not ingested"))
                continue
            if any(fnmatch.fnmatch(name, pattern) for pattern in pages):
                found.left_out.append((str(full), "skipped", "site build", f"a page or file this {build} site's "
                                       "build generates (an index, search, sitemap or error page)"))
                continue
            _admit(full, root, files, found)


def _admit(path: Path, root: Path, files: set[Path], found: Discovery) -> None:
    """Add `path` if it is (or links, inside `root`, to) a regular file that is not key material."""
    if secret_name(path.name):
        found.left_out.append((str(path), "rejected", "credentials", "its name marks key material or credentials; never ingested"))
        return
    target = path
    if path.is_symlink():
        target = path.resolve()
        if not _inside(target, root):
            found.left_out.append((str(path), "rejected", "not permitted", "a link to a file outside the folder being ingested"))
            return
        if secret_name(target.name):
            found.left_out.append((str(path), "rejected", "credentials", "links to key material or credentials; never ingested"))
            return
    try:
        mode = target.stat().st_mode
    except OSError as e:
        found.left_out.append((str(path), "rejected", "not found", f"cannot read: {e.strerror or e}"))
        return
    if not stat.S_ISREG(mode):
        found.left_out.append((str(path), "rejected", "unsupported", f"not a regular file ({_kind(mode)}); only regular files are read"))
        return
    files.add(target)


def _inside(target: Path, root: Path) -> bool:
    return target == root or root in target.parents


def file_record(path: Path) -> FileRecord:
    """Hash one discovered file; raises Refused (not a regular file, key material) or OSError."""
    sha, st = _read_regular(path)
    return FileRecord(path=path, size=st.st_size, mtime=st.st_mtime, sha256=sha)


def read_file(path: Path) -> tuple[FileRecord, bytes]:
    """Hash and read one discovered file whole, with file_record's checks: what is sent elsewhere (an upload to
    a running service) is exactly what was checked. Raises Refused or OSError."""
    blocks: list[bytes] = []
    sha, st = _read_regular(path, keep=blocks)
    return FileRecord(path=path, size=st.st_size, mtime=st.st_mtime, sha256=sha), b"".join(blocks)
