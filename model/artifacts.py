"""A model version on disk, and safe loading of it.

    {version_dir}/
        weights.safetensors   every tensor of the state dict (never a pickle)
        model.json            {"format", "architecture", "model_config", "feature_spec", "vocab_sizes"}
        vocab.json            the vocabularies with their counts (:meth:`model.vocab.Vocabulary.to_json`)
        optimizer.pt          optional: the optimizers' state at the end of training (tensors, numbers
                              and strings only, read with ``weights_only=True``), for the next warm start
        metadata.json         version, parent version, trained-through date, training window, seed,
                              code revision, metrics, created_at, and "files": sha256 of each file above

A version is written into a sibling temporary folder and renamed into place, so a reader never
sees half of one. Loading verifies every checksum before parsing, then every JSON document and the
tensor names and shapes against the architecture; each failure raises :class:`ModelArtifactError`
naming the file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from model.base import MultiTaskModel
from model.errors import FeatureSpecError, ModelArtifactError, ModelError
from model.registry import build_model
from model.spec import FeatureSpec, ModelConfig
from model.vocab import Vocabulary

WEIGHTS_FILE = "weights.safetensors"
MODEL_FILE = "model.json"
VOCAB_FILE = "vocab.json"
METADATA_FILE = "metadata.json"
OPTIMIZER_FILE = "optimizer.pt"
CHECKSUMMED = (WEIGHTS_FILE, MODEL_FILE, VOCAB_FILE)
FORMAT = 1
_HASH_CHUNK = 1 << 20


class TrainingWindow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: dt.date | None = Field(None, description="First impression day trained on.")
    end: dt.date | None = Field(None, description="Last impression day trained on.")
    days: list[dt.date] = Field(
        default_factory=list, description="Every day trained on (a window may skip failed days)."
    )
    conversions: int | None = Field(None, description="Conversions in the training window.")


class VersionMetadata(BaseModel):
    """metadata.json: provenance and evaluation of one model version."""

    model_config = ConfigDict(extra="forbid")
    version: str = Field(description="This version's id.")
    parent_version: str | None = Field(None, description="The version it was warm-started from.")
    trained_through: dt.date | None = Field(None, description="Last impression day in the training data.")
    training_window: TrainingWindow = Field(default_factory=TrainingWindow, description="Days trained on.")
    seed: int | None = Field(None, description="Training seed.")
    code_revision: str | None = Field(None, description="Source revision (e.g. git commit) of the trainer.")
    metrics: dict[str, Any] = Field(default_factory=dict, description="Metrics on its evaluation day.")
    created_at: str = Field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(), description="UTC time."
    )
    files: dict[str, str] = Field(default_factory=dict, description="sha256 of each file of the version.")


@dataclass
class LoadedModel:
    """A model version in memory, ready to score."""

    model: MultiTaskModel
    config: ModelConfig
    spec: FeatureSpec
    vocab: Vocabulary
    metadata: VersionMetadata
    path: Path | None = None
    #: the optimizers' state saved with the version; loaded only on request (warm starts)
    optimizer_state: dict[str, Any] | None = None

    @property
    def version(self) -> str:
        return self.metadata.version


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _cpu_tensors(model: MultiTaskModel) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def weights_sha256(model: MultiTaskModel) -> str:
    """sha256 of the weights file :func:`save_model_version` writes for ``model`` (the same bytes),
    known before saving, so a version id can name the weights it holds."""
    from safetensors.torch import save

    return hashlib.sha256(save(_cpu_tensors(model), metadata={"format": str(FORMAT)})).hexdigest()


def save_model_version(
    directory: str | Path,
    model: MultiTaskModel,
    spec: FeatureSpec,
    vocab: Vocabulary,
    metadata: VersionMetadata,
    *,
    overwrite: bool = False,
    optimizer_state: dict[str, Any] | None = None,
) -> Path:
    """Write a complete version directory atomically (temporary sibling + rename)."""
    from safetensors.torch import save_file

    vocab.check_spec(spec)
    if list(model.sizes) != vocab.sizes:
        raise ModelArtifactError(
            f"model vocabulary sizes {model.sizes} differ from the vocabulary's {vocab.sizes}"
        )
    final = Path(directory)
    if final.exists() and not overwrite:
        raise ModelArtifactError(f"model version directory {final} already exists (versions are immutable)")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        save_file(_cpu_tensors(model), str(tmp / WEIGHTS_FILE), metadata={"format": str(FORMAT)})
        _write_json(
            tmp / MODEL_FILE,
            {
                "format": FORMAT,
                "architecture": model.architecture,
                "model_config": model.config.model_dump(mode="json"),
                "feature_spec": spec.model_dump(mode="json"),
                "vocab_sizes": vocab.sizes,
            },
        )
        _write_json(tmp / VOCAB_FILE, vocab.to_json())
        names = list(CHECKSUMMED)
        if optimizer_state is not None:
            with open(tmp / OPTIMIZER_FILE, "wb") as fh:
                torch.save({"format": FORMAT, **optimizer_state}, fh)
            names.append(OPTIMIZER_FILE)
        files = {name: sha256_file(tmp / name) for name in names}
        meta = metadata.model_copy(update={"files": files})
        _write_json(tmp / METADATA_FILE, meta.model_dump(mode="json"))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def load_model_version(
    directory: str | Path, device: str | torch.device = "cpu", *, with_optimizer: bool = False
) -> LoadedModel:
    """Load and verify a version directory; any defect raises :class:`ModelArtifactError` naming the file.

    ``with_optimizer`` also loads the saved optimizer state (a warm start needs it, scoring does not).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    root = Path(directory)
    if not root.is_dir():
        raise ModelArtifactError(f"model version directory {root} does not exist")
    meta_raw = _read_json(root / METADATA_FILE)
    try:
        metadata = VersionMetadata.model_validate(meta_raw)
    except ValidationError as e:
        raise ModelArtifactError(f"{root / METADATA_FILE}: invalid metadata: {_first_error(e)}") from None
    for name in CHECKSUMMED:
        path = root / name
        if not path.is_file():
            raise ModelArtifactError(f"{path}: missing file of the model version")
        expected = metadata.files.get(name)
        if expected is None:
            raise ModelArtifactError(f"{root / METADATA_FILE}: no checksum recorded for {name}")
        actual = sha256_file(path)
        if actual != expected:
            raise ModelArtifactError(
                f"{path}: checksum mismatch (sha256 {actual[:12]}…, expected {expected[:12]}…)"
            )

    info = _read_json(root / MODEL_FILE)
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ModelArtifactError(f"{root / MODEL_FILE}: unknown format (expected format {FORMAT})")
    try:
        config = ModelConfig.model_validate(info.get("model_config"))
        spec = FeatureSpec.model_validate(info.get("feature_spec"))
    except ValidationError as e:
        raise ModelArtifactError(f"{root / MODEL_FILE}: {_first_error(e)}") from None
    if info.get("architecture") != config.architecture:
        raise ModelArtifactError(f"{root / MODEL_FILE}: architecture field disagrees with model_config")
    try:
        vocab = Vocabulary.from_json(_read_json(root / VOCAB_FILE))
        vocab.check_spec(spec)
    except FeatureSpecError as e:
        raise ModelArtifactError(f"{root / VOCAB_FILE}: {e}") from None
    if info.get("vocab_sizes") != vocab.sizes:
        raise ModelArtifactError(
            f"{root / VOCAB_FILE}: sizes {vocab.sizes} differ from model.json {info.get('vocab_sizes')}"
        )

    weights_path = root / WEIGHTS_FILE
    try:
        tensors = load_file(str(weights_path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelArtifactError(f"{weights_path}: not a readable safetensors file ({e})") from None
    try:
        model = build_model(config, vocab.sizes)
    except ModelError as e:
        raise ModelArtifactError(f"{root / MODEL_FILE}: {e}") from None
    for name in model.stale_tensors(set(tensors)):
        del tensors[name]
    _check_tensors(weights_path, model, tensors)
    model.load_state_dict(tensors, strict=True)
    model.to(device).eval()
    optimizer_state = load_optimizer_state(root) if with_optimizer else None
    return LoadedModel(
        model=model,
        config=config,
        spec=spec,
        vocab=vocab,
        metadata=metadata,
        path=root,
        optimizer_state=optimizer_state,
    )


def load_optimizer_state(directory: str | Path) -> dict[str, Any] | None:
    """The optimizer state saved with a version (checksum verified), or None when it has none."""
    root = Path(directory)
    path = root / OPTIMIZER_FILE
    expected = VersionMetadata.model_validate(_read_json(root / METADATA_FILE)).files.get(OPTIMIZER_FILE)
    if expected is None:
        return None
    if not path.is_file():
        raise ModelArtifactError(f"{path}: listed in {METADATA_FILE} but missing")
    if sha256_file(path) != expected:
        raise ModelArtifactError(f"{path}: checksum mismatch")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for truncated / foreign files
        raise ModelArtifactError(f"{path}: cannot be read ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or not {"dense", "sparse"} <= set(state):
        raise ModelArtifactError(f"{path}: unknown optimizer state format")
    return {"dense": state["dense"], "sparse": state["sparse"]}


def _check_tensors(path: Path, model: MultiTaskModel, tensors: dict[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing:
        raise ModelArtifactError(f"{path}: missing tensors {missing[:5]}{' …' if len(missing) > 5 else ''}")
    if extra:
        raise ModelArtifactError(f"{path}: unexpected tensors {extra[:5]}{' …' if len(extra) > 5 else ''}")
    for name, ref in expected.items():
        t = tensors[name]
        if tuple(t.shape) != tuple(ref.shape) or t.dtype != ref.dtype:
            raise ModelArtifactError(
                f"{path}: tensor {name!r} is {tuple(t.shape)} {t.dtype}, the architecture needs "
                f"{tuple(ref.shape)} {ref.dtype}"
            )
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ModelArtifactError(f"{path}: tensor {name!r} holds NaN or infinite values")


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n")


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ModelArtifactError(f"{path}: missing file of the model version") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ModelArtifactError(f"{path}: cannot be read ({e})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelArtifactError(
            f"{path}: invalid JSON ({e.msg} at line {e.lineno}, column {e.colno})"
        ) from None


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    more = f" (+{e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"{loc}: {err['msg']}{more}"
