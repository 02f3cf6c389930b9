"""Windows event records (EVTX, evtx_dump JSON, winlogbeat/ECS JSON, OTRF JSON) as frames.

Every record becomes one row of a *wide* frame whose columns are the field names Sigma
rules use — the ``System`` fields (``EventID``, ``Channel``, ``Provider_Name``,
``Computer``, ``EventRecordID`` …) and every ``EventData`` / ``UserData`` field flattened
to its own name (``Image``, ``CommandLine``, ``TargetFilename``, ``ScriptBlockText`` …) —
all as text, next to the ECS core columns (``@timestamp``, ``host.name``, ``event.code``,
``winlog.channel``, ``winlog.record_id``, ``log.file.path``, ``log.file.line``).

Records are decoded one by one (the unavoidable boundary with the ``evtx`` reader and
``json``), but values go straight into per-column lists (sparse row index + value), never
into a per-row dict, and the frame is built once per batch.

A record that cannot be read is a quarantine row with the file, the record's position and
the reason; a damaged EVTX chunk is reported the same way and reading goes on with the next.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from mimamori.events.schema import conform, empty_quarantine
from mimamori.sources.base import ParseResult, iso_timestamp
from mimamori.sources.reader import quarantine_rows

#: ECS column -> the Sigma (Windows) field it is copied from
ECS_FROM_WINDOWS: dict[str, str] = {
    "host.name": "Computer",
    "event.code": "EventID",
    "event.provider": "Provider_Name",
    "winlog.channel": "Channel",
    "winlog.provider_name": "Provider_Name",
    "winlog.computer_name": "Computer",
    "winlog.event_id": "EventID",
    "process.executable": "Image",
    "process.command_line": "CommandLine",
    "process.parent.executable": "ParentImage",
    "process.parent.command_line": "ParentCommandLine",
    "file.path": "TargetFilename",
}

#: winlogbeat / ECS export names -> Sigma field names (the top-level System part)
WINLOGBEAT_SYSTEM: dict[str, str] = {
    "winlog.event_id": "EventID",
    "winlog.channel": "Channel",
    "winlog.provider_name": "Provider_Name",
    "winlog.computer_name": "Computer",
    "winlog.record_id": "EventRecordID",
    "winlog.task": "Task",
    "winlog.opcode": "Opcode",
    "winlog.keywords": "Keywords",
    "winlog.version": "Version",
    "winlog.process.pid": "ProcessID",
    "winlog.process.thread.id": "ThreadID",
    "winlog.user.identifier": "UserID",
    "log.level": "Level",
}

#: OTRF (Mordor) flat exports -> Sigma field names
OTRF_SYSTEM: dict[str, str] = {
    "SourceName": "Provider_Name",
    "Hostname": "Computer",
    "RecordNumber": "EventRecordID",
    "ExecutionProcessID": "ProcessID",
}

#: columns that are bookkeeping, not event fields
META = ("@timestamp", "log.file.path", "log.file.line", "winlog.record_id", "tenant.id")


class _Columns:
    """Sparse column builder: per column the row numbers and text values seen."""

    def __init__(self) -> None:
        self.rows = 0
        self.cols: dict[str, tuple[list[int], list[str]]] = {}

    def put(self, name: str, value: str) -> None:
        col = self.cols.get(name)
        if col is None:
            col = self.cols[name] = ([], [])
        col[0].append(self.rows)
        col[1].append(value)

    def has(self, name: str) -> bool:
        col = self.cols.get(name)
        return col is not None and bool(col[0]) and col[0][-1] == self.rows

    def frame(self) -> pl.DataFrame:
        n = self.rows
        series = []
        for name, (idx, vals) in self.cols.items():
            if len(idx) == n:
                series.append(pl.Series(name, vals, dtype=pl.String))
            else:
                s = pl.Series(name, [None] * n, dtype=pl.String)
                series.append(s.scatter(idx, pl.Series(vals, dtype=pl.String)))
        return pl.DataFrame(series, height=n)


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    if isinstance(v, dict):
        if "#text" in v:
            return _text(v["#text"])
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        parts = [_text(x) for x in v]
        return "\n".join(p for p in parts if p is not None)
    return str(v)


def _put_data(out: _Columns, data: Any, prefix: str = "") -> None:
    """Flatten EventData/UserData: named values under their own names, nested ones by leaf."""
    if not isinstance(data, dict):
        t = _text(data)
        if t is not None:
            out.put("Data", t)
        return
    for k, v in data.items():
        if k == "#attributes":
            continue
        if isinstance(v, dict) and "#text" not in v:
            _put_data(out, v, f"{k}.")
            continue
        t = _text(v)
        if t is None:
            continue
        name = "Data" if k == "#text" else k
        if not out.has(name):
            out.put(name, t)


def _put_system(out: _Columns, system: Mapping[str, Any]) -> None:
    for k, v in system.items():
        if isinstance(v, dict) and "#attributes" in v and "#text" not in v:
            attrs = v["#attributes"] or {}
            if k == "Provider":
                for ak, av in attrs.items():
                    if av is not None:
                        out.put(f"Provider_{ak}", str(av))
            elif k == "TimeCreated":
                if attrs.get("SystemTime") is not None:
                    out.put("TimeCreated", str(attrs["SystemTime"]))
            else:
                for ak, av in attrs.items():
                    if av is not None and not out.has(ak):
                        out.put(ak, str(av))
            continue
        t = _text(v)
        if t is not None:
            out.put(k, t)


def put_event_xml_json(out: _Columns, obj: Mapping[str, Any]) -> None:
    """One record in the ``evtx`` / evtx_dump JSON shape: ``{"Event": {"System":…, "EventData":…}}``."""
    ev = obj.get("Event", obj)
    system = ev.get("System") or {}
    _put_system(out, system)
    for part in ("EventData", "UserData"):
        if ev.get(part) is not None:
            _put_data(out, ev[part])


def put_flat_json(out: _Columns, obj: Mapping[str, Any]) -> None:
    """One record of a winlogbeat/ECS or OTRF export (flat or nested object)."""
    if "Event" in obj and isinstance(obj["Event"], dict) and "System" in obj["Event"]:
        put_event_xml_json(out, obj)
        return
    flat = dict(_flat_items(obj))
    event_data_keys = [k for k in flat if k.startswith(("winlog.event_data.", "winlog.user_data."))]
    if event_data_keys or "winlog.channel" in flat:  # winlogbeat
        for src, dst in WINLOGBEAT_SYSTEM.items():
            t = _text(flat.get(src))
            if t is not None:
                out.put(dst, t)
        for k in event_data_keys:
            t = _text(flat[k])
            name = k.split(".", 2)[2]
            if t is not None and not out.has(name):
                out.put(name, t)
        for ecs in ("@timestamp", "host.name", "message"):
            t = _text(flat.get(ecs))
            if t is not None:
                out.put(ecs, t)
        return
    for k, v in flat.items():  # OTRF / other flat exports: keys are already Sigma names
        t = _text(v)
        if t is None:
            continue
        name = OTRF_SYSTEM.get(k, k)
        if not out.has(name):
            out.put(name, t)


def _flat_items(obj: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in obj.items():
        if isinstance(v, dict) and "#text" not in v:
            yield from _flat_items(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


@dataclass
class WinlogBatch:
    """A wide frame of records plus the records that could not be read."""

    wide: pl.DataFrame
    quarantine: pl.DataFrame = field(default_factory=empty_quarantine)
    records: int = 0  # records seen (stored + quarantined)


class RecordBuilder:
    """Collects records into a wide frame; bad records into quarantine rows."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.cols = _Columns()
        self.bad_no: list[int] = []
        self.bad_reason: list[str] = []
        self.bad_raw: list[str] = []
        self._lines: list[int] = []
        self._record_ids: list[int | None] = []

    @property
    def rows(self) -> int:
        return self.cols.rows

    def add(self, obj: Any, position: int, record_id: int | None = None, flavour: str = "xml") -> None:
        if not isinstance(obj, dict):
            self.bad(position, f"JSON value is a {type(obj).__name__}, not an object", json.dumps(obj)[:4000])
            return
        try:
            if flavour == "xml":
                put_event_xml_json(self.cols, obj)
            else:
                put_flat_json(self.cols, obj)
        except (AttributeError, TypeError, ValueError) as exc:
            # a partial row was started: drop what this record put
            self._rollback()
            self.bad(position, f"unexpected record structure: {exc}", json.dumps(obj, default=str)[:4000])
            return
        self._lines.append(position)
        self._record_ids.append(record_id)
        self.cols.rows += 1

    def _rollback(self) -> None:
        r = self.cols.rows
        for idx, vals in self.cols.cols.values():
            while idx and idx[-1] == r:
                idx.pop()
                vals.pop()

    def bad(self, position: int, reason: str, raw: str = "") -> None:
        self.bad_no.append(position)
        self.bad_reason.append(reason)
        self.bad_raw.append(raw)

    def take(self) -> WinlogBatch:
        wide = self.cols.frame()
        wide = finish_wide(wide, self.path, self._lines, self._record_ids)
        q = (
            quarantine_rows(self.path, self.bad_no, self.bad_reason, self.bad_raw)
            if self.bad_no
            else empty_quarantine()
        )
        out = WinlogBatch(wide, q, wide.height + q.height)
        self.cols = _Columns()
        self.bad_no, self.bad_reason, self.bad_raw = [], [], []
        self._lines, self._record_ids = [], []
        return out


