"""The one error a client's mistake becomes: an HTTP status and a message naming the field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class RequestError(Exception):
    """A client's mistake: HTTP ``status`` with a message naming the ``field``."""

    status: int
    message: str
    field: str | None = None
    errors: list[dict[str, Any]] | None = None

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message, "field": self.field}
        if self.errors:
            out["errors"] = self.errors
        return out
