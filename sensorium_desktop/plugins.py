"""The one plugin contract: four extension kinds, each an entry-point group.

==============  ==================================  =============================================
kind            entry-point group                   the object an entry point names
==============  ==================================  =============================================
transports      ``sensorium_desktop.transports``    a :class:`devices.base.Transport` subclass;
                                                    the entry point's name is its URI scheme
exporters       ``sensorium_desktop.exporters``     a :class:`recording.export.ExporterSpec`;
                                                    the name is the ``--format``
panels          ``sensorium_desktop.panels``        a :class:`ui.panels.PanelSpec`
components      ``sensorium_desktop.components``    a node component, ``factory(node) ->
                                                    async fn(stop_event)`` (see worker.components)
==============  ==================================  =============================================

The built-ins are registered exactly as a lab's package registers its own (``pyproject.toml``
of this project, ``[project.entry-points."sensorium_desktop.transports"]`` …). Entry points
are read without importing anything; an object is imported the first time it is asked for,
so ``import sensorium_desktop.devices`` does not import cv2, bleak, pylsl or zmq. A plugin that
fails to import or names the wrong kind of object is reported (log, ``sensorium plugins``,
Help → About) and left out; it never stops the app. A name already taken (the built-ins come
first) is refused the same way. See docs/plugins.md.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

OWN_DISTRIBUTION = "sensorium-desktop"
GROUP_PREFIX = "sensorium_desktop."
KINDS = ("transports", "exporters", "panels", "components")

T = TypeVar("T")


class PluginError(LookupError):
    """No plugin of that name, or it could not be loaded (the message says which and why)."""


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One entry point as ``sensorium plugins`` lists it; ``error`` is empty when it loaded
    (or was not loaded yet: ``loaded`` False)."""

    kind: str
    name: str
    target: str
    distribution: str
    version: str
    loaded: bool = False
    error: str = ""


def _distribution(ep: metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "", ""
    return str(dist.metadata["Name"] or ""), str(dist.version or "")


def _is_own(name: str) -> bool:
    return name.replace("_", "-").lower() == OWN_DISTRIBUTION


class PluginRegistry(Generic[T]):
    """The plugins of one kind, in order: the built-ins (in the order this project declares
    them), then other distributions' by name. ``check(name, obj)`` returns the object as the
    kind's type or raises ``TypeError`` saying what is wrong with it."""

    def __init__(self, kind: str, check: Callable[[str, object], T]) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown plugin kind {kind!r} (known: {', '.join(KINDS)})")
        self.kind = kind
        self.group = GROUP_PREFIX + kind
        self._check = check
        self._lock = threading.RLock()
        self._points: dict[str, metadata.EntryPoint] | None = None
        self._loaded: dict[str, T] = {}
        self._added: dict[str, T] = {}
        self.errors: dict[str, str] = {}
        self.refused: list[PluginInfo] = []

    def _entry_points(self) -> dict[str, metadata.EntryPoint]:
        with self._lock:
            if self._points is None:
                self._points = self._read_entry_points()
            return self._points

    def _read_entry_points(self) -> dict[str, metadata.EntryPoint]:
        found = list(metadata.entry_points(group=self.group))
        own = [ep for ep in found if _is_own(_distribution(ep)[0])]
        others = sorted((ep for ep in found if not _is_own(_distribution(ep)[0])), key=lambda e: e.name)
        if not own:
            log.error("plugins: no built-in %s found: %s is not installed (its entry points are missing); "
                      "run scripts/setup.sh", self.kind, OWN_DISTRIBUTION)  # fmt: skip
        points: dict[str, metadata.EntryPoint] = {}
        for ep in own + others:
            if ep.name in points:
                if ep.value != points[ep.name].value:
                    dist, version = _distribution(ep)
                    why = f"the name is already taken by {_distribution(points[ep.name])[0] or '?'}"
                    self.refused.append(PluginInfo(self.kind, ep.name, ep.value, dist, version, False, why))
                    log.error("plugins: %s %r of %s (%s) refused: %s", self.kind, ep.name, dist, ep.value, why)
                continue
            points[ep.name] = ep
        return points

    def names(self) -> list[str]:
        """Every name (nothing is imported), in registry order."""
        points = self._entry_points()
        return list(points) + [n for n in self._added if n not in points]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._added or name in self._entry_points())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __getitem__(self, name: str) -> T:
        return self.load(name)

    def get(self, name: str) -> T | None:
        """The plugin ``name``, or None when there is none or it cannot be loaded."""
        try:
            return self.load(name)
        except PluginError:
            return None

    def load(self, name: str) -> T:
        """Import and check the plugin ``name`` (once); :class:`PluginError` if there is none
        or it does not load."""
        with self._lock:
            if name in self._added:
                return self._added[name]
            if name in self._loaded:
                return self._loaded[name]
            ep = self._entry_points().get(name)
            if ep is None:
                raise PluginError(f"no {self.kind[:-1]} {name!r} (known: {', '.join(self.names()) or 'none'})")
            if name in self.errors:
                raise PluginError(f"{self.kind[:-1]} {name!r} did not load: {self.errors[name]}")
            try:
                obj = self._check(name, ep.load())
            except Exception as exc:  # a plugin's import can raise anything: report it, never crash
                dist = _distribution(ep)[0] or "?"
                self.errors[name] = f"{dist} ({ep.value}): {type(exc).__name__}: {exc}"
                log.error("plugins: %s %r did not load: %s", self.kind, name, self.errors[name])
                raise PluginError(f"{self.kind[:-1]} {name!r} did not load: {self.errors[name]}") from exc
            self._loaded[name] = obj
            return obj

    def load_all(self) -> dict[str, T]:
        """Every plugin that loads, in registry order (the others are in :attr:`errors`)."""
        out: dict[str, T] = {}
        for name in self.names():
            obj = self.get(name)
            if obj is not None:
                out[name] = obj
        return out

    def add(self, name: str, obj: object) -> T:
        """Register ``obj`` under ``name`` at run time (a script or a test); checked like an
        entry point's object. An entry point of the same name is shadowed."""
        checked = self._check(name, obj)
        with self._lock:
            self._added[name] = checked
        return checked

    def remove(self, name: str) -> None:
        """Forget a run-time registration (:meth:`add`)."""
        with self._lock:
            self._added.pop(name, None)

    def infos(self) -> list[PluginInfo]:
        """What is registered and whether it loaded (only what was asked for is imported)."""
        rows = []
        points = self._entry_points()
        for name, ep in points.items():
            dist, version = _distribution(ep)
            rows.append(PluginInfo(self.kind, name, ep.value, dist, version, name in self._loaded,
                                   self.errors.get(name, "")))  # fmt: skip
        rows += self.refused
        rows += [PluginInfo(self.kind, n, repr(o), "(run time)", "", True) for n, o in self._added.items()]
        return rows


def plugin_report(registries: Sequence[PluginRegistry[Any]], load: bool) -> tuple[str, list[str], list[str]]:
    """("7 transports, 3 exporters, …", plugins that did not load, registrations refused for
    a taken name) of ``registries``. ``load``: import every plugin first (else count names,
    import nothing)."""
    counts: list[str] = []
    failed: list[str] = []
    refused: list[str] = []
    for registry in registries:
        counts.append(f"{len(registry.load_all()) if load else len(registry)} {registry.kind}")
        failed += [f"{registry.kind[:-1]} {name}: {why}" for name, why in registry.errors.items()]
        refused += [f"{r.kind[:-1]} {r.name} of {r.distribution}: {r.error}" for r in registry.refused]
    return ", ".join(counts), failed, refused
