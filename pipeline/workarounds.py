"""Work-arounds for bugs of the Python we run on, applied once when the `pipeline` package is imported."""

from __future__ import annotations

import functools
import sys
import threading

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
