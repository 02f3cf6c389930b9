"""Turn files or byte buffers into batches of decoded lines, losing nothing.

Handles gzip (including truncated streams), UTF-8, Shift_JIS (cp932) from Japanese
devices, CRLF line ends and oversized lines. Lines that cannot be decoded are returned
as quarantine rows with their line number and reason; the rest go to the parser in
``LineBatch`` frames. Line numbers are 1-based and count every line of the file.
"""

from __future__ import annotations

import gzip
import mmap
import os
import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import polars as pl

from mimamori.events.schema import QUARANTINE_SCHEMA, empty_quarantine

LINE = "log.file.line"
TEXT = "text"

#: Lines longer than this are quarantined rather than parsed.
MAX_LINE_BYTES = 1 << 20
#: Bytes per batch. Detectors that keep a window (beacons, scans, volume baselines)
#: re-evaluate it once per batch, so batches are large: about 150,000 Zeek conn lines.
BLOCK_BYTES = 64 << 20
#: What the reader splits: file bytes in memory or memory-mapped.
Buffer = bytes | mmap.mmap
_PRIVATE_USE = re.compile("[\ue000-\uf8ff]")


class LineBatch:
    """Decoded lines of one file: a frame with ``log.file.line`` (Int64) and ``text``.

    When the whole block was clean UTF-8 (no CR, no over-long line), ``raw`` holds its bytes
    without the final newline and ``first_line`` its first line number: JSON parsers can
    hand ``raw`` straight to Polars, and the line frame is only built if someone asks.
    Such a block also tells ``lead``, the byte every one of its lines begins with (None when
    they differ or a line is empty), and, when it is a block of a plain file on disk,
    ``file``: a path that opens that same file (``/proc/self/fd/N`` while the reader has it
    open) for parsers that read files themselves. A file's blocks come in order.
    """

    def __init__(
        self,
        path: str,
        lines: pl.DataFrame | None = None,
        quarantine: pl.DataFrame | None = None,
        *,
        raw: bytes | None = None,
        first_line: int = 1,
        n_lines: int | None = None,
        lead: int | None = None,
        file: str | None = None,
    ) -> None:
        if lines is None and raw is None:
            raise ValueError("LineBatch needs lines or raw bytes")
        self.path = path
        self._lines = lines
        self.quarantine = quarantine if quarantine is not None else empty_quarantine()
        self.raw = raw
        self.first_line = first_line
        self._n = n_lines
        self.lead = lead if raw is not None else None
        self.file = file if raw is not None else None

    @property
    def lines(self) -> pl.DataFrame:
        if self._lines is None:
            assert self.raw is not None
            series = pl.Series(TEXT, [self.raw], dtype=pl.Binary).cast(pl.String).str.split("\n").explode()
            self._lines = pl.DataFrame(
                {
                    LINE: pl.int_range(
                        self.first_line, self.first_line + series.len(), dtype=pl.Int64, eager=True
                    ),
                    TEXT: series,
                }
            )
        return self._lines

    @property
    def n_lines(self) -> int:
        """Lines in ``lines`` (not counting the quarantined ones), without building the frame."""
        if self._n is None:
            self._n = self.lines.height
        return self._n

    @property
    def texts(self) -> pl.Series:
        return self.lines[TEXT]


def has_long_line(data: bytes, limit: int = MAX_LINE_BYTES) -> bool:
    """True when some line of ``data`` is longer than ``limit`` bytes (one pass, C speed)."""
    pos, n = 0, len(data)
    while n - pos > limit:
        nl = data.rfind(b"\n", pos, pos + limit + 1)
        if nl == -1:
            return True
        pos = nl + 1
    return False


def quarantine_rows(path: str, lines: list[int], reasons: list[str], raws: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "tenant.id": [None] * len(lines),
            "log.file.path": [path] * len(lines),
            "log.file.line": lines,
            "reason": reasons,
            "raw": raws,
        },
        schema=QUARANTINE_SCHEMA,
    )


