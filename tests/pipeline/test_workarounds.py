"""Work-arounds for bugs of the Python we run on (pipeline.workarounds)."""

from __future__ import annotations

import ast
import gc
import sys
import threading

import pipeline  # noqa: F401 - importing the package applies the work-arounds
from pipeline.workarounds import _SHARED_AST_DEPTH

SOURCE = "\n".join(f"def f{i}(a, b=({i}, [1, 2])):\n    return [x * {i} for x in range(a) if x % 2]" for i in range(20))


def test_two_threads_parse_at_once_without_the_ast_depth_error():
    """A collection inside one thread's `ast.parse` runs a finalizer that lets another thread parse meanwhile
    (as a numpy header read in the app's warm-up meets Streamlit parsing a page). On CPython 3.11.0-3.11.7 this
    fails with "SystemError: AST constructor recursion depth mismatch" unless `ast.parse` is serialised;
    serialised, the other thread waits for its turn instead."""
    parse_code = getattr(ast.parse, "__wrapped__", ast.parse).__code__
    asked, answered = threading.Event(), threading.Event()
    state = {"armed": True, "handoffs": 0, "waited": False}
    errors: list[BaseException] = []

    class HandOff:
        """Cyclic garbage: only a collection frees it, and its finalizer arms the next one."""

        def __init__(self) -> None:
            self.me = self

        def __del__(self) -> None:
            if not state["armed"]:
                return
            caller = sys._getframe(1)
            if caller.f_code is parse_code and not state["waited"] and state["handoffs"] < 50:
                state["handoffs"] += 1
                answered.clear()
                asked.set()
                if not answered.wait(0.3):  # the other thread is waiting for the lock
                    state["waited"] = True
            HandOff()

    def other() -> None:
        while True:
            asked.wait()
            asked.clear()
            if not state["armed"]:
                return
            try:
                ast.parse("x = [1, (2, 3)]")
            except SystemError as e:
                errors.append(e)
            answered.set()

    thread = threading.Thread(target=other, daemon=True)
    thread.start()
    threshold = gc.get_threshold()
    gc.set_threshold(20)
    try:
        HandOff()
        tree = ast.parse(SOURCE)
    except SystemError as e:
        errors.append(e)
        tree = None
    finally:
        gc.set_threshold(*threshold)
        state["armed"] = False
        asked.set()
        thread.join(5)
        gc.collect()
    assert not errors, errors
    assert tree is not None and len(tree.body) == 20
    assert state["handoffs"] >= 1  # a collection did run inside the parse
    if _SHARED_AST_DEPTH:
        assert state["waited"]  # and the other thread waited for its turn
