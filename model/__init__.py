"""Joint CTR/CVR models: TAML (WWW '23) and baselines, trainer, metrics, artifacts, scoring.

Imports nothing else of the project (torch, numpy, pandas, pyarrow, pydantic, safetensors only).
"""

# Exports load lazily (PEP 562): the project's configuration imports ``model.spec`` on every
# command, and that must not pay for importing torch.
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "LoadedModel": "model.artifacts",
    "VersionMetadata": "model.artifacts",
    "load_model_version": "model.artifacts",
    "save_model_version": "model.artifacts",
    "MultiTaskModel": "model.base",
    "AITM": "model.baselines",
    "ESMM": "model.baselines",
    "MLP": "model.baselines",
    "PLE": "model.baselines",
    "MMoE": "model.baselines",
    "compare_models": "model.compare",
    "encode": "model.encode",
    "encode_labels": "model.encode",
    "FeatureSpecError": "model.errors",
    "ModelArtifactError": "model.errors",
    "ModelConfigError": "model.errors",
    "ModelError": "model.errors",
    "TrainingError": "model.errors",
    "expected_auc": "model.expected_auc",
    "expected_log_loss": "model.expected_auc",
    "FitResult": "model.fitting",
    "fit": "model.fitting",
    "auc": "model.metrics",
    "calibration_ratio": "model.metrics",
    "ece": "model.metrics",
    "evaluate_predictions": "model.metrics",
    "log_loss": "model.metrics",
    "MODELS": "model.registry",
    "build_model": "model.registry",
    "predict_encoded": "model.scoring",
    "score": "model.scoring",
    "FeatureSpec": "model.spec",
    "FieldSpec": "model.spec",
    "ModelConfig": "model.spec",
    "TrainConfig": "model.spec",
    "default_feature_spec": "model.spec",
    "TAML": "model.taml",
    "TrainResult": "model.trainer",
    "resolve_device": "model.trainer",
    "train": "model.trainer",
    "Vocabulary": "model.vocab",
    "warm_start": "model.warmstart",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'model' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, eagerly
    from model.artifacts import LoadedModel, VersionMetadata, load_model_version, save_model_version  # noqa: F401
    from model.base import MultiTaskModel  # noqa: F401
    from model.baselines import AITM, ESMM, MLP, PLE, MMoE  # noqa: F401
    from model.compare import compare_models  # noqa: F401
    from model.encode import encode, encode_labels  # noqa: F401
    from model.errors import FeatureSpecError, ModelArtifactError, ModelConfigError, ModelError, TrainingError  # noqa: F401
    from model.expected_auc import expected_auc, expected_log_loss  # noqa: F401
    from model.fitting import FitResult, fit  # noqa: F401
    from model.metrics import auc, calibration_ratio, ece, evaluate_predictions, log_loss  # noqa: F401
    from model.registry import MODELS, build_model  # noqa: F401
    from model.scoring import predict_encoded, score  # noqa: F401
    from model.spec import FeatureSpec, FieldSpec, ModelConfig, TrainConfig, default_feature_spec  # noqa: F401
    from model.taml import TAML  # noqa: F401
    from model.trainer import TrainResult, resolve_device, train  # noqa: F401
    from model.vocab import Vocabulary  # noqa: F401
    from model.warmstart import warm_start  # noqa: F401

__all__ = [
    "AITM", "ESMM", "MLP", "MMoE", "PLE", "TAML", "MODELS",
    "FeatureSpec", "FieldSpec", "ModelConfig", "TrainConfig", "default_feature_spec",
    "Vocabulary", "encode", "encode_labels",
    "MultiTaskModel", "build_model", "train", "TrainResult", "resolve_device", "fit", "FitResult", "warm_start",
    "auc", "log_loss", "calibration_ratio", "ece", "evaluate_predictions", "expected_auc", "expected_log_loss",
    "LoadedModel", "VersionMetadata", "save_model_version", "load_model_version", "score", "predict_encoded",
    "compare_models",
    "ModelError", "FeatureSpecError", "ModelConfigError", "ModelArtifactError", "TrainingError",
]  # fmt: skip
