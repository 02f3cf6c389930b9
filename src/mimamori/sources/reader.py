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

    When the whole block was clean UTF-8 (no CR, no over-long line), the batch knows the
    block's place in the file's bytes (``span``) instead: ``raw`` gives its bytes without the
    final newline, copied out of the file only when asked for, and ``first_line`` its first
    line number. JSON parsers can hand ``raw`` straight to Polars, and the line frame is only
    built if someone asks. Such a block also tells ``lead``, the byte every one of its lines
    begins with (None when they differ or a line is empty), and, when it is a block of a
    plain file on disk, ``file``: a path that opens that same file (``/proc/self/fd/N`` while
    the reader has it open) for parsers that read files themselves. A file's blocks come in
    order.
    """

    def __init__(
        self,
        path: str,
        lines: pl.DataFrame | None = None,
        quarantine: pl.DataFrame | None = None,
        *,
        raw: bytes | None = None,
        span: tuple[Buffer, int, int] | None = None,
        first_line: int = 1,
        n_lines: int | None = None,
        lead: int | None = None,
        file: str | None = None,
    ) -> None:
        if span is None and raw is not None:
            span = (raw, 0, len(raw))
        if lines is None and span is None:
            raise ValueError("LineBatch needs lines or raw bytes")
        self.path = path
        self._lines = lines
        self.quarantine = quarantine if quarantine is not None else empty_quarantine()
        self._span = span
        self._raw = raw
        self.first_line = first_line
        self._n = n_lines
        self.lead = lead if span is not None else None
        self.file = file if span is not None else None

    @property
    def clean(self) -> bool:
        """True when the block was clean UTF-8 and ``raw`` has its bytes."""
        return self._span is not None

    @property
    def raw(self) -> bytes | None:
        if self._raw is None and self._span is not None:
            data, start, end = self._span
            if isinstance(data, bytes) and start == 0 and end == len(data):
                self._raw = data
            else:
                self._raw = data[start:end]
        return self._raw

    def edge_lines(self) -> tuple[bytes, bytes]:
        """The block's first and last lines, without copying the rest (clean batches only)."""
        assert self._span is not None
        data, start, end = self._span
        first_end = data.find(b"\n", start, end)
        last_start = data.rfind(b"\n", start, end) + 1 or start
        return data[start : end if first_end == -1 else first_end], data[last_start:end]

    @property
    def lines(self) -> pl.DataFrame:
        if self._lines is None:
            raw = self.raw
            assert raw is not None
            series = pl.Series(TEXT, [raw], dtype=pl.Binary).cast(pl.String).str.split("\n").explode()
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


def has_long_line(data: Buffer, limit: int = MAX_LINE_BYTES, start: int = 0, end: int | None = None) -> bool:
    """True when some line of ``data[start:end]`` is longer than ``limit`` bytes (C speed)."""
    pos, n = start, len(data) if end is None else end
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


def _blocks(data: Buffer) -> Iterator[tuple[int, int]]:
    """Split a buffer into blocks that end at a newline: (start, end) of each without that
    newline (the last may have none)."""
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
        yield start, end - 1 if data[end - 1 : end] == b"\n" else end
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


def _scan_lines(data: Buffer, start: int = 0, end: int | None = None) -> tuple[int, int | None, bool]:
    """Of ``data[start:end]``: (newlines, the byte every line begins with or None, all
    ASCII), in one vectorised pass of cache-sized pieces and without copying the bytes
    (CPython counts a byte at a time)."""
    end = len(data) if end is None else end
    if end <= start:
        return 0, None, True
    view = np.frombuffer(data, dtype=np.uint8, count=end - start, offset=start)
    count = 0
    ascii_ = True
    lead: int | None = int(view[0]) if view[0] != 10 and view[-1] != 10 else None
    for at in range(0, view.size, _SCAN_BYTES):
        piece = view[at : at + _SCAN_BYTES + 1]  # one byte more: what follows a newline
        own = piece[:_SCAN_BYTES]
        newline = own == 10
        count += int(np.count_nonzero(newline))
        ascii_ = ascii_ and int(own.max()) < 128
        if lead is not None:
            k = piece.size - 1
            lead = None if np.any(newline[:k] & (piece[1:] != lead)) else lead
    return count, lead, ascii_


def _block_to_batch(
    path: str, data: Buffer, start: int, end: int, first_line: int, file: str | None
) -> tuple[LineBatch, int]:
    """``data[start:end]``: lines without the newline after the last one."""
    newlines, lead, ascii_ = _scan_lines(data, start, end)
    n = newlines + 1
    block: bytes | None = None  # copied out of ``data`` only when it must be decoded
    long = has_long_line(data, start=start, end=end)
    if long or not ascii_:
        block = data[start:end]
        if long or not is_utf8(block):
            return _slow_batch(path, block, first_line), n
    batch = LineBatch(
        path, raw=block, span=(data, start, end), first_line=first_line, n_lines=n, lead=lead, file=file
    )
    if data.find(b"\r", start, end) != -1:  # CRLF line ends: strip them in the line frame; raw is not clean
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

    A plain file is memory-mapped; a block's bytes are copied out only when the parser asks
    for them. ``file``: for a buffer that is a file's bytes, a path that opens that file
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
        # Not closed on exit: batches read from the map may outlive the read (their bytes are
        # copied out only when asked for); it is unmapped when the last of them is gone.
        yield mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ), same


def _batches(data: Buffer, path: str, file: str | None = None) -> Iterator[LineBatch]:
    gz_error: str | None = None
    if data[:2] == b"\x1f\x8b":
        data, gz_error = _decompress(bytes(data))
        file = None  # the bytes are not the file's
    line_no = 1
    for start, end in _blocks(data):
        batch, n = _block_to_batch(path, data, start, end, line_no, file)
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
