"""Storage against the local disk and a real GCS emulator: the same behaviour on both."""

import os
import threading
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taml.core import storage


@pytest.fixture(params=["local", "gcs"])
def root(request, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "root")
    return request.getfixturevalue("gcs_root")


def test_write_read_roundtrip(root):
    storage.write_bytes(storage.join(root, "a", "x.bin"), b"\x00\x01")
    storage.write_text(storage.join(root, "a", "y.txt"), "héllo")
    storage.write_json(storage.join(root, "b", "z.json"), {"k": [1, 2]})
    assert storage.read_bytes(storage.join(root, "a", "x.bin")) == b"\x00\x01"
    assert storage.read_text(storage.join(root, "a", "y.txt")) == "héllo"
    assert storage.read_json(storage.join(root, "b", "z.json")) == {"k": [1, 2]}
    with storage.open_read(storage.join(root, "a", "y.txt")) as f:
        assert f.read() == "héllo".encode()
    with storage.open_write(storage.join(root, "c", "w.bin")) as f:
        f.write(b"streamed")
    assert storage.read_bytes(storage.join(root, "c", "w.bin")) == b"streamed"


def test_missing_file_error_names_the_uri(root):
    uri = storage.join(root, "nope.txt")
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        storage.read_bytes(uri)
    assert not storage.exists(uri)


def test_bad_json_error_names_the_uri(root):
    uri = storage.join(root, "bad.json")
    storage.write_text(uri, "{not json")
    with pytest.raises(storage.StorageError, match="bad.json: not valid JSON"):
        storage.read_json(uri)


def test_list_files_recursive_sorted_and_filtered(root):
    for rel in ["d/dt=2/b.jsonl", "d/dt=1/a.jsonl", "d/dt=1/c.parquet", "d/_tmp.x/hidden.jsonl", "d/.h"]:
        storage.write_text(storage.join(root, rel), "x")
    files = storage.list_files(storage.join(root, "d"))
    assert [f.split("/d/")[1] for f in files] == ["dt=1/a.jsonl", "dt=1/c.parquet", "dt=2/b.jsonl"]
    assert [f.split("/d/")[1] for f in storage.list_files(storage.join(root, "d"), suffix=".jsonl")] == [
        "dt=1/a.jsonl",
        "dt=2/b.jsonl",
    ]
    assert storage.list_dirs(storage.join(root, "d")) == ["dt=1", "dt=2"]
    assert storage.exists(storage.join(root, "d", "dt=1"))
    assert storage.list_files(storage.join(root, "empty")) == []


def test_copy_and_delete(root, tmp_path):
    src = storage.join(root, "src", "f.txt")
    storage.write_text(src, "data")
    storage.copy(src, storage.join(root, "dst", "f.txt"))
    local = str(tmp_path / "local" / "f.txt")
    storage.copy(src, local)  # across backends when root is gs://
    assert Path(local).read_text() == "data"
    assert storage.read_text(storage.join(root, "dst", "f.txt")) == "data"
    assert storage.delete(storage.join(root, "src"), recursive=True) == 1
    assert not storage.exists(src)


def test_publish_dir_replaces_the_folder_whole(root):
    final = storage.join(root, "curated", "samples", "dt=2026-11-01")
    storage.write_text(storage.join(final, "old-1.parquet"), "old")
    storage.write_text(storage.join(final, "old-2.parquet"), "old")
    staging = storage.staging_dir(final)
    assert storage.basename(staging).startswith("_tmp.")
    storage.write_text(storage.join(staging, "new.parquet"), "new")
    # Readers of the parent never see the staging folder.
    assert storage.list_dirs(storage.join(root, "curated", "samples")) == ["dt=2026-11-01"]
    storage.publish_dir(staging, final)
    assert [storage.basename(f) for f in storage.list_files(final)] == ["new.parquet"]
    assert storage.read_text(storage.join(final, "new.parquet")) == "new"
    assert not storage.exists(staging)


def test_recover_dir_after_a_crash_between_the_two_renames(tmp_path):
    final = tmp_path / "dt=1"
    (final).mkdir()
    (final / "a.parquet").write_text("previous")
    aside = tmp_path / "_tmp.dt=1.old.deadbeef"
    final.rename(aside)  # the crash: old moved aside, new never moved in
    storage.recover_dir(str(final))
    assert (final / "a.parquet").read_text() == "previous"
    assert not aside.exists()


def test_compare_and_swap(root):
    uri = storage.join(root, "registry", "production.json")
    first = storage.read_versioned(uri)
    assert first.data is None and first.generation == "0"
    storage.write_if_generation(uri, b"v1", "0")
    with pytest.raises(storage.PreconditionFailed):
        storage.write_if_generation(uri, b"again", "0")
    current = storage.read_versioned(uri)
    assert current.data == b"v1"
    storage.write_if_generation(uri, b"v2", current.generation)
    with pytest.raises(storage.PreconditionFailed):
        storage.write_if_generation(uri, b"stale", current.generation)
    assert storage.read_bytes(uri) == b"v2"


