"""sculptrag's spine: settings, shared types, errors, the store, ingestion, retrieval, the RAG pipeline.

Public API for services:

    from pipeline import RagPipeline, Settings, Store, ingest
    settings = Settings(store_dir="store")
    report = ingest(["docs/"], settings, groups=["hr"])
    answer = RagPipeline(settings).ask("When does the lease end?", groups=["hr"])
    answers = RagPipeline(settings).ask_batch([BatchItem(question="When does the lease end?", groups=("hr",))])

Names are imported lazily, so `import pipeline.config` from a worker process stays light and the
lower layers (ingest, generator, validation) can import pipeline.types/errors/config without cycles.
"""

from __future__ import annotations

import importlib

from pipeline.workarounds import serialise_ast_parse

serialise_ast_parse()

_EXPORTS = {
    "Settings": "pipeline.config",
    "SculptragError": "pipeline.errors",
    "ingest": "pipeline.ingestion",
    "Store": "pipeline.store",
    "Retriever": "pipeline.retrieve",
    "RagPipeline": "pipeline.rag",
    "BatchItem": "pipeline.rag",
    "Answer": "pipeline.types",
    "Hit": "pipeline.types",
    "IngestReport": "pipeline.types",
    "FileOutcome": "pipeline.types",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