def _decompress(data: bytes) -> tuple[bytes, str | None]:
    """Gunzip as much as possible; return (bytes, error) where error names what went wrong."""
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out.append(d.decompress(data[pos:]))
        except zlib.error as exc:
            return b"".join(out), f"gzip stream corrupt: {exc}"
        if not d.eof:
            return b"".join(out), "gzip stream truncated (unexpected end of file)"
        rest = d.unused_data
        if not rest or rest[:2] != b"\x1f\x8b":
            break  # trailing garbage after the last member is ignored like gzip(1) does
        pos = len(data) - len(rest)
    return b"".join(out), None


def _blocks(data: Buffer) -> Iterator[bytes]:
    """Split a buffer into blocks that end at a newline, each without that newline (the last
    may have none). Every byte is copied once at most; a ``bytes`` buffer that is one block
    with no final newline is handed on as it is."""
    start = 0
    n = len(data)
    while start < n:
        end = min(start + BLOCK_BYTES, n)
        if end < n:
            nl = data.rfind(b"\n", start, end)
            if nl == -1:
                nl = data.find(b"\n", end)
                end = n if nl == -1 else nl + 1
            else:
                end = nl + 1
        yield data[start : end - 1 if data[end - 1 : end] == b"\n" else end]
        start = end


def is_utf8(data: bytes) -> bool:
    """True when ``data`` is valid UTF-8."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _decode_line(raw: bytes) -> tuple[str | None, str]:
    try:
        return raw.decode("utf-8"), ""
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode("cp932")
    except UnicodeDecodeError as exc:
        return None, f"undecodable bytes (not UTF-8 or Shift_JIS) at byte {exc.start}"
    # cp932 maps a few stray bytes (0xA0, 0xFD-0xFF) to private-use code points: not text.
    if _PRIVATE_USE.search(text):
        return None, "undecodable bytes (not UTF-8 or Shift_JIS)"
    return text, ""


#: Bytes the line scan compares at a time: small enough for its temporaries to stay in cache.
_SCAN_BYTES = 1 << 18


def _scan_lines(block: bytes) -> tuple[int, int | None]:
    """(newlines in ``block``, the byte every line begins with or None), in one vectorised
    pass of cache-sized pieces (CPython counts a byte at a time)."""
    data = np.frombuffer(block, dtype=np.uint8)
    n = data.size
    count = 0
    lead: int | None = int(data[0]) if n and data[0] != 10 and block[-1:] != b"\n" else None
    for start in range(0, n, _SCAN_BYTES):
        piece = data[start : start + _SCAN_BYTES + 1]  # one byte more: what follows a newline
        newline = piece[:_SCAN_BYTES] == 10
        count += int(np.count_nonzero(newline))
        if lead is not None:
            k = piece.size - 1
            lead = None if np.any(newline[:k] & (piece[1:] != lead)) else lead
    return count, lead


def _block_to_batch(path: str, block: bytes, first_line: int, file: str | None) -> tuple[LineBatch, int]:
    """``block``: lines without the newline after the last one."""
    newlines, lead = _scan_lines(block)
    n = newlines + 1
    fast = (block.isascii() or is_utf8(block)) and not has_long_line(block)
    if not fast:
        return _slow_batch(path, block, first_line), n
    batch = LineBatch(path, raw=block, first_line=first_line, n_lines=n, lead=lead, file=file)
    if b"\r" in block:  # CRLF line ends: strip them in the line frame; raw is not clean
        lines = batch.lines.with_columns(pl.col(TEXT).str.strip_suffix("\r"))
        batch = LineBatch(path, lines, n_lines=n)
    return batch, n


def _slow_batch(path: str, block: bytes, first_line: int) -> LineBatch:
    """Line by line: CR line ends, Shift_JIS or undecodable lines, over-long lines."""
    raw_lines = block.split(b"\n")
    ok_no: list[int] = []
    ok_text: list[str] = []
    bad_no: list[int] = []
    bad_reason: list[str] = []
    bad_raw: list[str] = []
    for i, raw in enumerate(raw_lines):
        raw = raw.removesuffix(b"\r")
        if len(raw) > MAX_LINE_BYTES:
            bad_no.append(first_line + i)
            bad_reason.append(f"line longer than {MAX_LINE_BYTES} bytes")
            bad_raw.append(raw.decode("utf-8", "backslashreplace"))
            continue
        decoded, why = _decode_line(raw)
        if decoded is None:
            bad_no.append(first_line + i)
            bad_reason.append(why)
            bad_raw.append(raw.decode("utf-8", "backslashreplace"))
        else:
            ok_no.append(first_line + i)
            ok_text.append(decoded)
    lines = pl.DataFrame({LINE: ok_no, TEXT: ok_text}, schema={LINE: pl.Int64, TEXT: pl.String})
    return LineBatch(path, lines, quarantine_rows(path, bad_no, bad_reason, bad_raw))


def read_batches(
    source: Path | str | Buffer, name: str | None = None, *, file: str | None = None
) -> Iterator[LineBatch]:
    """Yield decoded line batches of a file (path) or buffer (bytes, mmap) in order.

    A plain file is memory-mapped, so only the block being parsed is copied into memory.
    ``file``: for a buffer that is a file's bytes, a path that opens that file
    (``open_file``'s second value); batches pass it on to parsers.
    """
    if isinstance(source, bytes | mmap.mmap):
        yield from _batches(source, name or "<bytes>", file)
        return
    with open_file(source) as (data, file):
        yield from _batches(data, name or str(source), file)


@contextmanager
def open_file(path: Path | str) -> Iterator[tuple[Buffer, str | None]]:
    """A file's bytes, memory-mapped (read-only; ``b""`` for an empty file), and a path that
    opens this same file while it is open -- ``/proc/self/fd/N``, so a file renamed or
    replaced meanwhile (log rotation) is not read in its place -- or None where the system
    has no such path."""
    with open(path, "rb") as fh:
        fd_path = f"/proc/self/fd/{fh.fileno()}"
        same = fd_path if os.path.exists(fd_path) else None
        if os.fstat(fh.fileno()).st_size == 0:
            yield b"", same
            return
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            yield mm, same


def _batches(data: Buffer, path: str, file: str | None = None) -> Iterator[LineBatch]:
    gz_error: str | None = None
    if data[:2] == b"\x1f\x8b":
        data, gz_error = _decompress(bytes(data))
        file = None  # the bytes are not the file's
    line_no = 1
    for block in _blocks(data):
        batch, n = _block_to_batch(path, block, line_no, file)
        line_no += n
        yield batch
    if gz_error:
        yield LineBatch(
            path,
            pl.DataFrame(schema={LINE: pl.Int64, TEXT: pl.String}),
            quarantine_rows(path, [line_no], [gz_error], [""]),
        )


def head_lines(source: Path | str | bytes, n: int = 20) -> list[str]:
    """The first ``n`` lines, decoded leniently; for cheap format checks."""
    if isinstance(source, bytes):
        data = source[: 256 << 10]
        if data[:2] == b"\x1f\x8b":
            data = _decompress(source)[0][: 256 << 10]
    else:
        with open(source, "rb") as fh:
            magic = fh.read(2)
        if magic == b"\x1f\x8b":
            try:
                with gzip.open(source, "rb") as gz:
                    data = gz.read(256 << 10)
            except (OSError, EOFError, zlib.error):
                data = _decompress(Path(source).read_bytes())[0][: 256 << 10]
        else:
            with open(source, "rb") as fh:
                data = fh.read(256 << 10)
    return [ln.rstrip("\r") for ln in data.decode("utf-8", "replace").split("\n")[:n]]
