"""One small plugin registry: names -> factories, from code and from an entry-point group.

Generators (`sculptrag.generators`), denoisers (`sculptrag.denoisers`) and support checkers
(`sculptrag.checkers`) each have one `Registry`. A third party adds one by naming it in its package's entry
points (pyproject: `[project.entry-points."sculptrag.generators"] mine = "my_pkg:build_mine"`); code (a test, a
benchmark) adds one with `register`. A name registered in code wins over an entry point of the same name.

Entry points are read once, when a registry is first asked, and each is imported only when it is first used
(`names()` imports nothing, so listing generators does not load torch). A registered value may be the object
itself or a "module:attribute" string, imported when first used.
"""

from __future__ import annotations

import threading
from importlib import import_module
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Plugins of one kind: `register(name, factory)`, `names()`, `get(name)`."""

    def __init__(self, group: str, kind: str = "plugin") -> None:
        self.group = group  # the entry-point group, e.g. "sculptrag.generators"
        self.kind = kind  # what one is called in an error: "generator", "denoiser", "support checker"
        self._registered: dict[str, Any] = {}  # from code: the object, or "module:attr"
        self._entry_points: dict[str, EntryPoint] | None = None  # read once, loaded when used
        self._loaded: dict[str, T] = {}
        self._lock = threading.Lock()

    def register(self, name: str, factory: T | str) -> None:
        """Make `factory` (or the "module:attr" it names) available as `get(name)`."""
        with self._lock:
            self._registered[name] = factory
            self._loaded.pop(name, None)

    def unregister(self, name: str) -> None:
        """Forget a name registered in code (tests); an entry point of that name shows again."""
        with self._lock:
            self._registered.pop(name, None)
            self._loaded.pop(name, None)

    def names(self) -> list[str]:
        """Every available name, sorted (nothing is imported)."""
        return sorted({*self._registered, *self._eps()})

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._registered or name in self._eps())

    def get(self, name: str) -> T:
        """The plugin registered as `name`; a ConfigError listing the available names when there is none."""
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
        if name in self._registered:
            target = self._registered[name]
            value = _resolve(target) if isinstance(target, str) else target
        elif name in self._eps():
            try:
                value = self._eps()[name].load()
            except Exception as e:  # noqa: BLE001 - a broken plugin is named, not a bare ImportError
                raise ConfigError(f"{self.kind} {name!r} (entry point {self._eps()[name].value!r} in "
                                  f"{self.group!r}) could not be loaded: {type(e).__name__}: {e}") from e
        else:
            raise ConfigError(f"unknown {self.kind} {name!r}; available: {', '.join(self.names()) or 'none'}")
        with self._lock:
            return self._loaded.setdefault(name, value)

    def _eps(self) -> dict[str, EntryPoint]:
        if self._entry_points is None:
            found = {ep.name: ep for ep in entry_points(group=self.group)}
            with self._lock:
                if self._entry_points is None:
                    self._entry_points = found
        return self._entry_points

    def reload(self) -> None:
        """Read the entry points again (after installing a plugin in a running process)."""
        with self._lock:
            self._entry_points = None
            self._loaded = {k: v for k, v in self._loaded.items() if k in self._registered}


def _resolve(target: str) -> Any:
    module, _, attr = target.partition(":")
    obj = import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj
