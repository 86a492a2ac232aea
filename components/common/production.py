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
    from model import load_model_version

    alias = registry.read_alias(artifact_root, config.pipeline.model_name)
    if alias is None:
        return None
    with tempfile.TemporaryDirectory(prefix="taml-production-") as tmp:
        local = registry.download_version(artifact_root, config.pipeline.model_name, alias.version, tmp)
        return load_model_version(local, with_optimizer=with_optimizer)
