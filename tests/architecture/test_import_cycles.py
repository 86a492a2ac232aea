"""No two modules of the project import each other, directly or round a longer loop.

Read from the source with ``ast``: every import counts, at the top of a module, inside a function,
or under ``if TYPE_CHECKING`` (a lazy import hides a cycle, it does not break it). The packages are
those ``pyproject.toml`` installs, so a new top-level package is checked without editing this file.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Known cycles (the sorted modules of each), to be removed by the change that breaks them; a new
#: one fails, and so does an entry that no longer happens (the list only shrinks).
KNOWN: set[tuple[str, ...]] = set()


def packages() -> list[str]:
    """Top-level packages of ``[tool.setuptools.packages.find] include`` (``"model*"`` → model)."""
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    return sorted({pattern.rstrip("*").rstrip(".") for pattern in find["include"]})


def modules(tops: list[str], root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name → source file, for every ``.py`` under the given top-level packages."""
    out: dict[str, Path] = {}
    for top in tops:
        for path in sorted((root / top).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _owner(name: str, known: dict[str, Path]) -> str | None:
    """The project module that importing ``name`` runs: itself, else its nearest known parent."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _with_parents(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def imports_of(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules ``module`` imports anywhere in its source (relative imports resolved).

    Importing ``a.b.c`` runs the ``__init__`` of ``a`` and ``a.b`` too, so they count, except the
    packages that contain ``module``: Python has run those before ``module`` starts, whatever it
    imports, so importing from them is no edge of a cycle."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from a.b import c`` runs a.b, and a.b.c too when c is a module.
            targets.add(base)
            targets.update(f"{base}.{a.name}" for a in node.names)
    owners = {p for t in targets if (o := _owner(t, known)) for p in _with_parents(o) if p in known}
    return owners - _with_parents(module)


def cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[str, ...]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            step = next(edges, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(sorted(graph.get(step, ())))))
                elif step in on_stack:
                    low[node] = min(low[node], index[step])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(tuple(sorted(group)))
    return sorted(found)


def project_cycles(root: Path = ROOT) -> list[tuple[str, ...]]:
    known = modules(packages(), root)
    return cycles({m: imports_of(m, p, known) for m, p in known.items()})


def test_no_import_cycles_between_project_modules() -> None:
    new = [c for c in project_cycles() if c not in KNOWN]
    assert not new, "import cycles (move what both need to a module both may import):\n" + "\n".join(
        " ↔ ".join(c) for c in new
    )


def test_the_known_cycles_still_exist() -> None:
    stale = KNOWN - set(project_cycles())
    assert not stale, "broken, remove from KNOWN: " + "; ".join(" ↔ ".join(c) for c in sorted(stale))


def test_the_finder_sees_lazy_relative_and_long_cycles(tmp_path: Path) -> None:
    """The finder itself, on a small tree: a cycle through a function-level relative import and a
    three-module loop are found; a one-way import and a self-import are not cycles."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg import b\n",
        "pkg/b.py": "def f():\n    from . import a\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/x.py": "import pkg.sub.y\n",
        "pkg/sub/y.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..sub.z import Z\n",
        "pkg/sub/z.py": "from pkg.sub.x import *\nimport pkg.sub.z\n",
        "pkg/leaf.py": "from pkg.a import thing\nimport os\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).write_text(text)
    known = modules(["pkg"], tmp_path)
    graph = {m: imports_of(m, p, known) for m, p in known.items()}
    assert graph["pkg.b"] == {"pkg.a"}
    assert graph["pkg.leaf"] == {"pkg.a"}
    assert graph["pkg.sub.z"] == {"pkg.sub.x"}
    assert cycles(graph) == [("pkg.a", "pkg.b"), ("pkg.sub.x", "pkg.sub.y", "pkg.sub.z")]
