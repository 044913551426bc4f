"""The layering, checked from the source: an AST scan of every import of the package (also
inside functions and under ``TYPE_CHECKING``).

core ← foundation (version, paths, exit codes, configuration, log files, plugin registry) ←
bus ← devices, recording ← io ← worker ← viewmodel ← ui ← cli, selftest, ``__main__`` and the
package's own ``__init__`` (the seed API's facade). ``core`` imports nothing of the package but
itself. Qt only in ``ui/`` and ``selftest``. No import circle of any length.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "sensorium_desktop"
ROOT = PACKAGE.name

#: rank of each layer: a module may import its own layer and lower ranks only
RANKS = {"core": 0, "foundation": 1, "bus": 2, "devices": 3, "recording": 3, "io": 4, "worker": 5,
         "viewmodel": 6, "ui": 7, "top": 8}  # fmt: skip
FOUNDATION = {"version", "paths", "exitcodes", "config", "logfiles", "plugins"}
TOP = {"", "cli", "selftest", "__main__"}
#: the layers whose modules may import Qt (PySide6, pyqtgraph, qasync)
QT_ALLOWED = ("ui", "selftest")
QT_PACKAGES = ("PySide6", "pyqtgraph", "qasync", "shiboken6")


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer(module: str) -> str:
    """The layer of a module of the package (``sensorium_desktop.x.y`` → ``x``'s layer)."""
    parts = module.split(".")
    first = parts[1] if len(parts) > 1 else ""
    if first in FOUNDATION:
        return "foundation"
    if first in TOP:
        return "top"
    return first


def imports(path: Path, package: Path = PACKAGE) -> Iterator[tuple[str, int]]:
    """(imported module, line) of every import in ``path``; ``from p import m`` yields ``p.m``
    when ``m`` is a module of the package, else ``p``."""
    module = module_name(path, package)
    parent = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parent.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = [f"{target}.{a.name}" for a in node.names if _is_module(f"{target}.{a.name}", package)]
            yield from ((m, node.lineno) for m in submodules)
            if len(submodules) < len(node.names):
                yield target, node.lineno


def _is_module(name: str, package: Path) -> bool:
    if not (name == package.name or name.startswith(package.name + ".")):
        return False
    base = package.parent.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def graph(package: Path = PACKAGE) -> dict[str, list[tuple[str, int]]]:
    """Module → the package's modules it imports (with the line)."""
    root = package.name
    out: dict[str, list[tuple[str, int]]] = {}
    for path in sorted(package.rglob("*.py")):
        found = imports(path, package)
        out[module_name(path, package)] = [(m, line) for m, line in found if m == root or m.startswith(root + ".")]
    return out


def upward_imports(package: Path = PACKAGE) -> list[str]:
    """Every import of a layer above the importer's own (or of anything but core by core)."""
    out = []
    for module, targets in graph(package).items():
        mine = layer(module)
        for target, line in targets:
            theirs = layer(target)
            if mine == "core" and theirs != "core":
                out.append(f"{module}:{line} imports {target} (core imports only core)")
            elif RANKS.get(theirs, RANKS["top"]) > RANKS.get(mine, RANKS["top"]):
                out.append(f"{module}:{line} ({mine}) imports {target} ({theirs})")
    return out


def qt_imports(package: Path = PACKAGE) -> list[str]:
    """Every import of Qt outside ``ui/`` and the self-test."""
    out = []
    for path in sorted(package.rglob("*.py")):
        module = module_name(path, package)
        if "." in module and module.split(".")[1] in QT_ALLOWED:
            continue
        for target, line in imports(path, package):
            if target.split(".")[0] in QT_PACKAGES:
                out.append(f"{module}:{line} imports {target}")
    return out


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of a directed graph (iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        work = [(start, iter(sorted(edges.get(start, ()))))]
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    out.append(sorted(component))
    return out


def circles(package: Path = PACKAGE) -> list[list[str]]:
    """Groups of modules that reach each other through imports, however indirectly."""
    edges = {m: {t for t, _ in targets if t != m} for m, targets in graph(package).items()}
    return [c for c in strongly_connected(edges) if len(c) > 1]


def test_no_module_imports_a_layer_above_its_own() -> None:
    found = upward_imports()
    assert not found, "\n".join(found)


def test_qt_only_in_the_window_and_the_selftest() -> None:
    found = qt_imports()
    assert not found, "\n".join(found)


def test_no_import_circles() -> None:
    found = circles()
    assert not found, "import circles:\n" + "\n".join(" ↔ ".join(c) for c in found)


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    """A made-up package with core importing the bus, a bus module importing the window and
    Qt inside a function, and a circle of three closed under TYPE_CHECKING: each is reported."""
    pkg = tmp_path / ROOT
    files = {
        "__init__.py": "",
        "core/__init__.py": "",
        "core/clock.py": "from ..bus import keys\n",
        "bus/__init__.py": "",
        "bus/keys.py": "def f():\n    from ..ui import app\n    from PySide6 import QtCore\n",
        "ui/__init__.py": "",
        "ui/app.py": "from . import a\n",
        "ui/a.py": "from .b import x\n",
        "ui/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .app import y\n",
    }
    for name, text in files.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text, encoding="utf-8")
    up = upward_imports(pkg)
    assert f"{ROOT}.core.clock:1 imports {ROOT}.bus.keys (core imports only core)" in up
    assert f"{ROOT}.bus.keys:2 (bus) imports {ROOT}.ui.app (ui)" in up
    assert qt_imports(pkg) == [f"{ROOT}.bus.keys:3 imports PySide6"]
    assert circles(pkg) == [[f"{ROOT}.ui.a", f"{ROOT}.ui.app", f"{ROOT}.ui.b"]]
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"], ["d"]]
