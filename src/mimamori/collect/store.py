"""Store one spooled batch through the pipeline, exactly once.

``BatchStore.process(meta, payload)`` is what both the embedded processor and a
``mimamori worker`` run for a batch. A syslog batch is split by vendor
(``collect.vendors``) into one sub-batch per parser; every (sub-)batch is ingested with
its own idempotent id, and a ``collect_batch`` row with that id is written in the same
transaction as the batch's alerts and ingest run. A batch id already in that table is
skipped (a redelivery after a crash); two processes racing on one id make the second
transaction fail on the primary key, which is also taken as "already stored". Archive
files are named by the batch id and replaced, never added, so a crash between the archive
write and the commit leaves nothing twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mimamori.collect.vendors import split_by_vendor
from mimamori.db.models_collect import CollectBatch
from mimamori.db.session import session_scope
from mimamori.pipeline import IngestReport, Platform

log = logging.getLogger(__name__)


@dataclass
class BatchResult:
    batch_id: str
    lines_read: int = 0
    stored: int = 0
    quarantined: int = 0
    skipped: int = 0
    alerts: int = 0
    duplicates: int = 0  # sub-batches found already stored

    def add(self, row: CollectBatch | IngestReport, alerts: int = 0) -> None:
        self.lines_read += row.lines_read
        self.stored += row.stored
        self.quarantined += row.quarantined
        self.skipped += row.skipped
        self.alerts += alerts

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class BatchStore:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def _done(self, batch_id: str) -> CollectBatch | None:
        with session_scope(self.platform.engine) as s:
            return s.get(CollectBatch, batch_id)

    def process(self, meta: dict[str, Any], payload: bytes) -> BatchResult:
        batch_id = str(meta["batch_id"])
        source = str(meta["source"])
        result = BatchResult(batch_id)
        if source == "syslog-raw":
            parts = [(f"{batch_id}-{src}", src, data) for src, data in split_by_vendor(payload)]
        else:
            parts = [(batch_id, source, payload)]
        for part_id, src, data in parts:
            self._one(meta, part_id, src, data, result)
        return result

    def _one(self, meta: dict[str, Any], part_id: str, source: str, data: bytes, result: BatchResult) -> None:
        done = self._done(part_id)
        if done is not None:
            result.add(done)
            result.duplicates += 1
            return
        tenant = str(meta["tenant"])
        sensor_id = meta.get("sensor_id")
        options: dict[str, Any] = dict(meta.get("options") or {})
        if source == "syslog":
            options.setdefault("default_time", meta.get("received_at"))

        def record(session: Session, report: IngestReport) -> None:
            session.add(
                CollectBatch(
                    batch_id=part_id,
                    tenant_id=tenant,
                    sensor_id=sensor_id,
                    source=report.source,
                    lines_read=report.lines_read,
                    stored=report.stored,
                    quarantined=report.quarantined,
                    skipped=report.skipped,
                )
            )
            session.flush()  # the primary key decides here, before anything commits

        label = f"{meta.get('transport', 'spool')}:{meta.get('peer') or sensor_id or '-'}:{part_id}"
        try:
            report = self.platform.ingest(
                tenant,
                source,
                data,
                name=label,
                sensor_id=sensor_id,
                options=options or None,
                batch_id=part_id,
                on_commit=record,
            )
        except IntegrityError:
            done = self._done(part_id)
            if done is None:
                raise
            log.info("batch %s was stored by another worker meanwhile", part_id)
            result.add(done)
            result.duplicates += 1
            return
        result.add(report, report.alerts)
