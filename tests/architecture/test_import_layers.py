"""The import rules of DESIGN.md ("Layout"), read from the source with ``ast``.

Imports point one way: the CLI → pipelines/ → components/ → {monitoring/, the feature-store
format} → the core → model/. A module may import its own package freely; across packages only
downward. Imports inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: package → project packages it may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "model": set(),
    "taml.core": {"model"},
    "simulator": {"taml.core", "model"},
    "monitoring": {"taml.core", "model"},
    "featurestore": {"taml.core", "model"},
    "serving": {"taml.core", "model", "featurestore"},
    "components": {"taml.core", "model", "monitoring", "featurestore", "simulator"},
    "pipelines": {"taml.core", "model", "components", "monitoring", "featurestore"},
    "taml.cli": {
        "taml.core",
        "model",
        "components",
        "monitoring",
        "featurestore",
        "pipelines",
        "serving",
        "simulator",
    },
}
PROJECT = ("model", "taml", "simulator", "monitoring", "featurestore", "serving", "components", "pipelines")

#: Known breaks of the rules, each to be removed by the change that fixes it (a new one fails).
KNOWN: set[tuple[str, str]] = set()


def _package(module: str) -> str | None:
    if module == "taml" or module.startswith("taml."):
        for sub in ("taml.core", "taml.cli"):
            if module == sub or module.startswith(sub + "."):
                return sub
        return "taml"
    top = module.split(".")[0]
    return top if top in PROJECT else None


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package.replace(".", "/")).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    allowed = ALLOWED[package] | {package, "taml"}
    breaks = set()
    for path in _sources(package):
        rel = path.relative_to(ROOT).as_posix()
        for module in _imports(path):
            target = _package(module)
            if target is None or target in allowed:
                continue
            if (rel, target) not in KNOWN:
                breaks.add(f"{rel} imports {module}")
    assert not breaks, "imports against the layers of DESIGN.md:\n" + "\n".join(sorted(breaks))


def test_the_known_breaks_still_exist() -> None:
    """An entry of KNOWN that no longer happens must be deleted, so the list only shrinks."""
    stale = []
    for rel, target in sorted(KNOWN):
        if not any(_package(m) == target for m in _imports(ROOT / rel)):
            stale.append(f"{rel} → {target}")
    assert not stale, "fixed, remove from KNOWN: " + ", ".join(stale)


def test_the_taml_package_itself_holds_no_code_but_its_version() -> None:
    tree = ast.parse((ROOT / "taml" / "__init__.py").read_text())
    assert not [
        n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom))
    ]