def finish_wide(
    wide: pl.DataFrame, path: str, lines: Iterable[int], record_ids: Iterable[int | None]
) -> pl.DataFrame:
    """Add the ECS core and bookkeeping columns to a frame of Sigma-named text columns."""
    ids = pl.Series("winlog.record_id", list(record_ids), dtype=pl.Int64)
    line = pl.Series("log.file.line", list(lines), dtype=pl.Int64)
    wide = wide.with_columns(
        pl.lit(path, dtype=pl.String).alias("log.file.path"), line.alias("log.file.line"), ids
    )
    if "EventRecordID" in wide.columns:
        wide = wide.with_columns(
            pl.coalesce(
                pl.col("EventRecordID").cast(pl.Int64, strict=False), pl.col("winlog.record_id")
            ).alias("winlog.record_id")
        )
    else:
        wide = wide.with_columns(pl.col("winlog.record_id").cast(pl.String).alias("EventRecordID"))
    exprs: list[pl.Expr] = [_timestamp(wide).alias("@timestamp")]
    for ecs, src in ECS_FROM_WINDOWS.items():
        if src in wide.columns and ecs not in wide.columns:
            exprs.append(pl.col(src).alias(ecs))
    return wide.with_columns(exprs)


_ZULU = "%Y-%m-%dT%H:%M:%S%.fZ"  # SystemTime as the evtx reader writes it


