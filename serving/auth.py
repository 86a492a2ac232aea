"""The optional bearer token: its value comes from an environment variable, never from a file.

``serving.auth_token_env`` names the variable (empty: no token, the default behind a gateway that
authenticates). The token is compared in constant time and never logged or printed.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping

from taml.core.errors import TamlError


class AuthConfigError(TamlError):
    """``serving.auth_token_env`` names a variable that is unset or empty: the server refuses to start."""


def bearer_token(config, env: Mapping[str, str] | None = None) -> str | None:
    """The token the server requires, or None when ``serving.auth_token_env`` is empty."""
    name = config.serving.auth_token_env
    if not name:
        return None
    token = (os.environ if env is None else env).get(name, "")
    if not token.strip():
        raise AuthConfigError(
            f"serving.auth_token_env is {name!r} but that environment variable is unset or empty"
        )
    return token.strip()


def authorized(header: str | None, token: str) -> bool:
    scheme, _, value = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode("utf-8", "surrogateescape"), token.encode())
