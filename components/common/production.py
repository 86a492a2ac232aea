"""The model the production alias points at, loaded (train warm-starts from it, evaluate scores it)."""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING

from taml.core import registry
from taml.core.config import Config

if TYPE_CHECKING:
    from model import LoadedModel


def load_production(
    config: Config, artifact_root: str, *, with_optimizer: bool = False
) -> LoadedModel | None:
    """The production model in memory, or None when there is no alias yet.

    Its files are fetched to a temporary folder (the registry may be on GCS) that is gone on
    return: a loaded model holds its weights, vocabulary and metadata itself (and its optimizer
    state with ``with_optimizer``, for a warm start).
    """
    alias = registry.read_alias(artifact_root, config.pipeline.model_name)
    if alias is None:
        return None
    return load_version(config, artifact_root, alias.version, with_optimizer=with_optimizer)


def load_version(
    config: Config, artifact_root: str, version: str, *, with_optimizer: bool = False
) -> LoadedModel:
    """One registered version in memory (verified by the registry and the loader, as above)."""
    from model import load_model_version

    with tempfile.TemporaryDirectory(prefix="taml-version-") as tmp:
        local = registry.download_version(artifact_root, config.pipeline.model_name, version, tmp)
        return load_model_version(local, with_optimizer=with_optimizer)
