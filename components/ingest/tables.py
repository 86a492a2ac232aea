"""Small helpers shared by the transforms: Arrow IPC bytes, string-id shards, parquet via Beam."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def to_ipc(table: pa.Table) -> bytes:
    """Tables cross Beam stages as Arrow IPC bytes: cheap for any coder, any runner."""
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue()


def from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def string_shard(values: pa.Array | pa.ChunkedArray, shards: int) -> np.ndarray:
    """A stable hash shard of each string, computed over the Arrow buffers with numpy.

    Stable across processes and machines (unlike Python's ``hash``), so an impression and its
    clicks meet in the same shard on any worker. It mixes the length, the first 8 and the last
    16 bytes of each string (ids carry their entropy there; a collision only costs balance,
    never correctness, since equal strings always land together).
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    values = values.cast(pa.large_string())
    n = len(values)
    if n == 0:
        return np.zeros(0, np.int64)
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)[values.offset : values.offset + n + 1]
    buf = values.buffers()[2]
    data = np.frombuffer(buf, dtype=np.uint8) if buf is not None and buf.size else np.zeros(1, np.uint8)
    starts, ends = offsets[:-1], offsets[1:]
    lens = (ends - starts).astype(np.uint64)

    head = np.zeros(n, np.uint64)
    tail0 = np.zeros(n, np.uint64)
    tail1 = np.zeros(n, np.uint64)
    long = (ends - starts) >= 16
    if long.any():
        # Unaligned 8-byte words straight from the buffer: a sliding-window view, no copies
        # until the rows are picked.
        words = np.lib.stride_tricks.sliding_window_view(data, 8)
        for out, at in ((head, starts), (tail0, ends - 16), (tail1, ends - 8)):
            out[long] = np.ascontiguousarray(words[at[long]]).view(np.uint64)[:, 0]
    short = np.flatnonzero(~long)
    if len(short):
        # Shorter strings: only their own bytes count (a neighbour's would make the hash depend
        # on the array), padded with zeros.
        s0, e0 = starts[short], ends[short]
        for out, first, width in ((head, s0, 8), (tail0, e0 - 16, 8), (tail1, e0 - 8, 8)):
            pos = first[:, None] + np.arange(width)
            inside = (pos >= s0[:, None]) & (pos < e0[:, None])
            got = np.where(inside, data[np.clip(pos, 0, len(data) - 1)], 0).astype(np.uint8)
            out[short] = np.ascontiguousarray(got).view(np.uint64)[:, 0]

    with np.errstate(over="ignore"):
        h = lens * np.uint64(0x9E3779B97F4A7C15)
        for part in (head, tail0, tail1):
            h = _mix(h ^ part)
    return (h % np.uint64(shards)).astype(np.int64)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (wrapping uint64 arithmetic)."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def split_by_shard(table: pa.Table, shard: np.ndarray) -> list[tuple[int, pa.Table]]:
    if table.num_rows == 0:
        return []
    order = np.argsort(shard, kind="stable")
    s = shard[order]
    cut = np.flatnonzero(np.diff(s)) + 1
    bounds = np.concatenate([[0], cut, [len(s)]])
    taken = table.take(pa.array(order))
    return [
        (int(s[a]), taken.slice(int(a), int(b - a))) for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def write_parquet(path: str, table: pa.Table) -> None:
    """Write through Beam's filesystems (local, gs://, any registered scheme)."""
    from apache_beam.io.filesystems import FileSystems

    f = FileSystems.create(path)
    try:
        pq.write_table(table, f, compression="zstd")
    finally:
        f.close()


def read_parquet(path: str, columns: list[str] | None = None) -> pa.Table:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as f:
        return pq.read_table(pa.py_buffer(f.read()), columns=columns)
