"""Files under local paths and ``gs://`` URIs, with one API for every step, on fsspec.

Reads, listings, copies and deletes go through an fsspec filesystem: the local one, or one
process-wide ``gcsfs`` instance for ``gs://`` (anonymous against ``STORAGE_EMULATOR_HOST`` in
tests, default credentials otherwise); so do GCS writes and GCS parquet datasets. pandas given
:func:`fsspec_options` and pyarrow given :func:`pyarrow_filesystem` reach that same instance: the
project holds one GCS client. Local parquet uses pyarrow's own local filesystem (no client).

What fsspec lacks is all this module adds: atomic replacement on local disk (a file or a whole
folder written aside, then renamed; fsspec's local writes land in place), create-only writes,
and the generation-checked write of small alias files (a compare-and-swap: a local lock, or
GCS's ``ifGenerationMatch``, which gcsfs exposes only as "must not exist").
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from taml.core import shims

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
# The filesystems (lazy: importing this module must stay cheap)


def emulator_endpoint() -> str | None:
    return os.environ.get("STORAGE_EMULATOR_HOST") or None


def _gcs_options() -> dict[str, Any]:
    # Listings are never cached: other processes (Beam workers, KFP tasks) write the same bucket.
    options: dict[str, Any] = {"use_listings_cache": False}
    endpoint = emulator_endpoint()
    if endpoint:
        shims.gcsfs_emulator_environment()
        options.update(token="anon", endpoint_url=endpoint)
    return options


def gcs_filesystem():
    """The process-wide gcsfs instance (fsspec's instance cache keys it on :func:`fsspec_options`)."""
    options = _gcs_options()
    import fsspec

    return fsspec.filesystem("gs", **options)


def _local_fs():
    import fsspec

    return fsspec.filesystem("file")


def filesystem(uri: str):
    """(fsspec filesystem, the path it names ``uri`` by)."""
    if is_gcs(uri):
        split_gcs(uri)
        return gcs_filesystem(), uri[len(GCS_SCHEME) :]
    import fsspec.core

    return _local_fs(), fsspec.core.strip_protocol(str(uri))


@contextlib.contextmanager
def _errors(uri: str) -> Iterator[None]:
    try:
        yield
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{uri}: not found") from e
    except FileExistsError as e:  # gcsfs: HTTP 412, a generation precondition not met
        raise PreconditionFailed(f"{uri}: changed by someone else (generation precondition)") from e
    except (OSError, ValueError) as e:
        raise StorageError(f"{uri}: {e}") from e
    except Exception as e:
        retry = sys.modules.get("gcsfs.retry")  # imported only once GCS was used
        if retry is not None and isinstance(e, retry.HttpError):
            raise StorageError(f"{uri}: {e}") from e
        raise


# --------------------------------------------------------------------------------------------
# Whole-file reads and writes


def exists(uri: str) -> bool:
    """True for an existing file, or a folder/prefix with at least one file under it."""
    fs, path = filesystem(uri)
    with _errors(uri):
        return fs.exists(path)


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    with _errors(uri):
        return fs.cat_file(path)


def write_bytes(uri: str, data: bytes) -> None:
    """Write a whole file atomically: readers see the old content or the new, never a torn file."""
    if is_gcs(uri):
        fs, path = filesystem(uri)
        with _errors(uri):
            fs.pipe_file(path, data)
        return
    with _local_aside(uri) as (tmp, path):
        _write_local_tmp(tmp, data)
        os.replace(tmp, path)


@contextlib.contextmanager
def _local_aside(uri: str) -> Iterator[tuple[Path, Path]]:
    """A temporary sibling of ``uri`` (same folder, so a rename is atomic); yields (temporary, final).

    The temporary never stays behind."""
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp, path
    finally:
        tmp.unlink(missing_ok=True)


def _write_local_tmp(tmp: Path, data: bytes) -> None:
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_new(uri: str, data: bytes) -> None:
    """Create a file that must not exist yet; raises :class:`PreconditionFailed` if it does.

    Of two concurrent writers exactly one succeeds. GCS: ``ifGenerationMatch=0``. Local: the
    content is written aside and hard-linked into place, since ``link`` is create-only
    (``O_EXCL`` semantics) and, unlike ``open(O_EXCL)``, never shows a reader a half-written file.
    """
    if is_gcs(uri):
        fs, path = filesystem(uri)
        with _errors(uri):
            fs.pipe_file(path, data, mode="create")
        return
    with _local_aside(uri) as (tmp, path):
        _write_local_tmp(tmp, data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise PreconditionFailed(f"{uri}: already exists") from None


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
    fs, path = filesystem(uri)
    # gcsfs's default "adaptive" cache starts background prefetch tasks that outlive a short read.
    options = {"cache_type": "readahead"} if is_gcs(uri) else {}
    with _errors(uri):
        f = fs.open(path, "rb", **options)
    with f:
        yield f


@contextlib.contextmanager
def open_write(uri: str) -> Iterator[IO[bytes]]:
    """A streaming binary writer; the file appears only when the block exits without error."""
    if is_gcs(uri):
        fs, path = filesystem(uri)
        with _errors(uri):
            f = fs.open(path, "wb")
        try:
            yield f
        except BaseException:
            # Cancel the upload: closing would commit what was written so far.
            with contextlib.suppress(Exception):
                f.discard()
            f.closed = True
            raise
        with _errors(uri):
            f.close()
        return
    with _local_aside(uri) as (tmp, path):
        with open(tmp, "wb") as f:
            yield f
        os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# Listing, copying, deleting


def _find(prefix: str) -> list[tuple[str, str]]:
    """(uri, path relative to ``prefix``) of every object under a folder/prefix, temporary included."""
    fs, path = filesystem(prefix)
    base = path.rstrip("/")
    with _errors(prefix):
        try:
            found = fs.find(base, withdirs=False)
        except FileNotFoundError:
            return []
    out = []
    for f in found:
        if f.startswith(base + "/"):
            rel = f[len(base) + 1 :]
            out.append((join(prefix, rel) if is_gcs(prefix) else str(Path(prefix) / rel), rel))
    return out


def list_files(
    prefix: str, suffix: str | tuple[str, ...] | None = None, limit: int | None = None
) -> list[str]:
    """Every file under a folder/prefix, recursively, sorted; hidden and temporary files skipped.

    A file given as the prefix lists as itself.
    """
    suffixes = (suffix,) if isinstance(suffix, str) else suffix
    fs, path = filesystem(prefix)
    with _errors(prefix):
        if fs.isfile(path):
            return [prefix if is_gcs(prefix) else str(Path(prefix))]
    out = sorted(
        uri
        for uri, rel in _find(prefix)
        if not _hidden(rel) and not (suffixes and not rel.endswith(suffixes))
    )
    return out[:limit] if limit else out


def _hidden(rel: str) -> bool:
    return any(part.startswith((".", "_tmp")) for part in rel.split("/") if part)


def list_dirs(prefix: str) -> list[str]:
    """Immediate sub-folders of a folder (names only), sorted; temporary folders skipped."""
    fs, path = filesystem(prefix)
    with _errors(prefix):
        try:
            entries = fs.ls(path.rstrip("/"), detail=True)
        except FileNotFoundError:
            return []
    names = [basename(e["name"]) for e in entries if e.get("type") == "directory"]
    return sorted(n for n in names if n and not n.startswith((".", "_tmp")))


def copy(src: str, dst: str) -> None:
    if is_gcs(src) and is_gcs(dst):
        fs, sp = filesystem(src)
        with _errors(src):
            fs.copy(sp, filesystem(dst)[1])
        return
    with open_read(src) as r, open_write(dst) as w:
        shutil.copyfileobj(r, w, 1 << 20)


def delete(uri: str, recursive: bool = False) -> int:
    """Delete a file, or (recursive) everything under a folder; returns how many files went."""
    fs, path = filesystem(uri)
    with _errors(uri):
        if not is_gcs(uri) and fs.isdir(path):
            if not recursive:
                raise StorageError(f"{uri}: is a folder (pass recursive=True)")
            n = len(_find(uri))
            fs.rm(path, recursive=True)
            return n
        doomed = [path] if fs.isfile(path) else []
        if recursive and is_gcs(uri):
            doomed += [filesystem(u)[1] for u, _ in _find(uri)]
        if doomed:
            fs.rm(doomed)
    return len(doomed)


def list_files_raw_gcs(prefix: str) -> list[str]:
    """Every object under a prefix, temporary ones included (for deletes and publishes)."""
    split_gcs(prefix)
    return [uri for uri, _ in _find(prefix)]


def makedirs(uri: str) -> None:
    if not is_gcs(uri):
        Path(uri).mkdir(parents=True, exist_ok=True)


# --------------------------------------------------------------------------------------------
# Publishing a folder whole (fsspec has no atomic folder swap)


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
        new = {rel for _, rel in _find(staging_uri)}
        old = {rel for _, rel in _find(final_uri)}
        fs = gcs_filesystem()
        if new:
            rels = sorted(new)
            with _errors(final_uri):
                fs.copy(
                    [filesystem(join(staging_uri, r))[1] for r in rels],
                    [filesystem(join(final_uri, r))[1] for r in rels],
                )
        stale = [filesystem(join(final_uri, r))[1] for r in sorted(old - new)]
        if stale:
            with _errors(final_uri):
                fs.rm(stale)
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
        fs, path = filesystem(uri)
        while True:
            try:
                with _errors(uri):
                    info = fs.info(path)
            except FileNotFoundError:
                return Versioned(None, "0")
            if info.get("type") != "file":
                return Versioned(None, "0")
            generation = str(info["generation"])
            try:
                with _errors(uri):
                    # Pinned to the generation just read, so data and token always agree.
                    data = fs.cat_file(path, generation=generation)
            except FileNotFoundError:
                continue  # replaced between the two calls: read the new one
            return Versioned(data, generation)
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

    GCS: ``ifGenerationMatch`` makes the service decide, so two writers can never both win
    (gcsfs exposes only "must not exist"; this is the same upload call with a generation).
    Local: a lock file serialises writers on this host; inside it the version is re-checked.
    """
    if is_gcs(uri):
        fs, _ = filesystem(uri)
        bucket, key = split_gcs(uri)
        with _errors(uri):
            shims.gcsfs_upload_if_generation(fs, bucket, key, data, expected_generation)
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


def fsspec_options(uri: str) -> dict[str, Any]:
    """``storage_options`` for pandas/fsspec on this URI: they resolve to this module's instance."""
    return _gcs_options() if is_gcs(uri) else {}


def pyarrow_filesystem(uri: str):
    """(pyarrow FileSystem, path) for reading/writing parquet and datasets at ``uri``.

    GCS: the gcsfs instance behind pyarrow's fsspec handler (no second client); local: pyarrow's
    own local filesystem (no client at all, and the fastest path for big local datasets).
    """
    import pyarrow.fs as pafs

    if not is_gcs(uri):
        return pafs.LocalFileSystem(), str(Path(uri).absolute())
    fs, path = filesystem(uri)
    return pafs.PyFileSystem(_readahead_handler()(fs)), path


def read_parquet_files(uri: str):
    """Every parquet file under a folder (``list_files``: hidden and staging files left out) as one
    ``pyarrow.Table``, schemas unified permissively; None when there is none."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = list_files(uri, suffix=".parquet")
    if not files:
        return None
    tables = [pq.read_table(path, filesystem=fs) for fs, path in map(pyarrow_filesystem, files)]
    return pa.concat_tables(tables, promote_options="permissive")


@functools.cache
def _readahead_handler() -> type:
    import pyarrow as pa
    import pyarrow.fs as pafs

    class ReadaheadHandler(pafs.FSSpecHandler):
        """pyarrow's fsspec handler, opening files with a plain read-ahead cache (see open_read)."""

        def open_input_stream(self, path):
            if not self.fs.isfile(path):
                raise FileNotFoundError(path)
            return pa.PythonFile(self.fs.open(path, mode="rb", cache_type="readahead"), mode="r")

        open_input_file = open_input_stream

    return ReadaheadHandler


def local_path(uri: str) -> Path:
    """The local ``Path`` for ``uri``; a clear error for a remote one."""
    if is_gcs(uri):
        raise StorageError(f"{uri}: a local path is needed here")
    return Path(uri)
