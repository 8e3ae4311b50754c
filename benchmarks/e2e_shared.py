"""End to end on real files: ingest a shared corpus through the CLI, ask real questions through the CLI and
the Python API with each generator, and check that every citation points at a real chunk of an ingested file.

    python benchmarks/e2e_shared.py [--corpus DIR] [--limit-files 20] [--generators sculpt,smollm2,extractive]
                                    [--ar-limit 3] [--json OUT]

1. Corpus: the first --limit-files *.html files (sorted by name) of --corpus (default
   ../shared/data/docs/debian-handbook-en), copied into a temporary folder (nothing is written under
   ../shared), then `sculptrag ingest COPY --store STORE` into a fresh temporary store (a subprocess: the
   real console script, with this checkout first on PYTHONPATH).
2. Questions: QUESTIONS below, 8 questions written by hand from those chapters, each with the file that
   answers it and a key fact the right answer contains. Every generator is asked them twice: through the
   CLI (`sculptrag ask Q --store STORE --generator NAME --json`, one subprocess per question, so its time
   includes starting Python and loading the models, as a user of the CLI pays it) and through the API
   (`RagPipeline(Settings(store_dir=STORE)).ask(Q, generator=NAME)`, one pipeline whose generators are
   loaded before the clock starts; load times are printed under the table). Autoregressive generators
   (smollm2: ~15 s per answer on a CPU) only get the first --ar-limit questions.
3. Checks, per citation: its chunk id is a row of the store; its quote is non-empty and is text of that
   chunk; the chunk's document has the citation's source URI and that URI is one of the copied files; its
   [n] marker appears in the answer text; (API) it is the chunk of the passage it names. A citation's quote
   is its whole chunk (pipeline.rag.resolve_citations), so "verbatim" also counts the stretches of answer
   text that end in markers and says how many appear word for word in a chunk they cite. "expected" is
   whether the question's file was among the retrieved passages (API only: `--json` leaves the passages
   out) and among the cited files; "fact" is whether the key fact appears in the answer text (a crude
   correctness hint, not a grade). A generator error is a row with the error, not a crash.

Prints one markdown table (generator, interface, question, answer, cited files, checks, verbatim, expected,
fact, seconds: wall / the pipeline's own timings.total_s, which in a CLI process includes loading the
embedder and the generator) and the problems found; --json writes every row in full.
The bundled `sculpt` model was trained on rule-based questions over 80% of the handbook's chapter files
(split by file name, `generator.sculpt.training.data.split_of`): the question list says which chapters it never saw.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
os.environ.setdefault("DO_NOT_TRACK", "true")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.text import find_markers  # noqa: E402

DATA = Path(os.environ.get("SCULPTRAG_SHARED_DATA", ROOT.parent / "shared" / "data"))
DEFAULT_CORPUS = DATA / "docs" / "debian-handbook-en"
AUTOREGRESSIVE = frozenset({"smollm2", "hf-causal"})  # generators that --ar-limit caps


@dataclass(frozen=True)
class Question:
    text: str
    files: tuple[str, ...]  # the file(s) whose text answers it
    fact: str  # a phrase the right answer contains


# Written from the first 20 handbook files (sorted); the first --ar-limit are the ones smollm2 is asked.
QUESTIONS = (
    Question("How much RAM does a Debian installation require?", ("installation.html",), "256 MB"),
    Question("On which port does the postgrey daemon listen?", ("network-services.html",), "10023"),
    Question("What does APT stand for?", ("apt.html", "packaging-system.html"), "Advanced Packaging Tool"),
    Question("Where are AppArmor profiles stored?", ("sect.apparmor.html",), "/etc/apparmor.d"),
    Question("What does RAID stand for?", ("advanced-administration.html",), "Redundant Array of Independent Disks"),
    Question("How many employees work at the Falcot Corp facility in Saint-Étienne?", ("case-study.html",), "150"),
    Question("Which package provides Debian's keyboard configuration interface?", ("basic-configuration.html",),
             "keyboard-configuration"),
    Question("Where does APT keep its local copy of the Packages files?", ("sect.apt-cache.html",),
             "/var/lib/apt/lists"),
)


# -- the CLI, as a subprocess ------------------------------------------------------------------------------
def cli_command() -> list[str]:
    """The console script when installed, else the module it runs (app.cli:main); this checkout either way."""
    exe = shutil.which("sculptrag")
    return [exe] if exe else [sys.executable, "-m", "app.cli"]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def run_cli(args: list[str], timeout: float = 900) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    proc = subprocess.run(cli_command() + args, capture_output=True, text=True, env=cli_env(), cwd=ROOT,
                          timeout=timeout)
    return proc, time.perf_counter() - t0


def error_text(proc: subprocess.CompletedProcess) -> str:
    """The CLI's `error: ...` message (rich wraps it over lines), else the end of stderr/stdout."""
    text = " ".join((proc.stderr or proc.stdout or "").split())
    at = text.rfind("error:")
    return text[at:][:200] if at >= 0 else text[-200:]


