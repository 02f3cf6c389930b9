"""The main path: raw records -> normalised batches -> archive + detectors -> incidents.

One ``Platform`` holds the database engine, the archive and the detectors. Ingesting is
idempotent: batch ids derive from the content, so the same file ingested twice replaces
its archive files and its alerts are recognised as duplicates.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from mimamori.archive import Archive
from mimamori.assets import default_observers
from mimamori.config import Settings
from mimamori.db.models import IngestRun, Sensor, Tenant, utcnow
from mimamori.db.session import init_db, make_engine, session_scope
from mimamori.detect import AlertDraft, DetectContext, Detector, default_detectors
from mimamori.detect.intel import IntelMatchDetector
from mimamori.detect.state import StateStore
from mimamori.events.net import DEFAULT_INTERNAL
from mimamori.incidents.engine import GroupingResult, ingest_alerts
from mimamori.intel import IndicatorSet
from mimamori.sources import SourceParser, detect_source, get_parser, head_lines, read_batches
from mimamori.sources.base import ParseResult, SourceError
from mimamori.sources.reader import Buffer, LineBatch, open_file, quarantine_rows

Progress = Callable[[int], None]


class PipelineError(Exception):
    """Root of pipeline errors shown to users."""


class UnknownTenantError(PipelineError):
    def __init__(self, tenant: str) -> None:
        super().__init__(f"unknown tenant {tenant!r} (see `mimamori tenants list`)")
        self.tenant = tenant


@dataclass
class IngestReport:
    tenant: str
    source: str
    path: str
    lines_read: int = 0
    stored: int = 0
    quarantined: int = 0
    skipped: int = 0
    alerts: int = 0
    duplicate_alerts: int = 0
    incidents_opened: list[int] = field(default_factory=list)
    incidents_updated: list[int] = field(default_factory=list)
    quarantine_sample: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _content_id(data: Buffer) -> str:
    return hashlib.sha256(data).hexdigest()[:20]


class Platform:
    def __init__(self, settings: Settings, detectors: list[Detector] | None = None) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = make_engine(settings.database_url)
        init_db(self.engine)
        self.archive = Archive(settings.archive_dir)
        self.detectors = detectors if detectors is not None else default_detectors()
        for det in self.detectors:
            det.configure(settings)
        self.state = StateStore(settings.data_dir / "state")
        self.observers = default_observers()
        self._indicators: dict[bool, IndicatorSet] = {}

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Platform:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ intel
    def indicators(self, allow_private: bool = False) -> IndicatorSet:
        """The active indicator set, loaded once and refreshed after each intel import.

        ``allow_private``: for tenants that opted in to indicators in private ranges.
        """
        if allow_private not in self._indicators:
            from mimamori.intel import load_active

            with session_scope(self.engine) as s:
                self._indicators[allow_private] = load_active(
                    s, datetime.now(UTC), allow_private=allow_private
                )
        return self._indicators[allow_private]

    def refresh_indicators(self) -> None:
        self._indicators = {}

    def set_indicators(self, indicators: IndicatorSet) -> None:
        """Use this indicator set instead of the database's (benchmarks, tests)."""
        self._indicators = {False: indicators, True: indicators}

    # ------------------------------------------------------------------ ingest
    def ingest(
        self,
        tenant_id: str,
        source: str,
        src: Path | bytes,
        *,
        name: str | None = None,
        sensor_id: int | None = None,
        progress: Progress | None = None,
        group: bool = True,
        options: dict[str, Any] | None = None,
        batch_id: str | None = None,
        on_commit: Callable[[Session, IngestReport], None] | None = None,
    ) -> IngestReport:
        """Ingest one file or buffer.

        ``batch_id`` replaces the content-derived id (collect's spool ids: two identical
        buffers received twice are two batches); ``on_commit`` runs inside the transaction
        that stores the alerts and the ingest run, so whatever it writes commits with them.
        """
        label = name or (str(src) if not isinstance(src, bytes) else "<request>")
        with session_scope(self.engine) as session:
            tenant = session.get(Tenant, tenant_id)
            if tenant is None:
                raise UnknownTenantError(tenant_id)
            networks = tuple(tenant.networks or ()) or DEFAULT_INTERNAL
            allow_private = tenant.intel_private_ranges
        with ExitStack() as stack:  # a file is memory-mapped while it is read
            data, file = (src, None) if isinstance(src, bytes) else stack.enter_context(open_file(src))
            # Archive files are written by one thread while the next batch is parsed and
            # checked (Polars and DuckDB release the GIL); one write waits at most.
            writer = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="archive"))
            writing: Future[tuple[int, int]] | None = None
            if source == "auto":
                found = detect_source(head_lines(src))
                if found is None:
                    raise PipelineError(f"{label}: format not recognised; name it with --source")
                source = found
            parser = get_parser(source, **(options or {}))
            report = IngestReport(tenant_id, source, label)
            # The content id is hashed on the writer thread while the first batch is parsed.
            hashing = None if batch_id else writer.submit(_content_id, data)
            base_id = batch_id
            drafts: list[AlertDraft] = []
            ctx: dict[str, Any] = {}
            qsample: list[pl.DataFrame] = []
            results = self._results(parser, data, label, ctx, file)
            for i, (n_lines, quarantine, result) in enumerate(results):
                if base_id is None:
                    assert hashing is not None
                    base_id = f"{source}-{hashing.result()}"
                part_id = f"{base_id}-{i:05d}"
                report.lines_read += n_lines
                if writing is not None:
                    self._count_written(report, writing)
                writing = writer.submit(self._write, result.events, quarantine, tenant_id, part_id)
                report.skipped += result.skipped
                if quarantine.height and sum(q.height for q in qsample) < 20:
                    qsample.append(quarantine.head(20))
                events = result.events.with_columns(pl.lit(tenant_id).alias("tenant.id"))
                drafts.extend(self.detect(events, tenant_id, part_id, networks, allow_private))
                if self.observers and events.height:
                    with session_scope(self.engine) as session:
                        tenant_row = session.get(Tenant, tenant_id)
                        assert tenant_row is not None
                        for observer in self.observers:
                            drafts.extend(observer.observe(session, tenant_row, events, part_id))
                if progress:
                    progress(n_lines)
            if writing is not None:
                self._count_written(report, writing)
        report.quarantine_sample = (
            pl.concat(qsample).head(20).select("log.file.line", "reason").to_dicts() if qsample else []
        )
        with session_scope(self.engine) as session:
            tenant = session.get(Tenant, tenant_id)
            assert tenant is not None
            grouping = ingest_alerts(session, tenant, drafts) if group else GroupingResult()
            report.alerts = grouping.alerts_new
            report.duplicate_alerts = grouping.alerts_duplicate
            report.incidents_opened = grouping.incidents_opened
            report.incidents_updated = sorted(grouping.incidents_updated)
            session.add(
                IngestRun(
                    tenant_id=tenant_id,
                    sensor_id=sensor_id,
                    source=source,
                    path=label,
                    lines_read=report.lines_read,
                    stored=report.stored,
                    quarantined=report.quarantined,
                    skipped=report.skipped,
                    alerts=grouping.alerts_new,
                    finished_at=utcnow(),
                )
            )
            for det in self.detectors:
                self.state.save(tenant_id, det.name)
            if sensor_id is not None:
                sensor = session.scalar(
                    select(Sensor).where(Sensor.id == sensor_id, Sensor.tenant_id == tenant_id)
                )
                if sensor is not None:
                    sensor.last_seen_at = utcnow()
            if on_commit is not None:
                on_commit(session, report)
        return report

    def _write(
        self, events: pl.DataFrame, quarantine: pl.DataFrame, tenant_id: str, batch_id: str
    ) -> tuple[int, int]:
        stored = self.archive.write_events(events, tenant_id, batch_id)
        return stored, self.archive.write_quarantine(quarantine, tenant_id, batch_id)

    @staticmethod
    def _count_written(report: IngestReport, writing: Future[tuple[int, int]]) -> None:
        stored, quarantined = writing.result()  # a failed write raises here, before the commit
        report.stored += stored
        report.quarantined += quarantined

    def _results(
        self, parser: SourceParser, data: Buffer, label: str, ctx: dict[str, Any], file: str | None
    ) -> Iterator[tuple[int, pl.DataFrame, ParseResult]]:
        """(records read, quarantine, parsed) per batch; record parsers (EVTX) get the file."""
        read_records = getattr(parser, "read_records", None)
        if read_records is not None:
            try:
                for result in read_records(bytes(data), label):
                    yield result.events.height + result.quarantine.height, result.quarantine, result
            except SourceError as exc:  # the whole file is unreadable: one quarantine row says why
                q = quarantine_rows(label, [0], [str(exc)], [""])
                yield 1, q, ParseResult(quarantine=q.clear())
            return
        for batch in read_batches(data, label, file=file):
            result = self._parse(parser, batch, ctx)
            quarantine = pl.concat([batch.quarantine, result.quarantine])
            yield batch.n_lines + batch.quarantine.height, quarantine, result

    @staticmethod
    def _parse(parser: SourceParser, batch: LineBatch, ctx: dict[str, Any]) -> ParseResult:
        """Parse one batch; a parser failure quarantines the batch instead of losing it.

        Any exception is caught here on purpose: this is the boundary where a parser bug
        must turn into quarantined lines with a reason, not lost data or a stopped pipeline.
        """
        if batch.n_lines == 0:
            return ParseResult()
        try:
            return parser.parse(batch, ctx)
        except (Exception, pl.exceptions.PanicException) as exc:  # a Polars panic is a BaseException
            lines = batch.lines
            return ParseResult(
                quarantine=quarantine_rows(
                    batch.path,
                    lines["log.file.line"].to_list(),
                    [f"parser {parser.name} failed on this batch: {type(exc).__name__}: {exc}"]
                    * lines.height,
                    lines["text"].to_list(),
                )
            )

    def detect(
        self,
        events: pl.DataFrame,
        tenant_id: str,
        batch_id: str,
        networks: Iterable[str],
        allow_private: bool = False,
    ) -> list[AlertDraft]:
        if events.height == 0:
            return []
        ctx = DetectContext(
            tenant=tenant_id,
            batch_id=batch_id,
            networks=tuple(networks),
            indicators=self.indicators(allow_private)
            if any(isinstance(d, IntelMatchDetector) for d in self.detectors)
            else None,
        )
        out: list[AlertDraft] = []
        for det in self.detectors:
            out.extend(det.detect(events, replace(ctx, state=self.state.get(tenant_id, det.name))))
        return out

    # ------------------------------------------------------------------ retro-hunt
    def retro_hunt(self, new_indicators: pl.DataFrame, days: int = 30) -> dict[str, GroupingResult]:
        """Match newly learnt indicators against each tenant's archived events."""
        if new_indicators.height == 0:
            return {}
        indicators = IndicatorSet(new_indicators)
        since = (datetime.now(UTC) - timedelta(days=days)).date()
        run_id = (
            "retro-"
            + hashlib.sha256(
                new_indicators.select("type", "value").sort("type", "value").write_csv().encode()
            ).hexdigest()[:16]
        )
        results: dict[str, GroupingResult] = {}
        detector = IntelMatchDetector()
        with session_scope(self.engine) as session:
            for tenant in session.scalars(select(Tenant)).all():
                events = self.archive.scan_events(tenant.id, since).collect()
                if events.height == 0:
                    continue
                ctx = DetectContext(
                    tenant=tenant.id,
                    batch_id=run_id,
                    networks=tuple(tenant.networks or ()) or DEFAULT_INTERNAL,
                    indicators=indicators,
                )
                drafts = detector.detect(events, ctx)
                for d in drafts:
                    d.evidence["retro_hunt"] = True
                if drafts:
                    results[tenant.id] = ingest_alerts(session, tenant, drafts)
        return results
