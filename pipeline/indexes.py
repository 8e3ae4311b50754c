"""The store's derived index files (FAISS vectors, BM25) and the per-generation cache that holds them.

Each file is named by the SQL generation it matches (vectors-<gen>.faiss, lexical-<gen>.npz) and written
to a temp file, fsynced and renamed. A file of another generation is stale: readers ignore it (the index
is rebuilt from SQL) and the writer removes it, so a crash at any moment leaves a store that opens and
agrees with itself. FAISS ids are chunk row ids.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import Callable, Generic, TypeVar

import numpy as np

from .lexical import BM25Index, IndexFileError

log = logging.getLogger(__name__)
T = TypeVar("T")


class GenerationCache(Generic[T]):
    """One value derived from the store at a generation: loaded on first use, reused while the generation is
    unchanged, loaded again once it moves. Thread-safe: concurrent callers load it once."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._value: T | None = None
        self._generation = -1  # generations start at 0: nothing cached

    def get(self, generation: int, loader: Callable[[int], T]) -> T:
        """The value at `generation`: the cached one, or `loader(generation)` (then cached)."""
        with self._lock:
            if self._generation != generation:
                self._value = loader(generation)
                self._generation = generation
            return self._value  # type: ignore[return-value]

    def peek(self) -> T | None:
        """The value cached now, whatever its generation (None: nothing yet); a loader may start from it."""
        with self._lock:
            return self._value

    def set(self, generation: int, value: T) -> None:
        """Cache `value` as the one at `generation` (a writer that brought its copy up to date)."""
        with self._lock:
            self._value, self._generation = value, generation


# -- file names ----------------------------------------------------------------------------------------
def vectors_path(folder: Path, generation: int) -> Path:
    return folder / f"vectors-{generation}.faiss"


def lexical_path(folder: Path, generation: int) -> Path:
    return folder / f"lexical-{generation}.npz"


def clean_stale_files(folder: Path, generation: int) -> None:
    """Remove index files of other generations and leftover temp files."""
    for p in list(folder.glob("vectors-*.faiss")) + list(folder.glob("lexical-*.npz")) + list(folder.glob("*.tmp*")):
        stem = p.name.split(".")[0]
        if ".tmp" in p.name or not stem.endswith(f"-{generation}"):
            with contextlib.suppress(OSError):
                p.unlink()


# -- FAISS ---------------------------------------------------------------------------------------------
NARROW_PROBE_FROM = 20_000  # IVF indexes of this many vectors and more probe nlist/8 of their lists, smaller ones nlist/4


