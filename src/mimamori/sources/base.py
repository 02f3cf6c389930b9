"""The source-parser protocol and the helpers every parser shares.

A parser has a ``name`` (the source type), a cheap ``sniff`` on the first lines of a file,
and ``parse`` which turns a ``LineBatch`` into normalised events plus quarantined lines.
"Not my format" only affects parser choice; a bad record inside a file of the right
format is quarantined with its line number and a reason naming the field.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import polars as pl

from mimamori.events.schema import conform, empty_events, empty_quarantine
from mimamori.sources.reader import LINE, TEXT, LineBatch, quarantine_rows


class SourceError(Exception):
    """Root of the errors raised by source parsers."""


class UnknownSourceError(SourceError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown source {name!r}; known sources: {', '.join(known)}")
        self.name = name


class SourceConfigError(SourceError):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass
class ParseResult:
    """Normalised events, quarantined lines, and the count of structural lines skipped.

    Invariant: ``events.height + quarantine.height + skipped`` equals the lines given.
    """

    events: pl.DataFrame = field(default_factory=empty_events)
    quarantine: pl.DataFrame = field(default_factory=empty_quarantine)
    skipped: int = 0


class SourceParser(ABC):
    """One source type. Instances are cheap; ``ctx`` carries per-file state between batches."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    @abstractmethod
    def sniff(self, head: list[str]) -> bool:
        """True when the first lines of a file look like this format."""

    @abstractmethod
    def parse(self, batch: LineBatch, ctx: dict[str, Any]) -> ParseResult:
        """Parse one batch of lines of a file; ``ctx`` is shared by all batches of that file."""


# ---------------------------------------------------------------------------- helpers


def split_structural(batch: LineBatch, comment: str | None = None) -> tuple[pl.DataFrame, int]:
    """Drop blank lines (and comment lines); return the data lines and how many were dropped."""
    text = pl.col(TEXT)
    keep = text.str.strip_chars().str.len_bytes() > 0
    if comment is not None:
        keep = keep & ~text.str.starts_with(comment)
    data = batch.lines.filter(keep)
    return data, batch.lines.height - data.height


def _flatten(df: pl.DataFrame) -> pl.DataFrame:
    """Flatten nested structs into dotted column names (``alert.signature``).

    Built from Series, not expressions: JSON keys are data, and a key such as ``*`` or
    ``^x$`` inside ``pl.col``/``struct.field`` would be read as a wildcard or a pattern.
    """
    while any(isinstance(t, pl.Struct) for t in df.schema.values()):
        # A literal dotted key ({"id.orig_h": ..}) wins over the same name nested ({"id": {..}})
        # on a line that has both; lines with only one of them keep that one. An empty
        # object ({}) has no fields and leaves no column.
        columns: dict[str, pl.Series] = {}
        for c, t in df.schema.items():
            if not isinstance(t, pl.Struct):
                columns.setdefault(c, df.get_column(c))
                continue
            for nested in df.get_column(c).struct.unnest().iter_columns():
                name = f"{c}.{nested.name}"
                if name in df.columns and not (df.schema[name].is_nested() or nested.dtype.is_nested()):
                    dotted = df.get_column(name)
                    columns[name] = dotted.zip_with(
                        dotted.is_not_null(), nested.cast(dotted.dtype, strict=False)
                    ).alias(name)
                elif name not in df.columns:
                    columns.setdefault(name, nested.alias(name))
        if not columns:  # only empty objects: no columns, but still one row per line
            return df.with_row_index("__row").select("__row").drop("__row")
        df = pl.DataFrame(list(columns.values()))
    return df


