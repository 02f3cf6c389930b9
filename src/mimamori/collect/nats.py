"""Scale-out mode: the spool forwarded to NATS JetStream, ``mimamori worker`` storing it.

Subjects are ``<prefix>.<tenant>.<source>`` (``mimamori.raw.yamada.syslog-raw``) in one
work-queue stream (file storage). The receiver's spool consumer publishes each record with
``Nats-Msg-Id`` = its batch id, so a publish retried after a lost PubAck is dropped by the
stream's duplicate window, and commits the spool position only after the PubAck.

Workers share one durable pull consumer (explicit ack): each fetches a batch, stores it
through ``BatchStore`` (PostgreSQL + archive), reporting progress to the server while it
works, and acks it only afterwards (``ack_sync``: the server confirmed the ack). A worker
killed mid-batch never acks, and after ``ack_wait`` the server gives the batch to another
worker; ``collect_batch`` makes the second storing a no-op if the first had committed.
When the database is away a batch is nak'ed with a delay and comes back later.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from typing import TYPE_CHECKING, Any

import nats
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from mimamori.collect import CollectError
from mimamori.collect.config import CollectConfig

if TYPE_CHECKING:
    from mimamori.collect.service import Collector
    from mimamori.config import Settings

log = logging.getLogger(__name__)

META_HEADER = "Mimamori-Meta"
DURABLE = "mimamori-workers"


async def connect(url: str) -> Any:
    async def on_error(exc: Exception) -> None:
        log.warning("nats: %s", exc)

    async def on_disconnect() -> None:
        log.warning("nats: disconnected from %s, reconnecting", url)

    return await nats.connect(
        servers=[u.strip() for u in url.split(",")],
        connect_timeout=2,
        reconnect_time_wait=0.5,
        max_reconnect_attempts=-1,
        allow_reconnect=True,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
    )


async def connect_retrying(url: str, stop: threading.Event) -> Any:
    delay = 0.2
    while not stop.is_set():
        try:
            return await connect(url)
        except Exception as exc:
            log.warning("nats: cannot connect to %s (%s); retrying", url, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5)
    return None


async def ensure_stream(js: Any, cfg: CollectConfig) -> None:
    try:
        await js.stream_info(cfg.stream)
    except NotFoundError:
        await js.add_stream(
            StreamConfig(
                name=cfg.stream,
                subjects=[f"{cfg.subject_prefix}.>"],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
                duplicate_window=600,
                num_replicas=cfg.nats_replicas,
            )
        )


def subject(cfg: CollectConfig, meta: dict[str, Any]) -> str:
    return f"{cfg.subject_prefix}.{meta['tenant']}.{meta['source']}"


async def forward_spool(collector: Collector, stop: threading.Event) -> None:
    """Drain the spool into JetStream, committing each record after its PubAck."""
    cfg = collector.config
    assert cfg.nats_url
    nc = await connect_retrying(cfg.nats_url, stop)
    if nc is None:
        return
    js = nc.jetstream(timeout=5)
    loop = asyncio.get_running_loop()
    try:
        while not stop.is_set():
            try:
                await ensure_stream(js, cfg)
                break
            except Exception as exc:
                log.warning("nats: stream %s not ready (%s); retrying", cfg.stream, exc)
                await asyncio.sleep(0.5)
        while not stop.is_set():
            rec = await loop.run_in_executor(None, collector.spool.next, 0.5)
            if rec is None:
                continue
            headers = {"Nats-Msg-Id": rec.batch_id, META_HEADER: json.dumps(rec.meta, ensure_ascii=True)}
            delay = 0.2
            while not stop.is_set():
                try:
                    await js.publish(subject(cfg, rec.meta), rec.payload, headers=headers, timeout=5)
                    break
                except Exception as exc:
                    log.warning("nats: batch %s not forwarded yet (%s); retrying", rec.batch_id, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5)
            else:
                return  # stopping: not committed, forwarded again after the restart
            collector.spool.commit(rec)
            collector._finished(rec, None)
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


class WorkerError(CollectError):
    """The worker cannot run (no NATS URL)."""


async def run_worker(
    settings: Settings,
    cfg: CollectConfig,
    stop: threading.Event,
    *,
    ack_wait: float = 30.0,
    name: str = "worker",
) -> int:
    """Consume batches until ``stop``; returns the number of batches stored."""
    from mimamori.collect.store import BatchStore
    from mimamori.pipeline import Platform

    if not cfg.nats_url:
        raise WorkerError("a worker needs MIMAMORI_NATS_URL (or --nats)")
    loop = asyncio.get_running_loop()
    platform = None
    delay = 0.2
    while platform is None and not stop.is_set():
        try:
            platform = await loop.run_in_executor(None, Platform, settings)
        except Exception as exc:
            log.warning("%s: database not ready (%s); retrying", name, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5)
    if platform is None:
        return 0
    store = BatchStore(platform)
    nc = await connect_retrying(cfg.nats_url, stop)
    if nc is None:
        return 0
    js = nc.jetstream(timeout=5)
    stored = 0
    sub = None
    try:
        while sub is None and not stop.is_set():
            try:
                await ensure_stream(js, cfg)
                sub = await js.pull_subscribe(
                    f"{cfg.subject_prefix}.>",
                    durable=DURABLE,
                    stream=cfg.stream,
                    config=ConsumerConfig(
                        ack_policy=AckPolicy.EXPLICIT,
                        ack_wait=ack_wait,
                        max_deliver=-1,
                        max_ack_pending=1000,
                    ),
                )
            except Exception as exc:
                log.warning("%s: consumer not ready (%s); retrying", name, exc)
                await asyncio.sleep(0.5)
        log.info("%s: consuming %s.> as %s", name, cfg.subject_prefix, DURABLE)
        while not stop.is_set():
            try:
                msgs = await sub.fetch(1, timeout=1)  # type: ignore[union-attr]
            except NatsTimeout:
                continue
            except Exception as exc:
                log.warning("%s: fetch failed (%s)", name, exc)
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                if await _handle(store, msg, ack_wait, name):
                    stored += 1
    finally:
        with contextlib.suppress(Exception):
            await nc.close()
        platform.close()
    return stored


async def _handle(store: Any, msg: Any, ack_wait: float, name: str) -> bool:
    loop = asyncio.get_running_loop()
    try:
        meta = json.loads((msg.headers or {})[META_HEADER])
    except (KeyError, ValueError) as exc:
        log.error("%s: message on %s without readable meta (%s): terminated", name, msg.subject, exc)
        await msg.term()
        return False
    try:
        delivered = msg.metadata.num_delivered
    except Exception:
        delivered = 0
    log.info("%s: processing %s (delivery %s)", name, meta.get("batch_id"), delivered)
    task = loop.run_in_executor(None, store.process, meta, msg.data)
    while True:
        done, _ = await asyncio.wait({task}, timeout=max(ack_wait / 3, 0.5))
        if done:
            break
        with contextlib.suppress(Exception):
            await msg.in_progress()
    try:
        result = task.result()
    except Exception as exc:
        log.warning("%s: batch %s not stored (%s); handed back", name, meta.get("batch_id"), exc)
        with contextlib.suppress(Exception):
            await msg.nak(delay=1.0)
        await asyncio.sleep(0.5)
        return False
    delay = 0.2
    for _ in range(50):
        try:
            await msg.ack_sync(timeout=5)
            break
        except Exception as exc:
            # stored already: a lost ack only means a redelivery that collect_batch skips
            log.warning("%s: ack of %s failed (%s); retrying", name, meta.get("batch_id"), exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2)
    log.info(
        "%s: stored %s (%d events, %d quarantined%s)",
        name,
        result.batch_id,
        result.stored,
        result.quarantined,
        ", already stored before" if result.duplicates else "",
    )
    return True
