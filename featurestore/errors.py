"""The errors of the feature-store format (a missing, unreachable or foreign-format online store)."""

from __future__ import annotations

from taml.core.errors import TamlError


class FeatureStoreError(TamlError):
    """The feature store could not be set up, written or read; the message says where."""


class RedisStoreError(FeatureStoreError):
    """The Redis online store cannot be reached or read; the message names the server, never a secret."""


class FeastVersionError(FeatureStoreError):
    """The installed Feast is not the release this format was checked against."""
