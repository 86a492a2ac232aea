"""Files under local paths and ``gs://`` URIs, with one API for every step.

Why one module: every step reads and writes the same layout (DESIGN.md), on a laptop and on a
cluster. Local paths get POSIX atomicity (write aside, then ``rename``); GCS gets object
atomicity and generation preconditions. The GCS side talks to the JSON API through
``google-cloud-storage``, which honours ``STORAGE_EMULATOR_HOST`` (used by the tests).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

GCS_SCHEME = "gs://"


class StorageError(RuntimeError):
    """A storage operation failed; the message names the URI."""


class PreconditionFailed(StorageError):
    """A conditional write lost a race: the object changed since it was read."""


# --------------------------------------------------------------------------------------------
# URIs


def is_gcs(uri: str) -> bool:
    return str(uri).startswith(GCS_SCHEME)


def join(base: str | Path, *parts: str) -> str:
    """Join path segments; keeps ``gs://`` intact and never produces ``//`` inside a URI."""
    out = str(base).rstrip("/") if str(base) not in ("/", "") else str(base)
    for part in parts:
        part = str(part).strip("/")
        if part:
            out = f"{out}/{part}" if out not in ("", "/") else f"{out}{part}"
    return out


def split_gcs(uri: str) -> tuple[str, str]:
    """``gs://bucket/a/b`` -> (``bucket``, ``a/b``)."""
    if not is_gcs(uri):
        raise StorageError(f"not a gs:// URI: {uri!r}")
    rest = uri[len(GCS_SCHEME) :]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise StorageError(f"gs:// URI without a bucket: {uri!r}")
    return bucket, key


def parent(uri: str) -> str:
    uri = str(uri).rstrip("/")
    return uri.rsplit("/", 1)[0] if "/" in uri else "."


def basename(uri: str) -> str:
    return str(uri).rstrip("/").rsplit("/", 1)[-1]


# --------------------------------------------------------------------------------------------
# GCS client (lazy: importing this module must stay cheap)

_client = None


def gcs_client():
    """A process-wide client; anonymous against the emulator, default credentials otherwise."""
    global _client
    if _client is None:
        from google.cloud import storage

        if os.environ.get("STORAGE_EMULATOR_HOST"):
            from google.auth.credentials import AnonymousCredentials

            _client = storage.Client(
                project=os.environ.get("GOOGLE_CLOUD_PROJECT", "taml-local"),
                credentials=AnonymousCredentials(),
            )
        else:
            _client = storage.Client()
    return _client


def reset_gcs_client() -> None:
    """Forget the cached client (tests point STORAGE_EMULATOR_HOST at a new emulator)."""
    global _client
    _client = None


def _blob(uri: str):
    bucket, key = split_gcs(uri)
    return gcs_client().bucket(bucket).blob(key)


@contextlib.contextmanager
def _gcs_errors(uri: str) -> Iterator[None]:
    from google.api_core import exceptions as gexc

    try:
        yield
    except gexc.NotFound as e:
        raise FileNotFoundError(f"{uri}: not found") from e
    except gexc.PreconditionFailed as e:
        raise PreconditionFailed(f"{uri}: changed by someone else (generation precondition)") from e
    except gexc.GoogleAPICallError as e:
        raise StorageError(f"{uri}: {e}") from e


# --------------------------------------------------------------------------------------------
# Whole-file reads and writes


def exists(uri: str) -> bool:
    """True for an existing file, or a folder/prefix with at least one file under it."""
    if is_gcs(uri):
        if _blob(uri).exists():
            return True
        return bool(list_files(uri, limit=1))
    return Path(uri).exists()


def read_bytes(uri: str) -> bytes:
    if is_gcs(uri):
        with _gcs_errors(uri):
            return _blob(uri).download_as_bytes()
    try:
        return Path(uri).read_bytes()
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{uri}: not found") from e


