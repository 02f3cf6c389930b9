"""Any NDJSON log, mapped to ECS by a declared YAML field map instead of code.

The parser option ``field_map`` is a path to a YAML file or an already-loaded dict::

    dataset: acme.proxy              # event.dataset (required)
    module: acme                     # event.module (optional, default "ndjson")
    timestamp:                       # required
      field: time                    # source field; dotted paths reach into nested JSON
      format: iso8601                # iso8601 | epoch_s | epoch_ms | epoch_us | epoch_ns
                                     #   | a strftime pattern such as "%Y-%m-%d %H:%M:%S"
      timezone: Asia/Tokyo           # zone for times without an offset (default UTC)
    fields:                          # ECS name -> source field (dotted path)
      source.ip: src
      destination.ip: dst.ip
    constants:                       # ECS name -> fixed value on every event
      observer.vendor: Acme
      event.kind: event

ECS names must be columns of the event schema (``mimamori.events.schema``); an unknown
ECS name, an unknown key at the top level or in ``timestamp``, a bad timestamp format or
zone is a ``SourceConfigError`` naming the key and the file, raised when the parser is
built. A line whose configured timestamp is missing or unreadable is quarantined naming
that field. Arrays of plain values are joined with ","; a path naming an object or an
array of objects gives null. When an ECS name is in both ``fields`` and ``constants``, the
constant fills in where the field is missing. See ``maps/example.yaml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl
import yaml

from mimamori import yamlio
from mimamori.events.schema import EVENT_SCHEMA, TS
from mimamori.sources.base import (
    ParseResult,
    SourceConfigError,
    SourceParser,
    epoch_seconds,
    finish,
    json_lines,
    split_structural,
)
from mimamori.sources.reader import LINE, TEXT, LineBatch
from mimamori.sources.syslog_header import iso_datetime, local_to_utc

TOP_KEYS = frozenset({"dataset", "module", "timestamp", "fields", "constants"})
TIMESTAMP_KEYS = frozenset({"field", "format", "timezone"})
EPOCH_SCALE = {"epoch_s": 1, "epoch_ms": 1_000, "epoch_us": 1_000_000, "epoch_ns": 1_000_000_000}
#: ECS columns a map may not fill: set by the parser itself
RESERVED = frozenset({"@timestamp", "log.file.path", "log.file.line"})


class FieldMap:
    """A validated field map."""

    def __init__(self, raw: Any, origin: str) -> None:
        self.origin = origin
        if not isinstance(raw, Mapping):
            raise SourceConfigError(origin, "a field map must be a mapping (YAML object)")
        unknown = sorted(set(map(str, raw)) - TOP_KEYS)
        if unknown:
            raise SourceConfigError(
                origin, f"unknown key {unknown[0]!r} (known: {', '.join(sorted(TOP_KEYS))})"
            )
        self.dataset = self._text(raw, "dataset", required=True)
        self.module = self._text(raw, "module", required=False) or "ndjson"
        ts = raw.get("timestamp")
        if not isinstance(ts, Mapping):
            raise SourceConfigError(origin, "key 'timestamp': a mapping with 'field' is required")
        unknown = sorted(set(map(str, ts)) - TIMESTAMP_KEYS)
        if unknown:
            raise SourceConfigError(origin, f"unknown key 'timestamp.{unknown[0]}'")
        field = ts.get("field")
        if not isinstance(field, str) or not field:
            raise SourceConfigError(origin, "key 'timestamp.field': a field name is required")
        self.ts_field = field
        fmt = ts.get("format", "iso8601")
        if not isinstance(fmt, str) or not (fmt == "iso8601" or fmt in EPOCH_SCALE or "%" in fmt):
            raise SourceConfigError(
                origin,
                f"key 'timestamp.format': {fmt!r} is not iso8601, epoch_s, epoch_ms, "
                "epoch_us, epoch_ns or a strftime pattern",
            )
        self.ts_format = fmt
        tz = ts.get("timezone", "UTC")
        try:
            ZoneInfo(str(tz))
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise SourceConfigError(origin, f"key 'timestamp.timezone': unknown zone {tz!r}") from exc
        self.timezone = str(tz)
        self.fields = self._targets(raw, "fields", value_type=str)
        self.constants = self._targets(raw, "constants", value_type=(str, int, float, bool))

    def _text(self, raw: Mapping[str, Any], key: str, *, required: bool) -> str | None:
        value = raw.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value:
            raise SourceConfigError(self.origin, f"key {key!r}: a non-empty string is required")
        return value

    def _targets(
        self, raw: Mapping[str, Any], key: str, value_type: type | tuple[type, ...]
    ) -> dict[str, Any]:
        section = raw.get(key) or {}
        if not isinstance(section, Mapping):
            raise SourceConfigError(self.origin, f"key {key!r}: a mapping of ECS names is required")
        out: dict[str, Any] = {}
        for target, value in section.items():
            name = str(target)
            if name not in EVENT_SCHEMA:
                raise SourceConfigError(
                    self.origin, f"key '{key}.{name}': {name!r} is not an ECS field of the schema"
                )
            if name in RESERVED:
                raise SourceConfigError(self.origin, f"key '{key}.{name}': {name!r} is set by the parser")
            if not isinstance(value, value_type) or value == "":
                raise SourceConfigError(self.origin, f"key '{key}.{name}': bad value {value!r}")
            out[name] = value
        return out


def load_field_map(field_map: str | Path | Mapping[str, Any]) -> FieldMap:
    """Read and validate a field map from a YAML path or a dict."""
    if isinstance(field_map, Mapping):
        return FieldMap(field_map, "<field_map>")
    path = str(field_map)
    try:
        raw = yamlio.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SourceConfigError(path, f"cannot read field map: {exc}") from exc
    except yaml.YAMLError as exc:
        raise SourceConfigError(path, f"invalid YAML: {exc}") from exc
    return FieldMap(raw, path)


def _as_text(df: pl.DataFrame, name: str) -> pl.Expr:
    """A source column as text: lists joined with ",", others cast."""
    if name not in df.columns:
        return pl.lit(None, dtype=pl.String)
    dtype = df.schema[name]
    col = pl.col(name)
    if isinstance(dtype, pl.List | pl.Array):
        if isinstance(dtype.inner, pl.List | pl.Array | pl.Struct):
            return pl.lit(None, dtype=pl.String)  # arrays of objects have no ECS scalar
        return col.cast(pl.List(pl.String), strict=False).list.join(",")
    if dtype == pl.Null:
        return pl.lit(None, dtype=pl.String)
    return col


def _timestamp(df: pl.DataFrame, fmap: FieldMap) -> pl.Expr:
    name = fmap.ts_field
    if name not in df.columns:
        return pl.lit(None, dtype=TS)
    col = pl.col(name)
    dtype = df.schema[name]
    numeric = dtype.is_numeric()
    if fmap.ts_format in EPOCH_SCALE:
        scale = EPOCH_SCALE[fmap.ts_format]
        value = col if numeric else col.cast(pl.String).str.strip_chars()
        return epoch_seconds(value.cast(pl.Float64, strict=False) / scale)
    if dtype != pl.String:
        return pl.lit(None, dtype=TS)  # a number, list or bool where text was declared
    text = col
    if fmap.ts_format == "iso8601":
        return iso_datetime(text, fmap.timezone)
    parsed = text.str.strip_chars().str.to_datetime(fmap.ts_format, strict=False, time_unit="us")
    if "%z" in fmap.ts_format or "%Z" in fmap.ts_format:
        return parsed.dt.convert_time_zone("UTC").cast(TS)
    return local_to_utc(parsed, fmap.timezone)


class MappedNdjsonParser(SourceParser):
    """NDJSON of any shape, renamed to ECS by a YAML field map (``field_map`` option)."""

    name: ClassVar[str] = "ndjson"
    description: ClassVar[str] = "NDJSON mapped to ECS by a YAML field map"

    def __init__(self, field_map: str | Path | Mapping[str, Any] | None = None) -> None:
        self.field_map = load_field_map(field_map) if field_map is not None else None

    def sniff(self, head: list[str]) -> bool:
        # Never picked by sniffing: without a map the fields mean nothing.
        return False

    def parse(self, batch: LineBatch, ctx: dict[str, Any]) -> ParseResult:
        fmap = self.field_map
        if fmap is None:
            raise SourceConfigError("<field_map>", "the ndjson source needs a field_map option")
        data, skipped = split_structural(batch)
        df, bad = json_lines(data, batch.path)
        exprs: list[pl.Expr] = [
            pl.col(LINE),
            _timestamp(df, fmap).alias("@timestamp"),
            pl.lit(fmap.dataset).alias("event.dataset"),
            pl.lit(fmap.module).alias("event.module"),
        ]
        consts = {
            ecs: pl.lit(str(v).lower() if isinstance(v, bool) else v) for ecs, v in fmap.constants.items()
        }
        for ecs, src in fmap.fields.items():
            value = _as_text(df, src)
            if ecs in consts:
                value = pl.coalesce(value.cast(pl.String), consts.pop(ecs).cast(pl.String))
            exprs.append(value.alias(ecs))
        exprs += [value.alias(ecs) for ecs, value in consts.items()]
        events = df.select(exprs)
        return finish(
            events,
            batch.path,
            required={"@timestamp": fmap.ts_field},
            quarantine=bad,
            raw=data.select(LINE, TEXT),
            skipped=skipped,
        )


__all__ = ["FieldMap", "MappedNdjsonParser", "load_field_map"]