# -- checks ------------------------------------------------------------------------------------------------
def uri_path(uri: str) -> Path | None:
    u = urlparse(uri)
    return Path(unquote(u.path)).resolve() if u.scheme == "file" else None


def check_citations(citations: list[dict], text: str, store, files: set[Path],
                    passages: list[dict] | None = None) -> list[str]:
    """Problems with an answer's citations (empty: all fine). `citations` as in `ask --json`."""
    problems = []
    chunks = {r.id: r for r in store.chunks([c["chunk_id"] for c in citations])}
    docs = store.documents_by_id(list({r.document_id for r in chunks.values()}))
    markers = set(find_markers(text))
    for c in citations:
        tag = f"[{c['marker']}] chunk {c['chunk_id']}"
        row = chunks.get(c["chunk_id"])
        if row is None:
            problems.append(f"{tag}: no such chunk in the store")
            continue
        quote = (c.get("quote") or "").strip()
        if not quote:
            problems.append(f"{tag}: empty quote")
        elif quote not in row.text:
            problems.append(f"{tag}: quote is not text of the chunk")
        doc = docs.get(row.document_id)
        if doc is None or doc.source_uri != c["source_uri"]:
            problems.append(f"{tag}: source {c['source_uri']} is not the chunk's document")
        if uri_path(c["source_uri"]) not in files:
            problems.append(f"{tag}: source {c['source_uri']} is not an ingested file")
        if c["marker"] not in markers:
            problems.append(f"{tag}: marker not in the answer text")
        if passages is not None:
            n = c.get("passage_number", 0)
            if not 1 <= n <= len(passages) or passages[n - 1]["chunk_id"] != c["chunk_id"]:
                problems.append(f"{tag}: not the chunk of passage {n}")
    return problems


def has_fact(text: str, fact: str) -> bool:
    return " ".join(fact.split()).casefold() in " ".join(text.split()).casefold()


CITED_RE = re.compile(r"([^\[\]]*?)\s*((?:\[\d+\]\s*)+)")  # a stretch of text and the markers right after it


def verbatim(text: str, citations: list[dict], store) -> tuple[int, int]:
    """(k, n): of the n stretches of answer text followed by markers, k appear word for word (whitespace
    aside) in the stored text of a chunk their markers cite. The quote is the whole chunk, so this is the
    check that says whether the cited chunk holds what the sentence says, for copying generators."""
    chunk_of = {c["marker"]: c["chunk_id"] for c in citations}
    texts = {r.id: " ".join(r.text.split()) for r in store.chunks(list(chunk_of.values()))}
    k = n = 0
    for m in CITED_RE.finditer(text):
        span = " ".join(m.group(1).split()).lstrip(".,;:!? ").rstrip()
        if not span:
            continue
        n += 1
        ids = [chunk_of.get(x) for x in find_markers(m.group(2))]
        k += any(span in texts.get(i, "") for i in ids if i is not None)
    return k, n


def file_name(uri: str) -> str:
    p = uri_path(uri)
    return p.name if p else uri


# -- asking ------------------------------------------------------------------------------------------------
def ask_cli(q: Question, store_dir: Path, generator: str) -> dict[str, Any]:
    proc, wall = run_cli(["ask", q.text, "--store", str(store_dir), "--generator", generator, "--json"])
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}: {error_text(proc)}", "wall_s": wall}
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        return {"error": f"stdout is not JSON ({e}): {proc.stdout[:120]!r}", "wall_s": wall}
    data["wall_s"] = wall
    return data


