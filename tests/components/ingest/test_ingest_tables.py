"""The shard hash: an id lands in the same shard whatever array, slice or chunking carries it."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from components.ingest.tables import from_ipc, split_by_shard, string_shard, to_ipc


def test_string_shard_is_a_function_of_the_string_only():
    ids = [
        "",
        "x",
        "short-7",
        "exactly-16-bytes",
        "20261101000000042",
        "é-ünïcode-ids-are-bytes-too",
        "a" * 100,
    ]
    alone = [int(string_shard(pa.array([i]), 64)[0]) for i in ids]
    together = string_shard(pa.array(ids), 64).tolist()
    chunked = string_shard(pa.chunked_array([ids[:3], ids[3:]]), 64).tolist()
    sliced = string_shard(pa.array(["pad"] + ids + ["pad"]).slice(1, len(ids)), 64).tolist()
    assert alone == together == chunked == sliced


def test_string_shard_balances_sequential_ids():
    counts = np.bincount(
        string_shard(pa.array([f"20261101{k:09d}" for k in range(160_000)]), 16), minlength=16
    )
    assert counts.min() > 0.9 * 10_000 and counts.max() < 1.1 * 10_000


def test_split_by_shard_and_ipc_round_trip():
    t = pa.table({"impression_id": [f"i{k}" for k in range(1000)], "v": list(range(1000))})
    parts = split_by_shard(t, string_shard(t["impression_id"], 8))
    assert sum(p.num_rows for _, p in parts) == 1000
    back = pa.concat_tables([from_ipc(to_ipc(p)) for _, p in parts]).sort_by("v")
    assert back.equals(t)
