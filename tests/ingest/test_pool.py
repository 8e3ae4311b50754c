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