def _timestamp(wide: pl.DataFrame) -> pl.Expr:
    """The event time: SystemTime (fast path, one fixed format), else any ISO-8601 form."""
    src = [c for c in ("TimeCreated", "@timestamp", "UtcTime", "EventTime") if c in wide.columns]
    if not src:
        return pl.lit(None, dtype=pl.Datetime("us", "UTC"))
    first = wide[src[0]]
    fast = first.str.to_datetime(_ZULU, strict=False, time_unit="us")
    if fast.null_count() == 0:
        return pl.lit(fast.dt.replace_time_zone("UTC"))
    ts = pl.coalesce([iso_timestamp(pl.col(c)) for c in src])
    return ts.cast(pl.Datetime("us", "UTC"))


def sigma_columns(wide: pl.DataFrame) -> list[str]:
    """The Windows (Sigma-named) columns of a wide frame: all but ECS and bookkeeping."""
    return [c for c in wide.columns if "." not in c and c not in META]


def to_events(wide: pl.DataFrame, module: str) -> pl.DataFrame:
    """The ECS events for the archive: core columns plus all Windows fields as one JSON text."""
    if wide.height == 0:
        return conform(wide)
    fields = sigma_columns(wide)
    extra = [
        pl.lit("event").alias("event.kind"),
        pl.lit(module).alias("event.module"),
        (pl.lit("windows.") + pl.col("winlog.channel").fill_null("unknown").str.to_lowercase()).alias(
            "event.dataset"
        )
        if "winlog.channel" in wide.columns
        else pl.lit("windows.unknown").alias("event.dataset"),
        pl.struct(fields).struct.json_encode().alias("winlog.event_data")
        if fields
        else pl.lit("{}").alias("winlog.event_data"),
    ]
    if "user.name" not in wide.columns:
        users = [c for c in ("User", "SubjectUserName", "TargetUserName") if c in wide.columns]
        if users:
            extra.append(pl.coalesce([pl.col(c) for c in users]).alias("user.name"))
    return conform(wide.with_columns(extra))


def from_events(events: pl.DataFrame) -> pl.DataFrame:
    """The wide frame again from archived events (their ``winlog.event_data`` JSON)."""
    rows = events.filter(pl.col("winlog.event_data").is_not_null())
    if rows.height == 0:
        return pl.DataFrame()
    fields = pl.read_ndjson(
        rows["winlog.event_data"].str.join("\n").item().encode(), infer_schema_length=None
    )
    fields = fields.select(pl.all().cast(pl.String))
    keep = [c for c in rows.columns if c != "winlog.event_data" and c not in fields.columns]
    return pl.concat([fields, rows.select(keep)], how="horizontal")


def parse_result(batch: WinlogBatch, module: str) -> ParseResult:
    return ParseResult(to_events(batch.wide, module), batch.quarantine, 0)
