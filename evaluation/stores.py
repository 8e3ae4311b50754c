"""The evaluation store: a dataset's documents brought into a store of its own, and hits mapped back to gold.

The store lives under `runs/eval-stores/<dataset>` by default and is reused: the dataset's documents are
written as .txt files into its `documents/` folder (identical texts share one file, since the store
rejects duplicate content) and ingested with prune, so a rerun embeds only what changed. Eval writes only
to a store it made (it leaves EVAL_MARK in it), so it never adds to or prunes a product store.
`SourceIndex` says which gold-source names a retrieved hit answers to.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import unquote, urlparse

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.types import Hit

from .datasets import EvalDataset

DEFAULT_STORES = Path("runs/eval-stores")


class SourceIndex:
    """Which gold-source names a retrieved hit's document answers to."""

    def __init__(self, documents_dir: Path, ids_by_stem: dict[str, list[str]], corpus: Path | None) -> None:
        self.documents_dir = documents_dir.resolve()
        self.ids_by_stem = ids_by_stem
        self.corpus = corpus.resolve() if corpus is not None else None

    def names(self, hit: Hit, store: Any = None) -> set[str]:
        """A written document: its doc ids. A corpus file: its name, stem and path relative to the corpus.
        With `store`, also the names of the documents whose identical chunks retrieval folded into the hit
        (look-alike copies of one text are all retrieved when one is)."""
        names = self.names_of(hit.document.source_uri)
        if store is not None and hit.duplicates:
            rows = store.chunks(hit.duplicates)
            for doc in store.documents_by_id({r.document_id for r in rows}).values():
                names |= self.names_of(doc.source_uri)
        return names

    def names_of(self, source_uri: str) -> set[str]:
        path = Path(unquote(urlparse(source_uri).path))
        if path.parent == self.documents_dir:
            return set(self.ids_by_stem.get(path.stem, [path.stem]))
        names = {path.name, path.stem, str(path)}
        if self.corpus is not None and self.corpus in path.parents:
            names.add(path.relative_to(self.corpus).as_posix())
        return names

    def label(self, hit: Hit) -> str:
        names = self.names_of(hit.document.source_uri)
        path = Path(unquote(urlparse(hit.document.source_uri).path))
        return sorted(names)[0] if path.parent == self.documents_dir else path.name


EVAL_MARK = ".sculptrag-eval"  # in a store folder: eval made this store, so it may write to it


def build_store(dataset: EvalDataset, settings: Settings, *, embedder: Any = None,
                groups: Sequence[str] | None = None) -> tuple[dict, SourceIndex]:
    """Bring the store in `settings.store_dir` up to date with the dataset's documents (incrementally).

    Only a store this harness created is written to (it marks it): pointed at a product store, eval would
    add or prune that store's documents. Documents are ingested for `groups` (the groups the questions are
    asked with); a document already stored keeps its groups.
    Returns a summary of the ingest (counts, rejected files) and the index from hits to gold-source names.
    """
    from pipeline.ingestion import ingest
    from pipeline.store import Store

    store_dir = Path(settings.store_dir)
    folder = store_dir / "documents"
    paths: list[Path] = ([folder] if dataset.documents else []) + ([dataset.corpus] if dataset.corpus else [])
    if not paths:
        raise ConfigError(f"dataset {dataset.name!r} has neither documents nor a corpus to ingest")
    if store_dir.is_dir() and any(store_dir.iterdir()) and not (store_dir / EVAL_MARK).is_file():
        raise ConfigError(f"{store_dir} is not a store made by `sculptrag eval` and eval only writes to stores it "
                          "made: pass a new --store folder (or none, for runs/eval-stores/<dataset>)")
    store_dir.mkdir(parents=True, exist_ok=True)
    (store_dir / EVAL_MARK).write_text("made by sculptrag eval; it ingests into and prunes this store\n")
    store = Store(settings)
    foreign = [d.source_uri for d in store.documents() if not _under(d.source_uri, paths)]
    if foreign:
        raise ConfigError(
            f"the store {settings.store_dir} holds {len(foreign)} document(s) that are not part of {dataset.name!r} "
            f"(e.g. {foreign[0]}), which retrieval would search too: delete that folder or pass another --store")
    ids_by_stem = _write_documents(dataset.documents, folder)
    report = ingest(paths, settings, groups=groups, prune=True, store=store, embedder=embedder)
    counts = store.counts()
    info = {
        "dir": str(settings.store_dir), "documents": counts["documents"], "chunks": counts["chunks"],
        "ingested": report.ingested, "updated": report.updated, "unchanged": report.unchanged,
        "removed": report.removed, "rejected": [{"path": o.path, "reason": o.reason, "detail": o.detail}
                                                for o in report.rejections()],
        "ingest_s": report.seconds,
    }
    return info, SourceIndex(folder, ids_by_stem, dataset.corpus)


def _under(uri: str, roots: Sequence[Path]) -> bool:
    path = Path(unquote(urlparse(uri).path))
    return any(path == r or r in path.parents for r in (Path(r).resolve() for r in roots))


def _write_documents(documents: Sequence[tuple[str, str, str]], folder: Path) -> dict[str, list[str]]:
    """One .txt file per distinct text ("title\\n\\ntext"); other .txt files there are deleted (pruned).

    Returns file stem -> the doc ids sharing that file.
    """
    contents: dict[str, list[str]] = {}
    for doc_id, title, text in documents:
        contents.setdefault(f"{title.strip()}\n\n{text.strip()}\n" if title.strip() else f"{text.strip()}\n",
                            []).append(str(doc_id))
    folder.mkdir(parents=True, exist_ok=True)
    ids_by_stem: dict[str, list[str]] = {}
    for content, ids in contents.items():
        stem = base = slug(ids[0])
        n = 1
        while stem in ids_by_stem:
            n += 1
            stem = f"{base}-{n}"
        ids_by_stem[stem] = ids
        path = folder / f"{stem}.txt"
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
    for path in folder.glob("*.txt"):
        if path.stem not in ids_by_stem:
            path.unlink()
    return ids_by_stem


def slug(name: str) -> str:
    """A file-name-safe version of a dataset or document name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "doc"
