"""The model registry: immutable versions and an atomically replaced production alias.

    {artifact_root}/registry/{model}/versions/{version}/...        (published only when complete)
    {artifact_root}/registry/{model}/versions/{version}/_CLAIM     (created first: the file list)
    {artifact_root}/registry/{model}/versions/{version}/_COMPLETE  (created last: file list + sha256)
    {artifact_root}/registry/{model}/production.json               (the alias)

Serving, warm start and rollback resolve the alias, never "the newest folder". The alias is
replaced with a compare-and-swap (local: lock + re-check; GCS: generation precondition), so two
concurrent promotions can never both win and readers never see a torn file.

Names (model, version, every path segment of a version's files) are restricted to
``[A-Za-z0-9._-]``, never ``.`` or ``..``, and every path the registry reads or writes is checked
to stay inside its root: a name from the command line or a key of a ``_COMPLETE`` file written by
someone else can never point the registry, or a download, elsewhere.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import posixpath
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from taml.core import storage
from taml.core.errors import TamlError
from taml.core.layout import registry_dir

COMPLETE_MARKER = "_COMPLETE"
CLAIM_MARKER = "_CLAIM"
ALIAS_FILE = "production.json"
HISTORY_LIMIT = 50
NAME_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")


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


# --------------------------------------------------------------------------------------------
# Names and paths


def check_name(name: object, what: str = "version") -> str:
    """``name`` if it is a safe registry name, else RegistryError saying why."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or name in (".", ".."):
        raise RegistryError(
            f"invalid {what} name {name!r}: use only letters, digits, '.', '_' and '-' "
            "(not '.' or '..', no '/')"
        )
    return name


def check_key(key: object, where: str) -> str:
    """A relative file key of a version (``vocab/user_id.json``): every segment a safe name."""
    if not isinstance(key, str) or not key or key.startswith("/") or "\\" in key:
        raise RegistryError(f"{where}: invalid file key {key!r} (relative POSIX paths only)")
    for part in key.split("/"):
        if not NAME_PATTERN.match(part) or part in (".", ".."):
            raise RegistryError(f"{where}: invalid file key {key!r} (segment {part!r})")
    return key


def _inside(root: str, uri: str) -> str:
    """``uri`` if it resolves to a path under ``root`` (symlinks included locally), else an error."""
    if storage.is_gcs(root) != storage.is_gcs(uri):
        raise RegistryError(f"{uri} is not under {root}")
    if storage.is_gcs(root):
        base, target = posixpath.normpath(root[5:]), posixpath.normpath(uri[5:])
        inside = target.startswith(base + "/")
    else:
        base_path, target_path = Path(root).resolve(), Path(uri).resolve()
        inside = target_path != base_path and target_path.is_relative_to(base_path)
    if not inside:
        raise RegistryError(f"{uri} resolves outside {root}; refusing to read or write it")
    return uri


def versions_dir(artifact_root: str, model: str) -> str:
    return storage.join(registry_dir(artifact_root, check_name(model, "model")), "versions")


def version_uri(artifact_root: str, model: str, version: str) -> str:
    root = versions_dir(artifact_root, model)
    return _inside(root, storage.join(root, check_name(version)))


def alias_uri(artifact_root: str, model: str) -> str:
    return storage.join(registry_dir(artifact_root, check_name(model, "model")), ALIAS_FILE)


def _file_uri(target: str, key: str) -> str:
    return _inside(target, storage.join(target, check_key(key, target)))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------
# Versions


def publish_version(artifact_root: str, model: str, version: str, source_dir: str | Path) -> str:
    """Copy a finished model directory into the registry as ``version``; returns its URI.

    ``_CLAIM`` (the file list with checksums) is created first and only if absent, so of two
    concurrent publishers of one version with different content exactly one may write files: the
    other is refused before touching any. Files are copied next and ``_COMPLETE`` is created last,
    so a reader that checks :func:`is_complete` never loads half a version. Publishing the same
    content again is a no-op (re-runs, or a run that died half-way); other content is an error.
    """
    src = Path(source_dir)
    files = sorted(p for p in src.rglob("*") if p.is_file())
    if not files:
        raise RegistryError(f"nothing to publish: {src} has no files")
    manifest = {check_key(p.relative_to(src).as_posix(), str(src)): _sha256(p.read_bytes()) for p in files}
    target = version_uri(artifact_root, model, version)
    existing = _manifest(target, COMPLETE_MARKER)
    if existing is not None:
        return _same_or_refuse(existing, manifest, model, version, target)
    try:
        storage.write_new(
            storage.join(target, CLAIM_MARKER),
            _json({"version": version, "files": manifest, "claimed": _now()}),
        )
    except storage.PreconditionFailed:
        claimed = _manifest(target, CLAIM_MARKER)
        if claimed != manifest:
            raise RegistryError(
                f"version {version} of {model} was claimed by a publish with other content "
                f"({storage.join(target, CLAIM_MARKER)}); versions are immutable"
            ) from None
    for rel in manifest:
        storage.write_bytes(_file_uri(target, rel), (src / rel).read_bytes())
    try:
        storage.write_new(
            storage.join(target, COMPLETE_MARKER),
            _json({"version": version, "files": manifest, "published": _now()}),
        )
    except storage.PreconditionFailed:
        return _same_or_refuse(_manifest(target, COMPLETE_MARKER) or {}, manifest, model, version, target)
    return target


