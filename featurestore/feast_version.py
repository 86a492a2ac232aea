"""The Feast release the online-table format mirrors, and the guard against any other.

The format (entity key serialization v3, ValueProto bytes, SQLite table layout, Redis hash
layout) was written from Feast 0.67's sources and is proven by tests/featurestore/ with that
release: ``FeatureStore.get_online_features`` reads what this package writes. Another Feast
release may store features differently (its own changelog says when), so a writer or reader that
meets a Feast outside the checked release series refuses with :class:`FeastVersionError` instead
of writing rows Feast cannot read. The series, not the exact release: ``pyproject.toml`` admits
0.67.*, and ``requirements.lock`` pins the release checked (a test keeps the two equal).
Without Feast installed (a slim serving image) nothing is checked: the rows were written by a
writer that was.
"""

from __future__ import annotations

import functools
import importlib.metadata

from featurestore.errors import FeastVersionError

#: The Feast release this format was checked against (requirements.lock pins the same).
FEAST_VERSION = "0.67.0"


def series(version: str) -> tuple[str, ...]:
    """``major.minor`` of a release string (``0.67.0`` -> ``("0", "67")``)."""
    return tuple(version.split(".")[:2])


@functools.cache
def installed_feast() -> str | None:
    """The installed Feast's version (read from its metadata, without importing it); None when absent."""
    try:
        return importlib.metadata.version("feast")
    except importlib.metadata.PackageNotFoundError:
        return None


def check_feast(installed: str | None = None) -> None:
    """Raise :class:`FeastVersionError` when the installed Feast is outside the checked series."""
    got = installed if installed is not None else installed_feast()
    if got is not None and series(got) != series(FEAST_VERSION):
        raise FeastVersionError(
            f"installed feast {got} is not the release the online-store format of featurestore/ was "
            f"checked against ({FEAST_VERSION}): check the layout against that Feast's sources, run "
            "tests/featurestore/, then move FEAST_VERSION and the pin in requirements.lock together"
        )