def build_faiss_index(ids: np.ndarray, vecs: np.ndarray, dim: int, flat_max: int):
    """Exact inner-product index up to `flat_max` vectors; IVF (nlist ~ 4*sqrt(n), nprobe nlist/8 from
    NARROW_PROBE_FROM vectors, nlist/4 below) above.

    The probe share, on real embeddings (`python benchmarks/ivf_recall.py`: 44,828 SciFact abstract sentences,
    all-MiniLM-L6-v2, the 1,261 claims as queries), recall@10 against exact search at 11k / 22k / 45k vectors:
    nlist/4 .985 / .991 / .994, nlist/8 .951 / .970 / .976, nlist/16 .902 / .939 / .952. The share a given
    recall needs falls as the index grows, so nlist/8 holds >= .95 from ~11k vectors up; at 1M it scans 500
    of 4,000 lists.

    The IVF lists hold float16 codes (of each vector's residual to its list's centre), not float32 vectors:
    half the bytes to keep and to scan. On the SciFact sentences their recall@10 against exact search is that
    of float32 lists to three decimals at every probe share, and a query is 1.4x faster
    (`python benchmarks/ivf_recall.py`); a 1M-chunk replica holds 1.33 GB instead of 2.06 (docs/benchmarks.md)."""
    import faiss

    n = len(ids)
    if _wants_ivf(n, flat_max):
        nlist = int(max(min(4 * np.sqrt(n), n / 39), 1))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_fp16,
                                              faiss.METRIC_INNER_PRODUCT)
        index.train(vecs)
        index.nprobe = max(1, nlist // (8 if n >= NARROW_PROBE_FROM else 4))
        index.add_with_ids(vecs, ids)
        return index
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    if n:
        index.add_with_ids(vecs, ids)
    return index


def copy_in_memory(index):
    """A copy of a store's FAISS index (an id-mapped flat index, or IVF with float16 or float32 lists) in
    memory, safe to change.

    Not faiss.clone_index: it refuses an IVF index whose lists are memory-mapped, and its copy of a
    memory-mapped flat index shares the read-only mapping (removing from the copy crashes the process)."""
    import faiss

    if hasattr(index, "id_map"):
        ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        copy = faiss.IndexIDMap2(faiss.IndexFlatIP(index.d))
        if len(ids):
            copy.add_with_ids(index.index.reconstruct_n(0, len(ids)), ids)
        return copy
    quantizer = faiss.IndexFlatIP(index.d)
    quantizer.add(index.quantizer.reconstruct_n(0, index.nlist))
    if isinstance(index, faiss.IndexIVFScalarQuantizer):  # (the copy keeps `quantizer` alive)
        if index.sq.qtype != faiss.ScalarQuantizer.QT_fp16:  # fp16 has no trained parameters to carry over
            raise ValueError(f"cannot copy an IVF index with scalar quantizer type {index.sq.qtype}")
        copy = faiss.IndexIVFScalarQuantizer(quantizer, index.d, index.nlist, index.sq.qtype, index.metric_type,
                                             index.by_residual)
    else:  # float32 lists (stores written before the float16 ones)
        copy = faiss.IndexIVFFlat(quantizer, index.d, index.nlist, index.metric_type)
    src, lists = index.invlists, faiss.ArrayInvertedLists(index.nlist, index.code_size)
    for lst in range(index.nlist):
        n = src.list_size(lst)
        if n:
            lists.add_entries(lst, n, src.get_ids(lst), src.get_codes(lst))
    copy.replace_invlists(lists, True)
    lists.this.disown()  # the index owns them now
    copy.ntotal, copy.is_trained, copy.nprobe = index.ntotal, True, index.nprobe
    return copy


def read_faiss_index(path: Path, mmap_min_bytes: int | None = None):
    """Read a FAISS file; with `mmap_min_bytes`, memory-mapped (read-only: never add to it) when the file is at
    least that large.

    FAISS maps flat codes with IO_FLAG_MMAP_IFC and IVF inverted lists with IO_FLAG_MMAP; the file's
    first four bytes (its fourcc) say which one it is. Mapped IVF lists are FAISS's OnDiskInvertedLists,
    which by default start 32 threads at every search to read the probed lists ahead ("prefetch"): that cost
    more than the search itself (1.7x an in-memory index's time a query), and the page cache does that
    work already, so it is turned off (`no_prefetch`).
    """
    import faiss

    if mmap_min_bytes is None or path.stat().st_size < mmap_min_bytes:
        return faiss.read_index(str(path))
    with open(path, "rb") as f:
        fourcc = f.read(4)
    flat = fourcc in (b"IxM2", b"IxMp", b"IxFI", b"IxF2")
    flag = getattr(faiss, "IO_FLAG_MMAP_IFC", 0) if flat else faiss.IO_FLAG_MMAP
    try:
        return no_prefetch(faiss.read_index(str(path), flag))
    except RuntimeError:  # a FAISS build without this mapping: read it into memory
        log.warning("could not memory-map %s; reading it into memory", path)
        return faiss.read_index(str(path))


def no_prefetch(index):
    """The index, its memory-mapped IVF lists (if it has such) told to read no list ahead of a search."""
    import faiss

    try:
        ivf = faiss.extract_index_ivf(index)
    except RuntimeError:  # not an IVF index
        return index
    lists = faiss.downcast_InvertedLists(ivf.invlists)
    if isinstance(lists, faiss.OnDiskInvertedLists):
        lists.prefetch_nthread = 0
    return index


def write_faiss_index(path: Path, index) -> None:
    import faiss

    atomic_write(path, faiss.serialize_index(index).tobytes())


def needs_rebuild(index, flat_max: int) -> bool:
    """Has the index outgrown its kind (flat past `flat_max` vectors, or IVF back under it)?"""
    return _wants_ivf(index.ntotal, flat_max) != _is_ivf(index)


def faiss_ids(index) -> set[int]:
    """The ids an index holds (flat or IVF)."""
    import faiss

    if hasattr(index, "id_map"):
        return set(faiss.vector_to_array(index.id_map).tolist())
    invlists = index.invlists
    out: set[int] = set()
    for lst in range(index.nlist):
        n = invlists.list_size(lst)
        if n:
            out.update(faiss.rev_swig_ptr(invlists.get_ids(lst), n).tolist())
    return out


def _wants_ivf(n: int, flat_max: int) -> bool:
    return n > flat_max


def _is_ivf(index) -> bool:
    return not hasattr(index, "id_map")


# -- BM25 ----------------------------------------------------------------------------------------------
def read_lexical_index(path: Path) -> BM25Index | None:
    """The BM25 index in `path`; None when there is none, or when it is an older version's file or a damaged
    one (derived data: it is removed, so the next flush writes the current format, and rebuilt from SQL)."""
    try:
        return BM25Index.load(path)
    except FileNotFoundError:  # none yet, or a writer's flush removed it meanwhile (a superseded generation)
        return None
    except IndexFileError as e:
        log.warning("%s", e)
        with contextlib.suppress(OSError):
            path.unlink()
        return None


def atomic_write(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all: a temp file, fsynced, renamed, and the folder fsynced."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
