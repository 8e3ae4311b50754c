"""Starting worker processes with the spawn method from any host (core: imports nothing of sculptrag)."""

from __future__ import annotations

import contextlib
import sys
import threading
import types
from typing import Iterator

_MAIN_LOCK = threading.Lock()


@contextlib.contextmanager
def main_script_hidden() -> Iterator[None]:
    """Start a spawned worker without it re-running the parent's __main__ script.

    A spawned child imports the parent's __main__ from its file when __main__ has no import name. Hosts
    that run scripts as __main__ (Streamlit runs each page that way) would have that page run again in
    every worker. Workers need nothing from __main__ (their target lives in this module), so while a
    worker starts, __main__ is a bare module. A script read from stdin (`python3 - <<EOF`) is such a host too:
    Python 3.12 names its __main__ "<stdin>", and every spawned child fails to open that file."""
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None or not getattr(main, "__file__", None):
        yield
        return
    with _MAIN_LOCK:
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            sys.modules["__main__"] = main
