"""Architecture name -> model class, and building a model from its config and vocabulary sizes."""

from __future__ import annotations

from collections.abc import Sequence

from model.base import MultiTaskModel
from model.baselines import AITM, ESMM, MLP, PLE, MMoE
from model.errors import ModelConfigError
from model.spec import ARCHITECTURES, ModelConfig
from model.taml import TAML

MODELS: dict[str, type[MultiTaskModel]] = {
    "taml": TAML,
    "mlp": MLP,
    "mmoe": MMoE,
    "ple": PLE,
    "esmm": ESMM,
    "aitm": AITM,
}
assert tuple(MODELS) == ARCHITECTURES


def build_model(config: ModelConfig, sizes: Sequence[int]) -> MultiTaskModel:
    """A freshly initialised model (seed torch before calling for a reproducible initialisation)."""
    if config.architecture not in MODELS:
        raise ModelConfigError(f"unknown architecture {config.architecture!r}; known: {', '.join(MODELS)}")
    if not sizes or any(int(s) < 2 for s in sizes):
        raise ModelConfigError(
            f"every field needs a vocabulary of at least 2 rows (missing + OOV); got {list(sizes)}"
        )
    return MODELS[config.architecture](sizes, config)
