"""HTTP ingest: ``POST /api/v1/ingest/{source}`` for sensors and agents.

The body is NDJSON or any line format a parser reads (``Content-Encoding: gzip`` or a
gzip body is unpacked, bounded by ``max_body_bytes``); the sensor authenticates with its
token (``Authorization: Bearer mms_...``; only the token's hash is stored). The body is
spooled and fsynced before the answer: 200 with the stored and quarantined counts once
the batch is stored (embedded mode, within ``wait_seconds``), else 202 with the batch ids
(queued; stored by the consumer or a worker). A retry with the same ``Idempotency-Key``
header is the same batch and is stored once. Over quota: 429 (the tenant's share) or 503
(the spool's disk quota), both with ``Retry-After``.

``mount_ingest(app, collector)`` adds the router to any FastAPI app; the collector is taken
from ``app.state.collector`` at request time.
"""

from __future__ import annotations

import logging
import zlib
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from mimamori.collect import QuotaExceeded
from mimamori.collect.service import Collector, LineTooLong
from mimamori.sources import PARSERS

log = logging.getLogger(__name__)

router = APIRouter(tags=["ingest"])


def _collector(request: Request) -> Collector:
    collector = getattr(request.app.state, "collector", None)
    if collector is None:
        raise HTTPException(503, "ingest is not running on this server")
    assert isinstance(collector, Collector)
    return collector


def _gunzip(body: bytes, limit: int) -> bytes:
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as exc:
        raise HTTPException(400, f"gzip body unreadable: {exc}") from exc
    if len(out) > limit or d.unconsumed_tail:
        raise HTTPException(413, f"body over {limit} bytes once unpacked")
    if not d.eof:
        raise HTTPException(400, "gzip body truncated")
    return out


@router.post("/api/v1/ingest/{source}")
async def ingest(
    source: str,
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    content_encoding: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Any:
    collector = _collector(request)
    cfg = collector.config
    if source not in PARSERS and source != "auto":
        raise HTTPException(404, f"unknown source {source!r}")
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(
            401, "sensor token required (Authorization: Bearer ...)", headers={"WWW-Authenticate": "Bearer"}
        )
    ref = await run_in_threadpool(collector.authenticate, authorization[7:].strip())
    if ref is None:
        log.warning("ingest refused from %s: unknown or revoked sensor token", request.client)
        raise HTTPException(401, "unknown or revoked sensor token", headers={"WWW-Authenticate": "Bearer"})
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > cfg.max_body_bytes:
            raise HTTPException(413, f"body over {cfg.max_body_bytes} bytes")
    data = bytes(body)
    if (content_encoding or "").lower() == "gzip" or data[:2] == b"\x1f\x8b":
        data = _gunzip(data, cfg.max_body_bytes)
    if not data.strip():
        return {"status": "empty", "accepted": 0, "stored": 0, "quarantined": 0}
    peer = request.client.host if request.client else None
    try:
        ids = await run_in_threadpool(
            collector.submit,
            ref,
            source,
            data,
            transport="http",
            peer=peer,
            batch_key=idempotency_key,
            track=not cfg.nats_url and cfg.wait_seconds > 0,
        )
    except QuotaExceeded as exc:
        code = 503 if exc.scope == "disk" else 429
        log.warning("ingest refused for sensor %s (%s): %s", ref.sensor_id, ref.tenant_id, exc.reason)
        return JSONResponse(
            {"detail": exc.reason}, status_code=code, headers={"Retry-After": str(exc.retry_after)}
        )
    except LineTooLong as exc:
        raise HTTPException(413, str(exc)) from exc
    accepted = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    out: dict[str, Any] = {"accepted": accepted, "batches": ids, "tenant": ref.tenant_id}
    if not cfg.nats_url and cfg.wait_seconds > 0:
        result = await run_in_threadpool(collector.wait, ids, cfg.wait_seconds)
        if result is not None:
            out.update(
                status="stored",
                stored=result.stored,
                quarantined=result.quarantined,
                skipped=result.skipped,
                alerts=result.alerts,
            )
            return out
    out.update(status="queued", stored=None, quarantined=None)
    return JSONResponse(out, status_code=202)


def mount_ingest(app: FastAPI, collector: Collector | None = None) -> None:
    """Serve ``POST /api/v1/ingest/{source}`` on ``app`` (with ``collector``, or one set later
    as ``app.state.collector``)."""
    if collector is not None:
        app.state.collector = collector
    app.include_router(router)