def test_concurrent_swaps_exactly_one_wins(root):
    uri = storage.join(root, "alias.json")
    storage.write_if_generation(uri, b"base", "0")
    seen = storage.read_versioned(uri).generation
    barrier = threading.Barrier(4)
    wins, losses = [], []

    def promote(i: int) -> None:
        barrier.wait()
        try:
            storage.write_if_generation(uri, f"v{i}".encode(), seen)
            wins.append(i)
        except storage.PreconditionFailed:
            losses.append(i)

    threads = [threading.Thread(target=promote, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(losses) == 3
    assert storage.read_bytes(uri) == f"v{wins[0]}".encode()


def test_parquet_through_pyarrow_and_pandas(root):
    uri = storage.join(root, "t", "part-0.parquet")
    storage.makedirs(storage.parent(uri))
    fs, path = storage.pyarrow_filesystem(uri)
    pq.write_table(pa.table({"a": [1, 2, 3]}), path, filesystem=fs)
    assert pq.read_table(path, filesystem=fs).column("a").to_pylist() == [1, 2, 3]
    df = pd.read_parquet(uri, storage_options=storage.fsspec_options(uri) or None)
    assert df["a"].tolist() == [1, 2, 3]


def test_join_and_split():
    assert storage.join("gs://b/p/", "x", "/y/") == "gs://b/p/x/y"
    assert storage.join("/tmp", "a") == "/tmp/a"
    assert storage.split_gcs("gs://bucket/a/b") == ("bucket", "a/b")
    with pytest.raises(storage.StorageError):
        storage.split_gcs("gs://")


def test_a_failed_streaming_write_leaves_nothing(root):
    uri = storage.join(root, "w", "half.bin")
    with pytest.raises(RuntimeError, match="boom"), storage.open_write(uri) as f:
        f.write(b"x" * 1000)
        raise RuntimeError("boom")
    assert not storage.exists(uri)
    assert (
        storage.list_files_raw_gcs(root) == [] if storage.is_gcs(root) else not any(Path(root).rglob("*.bin"))
    )


def test_one_gcs_client_serves_storage_pandas_and_pyarrow(gcs_root, gcs_emulator):
    """Every gs:// access goes through one gcsfs instance: creating a google-cloud-storage client or
    a pyarrow GcsFileSystem fails in this fresh interpreter, and fsspec holds a single instance."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import fsspec, pandas as pd, pyarrow as pa, pyarrow.fs as pafs, pyarrow.parquet as pq
        from google.cloud import storage as gcs

        def refuse(*args, **kwargs):
            raise AssertionError("a second GCS client was created")

        gcs.Client.__init__ = refuse
        pafs.GcsFileSystem = refuse
        from taml.core import storage

        root = {gcs_root!r}
        storage.write_json(storage.join(root, "a.json"), {{"k": 1}})
        assert storage.read_json(storage.join(root, "a.json")) == {{"k": 1}}
        storage.write_if_generation(storage.join(root, "alias"), b"v1", "0")
        assert storage.read_versioned(storage.join(root, "alias")).data == b"v1"
        uri = storage.join(root, "t", "part-0.parquet")
        fs, path = storage.pyarrow_filesystem(uri)
        pq.write_table(pa.table({{"a": [1, 2]}}), path, filesystem=fs)
        assert pd.read_parquet(uri, storage_options=storage.fsspec_options(uri))["a"].tolist() == [1, 2]
        assert storage.list_files(root) == sorted([storage.join(root, "a.json"), storage.join(root, "alias"), uri])
        instances = {{id(i) for i in type(storage.gcs_filesystem())._cache.values()}}
        assert len(instances) == 1, instances
        assert fsspec.filesystem("gs", **storage.fsspec_options(uri)) is storage.filesystem(uri)[0]
        print("ok")
        """
    )
    env = {**os.environ, "STORAGE_EMULATOR_HOST": gcs_emulator, "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_read_parquet_files_joins_a_folder_and_skips_hidden_files(root):
    folder = storage.join(root, "curated", "samples", "dt=2026-11-01")
    assert storage.read_parquet_files(folder) is None
    parts = {
        "part-0.parquet": pa.table({"a": [1, 2]}),
        "sub/part-1.parquet": pa.table({"a": [3], "b": ["x"]}),  # a later writer added a column
        "_tmp.part-2.parquet": pa.table({"a": [99]}),  # a writer's temporary file: not data yet
    }
    for name, table in parts.items():
        uri = storage.join(folder, name)
        storage.makedirs(storage.parent(uri))
        fs, path = storage.pyarrow_filesystem(uri)
        pq.write_table(table, path, filesystem=fs)
    got = storage.read_parquet_files(folder)
    assert got.column_names == ["a", "b"]
    assert sorted(zip(got["a"].to_pylist(), got["b"].to_pylist(), strict=True)) == [
        (1, None),
        (2, None),
        (3, "x"),
    ]
