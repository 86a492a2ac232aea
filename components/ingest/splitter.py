"""Cut a stream of decompressed chunks into blocks of whole lines, in linear time.

Every byte is copied a bounded number of times whatever the line lengths: chunks are kept as a
list and joined once, when a block of complete lines is cut. A line that grows past
``max_line_bytes`` before its newline arrives is never buffered: it becomes a :class:`LongLine`
(its length and a bounded prefix, for the dead letter) and the rest of it is skipped as it
streams by. (Keeping the unterminated tail as one bytes object re-copied at every block cost
quadratic time: a 256 MiB line in 8 MiB blocks copied ~33 GiB.)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from components.ingest.parse import Block, split_lines


@dataclass
class LongLine:
    """A line longer than the limit, dead-lettered as ``line_too_long`` without being held whole."""

    line: int  # 1-based
    length: int  # bytes without the newline
    prefix: bytes  # its first bytes (at most the configured keep size)


class LineSplitter:
    """Feed chunks, get :class:`Block` (whole lines, about ``block_bytes`` each) and :class:`LongLine`
    items in line order."""

    def __init__(self, block_bytes: int, max_line_bytes: int, keep_bytes: int, first_line: int = 1):
        self.block_bytes = block_bytes
        self.max_line_bytes = max_line_bytes
        self.keep_bytes = keep_bytes
        self.line = first_line
        self._parts: list[memoryview] = []  # not yet emitted; starts at a line start
        self._size = 0
        self._last_nl: tuple[int, int] | None = None  # (part index, offset) of the last newline
        self._tail = 0  # bytes after the last newline (the unterminated line so far)
        self._skip: LongLine | None = None  # the too-long line being skipped

    def feed(self, chunk: bytes) -> Iterator[Block | LongLine]:
        if self._skip is not None:
            i = chunk.find(b"\n")
            if i < 0:
                self._skip.length += len(chunk)
                return
            yield self._end_skip(i)
            chunk = chunk[i + 1 :]  # each chunk is sliced here at most once
            if not chunk:
                return
        j = chunk.rfind(b"\n")
        self._parts.append(memoryview(chunk))
        self._size += len(chunk)
        if j >= 0:
            self._last_nl = (len(self._parts) - 1, j)
            self._tail = len(chunk) - j - 1
        else:
            self._tail += len(chunk)
        if self._tail > self.max_line_bytes:
            yield from self._cut()
            self._skip = LongLine(self.line, self._tail, self._prefix())
            self._parts, self._size, self._tail, self._last_nl = [], 0, 0, None
        elif self._size >= self.block_bytes and self._last_nl is not None:
            yield from self._cut()

    def finish(self) -> Iterator[Block | LongLine]:
        if self._skip is not None:
            yield self._end_skip(0)
            return
        data = b"".join(self._parts)
        self._parts, self._size, self._tail, self._last_nl = [], 0, 0, None
        block, _ = split_lines(data, self.line, final=True)
        if block.n:
            self.line += block.n
            yield block

    def _end_skip(self, more: int) -> LongLine:
        item = self._skip
        assert item is not None
        item.length += more
        self._skip = None
        self.line += 1
        return item

    def _cut(self) -> Iterator[Block]:
        """Emit the complete lines held; keep the unterminated tail (as views, not copied)."""
        if self._last_nl is None:
            return
        k, off = self._last_nl
        head = [*self._parts[:k], self._parts[k][: off + 1]]
        rest = [self._parts[k][off + 1 :], *self._parts[k + 1 :]]
        self._parts = [p for p in rest if len(p)]
        self._size = sum(len(p) for p in self._parts)
        self._last_nl = None
        block, _ = split_lines(b"".join(head), self.line, final=False)
        if block.n:
            self.line += block.n
            yield block

    def _prefix(self) -> bytes:
        out, need = [], self.keep_bytes
        for p in self._parts:
            if need <= 0:
                break
            out.append(p[:need])
            need -= len(out[-1])
        return b"".join(out)


def split_stream(
    chunks: Iterable[bytes], block_bytes: int, max_line_bytes: int, keep_bytes: int
) -> Iterator[Block | LongLine]:
    """Blocks of whole lines and too-long lines of a stream of chunks, numbered from line 1."""
    s = LineSplitter(block_bytes, max_line_bytes, keep_bytes)
    for chunk in chunks:
        if chunk:
            yield from s.feed(chunk)
    yield from s.finish()
