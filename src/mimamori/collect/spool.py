"""The durable spool: append-only segment files of checksummed batch records.

A record is ``MAGIC | meta length | payload length | CRC-32 | meta (JSON) | payload``;
the meta holds the batch id, tenant, sensor, source and transport. ``append`` writes a
list of records, flushes and fsyncs the segment file before it returns, so a receiver
acknowledges only what is on disk. One consumer reads records in order (``next``) and
``commit``s a record once it is safe downstream; the position is kept in ``cursor.json``
(written to a temporary file, fsynced, renamed, directory fsynced). Segments wholly
before the cursor are deleted.

After a crash the spool reopens at the cursor: everything after it is delivered again
(the consumer's idempotent batch ids make that harmless), and a torn record at the end
of the newest segment -- one that was never acknowledged, since ``append`` had not
returned -- is cut off with a logged reason.

Quotas: ``max_bytes`` bounds the segment files on disk, ``tenant_max_bytes`` the bytes
of one tenant not yet committed; ``append`` raises ``QuotaExceeded`` instead of writing.
Memory stays bounded: records are read one at a time from the file.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mimamori.collect import CollectError, QuotaExceeded

log = logging.getLogger(__name__)

MAGIC = b"MSP1"
_HEAD = struct.Struct(">4sIII")
SEGMENT_SUFFIX = ".seg"


class SpoolCorrupt(CollectError):
    """A record in the middle of a segment failed its checksum."""


@dataclass(frozen=True)
class SpoolRecord:
    meta: dict[str, Any]
    payload: bytes
    segment: int
    offset: int  # where the record starts
    end: int  # where the next record starts

    @property
    def batch_id(self) -> str:
        return str(self.meta["batch_id"])

    @property
    def tenant(self) -> str:
        return str(self.meta["tenant"])

    @property
    def size(self) -> int:
        return self.end - self.offset


def _seg_name(n: int) -> str:
    return f"{n:012d}{SEGMENT_SUFFIX}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def encode_record(meta: dict[str, Any], payload: bytes) -> bytes:
    m = json.dumps(meta, separators=(",", ":"), ensure_ascii=False).encode()
    crc = zlib.crc32(payload, zlib.crc32(m))
    return _HEAD.pack(MAGIC, len(m), len(payload), crc) + m + payload


class Spool:
    """One spool directory; thread-safe appends, a single in-order consumer."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 1 << 30,
        tenant_max_bytes: int | None = None,
        segment_bytes: int = 64 << 20,
    ) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.tenant_max_bytes = tenant_max_bytes
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._sizes: dict[int, int] = {}  # segment -> bytes durable on disk
        self._tenant_pending: dict[str, int] = defaultdict(int)
        self._pending_records = 0
        self.appended_records = 0  # since this process opened the spool
        self._write: Any = None  # the open segment file we append to
        self._write_seg = 0
        self._closed = False
        self._recover()

    # ------------------------------------------------------------------ state
    @property
    def cursor_file(self) -> Path:
        return self.path / "cursor.json"

    def _read_cursor(self) -> tuple[int, int]:
        try:
            data = json.loads(self.cursor_file.read_text())
            return int(data["segment"]), int(data["offset"])
        except FileNotFoundError:
            return 0, 0

    def _recover(self) -> None:
        segs = sorted(int(p.stem) for p in self.path.glob(f"*{SEGMENT_SUFFIX}") if p.stem.isdigit())
        self._cursor = self._read_cursor()
        for n in segs:
            self._sizes[n] = (self.path / _seg_name(n)).stat().st_size
        if segs:
            last = segs[-1]
            good = self._valid_prefix(last, self._cursor[1] if self._cursor[0] == last else 0)
            if good < self._sizes[last]:
                log.warning(
                    "spool %s: cut %d bytes of a torn record at the end of segment %d "
                    "(written during a crash, never acknowledged)",
                    self.path,
                    self._sizes[last] - good,
                    last,
                )
                with open(self.path / _seg_name(last), "r+b") as f:
                    f.truncate(good)
                    os.fsync(f.fileno())
                self._sizes[last] = good
        # segments wholly before the cursor were consumed (a crash after commit, before delete)
        for n in [n for n in self._sizes if n < self._cursor[0]]:
            self._delete_segment(n)
        self._read_pos = self._cursor
        for rec in self._scan(self._cursor):
            self._tenant_pending[rec.tenant] += rec.size
            self._pending_records += 1
        self._write_seg = max(self._sizes, default=max(self._cursor[0], 1))
        self._open_write(self._write_seg)

    def _valid_prefix(self, seg: int, start: int) -> int:
        """Bytes of ``seg`` that hold whole, checksummed records (from ``start``)."""
        pos = start
        size = self._sizes[seg]
        with open(self.path / _seg_name(seg), "rb") as f:
            f.seek(pos)
            while pos < size:
                head = f.read(_HEAD.size)
                if len(head) < _HEAD.size:
                    break
                magic, mlen, plen, crc = _HEAD.unpack(head)
                if magic != MAGIC or pos + _HEAD.size + mlen + plen > size:
                    break
                body = f.read(mlen + plen)
                if zlib.crc32(body) != crc:
                    break
                pos += _HEAD.size + mlen + plen
        return pos

    def _scan(self, start: tuple[int, int]) -> list[SpoolRecord]:
        out: list[SpoolRecord] = []
        pos = start
        while True:
            rec = self._read_at(pos)
            if rec is None:
                return out
            out.append(rec)
            pos = (rec.segment, rec.end)

    def _open_write(self, seg: int) -> None:
        if self._write is not None:
            self._write.close()
        new = seg not in self._sizes
        self._write = open(self.path / _seg_name(seg), "ab")  # noqa: SIM115 - kept open for appends
        self._write_seg = seg
        if new:
            self._sizes[seg] = 0
            _fsync_dir(self.path)

    def _delete_segment(self, n: int) -> None:
        (self.path / _seg_name(n)).unlink(missing_ok=True)
        self._sizes.pop(n, None)

    # ------------------------------------------------------------------ metrics
    @property
    def disk_bytes(self) -> int:
        return sum(self._sizes.values())

    @property
    def pending_records(self) -> int:
        return self._pending_records

    def tenant_pending(self, tenant: str) -> int:
        return self._tenant_pending.get(tenant, 0)

    def check(self, tenant: str, size: int) -> None:
        """Raise ``QuotaExceeded`` when ``size`` more bytes for ``tenant`` would not fit."""
        if self.disk_bytes + size > self.max_bytes:
            raise QuotaExceeded(
                "disk",
                f"spool full: {self.disk_bytes} of {self.max_bytes} bytes used, {size} more refused",
                retry_after=10,
            )
        if self.tenant_max_bytes is not None and self._tenant_pending[tenant] + size > self.tenant_max_bytes:
            raise QuotaExceeded(
                "tenant",
                f"tenant {tenant}: {self._tenant_pending[tenant]} bytes waiting, quota "
                f"{self.tenant_max_bytes}",
                retry_after=5,
            )

    # ------------------------------------------------------------------ writing
    def append(self, items: list[tuple[dict[str, Any], bytes]]) -> None:
        """Write records and fsync them; on return they survive a crash."""
        if not items:
            return
        blobs = [(m, encode_record(m, p)) for m, p in items]
        with self._cond:
            if self._closed:
                raise CollectError("spool closed")
            need: dict[str, int] = defaultdict(int)
            for m, b in blobs:
                need[str(m["tenant"])] += len(b)
            for tenant, size in need.items():
                self.check(tenant, size)
            if self._sizes[self._write_seg] >= self.segment_bytes:
                self._open_write(self._write_seg + 1)
            data = b"".join(b for _, b in blobs)
            self._write.write(data)
            self._write.flush()
            os.fsync(self._write.fileno())
            self._sizes[self._write_seg] += len(data)
            for tenant, size in need.items():
                self._tenant_pending[tenant] += size
            self._pending_records += len(blobs)
            self.appended_records += len(blobs)
            self._cond.notify_all()

    # ------------------------------------------------------------------ consuming
    def _read_at(self, pos: tuple[int, int]) -> SpoolRecord | None:
        seg, off = pos
        while True:
            size = self._sizes.get(seg)
            if size is None:
                later = [n for n in self._sizes if n > seg]
                if not later:
                    return None
                seg, off = min(later), 0
                continue
            if off < size:
                break
            later = [n for n in self._sizes if n > seg]
            if not later:
                return None
            seg, off = min(later), 0
        with open(self.path / _seg_name(seg), "rb") as f:
            f.seek(off)
            head = f.read(_HEAD.size)
            magic, mlen, plen, crc = _HEAD.unpack(head)
            body = f.read(mlen + plen)
        if magic != MAGIC or len(body) != mlen + plen or zlib.crc32(body) != crc:
            raise SpoolCorrupt(f"spool {self.path}: bad record at segment {seg} offset {off}")
        meta = json.loads(body[:mlen])
        return SpoolRecord(meta, body[mlen:], seg, off, off + _HEAD.size + mlen + plen)

    def next(self, timeout: float | None = None) -> SpoolRecord | None:
        """The next record after the last one handed out, waiting up to ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                rec = self._read_at(self._read_pos)
                if rec is not None:
                    self._read_pos = (rec.segment, rec.end)
                    return rec
                if self._closed:
                    return None
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left)

    def rewind(self) -> None:
        """Hand out records again from the committed position (after a consumer failure)."""
        with self._cond:
            self._read_pos = self._cursor

    def commit(self, rec: SpoolRecord) -> None:
        """Everything up to and including ``rec`` is safe downstream."""
        with self._cond:
            cursor = (rec.segment, rec.end)
            # the active segment is consumed and big enough: start a fresh one, drop this one
            if (
                rec.segment == self._write_seg
                and rec.end == self._sizes[rec.segment]
                and rec.end >= min(self.segment_bytes, 1 << 20, self.max_bytes // 8)
            ):
                self._open_write(self._write_seg + 1)
                cursor = (self._write_seg, 0)
            tmp = self.cursor_file.with_suffix(".tmp")
            with open(tmp, "w") as f:
                json.dump({"segment": cursor[0], "offset": cursor[1]}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.cursor_file)
            _fsync_dir(self.path)
            self._cursor = cursor
            if self._read_pos < cursor:
                self._read_pos = cursor
            self._tenant_pending[rec.tenant] = max(0, self._tenant_pending[rec.tenant] - rec.size)
            self._pending_records = max(0, self._pending_records - 1)
            for n in [n for n in self._sizes if n < cursor[0]]:
                self._delete_segment(n)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            if self._write is not None:
                self._write.close()
                self._write = None
            self._cond.notify_all()
