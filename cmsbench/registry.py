"""A name registry over Python entry points (one path for built-ins and third-party plugins).

Listing names reads installed package metadata only; an entry is imported when it is used. Unknown
names fail with "did you mean"; two distributions registering one name is an error; a plugin that
fails to load is reported by name with its error.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Generic, TypeVar

from cmsbench.errors import CmsbenchError, DuplicateNameError, UnknownNameError

log = logging.getLogger(__name__)
T = TypeVar("T")


class PluginLoadError(CmsbenchError):
    """A registered plugin could not be imported."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the closest candidates, or an empty string."""
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


@dataclass(frozen=True)
class Entry:
    """A registered name: where it points, which distribution declared it."""

    name: str
    target: str  # "module:attr"
    distribution: str


class Registry(Generic[T]):
    """Entries from the entry-point ``group`` plus built-in fallbacks (used when cmsbench runs uninstalled)."""

    def __init__(self, group: str, kind: str, builtins: dict[str, str]) -> None:
        self.group = group
        self.kind = kind
        self._builtins = builtins
        self._extra: dict[str, Entry] = {}
        self._cache: dict[str, T] = {}
        self._scanned: list[Any] | None = None

    def refresh(self) -> None:
        """Forget the scanned entry points (after installing or removing a plugin in this process)."""
        self._scanned = None
        self._cache.clear()

    def _entry_points(self) -> list[Entry]:
        """The group's entry points as entries; scanned once per process (``refresh`` re-scans): reading
        every installed distribution's metadata costs tens of milliseconds."""
        if self._scanned is None:
            scanned: dict[str, Entry] = {}
            for ep in metadata.entry_points(group=self.group):
                dist = ep.dist.name if ep.dist is not None else "?"
                if ep.name in scanned and scanned[ep.name].target != ep.value:
                    raise DuplicateNameError(
                        f"{self.kind} name {ep.name!r} is registered twice: by {scanned[ep.name].distribution} "
                        f"({scanned[ep.name].target}) and by {dist} ({ep.value}); uninstall or rename one"
                    )
                scanned[ep.name] = Entry(ep.name, ep.value, dist)
            self._scanned = list(scanned.values())
        return self._scanned

    def entries(self) -> dict[str, Entry]:
        """All registered names (no import of the registered objects)."""
        found: dict[str, Entry] = {e.name: e for e in self._entry_points()}
        for name, target in self._builtins.items():
            found.setdefault(name, Entry(name, target, "cmsbench"))
        for name, entry in self._extra.items():
            if name in found and found[name].target != entry.target:
                raise DuplicateNameError(f"{self.kind} name {name!r} is already registered by {found[name].distribution}")
            found[name] = entry
        return dict(sorted(found.items()))

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return list(self.entries())

    def register(self, name: str, target: str) -> None:
        """Register ``name`` -> ``"module:attr"`` at run time (tests, notebooks). Duplicates raise."""
        if name in self.entries():
            raise DuplicateNameError(f"{self.kind} name {name!r} is already registered")
        self._extra[name] = Entry(name, target, "runtime")

    def unregister(self, name: str) -> None:
        """Undo :meth:`register`."""
        self._extra.pop(name, None)
        self._cache.pop(name, None)

    def load(self, name: str) -> T:
        """Import and return the object registered under ``name``."""
        if name in self._cache:
            return self._cache[name]
        entries = self.entries()
        if name not in entries:
            raise UnknownNameError(f"unknown {self.kind} {name!r}.{did_you_mean(name, entries)} "
                                   f"Known: {', '.join(entries)}")
        obj = load_target(entries[name].target, what=f"{self.kind} {name!r} from {entries[name].distribution}")
        self._cache[name] = obj
        return obj

    def load_all(self, on_error: Callable[[str, Exception], None] | None = None) -> dict[str, T]:
        """Load every entry; failures go to ``on_error`` (default: logged) and are skipped."""
        out: dict[str, T] = {}
        for name in self.entries():
            try:
                out[name] = self.load(name)
            except PluginLoadError as exc:
                if on_error is None:
                    log.error("%s", exc)
                else:
                    on_error(name, exc)
        return out


def load_target(target: str, what: str = "object") -> Any:
    """Import ``"package.module:attr"`` (attr may be dotted), wrapping failures in :class:`PluginLoadError`."""
    import importlib

    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
    except Exception as exc:
        raise PluginLoadError(f"failed to load {what} ({target}): {type(exc).__name__}: {exc}") from exc
    return obj
