"""The collector: the spool, who may send, and the consumer that drains the spool.

``Collector.submit`` is the one way in for every receiver: it cuts a payload into spool
records near ``chunk_bytes`` (at line ends), checks quotas and appends them (fsynced).
The consumer thread drains the spool in order: in embedded mode it stores each batch with
``BatchStore`` and commits the spool position afterwards; in scale-out mode it publishes
each batch to JetStream (``collect.nats``) and commits once the stream has it. A batch
that cannot be stored because the database is away is retried until it can; a batch that
keeps failing for another reason is set aside in ``<spool>/failed/`` with the reason.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from mimamori.collect import CollectError
from mimamori.collect.config import CollectConfig
from mimamori.collect.spool import Spool, SpoolRecord, encode_record
from mimamori.collect.store import BatchResult, BatchStore
from mimamori.config import Settings
from mimamori.db.models import Sensor
from mimamori.db.models_collect import CollectSender
from mimamori.db.repo import hash_token
from mimamori.db.session import session_scope

log = logging.getLogger(__name__)


class LineTooLong(CollectError):
    """A line of an HTTP body is over ``max_line_bytes``."""


@dataclass(frozen=True)
class SensorRef:
    sensor_id: int
    tenant_id: str
    name: str
    source: str


def chunks(payload: bytes, size: int, max_line: int) -> list[bytes]:
    """Cut ``payload`` at line ends into pieces of about ``size`` bytes (lines kept whole)."""
    out: list[bytes] = []
    start, n = 0, len(payload)
    while start < n:
        if n - start <= size:
            out.append(payload[start:])
            break
        cut = payload.rfind(b"\n", start, start + size)
        if cut < 0:  # one line longer than a chunk: it travels alone
            cut = payload.find(b"\n", start + size)
            if cut < 0:
                cut = n - 1
            if cut + 1 - start > max_line:
                raise LineTooLong(f"a line of {cut + 1 - start} bytes (limit {max_line})")
        out.append(payload[start : cut + 1])
        start = cut + 1
    return out


class Collector:
    def __init__(self, settings: Settings, config: CollectConfig | None = None) -> None:
        from mimamori.db.session import init_db, make_engine

        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.config = config or CollectConfig.load(settings)
        self.spool = Spool(
            self.config.spool_dir,
            max_bytes=self.config.max_spool_bytes,
            tenant_max_bytes=self.config.tenant_max_bytes,
            segment_bytes=self.config.segment_bytes,
        )
        self.engine = make_engine(settings.database_url)
        init_db(self.engine)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._results: dict[str, BatchResult] = {}
        self._waiting: set[str] = set()
        self._done = threading.Condition()
        self._sensor_cache: dict[str, tuple[float, SensorRef | None]] = {}
        self._senders: list[tuple[Any, SensorRef]] = []
        self._senders_at = 0.0
        self.syslog: Any = None
        self.processed = 0

    # ------------------------------------------------------------------ who sends
    def authenticate(self, token: str) -> SensorRef | None:
        """The sensor holding ``token`` (cached 30 s), or None."""
        key = hash_token(token)
        hit = self._sensor_cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < 30:
            return hit[1]
        with session_scope(self.engine) as s:
            row = s.scalar(select(Sensor).where(Sensor.token_hash == key, Sensor.revoked.is_(False)))
            ref = SensorRef(row.id, row.tenant_id, row.name, row.source) if row else None
        if len(self._sensor_cache) > 10_000:
            self._sensor_cache.clear()
        self._sensor_cache[key] = (time.monotonic(), ref)
        return ref

    def sender(self, address: str) -> SensorRef | None:
        """The sensor registered for a syslog source address (most specific network wins)."""
        if time.monotonic() - self._senders_at > 30:
            self.reload_senders()
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        for net, ref in self._senders:
            if ip.version == net.version and ip in net:
                return ref
        return None

    def reload_senders(self) -> None:
        rows: list[tuple[Any, SensorRef]] = []
        with session_scope(self.engine) as s:
            q = select(CollectSender, Sensor).join(Sensor, Sensor.id == CollectSender.sensor_id)
            for snd, sen in s.execute(q.where(Sensor.revoked.is_(False))):
                ref = SensorRef(sen.id, sen.tenant_id, sen.name, sen.source)
                rows.append((ipaddress.ip_network(snd.network, strict=False), ref))
        rows.sort(key=lambda r: r[0].prefixlen, reverse=True)
        self._senders = rows
        self._senders_at = time.monotonic()

    # ------------------------------------------------------------------ intake
    def submit(
        self,
        ref: SensorRef,
        source: str,
        payload: bytes,
        *,
        transport: str,
        peer: str | None = None,
        batch_key: str | None = None,
        options: dict[str, Any] | None = None,
        track: bool = False,
    ) -> list[str]:
        """Spool ``payload`` (fsynced before returning); the batch ids, one per chunk.

        ``batch_key`` makes the ids idempotent (an HTTP retry carries the same key);
        without one every call gets fresh ids. ``track``: keep the results for ``wait``.
        Raises ``QuotaExceeded`` or ``LineTooLong``.
        """
        base = (
            f"{transport}-{ref.sensor_id}-{hashlib.sha256(batch_key.encode()).hexdigest()[:24]}"
            if batch_key
            else f"{transport}-{ref.sensor_id}-{uuid.uuid4().hex}"
        )
        now = datetime.now(UTC).isoformat()
        items: list[tuple[dict[str, Any], bytes]] = []
        for i, piece in enumerate(chunks(payload, self.config.chunk_bytes, self.config.max_line_bytes)):
            meta = {
                "batch_id": f"{base}-{i:04d}",
                "tenant": ref.tenant_id,
                "sensor_id": ref.sensor_id,
                "source": source,
                "transport": transport,
                "peer": peer,
                "received_at": now,
                "lines": piece.count(b"\n") + (0 if piece.endswith(b"\n") else 1),
            }
            if options:
                meta["options"] = options
            items.append((meta, piece))
        ids = [str(m["batch_id"]) for m, _ in items]
        if track:
            with self._done:
                self._waiting.update(ids)
        try:
            self.spool.append(items)
        except BaseException:
            with self._done:
                self._waiting.difference_update(ids)
            raise
        return ids

    # ------------------------------------------------------------------ results
    def wait(self, batch_ids: list[str], timeout: float) -> BatchResult | None:
        """The combined result once every batch is stored, or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._done:
            self._waiting.update(batch_ids)
            try:
                while not all(b in self._results for b in batch_ids):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    self._done.wait(left)
                total = BatchResult(batch_ids[0] if len(batch_ids) == 1 else ",".join(batch_ids))
                for b in batch_ids:
                    r = self._results[b]
                    for f in ("lines_read", "stored", "quarantined", "skipped", "alerts", "duplicates"):
                        setattr(total, f, getattr(total, f) + getattr(r, f))
                return total
            finally:
                for b in batch_ids:
                    self._waiting.discard(b)
                    self._results.pop(b, None)

    def _finished(self, rec: SpoolRecord, result: BatchResult | None) -> None:
        with self._done:
            self.processed += 1
            if rec.batch_id in self._waiting:
                self._results[rec.batch_id] = result or BatchResult(rec.batch_id)
            self._done.notify_all()

    # ------------------------------------------------------------------ running
    def start(self, *, consume: bool = True, syslog: bool = True) -> None:
        if consume:
            target: Callable[[], None] = self._forward if self.config.nats_url else self._process_loop
            t = threading.Thread(target=target, name="mimamori-collect-consumer", daemon=True)
            t.start()
            self._threads.append(t)
        c = self.config
        if syslog and (c.syslog_udp is not None or c.syslog_tcp is not None or c.syslog_tls is not None):
            from mimamori.collect.syslog import SyslogServer

            self.syslog = SyslogServer(self)
            self.syslog.start()

    def close(self) -> None:
        if self.syslog is not None:
            self.syslog.stop()
        self._stop.set()
        self.spool.close()
        for t in self._threads:
            t.join(timeout=30)
        self.engine.dispose()

    def _sleep(self, seconds: float) -> bool:
        return not self._stop.wait(seconds)

    def _process_loop(self) -> None:
        from mimamori.pipeline import Platform

        platform = None
        delay = 0.2
        while platform is None:
            try:
                platform = Platform(self.settings)
            except (OperationalError, PoolTimeout, OSError) as exc:
                log.warning("collect: database unavailable (%s); the spool keeps accepting", exc)
                if not self._sleep(delay):
                    return
                delay = min(delay * 2, 5.0)
        store = BatchStore(platform)
        try:
            while not self._stop.is_set():
                rec = self.spool.next(timeout=0.5)
                if rec is None:
                    continue
                result = self._store_with_retry(store, rec)
                if result is None and self._stop.is_set():
                    return  # not committed: processed again after the restart
                self.spool.commit(rec)
                self._finished(rec, result)
        finally:
            platform.close()

    def _store_with_retry(self, store: BatchStore, rec: SpoolRecord) -> BatchResult | None:
        failures = 0
        delay = 0.2
        while not self._stop.is_set():
            try:
                return store.process(rec.meta, rec.payload)
            except (OperationalError, PoolTimeout, OSError) as exc:
                log.warning("batch %s not stored, database unavailable (%s); retrying", rec.batch_id, exc)
            except Exception as exc:
                failures += 1
                log.exception("batch %s failed (%d of 5)", rec.batch_id, failures)
                if failures >= 5:
                    self._set_aside(rec, f"{type(exc).__name__}: {exc}")
                    return None
            self._sleep(delay)
            delay = min(delay * 2, 5.0)
        return None

    def _set_aside(self, rec: SpoolRecord, reason: str) -> None:
        failed = self.config.spool_dir / "failed"
        failed.mkdir(exist_ok=True)
        (failed / f"{rec.batch_id}.rec").write_bytes(
            encode_record({**rec.meta, "reason": reason}, rec.payload)
        )
        (failed / f"{rec.batch_id}.reason").write_text(reason + "\n")
        log.error("batch %s set aside in %s: %s", rec.batch_id, failed, reason)

    def _forward(self) -> None:
        import asyncio

        from mimamori.collect.nats import forward_spool

        asyncio.run(forward_spool(self, self._stop))

    def status(self) -> dict[str, Any]:
        return {
            "mode": "nats" if self.config.nats_url else "embedded",
            "spool_dir": str(self.config.spool_dir),
            "spool_bytes": self.spool.disk_bytes,
            "pending_records": self.spool.pending_records,
            "processed": self.processed,
        }


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
