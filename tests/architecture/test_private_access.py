"""Only the shim modules touch a library's private attributes (issue 15: guarded shims).

Read with ``ast``: an attribute access ``x._name`` whose name the project itself never defines
(no function, class, argument, assignment or import of that name anywhere in its packages) reaches
into another library's internals. Those live in ``taml/core/shims.py`` and
``model/torch_shims.py``, each guarded by a version check; anywhere else it fails here. The test
cannot see a private name that the project happens to define too; it catches the common case.
"""

from __future__ import annotations

import ast
from pathlib import Path

from test_import_cycles import ROOT, modules, packages

SHIMS = {"taml/core/shims.py", "model/torch_shims.py"}

#: Standard-library names with a leading underscore that are public in all but name.
STDLIB = {
    "_exit": "os._exit: end a process without teardown (documented)",
    "_SubParsersAction": "argparse: the documented type add_subparsers returns, in annotations",
}


def _trees(root: Path) -> dict[str, ast.AST]:
    return {
        path.relative_to(root).as_posix(): ast.parse(path.read_text(), str(path))
        for path in modules(packages(), root).values()
    }


def _defined(trees: dict[str, ast.AST]) -> set[str]:
    names: set[str] = set()
    for tree in trees.values():
        for n in ast.walk(tree):
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(n.name)
            elif isinstance(n, ast.arg):
                names.add(n.arg)
            elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                names.add(n.id)
            elif isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store):
                names.add(n.attr)
            elif isinstance(n, ast.alias):
                names.add(n.asname or n.name.split(".")[-1])
    return names


def foreign_private_access(trees: dict[str, ast.AST], allowed: set[str]) -> list[str]:
    """``file:line .name`` for each private attribute of something the project did not define."""
    ours = _defined(trees)
    found = []
    for rel, tree in sorted(trees.items()):
        if rel in SHIMS:
            continue
        for n in ast.walk(tree):
            if (
                isinstance(n, ast.Attribute)
                and n.attr.startswith("_")
                and not n.attr.startswith("__")
                and n.attr not in ours
                and n.attr not in allowed
            ):
                found.append(f"{rel}:{n.lineno} .{n.attr}")
    return found


def test_only_the_shims_touch_library_internals() -> None:
    found = foreign_private_access(_trees(ROOT), set(STDLIB))
    assert not found, (
        "library internals outside the shim modules (move each into one, guarded):\n" + "\n".join(found)
    )


def test_the_check_sees_a_private_library_attribute() -> None:
    trees = {
        "pkg/a.py": ast.parse("import gcsfs\n_ours = 1\nx = gcsfs._location\ny = thing._ours\nos._exit(0)\n"),
        "taml/core/shims.py": ast.parse("import beam\nbeam._Credentials\n"),
    }
    assert foreign_private_access(trees, set(STDLIB)) == ["pkg/a.py:3 ._location"]
