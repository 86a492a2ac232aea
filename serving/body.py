"""Request bodies: read with a size and time bound, decode JSON without any input reaching a 500.

Python's ``json`` has three ways to fail besides a syntax error, each a 500 if left alone: nesting
deeper than the interpreter's recursion limit (``RecursionError``), an integer literal of more
than ``sys.get_int_max_str_digits()`` digits (``ValueError``) and text that is not UTF-8. Here
the first two become a 400 that names the field where they happen, and every integer literal too
long to be an int64 is kept as :class:`OversizedInt`, so the schema refuses it at its own field
without Python ever converting thousands of digits.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from serving.errors import RequestError

if TYPE_CHECKING:
    from starlette.requests import Request

# Longer than any int64 literal ("-9223372036854775808" is 20 characters).
_MAX_INT_CHARS = 20
_MAX_KEY_CHARS = 64  # a key is echoed in the error: never a client's megabyte
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},:]')


@dataclass(frozen=True)
class OversizedInt:
    """An integer literal too long for int64, kept unconverted (its digits are never parsed)."""

    digits: int


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The whole body, at most ``limit`` bytes, within ``timeout_s`` (413 / 408 otherwise)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"body of {declared} bytes exceeds the limit of {limit} bytes")
    body = bytearray()
    try:
        # asyncio.timeout, not wait_for: no extra task (and loop round) per request.
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                body.extend(chunk)
                if len(body) > limit:  # chunked uploads declare no length: stop reading at the limit
                    raise RequestError(413, f"body exceeds the limit of {limit} bytes")
    except TimeoutError:  # a client that trickles its body must not hold a worker forever
        raise RequestError(408, f"body not received within {timeout_s:g} s") from None
    return bytes(body)


def _parse_int(text: str) -> int | OversizedInt:
    if len(text) > _MAX_INT_CHARS:
        return OversizedInt(len(text.lstrip("-")))
    return int(text)


def _path(stack: list[list[Any]]) -> str | None:
    # Down to the innermost named key: below it the path would only be a run of "[0]".
    named = [i for i, (kind, key) in enumerate(stack) if kind == "{" and key is not None]
    if named:
        stack = stack[: named[-1] + 1]
    out = ""
    for kind, key in stack:
        if kind == "[":
            out += f"[{key}]"
        elif key is not None:
            key = str(key)[:_MAX_KEY_CHARS]
            out += f".{key}" if out else key
    return out or None


def nesting_path(body: bytes, max_depth: int) -> str | None:
    """Where ``body`` first nests deeper than ``max_depth``: ``instances[0].ts`` style, or None.

    Only called after ``json.loads`` gave up on the nesting, so the cost falls on such bodies alone.
    """
    stack: list[list[Any]] = []  # [container, current key or index]
    last_string: bytes | None = None
    for m in _TOKEN.finditer(body):
        tok = m.group()
        if tok in (b"[", b"{"):
            if len(stack) >= max_depth:
                return _path(stack)
            stack.append(["[", 0] if tok == b"[" else ["{", None])
        elif tok in (b"]", b"}"):
            if stack:
                stack.pop()
        elif tok == b",":
            if stack and stack[-1][0] == "[":
                stack[-1][1] += 1
        elif tok == b":":
            if stack and last_string is not None:
                try:
                    stack[-1][1] = json.loads(last_string)
                except ValueError:
                    stack[-1][1] = "?"
        else:
            last_string = tok
    return _path(stack)


def parse_json(body: bytes, max_depth: int = 64) -> dict[str, Any]:
    """A JSON object, or :class:`RequestError` (400) saying what is wrong and where."""
    if not body:
        raise RequestError(400, "empty body: expected a JSON object")
    try:
        data = json.loads(body, parse_int=_parse_int)
    except RecursionError:
        field = nesting_path(body, max_depth)
        where = f"{field}: " if field else ""
        raise RequestError(400, f"{where}JSON nested deeper than {max_depth} levels", field) from None
    except UnicodeDecodeError as e:
        raise RequestError(400, f"body is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except ValueError as e:  # JSONDecodeError and any other refusal of the decoder
        raise RequestError(400, f"body is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise RequestError(400, f"body must be a JSON object, got {type(data).__name__}")
    return data
