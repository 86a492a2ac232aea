"""The model registry: immutable versions and an atomically replaced production alias.

    {artifact_root}/registry/{model}/versions/{version}/...        (published only when complete)
    {artifact_root}/registry/{model}/versions/{version}/_COMPLETE  (written last: file list + sha256)
    {artifact_root}/registry/{model}/production.json               (the alias)

Serving, warm start and rollback resolve the alias, never "the newest folder". The alias is
replaced with a compare-and-swap (local: lock + re-check; GCS: generation precondition), so two
concurrent promotions can never both win and readers never see a torn file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from taml import storage
from taml.errors import TamlError
from taml.layout import registry_dir

COMPLETE_MARKER = "_COMPLETE"
ALIAS_FILE = "production.json"
HISTORY_LIMIT = 50


class RegistryError(TamlError):
    """A registry operation cannot be done (missing or incomplete version, lost race, ...)."""


@dataclass
class Alias:
    version: str
    previous_version: str | None
    blessing: str | None  # URI of the blessing artifact that justified the move
    time: str
    history: list[str] = field(default_factory=list)  # earlier production versions, newest first
    generation: str = "0"  # storage version token of production.json when read (not stored)

    def to_json(self) -> bytes:
        body = {k: v for k, v in asdict(self).items() if k != "generation"}
        return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()


def versions_dir(artifact_root: str, model: str) -> str:
    return storage.join(registry_dir(artifact_root, model), "versions")


def version_uri(artifact_root: str, model: str, version: str) -> str:
    return storage.join(versions_dir(artifact_root, model), version)


def alias_uri(artifact_root: str, model: str) -> str:
    return storage.join(registry_dir(artifact_root, model), ALIAS_FILE)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def publish_version(artifact_root: str, model: str, version: str, source_dir: str | Path) -> str:
    """Copy a finished model directory into the registry as ``version``; returns its URI.

    Files are copied first and ``_COMPLETE`` (with each file's sha256) is written last, so a
    reader that checks :func:`is_complete` never loads half a version. Publishing the same
    version twice is an error unless the content is identical (then it is a no-op: re-runs).
    """
    src = Path(source_dir)
    files = sorted(p for p in src.rglob("*") if p.is_file())
    if not files:
        raise RegistryError(f"nothing to publish: {src} has no files")
    manifest = {p.relative_to(src).as_posix(): _sha256(p.read_bytes()) for p in files}
    target = version_uri(artifact_root, model, version)
    if is_complete(artifact_root, model, version):
        existing = storage.read_json(storage.join(target, COMPLETE_MARKER))["files"]
        if existing == manifest:
            return target
        raise RegistryError(
            f"version {version} of {model} already exists with other content; versions are immutable"
        )
    for rel in manifest:
        storage.write_bytes(storage.join(target, rel), (src / rel).read_bytes())
    storage.write_json(
        storage.join(target, COMPLETE_MARKER),
        {"version": version, "files": manifest, "published": _now()},
    )
    return target


def is_complete(artifact_root: str, model: str, version: str) -> bool:
    return storage.exists(storage.join(version_uri(artifact_root, model, version), COMPLETE_MARKER))


def verify_version(artifact_root: str, model: str, version: str) -> dict[str, str]:
    """Check every file of a version against its ``_COMPLETE`` checksums; returns the file map."""
    target = version_uri(artifact_root, model, version)
    if not is_complete(artifact_root, model, version):
        raise RegistryError(f"version {version} of {model} is missing or incomplete at {target}")
    files = storage.read_json(storage.join(target, COMPLETE_MARKER))["files"]
    for rel, digest in files.items():
        uri = storage.join(target, rel)
        try:
            actual = _sha256(storage.read_bytes(uri))
        except FileNotFoundError:
            raise RegistryError(f"{uri}: listed in {COMPLETE_MARKER} but missing") from None
        if actual != digest:
            raise RegistryError(f"{uri}: checksum mismatch (the file changed after publishing)")
    return files


def list_versions(artifact_root: str, model: str) -> list[str]:
    """Complete versions, sorted by name (versions are named to sort by time)."""
    names = storage.list_dirs(versions_dir(artifact_root, model))
    return [v for v in names if is_complete(artifact_root, model, v)]


def download_version(artifact_root: str, model: str, version: str, dest: str | Path) -> Path:
    """Copy a verified version to a local folder (for loading with the model code)."""
    files = verify_version(artifact_root, model, version)
    dest = Path(dest)
    for rel in files:
        storage.copy(storage.join(version_uri(artifact_root, model, version), rel), str(dest / rel))
    return dest


# --------------------------------------------------------------------------------------------
# The production alias


def read_alias(artifact_root: str, model: str) -> Alias | None:
    uri = alias_uri(artifact_root, model)
    current = storage.read_versioned(uri)
    if current.data is None:
        return None
    try:
        body = json.loads(current.data)
        return Alias(**body, generation=current.generation)
    except (json.JSONDecodeError, TypeError) as e:
        raise RegistryError(f"{uri}: not a valid production alias ({e})") from None


def production_version(artifact_root: str, model: str) -> str | None:
    alias = read_alias(artifact_root, model)
    return alias.version if alias else None


def promote(
    artifact_root: str,
    model: str,
    version: str,
    blessing: str | None = None,
    expected: Alias | None | str = "read",
) -> Alias:
    """Point the production alias at ``version`` (compare-and-swap).

    ``expected`` is the alias the caller based its decision on (``None``: "there was none"); by
    default it is read now. If someone else moved the alias since, this raises RegistryError and
    changes nothing: a gate's verdict against an older production model must not be applied.
    """
    if not is_complete(artifact_root, model, version):
        raise RegistryError(
            f"cannot promote {model} {version}: no complete version at "
            f"{version_uri(artifact_root, model, version)}"
        )
    current = read_alias(artifact_root, model) if expected == "read" else expected
    if current is not None and current.version == version:
        return current
    history = ([current.version, *current.history] if current else [])[:HISTORY_LIMIT]
    new = Alias(
        version=version,
        previous_version=current.version if current else None,
        blessing=blessing,
        time=_now(),
        history=history,
    )
    _swap(artifact_root, model, new, current.generation if current else "0")
    return read_alias(artifact_root, model)  # type: ignore[return-value]


def rollback(artifact_root: str, model: str) -> Alias:
    """Move the alias back to the version that was production before the current one."""
    current = read_alias(artifact_root, model)
    if current is None or not current.history:
        raise RegistryError(f"nothing to roll back to: {model} has no earlier production version")
    target, rest = current.history[0], current.history[1:]
    new = Alias(
        version=target,
        previous_version=current.version,
        blessing=f"rollback from {current.version}",
        time=_now(),
        history=rest,
    )
    _swap(artifact_root, model, new, current.generation)
    return read_alias(artifact_root, model)  # type: ignore[return-value]


def _swap(artifact_root: str, model: str, new: Alias, generation: str) -> None:
    try:
        storage.write_if_generation(alias_uri(artifact_root, model), new.to_json(), generation)
    except storage.PreconditionFailed:
        raise RegistryError(
            f"the production alias of {model} changed while this update was being decided; nothing was changed"
        ) from None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
