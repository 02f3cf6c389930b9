"""Split an RFC 3164 / RFC 5424 syslog header off each line, vectorised with Polars regex.

Firewalls send the same payload with or without a header, depending on the relay in
between: ``<134>1 2022-06-09T14:44:11-06:00 host app 123 - - msg`` (RFC 5424),
``<134>Jul  3 19:10:30 host app[123]: msg`` (RFC 3164; the host and the ``app[pid]:``
tag are each optional), ``<188>msg`` (priority only) or just ``msg``. ``with_syslog_header``
adds the header parts as columns (all null when there is no header) and the payload as
``syslog.message`` (the whole line when there is no header).

RFC 3164 timestamps carry neither a year nor a zone: the caller passes the year (when
``None``, the current year, moved back one year if that would put the line more than a
day in the future, so a December log read in January lands in December) and an IANA
zone name for the device clock (default UTC).

Also here, because every firewall parser needs them: ``valid_ip`` (nulls text that is not
an IPv4/IPv6 address, e.g. the anonymised ``x.x.x.x`` in vendor samples) and
``syslog_severity`` (level names to 0-7 numbers).
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from mimamori.events.schema import TS

PRIORITY = "syslog.priority"
TIMESTAMP = "syslog.timestamp"  # the header timestamp as text
HOSTNAME = "syslog.hostname"
APPNAME = "syslog.appname"
PROCID = "syslog.procid"
MESSAGE = "syslog.message"
FORMAT = "syslog.format"  # "rfc5424" | "rfc3164" | "pri" | null (no header)
PARSED_TS = "syslog.@timestamp"  # the header timestamp as a UTC datetime

HEADER_COLUMNS = (PRIORITY, TIMESTAMP, HOSTNAME, APPNAME, PROCID, MESSAGE, FORMAT, PARSED_TS)

#: the default message pattern: anything (patterns only need to match the payload's start)
ANY_MESSAGE = ""
#: header regexes look at most this far into a line
_HEAD_CHARS = 2048

_PRI = r"(?:<(?P<pri>\d{1,3})>)"
_SD = r'(?:-|(?:\[(?:[^\]"\\]|\\.|"(?:[^"\\]|\\.)*")*\])+)'
_ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?"
_BSD_TS = r"[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d"

# Each pattern captures the whole header as ``head`` and, when a payload follows, the
# separating space as ``sp``; the payload itself is sliced off the line by length, so the
# regex engine never runs over the (long) payload.


def _rfc5424(message: str) -> str:
    return (
        rf"^(?P<head>{_PRI}?(?P<ver>[1-9]\d?) (?P<ts>-|{_ISO}) (?P<host>\S+) (?P<app>\S+)"
        rf" (?P<procid>\S+) (?P<msgid>\S+) (?P<sd>{_SD}))(?:(?P<sp> )\x{{FEFF}}?(?:{message})|$)"
    )


def _rfc3164(message: str) -> str:
    # The host never holds "=" (so FortiGate's "date=..." is not taken for one) and never
    # ends with ":" (so a tag such as "filterlog[123]:" is not taken for one either). Each
    # part is introduced by a space, so the message pattern decides between "no host" and
    # "host" when the first word of the message could be either.
    return (
        rf"^(?P<head>{_PRI}?(?P<ts>{_BSD_TS}|{_ISO})"
        r"(?: +(?P<host>[^\s=]*[^\s:=]))?"
        r"(?: +(?P<app>[^\s\[\]:]+)(?:\[(?P<procid>[^\]\s]*)\])?:)?)"
        rf"(?:(?P<sp> )(?:{message})|$)"
    )


def _pri_only(message: str) -> str:
    return rf"^(?P<head>{_PRI})(?:{message})"


def with_syslog_header(
    df: pl.DataFrame,
    column: str,
    *,
    message: str = ANY_MESSAGE,
    year: int | None = None,
    timezone: str = "UTC",
) -> pl.DataFrame:
    """Add the ``HEADER_COLUMNS`` parsed from ``column``.

    ``message`` is a regex (no capture groups) the start of the payload must match; it
    resolves the ambiguity of a header without hostname. A line whose payload does not
    match it under any header reading gets ``syslog.message`` null.
    """
    text = pl.col(column)
    head = text.str.slice(0, _HEAD_CHARS)
    df = df.with_columns(
        head.str.extract_groups(_rfc5424(message)).alias("__s5"),
        head.str.extract_groups(_rfc3164(message)).alias("__s3"),
        head.str.extract_groups(_pri_only(message)).alias("__sp"),
        head.str.contains(rf"^(?:{message})").alias("__bare"),
    )
    s5, s3, sp, bare = pl.col("__s5"), pl.col("__s3"), pl.col("__sp"), pl.col("__bare")
    is5 = s5.struct.field("ver").is_not_null()
    is3 = s3.struct.field("ts").is_not_null()
    isp = sp.struct.field("head").is_not_null()

    def pick(field: str, *, pri: bool = False) -> pl.Expr:
        out = pl.when(is5).then(s5.struct.field(field)).when(is3).then(s3.struct.field(field))
        if pri:
            out = out.when(isp).then(sp.struct.field(field))
        return out.otherwise(pl.lit(None, dtype=pl.String))

    def rest(struct: pl.Expr, skip: int) -> pl.Expr:
        return text.str.slice(struct.struct.field("head").str.len_chars() + skip)

    null = pl.lit(None, dtype=pl.String)
    msg = (
        pl.when(is5)
        .then(
            pl.when(s5.struct.field("sp").is_not_null())
            .then(rest(s5, 1).str.strip_prefix("\ufeff"))
            .otherwise(null)
        )
        .when(is3)
        .then(pl.when(s3.struct.field("sp").is_not_null()).then(rest(s3, 1)).otherwise(null))
        .when(isp)
        .then(rest(sp, 0))
        .when(bare)
        .then(text)
        .otherwise(null)
    )
    fmt = (
        pl.when(is5)
        .then(pl.lit("rfc5424"))
        .when(is3)
        .then(pl.lit("rfc3164"))
        .when(isp)
        .then(pl.lit("pri"))
        .otherwise(null)
    )
    out = df.with_columns(
        pick("pri", pri=True).cast(pl.Int32, strict=False).alias(PRIORITY),
        pick("ts").alias(TIMESTAMP),
        pick("host").alias(HOSTNAME),
        pick("app").alias(APPNAME),
        pick("procid").alias(PROCID),
        msg.alias(MESSAGE),
        fmt.alias(FORMAT),
    ).drop("__s5", "__s3", "__sp", "__bare")
    # RFC 5424 writes "-" for a missing value
    out = out.with_columns(
        pl.when(pl.col(c) == "-").then(None).otherwise(pl.col(c)).alias(c)
        for c in (TIMESTAMP, HOSTNAME, APPNAME, PROCID)
    )
    return out.with_columns(
        header_timestamp(pl.col(TIMESTAMP), year=year, timezone=timezone).alias(PARSED_TS)
    )


def header_timestamp(ts: pl.Expr, *, year: int | None, timezone: str = "UTC") -> pl.Expr:
    """Header timestamp text (RFC 3164 ``Jan  6 19:47:37`` or ISO 8601) -> UTC datetime."""
    bsd = ts.str.replace_all(" +", " ")
    is_bsd = ts.str.contains(rf"^{_BSD_TS}$")

    def bsd_at(y: int) -> pl.Expr:
        naive = pl.concat_str([pl.lit(f"{y} "), bsd]).str.to_datetime(
            "%Y %b %d %H:%M:%S", strict=False, time_unit="us"
        )
        return local_to_utc(naive, timezone)

    if year is not None:
        bsd_ts = bsd_at(year)
    else:
        now = datetime.now(UTC)
        this_year = bsd_at(now.year)
        horizon = pl.lit(now).cast(TS) + pl.duration(days=1)
        bsd_ts = pl.when(this_year > horizon).then(bsd_at(now.year - 1)).otherwise(this_year)
    iso = iso_datetime(ts, timezone)
    return pl.when(is_bsd).then(bsd_ts).otherwise(iso)


def local_to_utc(naive: pl.Expr, timezone: str) -> pl.Expr:
    """A naive datetime read on a clock in ``timezone`` -> UTC (impossible local times -> null)."""
    if timezone == "UTC":
        return naive.dt.replace_time_zone("UTC").cast(TS)
    local = naive.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
    return local.dt.convert_time_zone("UTC").cast(TS)


def iso_datetime(expr: pl.Expr, timezone: str = "UTC") -> pl.Expr:
    """ISO 8601 text -> UTC; an offset or ``Z`` wins, naive text is read in ``timezone``."""
    s = expr.cast(pl.String).str.strip_chars().str.replace(" ", "T", literal=True)
    s = s.str.replace(r"([+-]\d{2})(\d{2})$", "${1}:${2}")
    with_tz = s.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_unit="us")
    zulu = s.str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", strict=False, time_unit="us")
    naive = s.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False, time_unit="us")
    return pl.coalesce(
        with_tz.dt.convert_time_zone("UTC").cast(TS),
        zulu.dt.replace_time_zone("UTC").cast(TS),
        local_to_utc(naive, timezone),
    )


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
# permissive IPv6 shape: hex groups and colons (at least two), optional zone / embedded v4
_IPV6 = rf"[0-9A-Fa-f]{{0,4}}(?::[0-9A-Fa-f]{{0,4}}){{2,7}}(?::{_IPV4})?(?:%[\w.\-]+)?"


def valid_ip(expr: pl.Expr) -> pl.Expr:
    """The text when it is an IPv4 or IPv6 address, else null."""
    s = expr.cast(pl.String).str.strip_chars()
    ok = s.str.contains(rf"^(?:{_IPV4}|{_IPV6})$") & ~s.str.contains(":::")
    return pl.when(ok).then(s).otherwise(pl.lit(None, dtype=pl.String))


#: syslog severity names (RFC 5424) and common vendor spellings -> 0 (emergency) .. 7 (debug)
SEVERITY_LEVELS: dict[str, int] = {
    "emergency": 0,
    "emerg": 0,
    "alert": 1,
    "critical": 2,
    "crit": 2,
    "error": 3,
    "err": 3,
    "warning": 4,
    "warn": 4,
    "notice": 5,
    "information": 6,
    "informational": 6,
    "info": 6,
    "debug": 7,
}


def syslog_severity(expr: pl.Expr) -> pl.Expr:
    """Severity name -> syslog number (Int32); unknown names -> null."""
    return (
        expr.cast(pl.String)
        .str.to_lowercase()
        .replace_strict(SEVERITY_LEVELS, default=None, return_dtype=pl.Int32)
    )


__all__ = [
    "APPNAME",
    "FORMAT",
    "HEADER_COLUMNS",
    "HOSTNAME",
    "MESSAGE",
    "PARSED_TS",
    "PRIORITY",
    "PROCID",
    "TIMESTAMP",
    "header_timestamp",
    "iso_datetime",
    "local_to_utc",
    "syslog_severity",
    "valid_ip",
    "with_syslog_header",
]
