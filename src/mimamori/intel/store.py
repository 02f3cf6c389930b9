"""Upsert deduplicated indicators into the control-plane tables, and load the active ones.

``store`` merges a ``Deduplicated`` batch into ``Indicator`` / ``IndicatorSighting`` /
``IntelSource`` in chunks: look-ups by ``IN`` (``= ANY(array)`` on PostgreSQL), inserts
and updates as Core executemany on SQLite and as one ``unnest`` statement per 20k rows on
PostgreSQL, values rendered by Polars rather than row by row in Python. 100k indicators
take a few seconds on either backend. A stored indicator is merged the way
``deduplicate`` merges reports: highest confidence, earliest first_seen, latest last_seen,
union of tags, later expiry (``None`` = never). The caller's session owns the
transaction; nothing is committed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl
from sqlalchemy import (
    ARRAY,
    JSON,
    String,
    Table,
    Text,
    any_,
    bindparam,
    cast,
    insert,
    or_,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.orm import Session

from mimamori.db.models import Indicator, IndicatorSighting, IntelSource, UtcDateTime
from mimamori.events.schema import TS
from mimamori.intel.base import INDICATOR_SCHEMA, empty_indicators
from mimamori.intel.dedup import Deduplicated
from mimamori.intel.match import IndicatorSet
from mimamori.intel.warninglist import WarningList

CHUNK = 5000
#: New rows after which PostgreSQL statistics are refreshed (see ``_analyze``).
ANALYZE_AFTER = 1000
#: Rows per PostgreSQL ``unnest`` statement.
PG_CHUNK = 20000
# Core tables: executemany through Core skips the ORM's per-row bookkeeping.
_INDICATOR: Table = Indicator.__table__  # type: ignore[assignment]
_SIGHTING: Table = IndicatorSighting.__table__  # type: ignore[assignment]
_STORED = {"id": pl.Int64(), **INDICATOR_SCHEMA}
del _STORED["source"], _STORED["reference"]
_FIELDS = ("threat", "confidence", "first_seen", "last_seen", "expires_at", "tags")
_SIGHTING_FIELDS = ("reference", "threat", "confidence", "first_seen", "last_seen")


@dataclass(frozen=True)
class SourceMeta:
    """What ``IntelSource`` records about a source name: its reader kind and feed URL."""

    kind: str = "unknown"
    url: str | None = None


@dataclass
class StoreResult:
    new: int
    updated: int
    unchanged: int
    new_indicators: pl.DataFrame  # INDICATOR_SCHEMA: the indicators that were not stored before
    new_sightings: int = 0
    updated_sightings: int = 0


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _in(session: Session, column: Any, values: Sequence[Any]) -> Any:
    """``column IN values``; on PostgreSQL ``= ANY(array)``: one parameter, index-friendly."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)


def _analyze(session: Session, *tables: Table) -> None:
    """Refresh PostgreSQL planner statistics after a bulk load.

    Without them the planner still believes the tables are small and scans instead of
    using the (type, value) and indicator_id indexes: look-ups on a freshly loaded 100k
    table then take minutes. (A table the user does not own gives a warning, not an error.)
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE " + ", ".join(t.name for t in tables)))


def _records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts, built column-wise (much faster than ``DataFrame.to_dicts``)."""
    names = frame.columns
    return [
        dict(zip(names, row, strict=True))
        for row in zip(*(s.to_list() for s in frame.iter_columns()), strict=True)
    ]


def _source_ids(
    session: Session, names: list[str], meta: Mapping[str, SourceMeta], now: datetime
) -> dict[str, int]:
    found = {s.name: s for s in session.scalars(select(IntelSource).where(IntelSource.name.in_(names)))}
    for name in names:
        info = meta.get(name)
        src = found.get(name)
        if src is None:
            src = IntelSource(
                name=name, kind=info.kind if info else "unknown", url=info.url if info else None
            )
            session.add(src)
            found[name] = src
        elif info is not None:
            src.kind = info.kind
            src.url = info.url or src.url
        src.last_imported_at = now
    session.flush()
    return {name: src.id for name, src in found.items()}