def write_bytes(uri: str, data: bytes) -> None:
    """Write a whole file atomically: readers see the old content or the new, never a torn file."""
    if is_gcs(uri):
        with _gcs_errors(uri):
            _blob(uri).upload_from_string(data)
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_new(uri: str, data: bytes) -> None:
    """Create a file that must not exist yet; raises :class:`PreconditionFailed` if it does.

    Of two concurrent writers exactly one succeeds. GCS: ``ifGenerationMatch=0``. Local: the
    content is written aside and hard-linked into place, since ``link`` is create-only
    (``O_EXCL`` semantics) and, unlike ``open(O_EXCL)``, never shows a reader a half-written file.
    """
    if is_gcs(uri):
        with _gcs_errors(uri):
            _blob(uri).upload_from_string(data, if_generation_match=0)
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise PreconditionFailed(f"{uri}: already exists") from None
    finally:
        tmp.unlink(missing_ok=True)


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def write_text(uri: str, text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


def read_json(uri: str) -> Any:
    raw = read_bytes(uri)
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise StorageError(f"{uri}: not valid JSON ({e})") from e


def write_json(uri: str, obj: Any) -> None:
    write_text(uri, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def open_read(uri: str) -> Iterator[IO[bytes]]:
    """A streaming binary reader (no whole-file buffering on either backend)."""
    if is_gcs(uri):
        with _gcs_errors(uri), _blob(uri).open("rb") as f:
            yield f
        return
    try:
        f = open(uri, "rb")
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{uri}: not found") from e
    with f:
        yield f


@contextlib.contextmanager
def open_write(uri: str) -> Iterator[IO[bytes]]:
    """A streaming binary writer; the file appears only when the block exits without error."""
    if is_gcs(uri):
        buf = io.BytesIO()
        yield buf
        write_bytes(uri, buf.getvalue())
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            yield f
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# --------------------------------------------------------------------------------------------
# Listing, copying, deleting


def list_files(
    prefix: str, suffix: str | tuple[str, ...] | None = None, limit: int | None = None
) -> list[str]:
    """Every file under a folder/prefix, recursively, sorted; hidden and temporary files skipped."""
    suffixes = (suffix,) if isinstance(suffix, str) else suffix
    out: list[str] = []
    if is_gcs(prefix):
        bucket, key = split_gcs(prefix)
        key = key.rstrip("/") + "/" if key else ""
        with _gcs_errors(prefix):
            for blob in gcs_client().list_blobs(bucket, prefix=key):
                name = blob.name
                if name.endswith("/") or _hidden(name[len(key) :]):
                    continue
                if suffixes and not name.endswith(suffixes):
                    continue
                out.append(f"{GCS_SCHEME}{bucket}/{name}")
                if limit and len(out) >= limit:
                    break
        return sorted(out)
    root = Path(prefix)
    if root.is_file():
        return [str(root)]
    if not root.is_dir():
        return []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_tmp")))
        for name in sorted(filenames):
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if _hidden(rel) or (suffixes and not name.endswith(suffixes)):
                continue
            out.append(str(Path(dirpath) / name))
            if limit and len(out) >= limit:
                return sorted(out)
    return sorted(out)


def _hidden(rel: str) -> bool:
    return any(part.startswith((".", "_tmp")) for part in rel.split("/") if part)


def list_dirs(prefix: str) -> list[str]:
    """Immediate sub-folders of a folder (names only), sorted; temporary folders skipped."""
    if is_gcs(prefix):
        bucket, key = split_gcs(prefix)
        key = key.rstrip("/") + "/" if key else ""
        with _gcs_errors(prefix):
            it = gcs_client().list_blobs(bucket, prefix=key, delimiter="/")
            list(it)  # the prefixes are filled in only once the pages are consumed
            names = [p[len(key) :].rstrip("/") for p in it.prefixes]
    else:
        root = Path(prefix)
        names = [p.name for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    return sorted(n for n in names if not n.startswith((".", "_tmp")))


def copy(src: str, dst: str) -> None:
    if is_gcs(src) and is_gcs(dst):
        sb, sk = split_gcs(src)
        db, dk = split_gcs(dst)
        client = gcs_client()
        with _gcs_errors(src):
            client.bucket(sb).copy_blob(client.bucket(sb).blob(sk), client.bucket(db), dk)
        return
    if not is_gcs(src) and not is_gcs(dst):
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        return
    with open_read(src) as r, open_write(dst) as w:
        shutil.copyfileobj(r, w, 1 << 20)


def delete(uri: str, recursive: bool = False) -> int:
    """Delete a file, or (recursive) everything under a folder; returns how many files went."""
    if is_gcs(uri):
        blob = _blob(uri)
        n = 0
        if blob.exists():
            blob.delete()
            n += 1
        if recursive:
            for f in list_files_raw_gcs(uri):
                with contextlib.suppress(FileNotFoundError), _gcs_errors(f):
                    _blob(f).delete()
                    n += 1
        return n
    path = Path(uri)
    if path.is_dir():
        if not recursive:
            raise StorageError(f"{uri}: is a folder (pass recursive=True)")
        n = sum(len(files) for _, _, files in os.walk(path))
        shutil.rmtree(path)
        return n
    if path.exists():
        path.unlink()
        return 1
    return 0


def list_files_raw_gcs(prefix: str) -> list[str]:
    """Every object under a prefix, temporary ones included (for deletes and publishes)."""
    bucket, key = split_gcs(prefix)
    key = key.rstrip("/") + "/" if key else ""
    return [f"{GCS_SCHEME}{bucket}/{b.name}" for b in gcs_client().list_blobs(bucket, prefix=key)]


def makedirs(uri: str) -> None:
    if not is_gcs(uri):
        Path(uri).mkdir(parents=True, exist_ok=True)


# --------------------------------------------------------------------------------------------
# Publishing a folder whole


def staging_dir(final_uri: str) -> str:
    """A fresh sibling folder to write a new version of ``final_uri`` into.

    Its name starts with ``_tmp`` so listings here, Beam, pyarrow datasets and DuckDB globs of
    the parent all skip it until it is published.
    """
    return join(parent(final_uri), f"_tmp.{basename(final_uri)}.{uuid.uuid4().hex[:12]}")


def publish_dir(staging_uri: str, final_uri: str) -> None:
    """Replace the folder ``final_uri`` with ``staging_uri`` whole.

    Local: two renames (the old folder is moved aside, the new one moved in, the old one
    deleted); a crash between them is repaired by :func:`recover_dir`, which every publish
    calls first. GCS has no folder rename: objects are copied in, stale ones deleted, and
    callers mark completion with a file written last (e.g. the ingest manifest).
    """
    if is_gcs(staging_uri) != is_gcs(final_uri):
        raise StorageError(f"cannot publish {staging_uri} to {final_uri}: different backends")
    if is_gcs(final_uri):
        new = {f[len(staging_uri.rstrip("/")) + 1 :] for f in list_files_raw_gcs(staging_uri)}
        old = {f[len(final_uri.rstrip("/")) + 1 :] for f in list_files_raw_gcs(final_uri)}
        for rel in sorted(new):
            copy(join(staging_uri, rel), join(final_uri, rel))
        for rel in sorted(old - new):
            delete(join(final_uri, rel))
        delete(staging_uri, recursive=True)
        return
    recover_dir(final_uri)
    final = Path(final_uri)
    final.parent.mkdir(parents=True, exist_ok=True)
    aside = final.with_name(f"_tmp.{final.name}.old.{uuid.uuid4().hex[:12]}")
    if final.exists():
        os.rename(final, aside)
    os.rename(staging_uri, final)
    if aside.exists():
        shutil.rmtree(aside)


def recover_dir(final_uri: str) -> None:
    """Undo a publish that died between its two renames, so the old version reappears."""
    if is_gcs(final_uri):
        return
    final = Path(final_uri)
    if not final.parent.is_dir():
        return
    olds = sorted(final.parent.glob(f"_tmp.{final.name}.old.*"))
    if not final.exists() and olds:
        os.rename(olds[-1], final)
        olds = olds[:-1]
    for old in olds:
        shutil.rmtree(old, ignore_errors=True)


def discard_dir(uri: str) -> None:
    """Remove a staging folder that will not be published (best effort)."""
    with contextlib.suppress(FileNotFoundError, StorageError):
        delete(uri, recursive=True)


# --------------------------------------------------------------------------------------------
# Compare-and-swap of small files (aliases such as registry/production.json)


@dataclass(frozen=True)
class Versioned:
    data: bytes | None  # None: the file does not exist
    generation: str  # opaque; "0" means "does not exist"


def read_versioned(uri: str) -> Versioned:
    if is_gcs(uri):
        bucket, key = split_gcs(uri)
        with _gcs_errors(uri):
            blob = gcs_client().bucket(bucket).get_blob(key)
        if blob is None:
            return Versioned(None, "0")
        generation = blob.generation
        try:
            with _gcs_errors(uri):
                # Pinned to the generation just read, so data and token always agree.
                data = blob.download_as_bytes(if_generation_match=generation)
        except (FileNotFoundError, PreconditionFailed):
            return read_versioned(uri)
        return Versioned(data, str(generation))
    path = Path(uri)
    try:
        st = path.stat()
        data = path.read_bytes()
    except FileNotFoundError:
        return Versioned(None, "0")
    # Every write_bytes creates a new inode (write aside + rename), so the inode names a version.
    return Versioned(data, f"{st.st_ino}-{st.st_mtime_ns}")


def write_if_generation(uri: str, data: bytes, expected_generation: str) -> None:
    """Write only if the file is still at ``expected_generation`` ("0": only if absent).

    GCS: ``if_generation_match`` makes the service decide, so two writers can never both win.
    Local: a lock file serialises writers on this host; inside it the version is re-checked.
    """
    if is_gcs(uri):
        with _gcs_errors(uri):
            _blob(uri).upload_from_string(data, if_generation_match=int(expected_generation))
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(f".{path.name}.lock")
    with open(lock_path, "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if read_versioned(uri).generation != expected_generation:
                raise PreconditionFailed(f"{uri}: changed by someone else since it was read")
            write_bytes(uri, data)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------
# Handing paths to other libraries


def emulator_endpoint() -> str | None:
    return os.environ.get("STORAGE_EMULATOR_HOST") or None


def fsspec_options(uri: str) -> dict[str, Any]:
    """``storage_options`` for pandas/fsspec on this URI (emulator-aware)."""
    if not is_gcs(uri):
        return {}
    endpoint = emulator_endpoint()
    if endpoint:
        # Without this gcsfs probes for hierarchical namespaces and hangs 60 s per bucket.
        os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
        return {"token": "anon", "endpoint_url": endpoint}
    return {}


def pyarrow_filesystem(uri: str):
    """(pyarrow FileSystem, path) for reading/writing parquet and datasets at ``uri``."""
    import pyarrow.fs as pafs

    if not is_gcs(uri):
        return pafs.LocalFileSystem(), str(Path(uri).absolute())
    endpoint = emulator_endpoint()
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        fs = pafs.GcsFileSystem(anonymous=True, endpoint_override=host, scheme=scheme or "http")
    else:
        fs = pafs.GcsFileSystem()
    return fs, uri[len(GCS_SCHEME) :]


def local_path(uri: str) -> Path:
    """The local ``Path`` for ``uri``; a clear error for a remote one."""
    if is_gcs(uri):
        raise StorageError(f"{uri}: a local path is needed here")
    return Path(uri)