def ask_api(rag, q: Question, generator: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        answer = rag.ask(q.text, generator=generator)
    except Exception as e:  # noqa: BLE001 - a row with the error, the run goes on
        return {"error": f"{type(e).__name__}: {e}"[:200], "wall_s": time.perf_counter() - t0}
    data = answer.model_dump(mode="json")
    data["wall_s"] = time.perf_counter() - t0
    return data


def evaluate(data: dict[str, Any], q: Question, generator: str, interface: str, store, files: set[Path]) -> dict:
    row: dict[str, Any] = {"generator": generator, "interface": interface, "question": q.text,
                           "expected_files": list(q.files), "wall_s": round(data["wall_s"], 2)}
    if "error" in data:
        row.update(error=data["error"], checks_ok=False, problems=[])
        return row
    passages = data.get("passages") if interface == "api" else None
    citations = data.get("citations", [])
    problems = check_citations(citations, data["text"], store, files, passages)
    cited = [file_name(c["source_uri"]) for c in citations]
    retrieved = None if passages is None else [file_name(p["document"]["source_uri"]) for p in passages]
    row.update(
        answer=data["text"], cited_files=cited, problems=problems, checks_ok=not problems,
        verbatim=verbatim(data["text"], citations, store), retrieved_files=retrieved,
        expected_retrieved=None if retrieved is None else any(f in q.files for f in retrieved),
        expected_cited=any(f in q.files for f in cited), fact_in_answer=has_fact(data["text"], q.fact),
        pipeline_s=round(data.get("timings", {}).get("total_s", float("nan")), 2),
        citations=citations,
    )
    return row


# -- report ------------------------------------------------------------------------------------------------
def cell(text: str, width: int) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def yes_no(v: bool | None) -> str:
    return "-" if v is None else ("yes" if v else "NO")


def markdown_table(rows: list[dict]) -> str:
    head = ["generator", "interface", "question", "answer (first 80 chars)", "cited files", "citations ok",
            "verbatim", "expected retrieved / cited", "fact", "s (wall / pipeline)"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "error" in r:
            cells = [r["generator"], r["interface"], cell(r["question"], 60), cell("ERROR: " + r["error"], 80),
                     "", "NO", "", "", "", f"{r['wall_s']:.1f}"]
        else:
            cited = ", ".join(dict.fromkeys(r["cited_files"])) or "(none)"
            ok = ("yes" if r["checks_ok"] else f"NO ({len(r['problems'])})") + f", {len(r['citations'])} cit."
            cells = [r["generator"], r["interface"], cell(r["question"], 60), cell(r["answer"], 80), cell(cited, 60),
                     ok, "{}/{}".format(*r["verbatim"]) if r["verbatim"][1] else "-",
                     f"{yes_no(r['expected_retrieved'])} / {yes_no(r['expected_cited'])}",
                     yes_no(r["fact_in_answer"]), f"{r['wall_s']:.1f} / {r['pipeline_s']:.1f}"]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def summary(rows: list[dict]) -> str:
    lines = []
    for gen in dict.fromkeys(r["generator"] for r in rows):
        for itf in ("cli", "api"):
            rs = [r for r in rows if r["generator"] == gen and r["interface"] == itf]
            if not rs:
                continue
            ok = [r for r in rs if "error" not in r]
            lines.append(
                f"- {gen} / {itf}: {len(rs)} asked, {len(rs) - len(ok)} errors, "
                f"{sum(bool(r['citations']) for r in ok)} with citations, "
                f"{sum(len(r['citations']) for r in ok)} citations, {sum(r['checks_ok'] for r in ok)} answers with all "
                f"citation checks ok, cited stretches verbatim {sum(r['verbatim'][0] for r in ok)}"
                f"/{sum(r['verbatim'][1] for r in ok)}, expected file cited {sum(r['expected_cited'] for r in ok)}, "
                f"fact in answer {sum(r['fact_in_answer'] for r in ok)}")
    return "\n".join(lines)


def code_version() -> str:
    """The commit this checkout is at and whether its tracked files have local changes."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        head, dirty = "", []
    if not head:
        return f"{ROOT} (not a git checkout)"
    changed = [ln[3:] for ln in dirty if ln.strip()]
    return f"{ROOT} at {head}" + (f", local changes in {', '.join(changed)}" if changed else ", no local changes")


def heldout(name: str) -> str:
    try:
        from generator.sculpt.training.data import HELDOUT, split_of
    except Exception:  # noqa: BLE001 - informational only
        return "?"
    return "held out" if split_of(f"handbook:{Path(name).stem}") == HELDOUT else "trained on"


# -- main --------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="folder of *.html files")
    ap.add_argument("--limit-files", type=int, default=20, help="the first N files, sorted by name")
    ap.add_argument("--generators", default="sculpt,smollm2,extractive", help="comma-separated generator names")
    ap.add_argument("--ar-limit", type=int, default=3, help="questions asked of autoregressive generators")
    ap.add_argument("--json", type=Path, default=None, help="write every row, in full, to this file")
    args = ap.parse_args(argv)

    if not args.corpus.is_dir():
        sys.exit(f"no corpus at {args.corpus}; pass --corpus or set SCULPTRAG_SHARED_DATA to the shared data folder")
    sources = sorted(args.corpus.glob("*.html"))[: args.limit_files]
    if not sources:
        sys.exit(f"no .html files in {args.corpus}")
    generators = [g.strip() for g in args.generators.split(",") if g.strip()]
    names = {p.name for p in sources}
    questions = [q for q in QUESTIONS if names & set(q.files)]
    if len(questions) < len(QUESTIONS):
        print(f"note: {len(QUESTIONS) - len(questions)} question(s) skipped: their file is not among the "
              f"{len(sources)} ingested", file=sys.stderr)

    from pipeline import RagPipeline, Settings, Store

    with tempfile.TemporaryDirectory(prefix="sculptrag-e2e-") as tmp:
        docs, store_dir = Path(tmp) / "docs", Path(tmp) / "store"
        docs.mkdir()
        for p in sources:
            shutil.copy(p, docs / p.name)
        files = {p.resolve() for p in docs.iterdir()}

        print(f"ingesting {len(sources)} files with `{' '.join(Path(c).name for c in cli_command())} ingest` ...",
              file=sys.stderr)
        proc, ingest_s = run_cli(["ingest", str(docs), "--store", str(store_dir)])
        if proc.returncode != 0:
            sys.exit(f"ingest failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        settings = Settings(store_dir=store_dir)
        store = Store(settings)
        stored = {uri_path(d.source_uri) for d in store.documents()}
        counts, check = store.counts(), store.check()

        rag = RagPipeline(settings)
        rag.retrieve("warm up", list(settings.default_groups))  # load the embedder before any clock starts
        rows: list[dict] = []
        load_s: dict[str, str] = {}
        for gen in generators:
            qs = questions[: args.ar_limit] if gen in AUTOREGRESSIVE else questions
            t0 = time.perf_counter()
            try:
                rag.generator(gen)
                load_s[gen] = f"{time.perf_counter() - t0:.1f} s"
            except Exception as e:  # noqa: BLE001 - the API rows will show the error
                load_s[gen] = f"failed: {type(e).__name__}: {e}"[:200]
            for q in qs:
                print(f"{gen} api: {q.text}", file=sys.stderr)
                rows.append(evaluate(ask_api(rag, q, gen), q, gen, "api", store, files))
            for q in qs:
                print(f"{gen} cli: {q.text}", file=sys.stderr)
                rows.append(evaluate(ask_cli(q, store_dir, gen), q, gen, "cli", store, files))

    problems = [(r["generator"], r["interface"], r["question"], p) for r in rows for p in r["problems"]]
    errors = [(r["generator"], r["interface"], r["question"], r["error"]) for r in rows if "error" in r]
    report = [
        f"# End to end on the first {len(sources)} files (sorted) of {args.corpus.name}",
        "",
        f"Code: {code_version()}.",
        f"Ingest through the CLI: {ingest_s:.1f} s wall, {len(stored & files)} of {len(files)} files stored, "
        f"{counts['chunks']} chunks, {counts['quarantined']} quarantined, store consistent: {check['consistent']}.",
        f"API generator load times (not in the table): {', '.join(f'{g} {s}' for g, s in load_s.items())}. "
        f"CLI rows: one `sculptrag ask --json` process each (Python start and model loading included in wall).",
        "",
        markdown_table(rows),
        "",
        "Summary:",
        summary(rows),
        "",
        "Citation problems: " + ("none" if not problems else ""),
        *(f"- {g} / {i} / {q}: {p}" for g, i, q, p in problems),
        "",
        "Errors (no answer): " + ("none" if not errors else ""),
        *(f"- {g} / {i} / {q}: {e}" for g, i, q, e in errors),
        "",
        "Questions (expected file; whether sculpt's training saw that chapter):",
        *(f"- {q.text} -> {', '.join(q.files)} ({heldout(q.files[0])}); key fact: {q.fact!r}" for q in questions),
    ]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"code": code_version(), "ingest_s": ingest_s, "files": len(sources),
                                         "chunks": counts["chunks"], "load_s": load_s, "rows": rows},
                                        indent=2, ensure_ascii=False))
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