def json_lines(lines: pl.DataFrame, path: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Parse JSON-object lines into a flat frame (dotted names) with ``log.file.line``.

    Fast path: the whole batch through Polars' NDJSON reader. If any line is not a JSON
    object, each line is checked once, the bad ones are quarantined, and the rest parsed.
    """
    if lines.height == 0:
        return pl.DataFrame({LINE: pl.Series([], dtype=pl.Int64)}), empty_quarantine()
    quarantine = empty_quarantine()
    buf = lines[TEXT].str.join("\n").item().encode()
    try:
        df = pl.read_ndjson(buf, infer_schema_length=None)
        if df.height != lines.height:
            raise ValueError("row count mismatch")
    except Exception:
        ok = []
        bad_no: list[int] = []
        bad_reason: list[str] = []
        bad_raw: list[str] = []
        for no, text in lines.iter_rows():
            try:
                obj = json.loads(text)
            except (ValueError, RecursionError) as exc:
                bad_no.append(no)
                bad_reason.append(f"invalid JSON: {exc}")
                bad_raw.append(text)
                continue
            if not isinstance(obj, dict):
                bad_no.append(no)
                bad_reason.append(f"JSON value is a {type(obj).__name__}, not an object")
                bad_raw.append(text)
                continue
            ok.append(no)
        quarantine = quarantine_rows(path, bad_no, bad_reason, bad_raw)
        lines = lines.filter(pl.col(LINE).is_in(ok))
        if lines.height == 0:
            return pl.DataFrame({LINE: pl.Series([], dtype=pl.Int64)}), quarantine
        buf = lines[TEXT].str.join("\n").item().encode()
        try:
            df = pl.read_ndjson(buf, infer_schema_length=None)
        except Exception as exc:  # mixed types Polars cannot unify: fall back to text values
            df = _json_as_text(lines, exc)
    df = _flatten(df)
    return df.with_columns(lines[LINE].alias(LINE)), quarantine


def _json_as_text(lines: pl.DataFrame, cause: Exception) -> pl.DataFrame:
    """Last resort when values of one key have incompatible JSON types across lines."""
    rows = []
    for (text,) in lines.select(TEXT).iter_rows():
        obj = json.loads(text)
        rows.append({k: v if isinstance(v, str) or v is None else json.dumps(v) for k, v in _flat(obj)})
    if not rows:
        raise SourceError(f"could not read JSON lines: {cause}") from cause
    return pl.DataFrame(rows, infer_schema_length=None)


def _flat(obj: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in obj.items():
        if isinstance(v, dict):
            out.extend(_flat(v, f"{prefix}{k}."))
        else:
            out.append((f"{prefix}{k}", v))
    return out


def col_or_null(df: pl.DataFrame, name: str, dtype: pl.DataType | None = None) -> pl.Expr:
    """``pl.col(name)`` when the frame has it, else a typed null literal."""
    if name in df.columns:
        return pl.col(name)
    return pl.lit(None, dtype=dtype or pl.String())


def first_present(df: pl.DataFrame, *names: str) -> pl.Expr:
    """Coalesce of the named columns that exist (null when none do)."""
    cols = [pl.col(n).cast(pl.String) for n in names if n in df.columns]
    if not cols:
        return pl.lit(None, dtype=pl.String)
    return pl.coalesce(cols) if len(cols) > 1 else cols[0]


def map_fields(df: pl.DataFrame, mapping: Mapping[str, str | pl.Expr]) -> list[pl.Expr]:
    """Expressions renaming source columns to ECS names; a missing source column is null."""
    out: list[pl.Expr] = []
    for ecs, src in mapping.items():
        if isinstance(src, str):
            out.append(col_or_null(df, src).alias(ecs))
        else:
            out.append(src.alias(ecs))
    return out


def finish(
    df: pl.DataFrame,
    path: str,
    *,
    required: Mapping[str, str],
    quarantine: pl.DataFrame | None = None,
    raw: pl.DataFrame | Callable[[], pl.DataFrame] | None = None,
    skipped: int = 0,
) -> ParseResult:
    """Quarantine rows whose required fields are null, conform the rest to the schema.

    ``required`` maps an ECS column to the source field named in the reason (e.g.
    ``{"@timestamp": "ts"}``). ``raw`` holds ``log.file.line`` and ``text`` of the batch (or
    makes them, called only when a row is quarantined) so quarantined rows keep their line.
    """
    q = [quarantine] if quarantine is not None and quarantine.height else []
    if required and df.height:
        reason = pl.lit(None, dtype=pl.String)
        for ecs, src in reversed(list(required.items())):
            reason = (
                pl.when(pl.col(ecs).is_null())
                .then(pl.lit(f"field {src}: missing or invalid"))
                .otherwise(reason)
            )
        df = df.with_columns(reason.alias("__reason"))
        bad = df.filter(pl.col("__reason").is_not_null())
        if bad.height:
            if callable(raw):
                raw = raw()
            texts = (
                bad.select(LINE, "__reason").join(raw, on=LINE, how="left")
                if raw is not None
                else bad.select(LINE, "__reason").with_columns(pl.lit("").alias(TEXT))
            )
            q.append(
                quarantine_rows(
                    path,
                    texts[LINE].to_list(),
                    texts["__reason"].to_list(),
                    texts[TEXT].fill_null("").to_list(),
                )
            )
            df = df.filter(pl.col("__reason").is_null())
        df = df.drop("__reason")
    df = df.with_columns(pl.lit(path).alias("log.file.path"))
    events = conform(df)
    quarantined = pl.concat(q) if q else empty_quarantine()
    return ParseResult(events, quarantined, skipped)


def epoch_seconds(expr: pl.Expr) -> pl.Expr:
    """Float or string epoch seconds (Zeek ``ts``) -> UTC datetime; invalid -> null."""
    secs = expr.cast(pl.Float64, strict=False)
    return (secs * 1_000_000).round(0).cast(pl.Int64, strict=False).cast(pl.Datetime("us", "UTC"))


def iso_timestamp(expr: pl.Expr) -> pl.Expr:
    """ISO-8601 text with or without offset/fraction -> UTC datetime; invalid -> null."""
    s = expr.cast(pl.String).str.strip_chars()
    # normalise "+0900" to "+09:00" and a space separator to "T"
    s = s.str.replace(r"([+-]\d{2})(\d{2})$", "${1}:${2}").str.replace(" ", "T", literal=True)
    with_tz = s.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_unit="us")
    zulu = s.str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", strict=False, time_unit="us").dt.replace_time_zone(
        "UTC"
    )
    naive = s.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False, time_unit="us").dt.replace_time_zone(
        "UTC"
    )
    return pl.coalesce(with_tz.dt.convert_time_zone("UTC"), zulu, naive).cast(pl.Datetime("us", "UTC"))
