"""Exceptions of the model package: each names what was wrong and where."""

from __future__ import annotations


class ModelError(Exception):
    """Base class of every error the model package raises on purpose."""


class FeatureSpecError(ModelError, ValueError):
    """A feature spec, vocabulary or input table does not fit (names the field / column)."""


class ModelConfigError(ModelError, ValueError):
    """A model or training configuration is inconsistent (names the option)."""


class ModelArtifactError(ModelError):
    """A saved model version or checkpoint is missing, truncated or tampered with (names the file)."""


class TrainingError(ModelError, RuntimeError):
    """Training cannot continue (empty data, non-finite loss, incompatible checkpoint...)."""
