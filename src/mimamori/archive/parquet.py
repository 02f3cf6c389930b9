"""The event archive: Parquet files partitioned by tenant and date, queried with DuckDB.

Layout: ``<root>/events/tenant=<id>/date=<YYYY-MM-DD>/<batch>.parquet`` and the same for
``quarantine``. File names are the batch id, so writing a batch twice replaces it
rather than duplicating it. Queries see one tenant's files only: the tenant's partition
is handed to DuckDB as an Arrow dataset and DuckDB's own file access is switched off
before the user's SQL runs.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads

from mimamori.events.schema import EVENT_SCHEMA, QUARANTINE_SCHEMA

#: Columns every archived event file keeps, even when empty.
_ALWAYS = frozenset({"@timestamp", "tenant.id", "event.dataset", "log.file.path", "log.file.line"})

_TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class ArchiveError(Exception):
    """Root of archive errors."""


class QueryError(ArchiveError):
    pass


def check_tenant_id(tenant: str) -> str:
    if not _TENANT_RE.match(tenant):
        raise ArchiveError(f"invalid tenant id {tenant!r} (lowercase letters, digits, '-', '_')")
    return tenant


class Archive:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------ writing
    def _write(self, kind: str, df: pl.DataFrame, tenant: str, batch_id: str, day: str | None = None) -> int:
        """Write ``df`` under ``day``, or under the days of its ``@timestamp``s."""
        check_tenant_id(tenant)
        if df.height == 0:
            return 0
        parts: Iterable[tuple[object, pl.DataFrame]]
        if day is None:
            ts = pl.col("@timestamp")
            first, last, nulls = df.select(ts.min(), ts.max().alias("l"), ts.null_count().alias("n")).row(0)
            if not nulls and first.date() == last.date():  # the usual batch: one day, as it is
                day = first.date().isoformat()
        if day is not None:
            parts = [(day, df)]
        else:
            by_day = df.with_columns(ts.dt.date().cast(pl.String).alias("__day"))
            parts = ((d, part.drop("__day")) for (d,), part in by_day.group_by("__day", maintain_order=True))
        for d, part in parts:
            folder = self.root / kind / f"tenant={tenant}" / f"date={d}"
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{batch_id}.parquet.tmp"
            # No column statistics: computing them (string min/max above all) costs a fifth of
            # the write. Time windows are chosen by the date folders (``scan_events(since)``);
            # a DuckDB query filtering on time reads the ``@timestamp`` column of each file.
            part.write_parquet(tmp, compression="zstd", compression_level=1, statistics=False)
            tmp.replace(folder / f"{batch_id}.parquet")  # atomic: readers never see half a file
        return df.height

    def write_events(self, events: pl.DataFrame, tenant: str, batch_id: str) -> int:
        events = events.with_columns(pl.lit(tenant).alias("tenant.id"))
        # Most of the schema is empty for any one source (a conn log has no e-mail or URL
        # fields): columns that are null throughout are left out of the file, which halves
        # the cost of writing it; readers put them back from EVENT_SCHEMA.
        nulls = events.null_count().row(0)
        events = events.select(
            [c for c, n in zip(events.columns, nulls, strict=True) if n < events.height or c in _ALWAYS]
        )
        return self._write("events", events, tenant, batch_id)

    def write_quarantine(self, rows: pl.DataFrame, tenant: str, batch_id: str) -> int:
        rows = rows.with_columns(pl.lit(tenant).alias("tenant.id"))
        return self._write("quarantine", rows, tenant, batch_id, datetime.now(UTC).date().isoformat())

    # ------------------------------------------------------------------ reading
    def _files(self, kind: str, tenant: str, since: date | None = None) -> list[Path]:
        base = self.root / kind / f"tenant={check_tenant_id(tenant)}"
        if not base.is_dir():
            return []
        out: list[Path] = []
        for day_dir in sorted(base.glob("date=*")):
            if since is not None and day_dir.name[5:] < since.isoformat():
                continue
            out.extend(sorted(day_dir.glob("*.parquet")))
        return out

    def scan_events(self, tenant: str, since: date | None = None) -> pl.LazyFrame:
        files = self._files("events", tenant, since)
        if not files:
            return pl.LazyFrame(schema=EVENT_SCHEMA)
        return pl.scan_parquet(files, schema=EVENT_SCHEMA, missing_columns="insert", extra_columns="ignore")

    def scan_quarantine(self, tenant: str) -> pl.LazyFrame:
        files = self._files("quarantine", tenant)
        if not files:
            return pl.LazyFrame(schema=QUARANTINE_SCHEMA)
        return pl.scan_parquet(files)

    def tenants(self) -> list[str]:
        base = self.root / "events"
        return sorted(p.name[7:] for p in base.glob("tenant=*")) if base.is_dir() else []

    def query(self, tenant: str, sql: str) -> pl.DataFrame:
        """Run DuckDB SQL over one tenant's events (table ``events``) and quarantine."""
        con = duckdb.connect(":memory:")
        try:
            events = self._dataset("events", tenant, EVENT_SCHEMA)
            quarantine = self._dataset("quarantine", tenant, QUARANTINE_SCHEMA)
            con.register("events", events)
            con.register("quarantine", quarantine)
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
            try:
                return con.sql(sql).pl()
            except duckdb.Error as exc:
                raise QueryError(str(exc).splitlines()[0]) from exc
            except AttributeError as exc:  # a statement with no result (e.g. SET)
                raise QueryError("the statement returned no result set") from exc
        finally:
            con.close()

    def _dataset(self, kind: str, tenant: str, schema: dict[str, pl.DataType]) -> pads.Dataset:
        arrow_schema = pl.DataFrame(schema=schema).to_arrow().schema
        files = [str(p) for p in self._files(kind, tenant)]
        if not files:
            return pads.dataset(
                pa.table({n: pa.array([], type=arrow_schema.field(n).type) for n in arrow_schema.names})
            )
        return pads.dataset(files, format="parquet", schema=arrow_schema)

    # ------------------------------------------------------------------ retention
    def apply_retention(self, tenant: str, keep_days: int, now: datetime | None = None) -> int:
        """Delete a tenant's event partitions older than ``keep_days``; return days removed."""
        cutoff = ((now or datetime.now(UTC)) - timedelta(days=keep_days)).date().isoformat()
        base = self.root / "events" / f"tenant={check_tenant_id(tenant)}"
        removed = 0
        for day_dir in base.glob("date=*") if base.is_dir() else []:
            if day_dir.name[5:] < cutoff:
                shutil.rmtree(day_dir)
                removed += 1
        return removed