def _same_or_refuse(
    existing: dict[str, str], manifest: dict[str, str], model: str, version: str, target: str
):
    if existing == manifest:
        return target
    raise RegistryError(
        f"version {version} of {model} already exists with other content; versions are immutable"
    )


def _manifest(target: str, marker: str) -> dict[str, str] | None:
    """The validated file map of a version's marker file, or None when there is none."""
    uri = storage.join(target, marker)
    try:
        body = storage.read_json(uri)
    except FileNotFoundError:
        return None
    except storage.StorageError as e:
        raise RegistryError(str(e)) from None
    files = body.get("files") if isinstance(body, dict) else None
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise RegistryError(f"{uri}: not a registry file list")
    for key in files:
        check_key(key, uri)
    return files


def is_complete(artifact_root: str, model: str, version: str) -> bool:
    return storage.exists(storage.join(version_uri(artifact_root, model, version), COMPLETE_MARKER))


def _verified_files(artifact_root: str, model: str, version: str):
    """Yield (key, bytes) of every file of a version, each checked against ``_COMPLETE``."""
    target = version_uri(artifact_root, model, version)
    files = _manifest(target, COMPLETE_MARKER)
    if files is None:
        raise RegistryError(f"version {version} of {model} is missing or incomplete at {target}")
    for rel, digest in files.items():
        uri = _file_uri(target, rel)
        try:
            data = storage.read_bytes(uri)
        except FileNotFoundError:
            raise RegistryError(f"{uri}: listed in {COMPLETE_MARKER} but missing") from None
        if _sha256(data) != digest:
            raise RegistryError(f"{uri}: checksum mismatch (the file changed after publishing)")
        yield rel, data


def verify_version(artifact_root: str, model: str, version: str) -> dict[str, str]:
    """Check every file of a version against its ``_COMPLETE`` checksums; returns the file map."""
    return {rel: _sha256(data) for rel, data in _verified_files(artifact_root, model, version)}


def list_versions(artifact_root: str, model: str) -> list[str]:
    """Complete versions, sorted by name (versions are named to sort by time)."""
    names = storage.list_dirs(versions_dir(artifact_root, model))
    return [v for v in names if NAME_PATTERN.match(v) and is_complete(artifact_root, model, v)]


def download_version(artifact_root: str, model: str, version: str, dest: str | Path) -> Path:
    """Copy a verified version to a local folder (for loading with the model code).

    Each file is read once, checked, and written only under ``dest``.
    """
    dest = Path(dest)
    for rel, data in _verified_files(artifact_root, model, version):
        path = Path(_inside(str(dest), str(dest / rel)))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
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
        alias = Alias(**body, generation=current.generation)
        for name in [alias.version, *alias.history]:
            check_name(name)
    except (json.JSONDecodeError, TypeError, RegistryError) as e:
        raise RegistryError(f"{uri}: not a valid production alias ({e})") from None
    return alias


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
    """Point the production alias at ``version`` (compare-and-swap), after verifying its files.

    ``expected`` is the alias the caller based its decision on (``None``: "there was none"); by
    default it is read now. If someone else moved the alias since, this raises RegistryError and
    changes nothing: a gate's verdict against an older production model must not be applied.
    """
    if not is_complete(artifact_root, model, version):
        raise RegistryError(
            f"cannot promote {model} {version}: no complete version at "
            f"{version_uri(artifact_root, model, version)}"
        )
    _verify_before_moving(artifact_root, model, version, "promote")
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
    _verify_before_moving(artifact_root, model, target, "roll back to")
    new = Alias(
        version=target,
        previous_version=current.version,
        blessing=f"rollback from {current.version}",
        time=_now(),
        history=rest,
    )
    _swap(artifact_root, model, new, current.generation)
    return read_alias(artifact_root, model)  # type: ignore[return-value]


def _verify_before_moving(artifact_root: str, model: str, version: str, action: str) -> None:
    try:
        verify_version(artifact_root, model, version)
    except RegistryError as e:
        raise RegistryError(f"cannot {action} {model} {version}: {e}") from None


def _swap(artifact_root: str, model: str, new: Alias, generation: str) -> None:
    try:
        storage.write_if_generation(alias_uri(artifact_root, model), new.to_json(), generation)
    except storage.PreconditionFailed:
        raise RegistryError(
            f"the production alias of {model} changed while this update was being decided; nothing was changed"
        ) from None


def _json(body: dict) -> bytes:
    return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
