"""Reading raw files through Beam's filesystems, in blocks of whole lines.

Compression is sniffed from the first bytes (gzip magic), not trusted from the name, and
decompressed here with zlib rather than by Beam so that a damaged or truncated stream is
detected: a file that cannot be read to its end stops the run with a :class:`CorruptFileError`
naming it (the lines lost in a damaged stream cannot be counted, so they cannot be
dead-lettered either).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import zlib
from collections.abc import Callable, Iterator
from typing import IO

import pyarrow as pa

from components.ingest.errors import CorruptFileError
from components.ingest.files import sniff
from components.ingest.parse import (
    LINE_TOO_LONG,
    Block,
    Dead,
    Parsed,
    good_schema,
    parse_block,
    too_long_detail,
)
from components.ingest.schema import SourceSpec
from components.ingest.splitter import LongLine, split_stream

_GZIP_MAGIC = b"\x1f\x8b"
_READ = 1 << 20

Opener = Callable[[str], contextlib.AbstractContextManager[IO[bytes]]]


@contextlib.contextmanager
def beam_open(path: str) -> Iterator[IO[bytes]]:
    """Open through ``apache_beam.io.filesystems`` (local, gs://, and any registered scheme)."""
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    try:
        f = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    except Exception as e:  # Beam raises BeamIOError / IOError flavours per filesystem
        raise CorruptFileError(f"{path}: cannot open ({e})") from e
    try:
        yield f
    finally:
        f.close()


def iter_bytes(path: str, opener: Opener = beam_open, chunk: int = _READ) -> Iterator[bytes]:
    """Decompressed bytes of a file, in chunks; raises CorruptFileError on a damaged gzip stream."""
    with opener(path) as f:
        head = f.read(chunk)
        if not head.startswith(_GZIP_MAGIC):
            sniff(path, head)
            if path.lower().endswith((".gz", ".gzip")) and head:
                raise CorruptFileError(f"{path}: named .gz but is not a gzip file")
            while head:
                yield head
                head = f.read(chunk)
            return
        d = zlib.decompressobj(wbits=31)
        data = head
        produced = 0
        while True:
            if not data:
                data = f.read(chunk)
                if not data:
                    break
            try:
                # Bounded output: a highly compressible long line must not inflate in one piece.
                out = d.decompress(data, chunk)
            except zlib.error as e:
                raise CorruptFileError(
                    f"{path}: damaged gzip stream after {produced} decompressed bytes ({e}); "
                    "fix or remove the file and re-run"
                ) from e
            produced += len(out)
            if out:
                yield out
            data = d.unconsumed_tail
            if d.eof:
                # Concatenated gzip members are legal (e.g. appended uploads): start the next one.
                rest = d.unused_data
                if not rest:
                    rest = f.read(chunk)
                    if not rest:
                        return
                if not rest.startswith(_GZIP_MAGIC):
                    raise CorruptFileError(f"{path}: trailing bytes after the gzip stream are not gzip")
                d = zlib.decompressobj(wbits=31)
                data = rest
        tail = d.flush()
        if tail:
            yield tail
        raise CorruptFileError(
            f"{path}: gzip stream truncated after {produced} decompressed bytes "
            "(an incomplete upload?); fix or remove the file and re-run"
        )


def iter_blocks(
    path: str, block_bytes: int, max_line_bytes: int, keep_bytes: int, opener: Opener = beam_open
) -> Iterator[Block | LongLine]:
    """Blocks of whole lines (about ``block_bytes`` each) and too-long lines, numbered from line 1."""
    return split_stream(iter_bytes(path, opener), block_bytes, max_line_bytes, keep_bytes)


def parse_file(
    path: str,
    spec: SourceSpec,
    day: dt.date,
    max_line_bytes: int,
    block_bytes: int,
    keep_bytes: int,
    opener: Opener = beam_open,
) -> Parsed:
    """Every line of one file classified; valid rows concatenated in line order."""
    goods: list[pa.Table] = []
    dead = Dead()
    n = 0
    for item in iter_blocks(path, block_bytes, max_line_bytes, keep_bytes, opener):
        if isinstance(item, LongLine):
            n += 1
            dead.add(
                item.line,
                LINE_TOO_LONG,
                too_long_detail(item.length, max_line_bytes, len(item.prefix)),
                item.prefix,
            )
            continue
        p = parse_block(item, spec, day, max_line_bytes, keep_bytes)
        n += p.n_lines
        if p.good.num_rows:
            goods.append(p.good)
        dead.extend(p.dead)
    good = pa.concat_tables(goods) if goods else good_schema(spec).empty_table()
    return Parsed(good, dead, n)


def pick_lines(
    path: str,
    wanted: set[int],
    block_bytes: int,
    max_line_bytes: int,
    keep_bytes: int,
    opener: Opener = beam_open,
) -> dict[int, bytes]:
    """The raw bytes of the given 1-based line numbers of a file (for dead letters decided late)."""
    out: dict[int, bytes] = {}
    if not wanted:
        return out
    top = max(wanted)
    for item in iter_blocks(path, block_bytes, max_line_bytes, keep_bytes, opener):
        if isinstance(item, LongLine):
            if item.line in wanted:
                out[item.line] = item.prefix
            lo, hi = item.line, item.line + 1
        else:
            lo, hi = item.first_line, item.first_line + item.n
            for ln in [w for w in wanted if lo <= w < hi]:
                out[ln] = item.raw(ln - lo)
        if hi > top:
            break
    return out


def local_open(path: str):
    """An opener for plain local paths (tests, the baseline)."""
    return open(path, "rb")
