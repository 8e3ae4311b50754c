"""Discover: paths, folders and globs -> FileRecords (absolute path, URI, size, mtime, sha256, media type).

Hashing reads each file once in 1 MiB blocks; the hash is what makes re-ingestion incremental (same hash,
no parsing). Missing paths are returned separately so the caller can report them without stopping.
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

SKIP_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}


@dataclass(frozen=True)
class FileRecord:
    path: Path
    size: int
    mtime: float
    sha256: str

    @property
    def uri(self) -> str:
        return self.path.as_uri()


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[str], list[Path]]:
    """Expand folders (recursively) and globs into files.

    Returns (files sorted and de-duplicated, inputs that matched nothing, the folder roots given), the
    roots being what `--prune` may delete under.
    """
    files: set[Path] = set()
    missing: list[str] = []
    roots: list[Path] = []
    for raw in paths:
        text = str(raw)
        matches = [Path(m) for m in glob.glob(os.path.expanduser(text), recursive=True)] if glob.has_magic(text) else []
        candidates = matches or ([Path(text).expanduser()] if not glob.has_magic(text) else [])
        if not candidates:
            missing.append(text)
            continue
        for p in candidates:
            p = p.resolve()
            if p.is_dir():
                roots.append(p)
                for dirpath, dirnames, filenames in os.walk(p):
                    dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                    files.update(Path(dirpath, f) for f in filenames if _wanted(f))
            elif p.is_file():
                roots.append(p)
                files.add(p)
            else:
                missing.append(text)
    return sorted(files), missing, roots


def _wanted(name: str) -> bool:
    return not name.startswith(".") and name not in SKIP_NAMES and not name.startswith("~$")


def file_record(path: Path) -> FileRecord:
    st = path.stat()
    return FileRecord(path=path, size=st.st_size, mtime=st.st_mtime, sha256=sha256_file(path))