# SQLAlchemy's SQLite DATETIME text; parsing it in Polars beats a Python call per value.
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S%.f"
_SQLITE_TIME_OUT = "%Y-%m-%d %H:%M:%S%.6f"


def _columns(session: Session, table: Table, names: Sequence[str]) -> list[Any]:
    """Columns to select: JSON as text, and on SQLite datetimes as their stored text."""
    sqlite = session.get_bind().dialect.name == "sqlite"
    out: list[Any] = []
    for name in names:
        col = table.c[name]
        if name == "tags":
            out.append(cast(col, Text).label(name))
        elif sqlite and isinstance(col.type, UtcDateTime):
            out.append(type_coerce(col, String).label(name))
        else:
            out.append(col)
    return out


def _bindable(
    session: Session, table: Table, frame: pl.DataFrame
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Parameters for executemany: ``(column -> bindparam, records)``.

    On SQLite, datetimes and JSON are rendered to their stored text by Polars and bound as
    plain strings: the same bytes SQLAlchemy would write, without a Python call per value.
    """
    sqlite = session.get_bind().dialect.name == "sqlite"
    binds: dict[str, Any] = {}
    exprs: list[pl.Expr] = []
    for name in frame.columns:
        if name not in table.c:
            exprs.append(pl.col(name))
            continue
        col_type = table.c[name].type
        if sqlite and isinstance(col_type, UtcDateTime):
            exprs.append(pl.col(name).dt.convert_time_zone("UTC").dt.strftime(_SQLITE_TIME_OUT))
            binds[name] = bindparam(name, type_=String)
        elif sqlite and isinstance(col_type, JSON):
            exprs.append(_json_text(name))
            binds[name] = bindparam(name, type_=String)
        else:
            exprs.append(pl.col(name))
            binds[name] = bindparam(name)
    return binds, _records(frame.select(exprs))


def _frame(rows: Sequence[Any], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Result rows (from ``_columns``) -> frame, built column-wise, text decoded by Polars."""
    names = list(schema)
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    data: dict[str, pl.Series] = {}
    for name, values in zip(names, columns, strict=True):
        dtype = schema[name]
        if name == "tags":
            raw = pl.Series(name, values, dtype=pl.String)
            data[name] = raw.str.json_decode(pl.List(pl.String)).fill_null([])
        elif dtype == TS and any(isinstance(v, str) for v in values):
            raw = pl.Series(name, values, dtype=pl.String)
            data[name] = raw.str.to_datetime(_SQLITE_TIME, time_unit="us", time_zone="UTC")
        else:
            data[name] = pl.Series(name, values, dtype=dtype)
    return pl.DataFrame(data, schema=schema)


def _existing(session: Session, batch: pl.DataFrame) -> pl.DataFrame:
    """Stored indicators whose ``(type, value)`` is in ``batch`` (columns of ``_STORED``)."""
    rows: list[Any] = []
    for kind, values in batch.group_by("type").agg(pl.col("value")).iter_rows():
        for chunk in _chunks(values):
            stmt = select(*_columns(session, _INDICATOR, list(_STORED))).where(
                _INDICATOR.c.type == kind, _in(session, _INDICATOR.c.value, chunk)
            )
            rows.extend(session.execute(stmt).all())
    return _frame(rows, _STORED)


def _merged(joined: pl.DataFrame) -> pl.DataFrame:
    """Stored + incoming values merged; columns ``id``, ``_FIELDS`` and ``changed``."""
    newer_wins = pl.col("confidence") >= pl.col("confidence_old").fill_null(-1)
    old_tags = pl.col("tags_old").fill_null([]).list.unique(maintain_order=True)
    # Stored tags keep their order and new ones are appended (list.sort is slow per row).
    tags = pl.concat_list(old_tags, pl.col("tags").fill_null([])).list.unique(maintain_order=True)
    merged = joined.select(
        pl.col("id"),
        pl.when(newer_wins)
        .then(pl.coalesce("threat", "threat_old"))
        .otherwise(pl.coalesce("threat_old", "threat"))
        .alias("threat"),
        pl.max_horizontal("confidence", "confidence_old").alias("confidence"),
        pl.min_horizontal("first_seen", "first_seen_old").alias("first_seen"),
        pl.max_horizontal("last_seen", "last_seen_old").alias("last_seen"),
        pl.when(pl.col("expires_at").is_null() | pl.col("expires_at_old").is_null())
        .then(pl.lit(None, dtype=TS))
        .otherwise(pl.max_horizontal("expires_at", "expires_at_old"))
        .alias("expires_at"),
        tags.alias("tags"),
        (tags.list.len() != pl.col("tags_old").fill_null([]).list.len()).alias("tags_changed"),
        *[pl.col(f"{f}_old") for f in _FIELDS if f != "tags"],
    )
    changed = pl.any_horizontal(
        [pl.col(f).ne_missing(pl.col(f"{f}_old")) for f in _FIELDS if f != "tags"] + [pl.col("tags_changed")]
    )
    return merged.with_columns(changed.alias("changed")).select("id", *_FIELDS, "changed")


def store(
    session: Session,
    batch: Deduplicated,
    *,
    now: datetime | None = None,
    sources: Mapping[str, SourceMeta] | None = None,
) -> StoreResult:
    """Upsert ``batch`` (from ``deduplicate``); counts and the newly stored indicators."""
    now = now or datetime.now(UTC)
    ind = batch.indicators
    if ind.height == 0:
        return StoreResult(0, 0, 0, empty_indicators())
    source_ids = _source_ids(
        session, sorted(batch.sightings["source"].unique().to_list()), sources or {}, now
    )

    existing = _existing(session, ind)
    joined = ind.join(existing, on=["type", "value"], how="left", suffix="_old")
    is_new = joined["id"].is_null()
    fresh = ind.filter(is_new)

    # --- new indicators
    ids: list[tuple[int, str, str]] = []
    if fresh.height:
        payload = fresh.select("type", "value", *_FIELDS).with_columns(
            pl.lit(now, dtype=TS).alias("created_at")
        )
        # RETURNING carries (type, value), so row order does not matter.
        ids = [
            (int(i), str(t), str(v))
            for i, t, v in _insert(session, _INDICATOR, payload, ("id", "type", "value"))
        ]

    # --- stored indicators that this batch changes
    merged = _merged(joined.filter(~is_new))
    changed = merged.filter(pl.col("changed")).drop("changed")
    _update_by_id(session, _INDICATOR, changed)

    # --- sightings, one per (indicator, source)
    id_map = pl.concat(
        [
            existing.select("type", "value", pl.col("id").cast(pl.Int64)),
            pl.DataFrame(
                ids, schema={"id": pl.Int64, "type": pl.String, "value": pl.String}, orient="row"
            ).select("type", "value", "id"),
        ]
    )
    src = pl.DataFrame(
        {"source": list(source_ids), "source_id": list(source_ids.values())},
        schema={"source": pl.String, "source_id": pl.Int64},
    )
    sightings = (
        batch.sightings.join(id_map, on=["type", "value"], how="inner")
        .join(src, on="source", how="inner")
        .select(pl.col("id").alias("indicator_id"), "source_id", *_SIGHTING_FIELDS)
    )
    new_s, upd_s = _store_sightings(session, sightings, existing["id"].to_list())

    if fresh.height + new_s >= ANALYZE_AFTER:
        _analyze(session, _INDICATOR, _SIGHTING)
    fresh_out = fresh.select(list(INDICATOR_SCHEMA))
    return StoreResult(
        new=fresh.height,
        updated=changed.height,
        unchanged=merged.height - changed.height,
        new_indicators=fresh_out,
        new_sightings=new_s,
        updated_sightings=upd_s,
    )


def _store_sightings(session: Session, sightings: pl.DataFrame, old_ids: list[int]) -> tuple[int, int]:
    schema = {
        "sid": pl.Int64(),
        "indicator_id": pl.Int64(),
        "source_id": pl.Int64(),
        "reference": pl.String(),
        "threat": pl.String(),
        "confidence": pl.Int32(),
        "first_seen": TS,
        "last_seen": TS,
    }
    rows: list[Any] = []
    source_ids = sightings["source_id"].unique().to_list()
    cols = _columns(session, _SIGHTING, ["id", "indicator_id", "source_id", *_SIGHTING_FIELDS])
    for chunk in _chunks(old_ids):
        query = select(*cols).where(
            _in(session, _SIGHTING.c.indicator_id, chunk), _in(session, _SIGHTING.c.source_id, source_ids)
        )
        rows.extend(session.execute(query).all())
    stored = _frame(rows, schema)
    joined = sightings.join(stored, on=["indicator_id", "source_id"], how="left", suffix="_old")
    fresh = joined.filter(pl.col("sid").is_null()).select("indicator_id", "source_id", *_SIGHTING_FIELDS)
    _insert(session, _SIGHTING, fresh)
    merged = joined.filter(pl.col("sid").is_not_null()).select(
        pl.col("sid").alias("id"),
        pl.coalesce("reference", "reference_old").alias("reference"),
        pl.coalesce("threat", "threat_old").alias("threat"),
        pl.coalesce("confidence", "confidence_old").alias("confidence"),
        pl.min_horizontal("first_seen", "first_seen_old").alias("first_seen"),
        pl.max_horizontal("last_seen", "last_seen_old").alias("last_seen"),
        pl.any_horizontal(
            [
                pl.coalesce("reference", "reference_old").ne_missing(pl.col("reference_old")),
                pl.coalesce("threat", "threat_old").ne_missing(pl.col("threat_old")),
                pl.coalesce("confidence", "confidence_old").ne_missing(pl.col("confidence_old")),
                pl.min_horizontal("first_seen", "first_seen_old").ne_missing(pl.col("first_seen_old")),
                pl.max_horizontal("last_seen", "last_seen_old").ne_missing(pl.col("last_seen_old")),
            ]
        ).alias("changed"),
    )
    changed = merged.filter(pl.col("changed")).drop("changed")
    _update_by_id(session, _SIGHTING, changed)
    return fresh.height, changed.height


def _insert(
    session: Session, table: Table, rows: pl.DataFrame, returning: Sequence[str] = ()
) -> list[tuple[Any, ...]]:
    """Insert every row of ``rows`` into ``table``; the ``returning`` columns of each row."""
    out: list[tuple[Any, ...]] = []
    if rows.height == 0:
        return out
    if session.get_bind().dialect.name == "postgresql":
        cols = ", ".join(rows.columns)
        ret = f" RETURNING {', '.join(returning)}" if returning else ""
        for part in rows.iter_slices(PG_CHUNK):
            select_list, params = _pg_unnest(session, table, part)
            sql = f"INSERT INTO {table.name} ({cols}) {select_list}{ret}"
            result = session.execute(text(sql), params)
            if returning:
                out.extend(tuple(r) for r in result)
        return out
    binds, records = _bindable(session, table, rows)
    stmt = insert(table).values(binds)
    if returning:
        stmt = stmt.returning(*(table.c[c] for c in returning))
    for chunk in _chunks(records):
        result = session.execute(stmt, list(chunk))
        if returning:
            out.extend(tuple(r) for r in result)
    return out


def _update_by_id(session: Session, table: Table, rows: pl.DataFrame) -> None:
    """``UPDATE table SET <columns> WHERE id = <id>`` for each row of ``rows``."""
    if rows.height == 0:
        return
    if session.get_bind().dialect.name == "postgresql":
        sets = ", ".join(f"{c} = u.{c}" for c in rows.columns if c != "id")
        for part in rows.iter_slices(PG_CHUNK):
            select_list, params = _pg_unnest(session, table, part)
            sql = f"UPDATE {table.name} AS t SET {sets} FROM ({select_list}) AS u WHERE t.id = u.id"
            session.execute(text(sql), params)
        return
    binds, records = _bindable(session, table, rows.drop("id").with_columns(rows["id"].alias("_id")))
    stmt = update(table).where(table.c.id == bindparam("_id")).values(binds)
    for chunk in _chunks(records):
        session.execute(stmt, list(chunk))


def _pg_unnest(session: Session, table: Table, rows: pl.DataFrame) -> tuple[str, dict[str, Any]]:
    """``SELECT ... FROM unnest(<one array per column>)`` and its parameters (PostgreSQL).

    One statement carries thousands of rows in one parameter per column, each an array
    literal built by Polars (``{"a","b",NULL}``): no per-row round trip, no huge placeholder
    list, and no per-element work in the driver.
    """
    dialect = session.get_bind().dialect
    arrays: list[str] = []
    picks: list[str] = []
    literals: list[pl.Expr] = []
    for i, name in enumerate(rows.columns):
        col_type = table.c[name].type
        base = col_type.impl if isinstance(col_type, UtcDateTime) else col_type
        type_name = base.compile(dialect=dialect)
        col = pl.col(name)
        if isinstance(col_type, JSON):
            element = _quoted(_json_text(name))
            arrays.append(f"CAST(CAST(:p{i} AS TEXT) AS TEXT[])")
            picks.append(f"CAST(c{i} AS {type_name}) AS {name}")
        else:
            if isinstance(col_type, UtcDateTime):
                element = _quoted(col.dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%d %H:%M:%S%.6f+00"))
            elif rows.schema[name].is_numeric():
                element = col.cast(pl.String)
            else:
                element = _quoted(col.cast(pl.String))
            arrays.append(f"CAST(CAST(:p{i} AS TEXT) AS {type_name}[])")
            picks.append(f"c{i} AS {name}")
        literals.append(
            pl.concat_str([pl.lit("{"), element.fill_null("NULL").str.join(","), pl.lit("}")]).alias(f"p{i}")
        )
    params = rows.select(literals).row(0, named=True)
    aliases = ", ".join(f"c{i}" for i in range(len(rows.columns)))
    select_list = f"SELECT {', '.join(picks)} FROM unnest({', '.join(arrays)}) AS v({aliases})"
    return select_list, params


def _quoted(expr: pl.Expr) -> pl.Expr:
    """An array element in double quotes, ``\\`` and ``"`` escaped (null stays null)."""
    escaped = expr.str.replace_all("\\", "\\\\", literal=True).str.replace_all('"', '\\"', literal=True)
    return pl.concat_str([pl.lit('"'), escaped, pl.lit('"')])


def _json_text(name: str) -> pl.Expr:
    """A list column as JSON array text, encoded by Polars."""
    return pl.struct(name).struct.json_encode().str.slice(len(name) + 4).str.strip_suffix("}").alias(name)


def active_indicators(session: Session, now: datetime | None = None) -> pl.DataFrame:
    """Indicators not expired at ``now`` (``INDICATOR_SCHEMA``; ``source`` lists sources)."""
    now = now or datetime.now(UTC)
    stmt = select(*_columns(session, _INDICATOR, list(_STORED))).where(
        or_(_INDICATOR.c.expires_at.is_(None), _INDICATOR.c.expires_at > now)
    )
    stored = _frame(session.execute(stmt).all(), _STORED)
    names = session.execute(
        select(_SIGHTING.c.indicator_id, IntelSource.name).join(
            IntelSource, IntelSource.id == _SIGHTING.c.source_id
        )
    ).all()
    per = _frame(names, {"id": pl.Int64(), "source": pl.String()})
    per = per.group_by("id").agg(pl.col("source").unique().sort().str.join(", "))
    return (
        stored.join(per, on="id", how="left")
        .with_columns(pl.lit(None, dtype=pl.String).alias("reference"))
        .select(list(INDICATOR_SCHEMA))
    )


def load_active(
    session: Session,
    now: datetime | None = None,
    *,
    warninglist: WarningList | None = None,
    allow_private: bool = False,
) -> IndicatorSet:
    """A matcher over the indicators active at ``now``, minus the warning list.

    The warning list is applied again here so that a private-range indicator imported for
    an opted-in tenant never alerts for the others (``allow_private`` per tenant).
    """
    frame = active_indicators(session, now)
    wl = warninglist or WarningList.default()
    return IndicatorSet(wl.filter(frame, allow_private=allow_private).kept)
