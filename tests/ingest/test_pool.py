"""Parse workers start cleanly under hosts that run scripts as __main__ (Streamlit runs each page so)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

from pipeline.embedding import SentenceTransformerEmbedder
from ingest.process import ParsePool, Processed
from pipeline.config import IngestSettings


def test_a_worker_does_not_rerun_the_hosts_main_script(tmp_path: Path):
    marker = tmp_path / "ran.txt"
    script = tmp_path / "page.py"
    script.write_text(f"open({str(marker)!r}, 'a').write('ran')\n")  # what a spawned child would re-run
    page = types.ModuleType("__main__")
    page.__file__ = str(script)  # a script run by a host: a file, no import spec
    page.__spec__ = None
    doc = tmp_path / "note.txt"
    doc.write_text("The canteen opens at noon and closes at three in the afternoon on weekdays.")
    saved = sys.modules["__main__"]
    sys.modules["__main__"] = page
    try:
        with ParsePool(IngestSettings(), str(SentenceTransformerEmbedder().path), workers=1) as pool:
            results = list(pool.run([(str(doc), doc.stat().st_size)]))
    finally:
        sys.modules["__main__"] = saved
    assert isinstance(results[0], Processed)
    assert not marker.exists(), "the worker re-ran the parent's __main__ script"
    assert sys.modules["__main__"] is saved


def test_a_fast_strategy_worker_parses_without_torch_and_to_the_same_chunks():
    """spaCy's thinc imports torch whenever it is installed; a parse worker that runs no model keeps it out
    (1.3 s of its start) and still parses a PDF to the chunks a process with torch makes."""
    import subprocess

    from ingest.process import _warm_up, process_file

    root = Path(__file__).resolve().parents[2]
    pdf = root / "app" / "samples" / "docs" / "fake-memo.pdf"
    tokenizer = str(SentenceTransformerEmbedder().path)
    code = ("import sys; from ingest.process import keep_torch_out, _warm_up, process_file; "
            "from pipeline.config import IngestSettings; s = IngestSettings(); keep_torch_out(s); "
            f"_warm_up({tokenizer!r}); r = process_file({str(pdf)!r}, {pdf.stat().st_size}, s, {tokenizer!r}); "
            "print(sys.modules.get('torch') is None); print([c.text for c in r.chunks])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root).stdout
    no_torch, chunks = out.strip().split("\n")[-2:]
    _warm_up(tokenizer)
    here = process_file(str(pdf), pdf.stat().st_size, IngestSettings(), tokenizer)
    assert no_torch == "True" and chunks == repr([c.text for c in here.chunks])


def test_a_worker_reads_html_without_spacy_and_loads_it_for_the_files_that_need_it(tmp_path: Path):
    """unstructured imports spaCy for heuristics an HTML page never asks: a parse worker's start and its HTML
    files go without it (1.4 s of a one-shot ingest), and a file whose parse needs the tagger gets it loaded
    first, outside that file's time and memory limits."""
    import subprocess

    from ingest.process import needs_tagger

    root = Path(__file__).resolve().parents[2]
    page = tmp_path / "page.html"
    page.write_text("<html><body><h1>Opening hours</h1><p>The canteen opens at noon and closes at three in the "
                    "afternoon on weekdays. On Saturdays it stays closed.</p></body></html>")
    note = tmp_path / "note.txt"
    note.write_text("The canteen opens at noon and closes at three in the afternoon on weekdays.")
    pdf = root / "app" / "samples" / "docs" / "fake-memo.pdf"
    assert not needs_tagger(str(page)) and needs_tagger(str(note)) and needs_tagger(str(pdf))
    tokenizer = str(SentenceTransformerEmbedder().path)
    code = ("import sys; from ingest.process import keep_torch_out, _warm_up, load_tagger, process_file; "
            "from pipeline.config import IngestSettings; s = IngestSettings(); keep_torch_out(s); "
            f"_warm_up({tokenizer!r}); r = process_file({str(page)!r}, {page.stat().st_size}, s, {tokenizer!r}); "
            "print(type(r).__name__, 'spacy.language' in sys.modules); load_tagger(); "
            f"r = process_file({str(note)!r}, {note.stat().st_size}, s, {tokenizer!r}); "
            "print(type(r).__name__, 'spacy.language' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root).stdout
    assert out.strip().split("\n")[-2:] == ["Processed False", "Processed True"]


def test_a_deferred_module_answers_find_spec_and_resolves_once_under_threads():
    """The stand-in for a deferred module has a spec (libraries ask `find_spec` whether a package is there)
    and many threads' first uses all get the real module."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    code = ("import importlib.util, sys, threading; from ingest.parse import defer_import; defer_import('spacy'); "
            "import spacy; print(importlib.util.find_spec('spacy') is not None, 'spacy.language' in sys.modules); "
            "got = []; ts = [threading.Thread(target=lambda: got.append(spacy.blank)) for _ in range(16)]; "
            "[t.start() for t in ts]; [t.join() for t in ts]; "
            "print(len(got), len({id(g) for g in got}), sys.modules['spacy'].blank is got[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root).stdout
    assert out.strip().split("\n")[-2:] == ["True False", "16 1 True"]
