"""Work-arounds for bugs of the Python we run on, applied once when the `pipeline` package is imported."""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
import types
from typing import Iterator

# CPython releases whose AST constructor keeps its recursion depth in state that all threads share
# (python/cpython#106905; fixed by #113035 in 3.11.8 and 3.12.2).
_SHARED_AST_DEPTH = sys.version_info[:3] < (3, 11, 8) or (3, 12, 0) <= sys.version_info[:3] < (3, 12, 2)


def serialise_ast_parse() -> bool:
    """On the releases above, make `ast.parse` take one process-wide lock; say whether it does.

    There, a garbage collection inside `ast.parse` may run a finalizer that hands the GIL to another thread,
    and when that thread parses too, one of the two fails with "SystemError: AST constructor recursion depth
    mismatch". We meet it because numpy reads every `.npy` header with `ast.literal_eval` (the index files a
    warm-up loads) while Streamlit parses each page script on the page's thread, and the service answers and
    ingests on several threads. The lock is re-entrant (a finalizer may parse on the same thread), and
    `ast.literal_eval` goes through `ast.parse`."""
    import ast

    if not _SHARED_AST_DEPTH:
        return False
    if getattr(ast.parse, "_serialised", False):
        return True
    parse = ast.parse
    lock = threading.RLock()

    @functools.wraps(parse)
    def serialised(*args, **kwargs):
        with lock:
            return parse(*args, **kwargs)

    serialised._serialised = True
    ast.parse = serialised
    return True


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
