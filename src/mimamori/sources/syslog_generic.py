"""Generic syslog (RFC 3164 / RFC 5424): any message the vendor parsers do not claim.

The header is split off by ``syslog_header.with_syslog_header``; the event keeps the
payload as ``message``, the sending host as ``observer.hostname`` and ``host.name``, the
app name as ``event.dataset`` (``syslog.<app>``) and the severity (priority mod 8) as
``event.severity``. Time: the header's timestamp; a header without one (``<13>msg``, RFC
5424's ``-``) takes the parser option ``default_time`` (ISO 8601, the receiver's clock);
neither -> quarantined. A line with no syslog header at all is quarantined too.
"""

from __future__ import annotations

from typing import Any, ClassVar

import polars as pl

from mimamori.events.schema import TS
from mimamori.sources.base import ParseResult, SourceParser, finish, split_structural
from mimamori.sources.reader import LINE, TEXT, LineBatch, quarantine_rows
from mimamori.sources.syslog_header import (
    APPNAME,
    FORMAT,
    HOSTNAME,
    MESSAGE,
    PARSED_TS,
    PRIORITY,
    iso_datetime,
    with_syslog_header,
)


class GenericSyslogParser(SourceParser):
    name: ClassVar[str] = "syslog"
    description: ClassVar[str] = "any RFC 3164 / RFC 5424 syslog message (generic)"

    def __init__(self, timezone: str = "UTC", default_time: str | None = None) -> None:
        self.timezone = timezone
        self.default_time = default_time

    def sniff(self, head: list[str]) -> bool:
        return False  # never guessed for files: every syslog vendor parser comes first

    def parse(self, batch: LineBatch, ctx: dict[str, Any]) -> ParseResult:
        data, skipped = split_structural(batch)
        lines = with_syslog_header(data, TEXT, timezone=str(ctx.get("timezone") or self.timezone))
        headed = pl.col(FORMAT).is_not_null()
        bad = lines.filter(~headed)
        quarantine = quarantine_rows(
            batch.path,
            bad[LINE].to_list(),
            ["not a syslog message (no RFC 3164 / RFC 5424 / <PRI> header)"] * bad.height,
            bad[TEXT].to_list(),
        )
        fallback = iso_datetime(pl.lit(self.default_time)) if self.default_time else pl.lit(None, dtype=TS)
        app = pl.col(APPNAME)
        events = lines.filter(headed).select(
            pl.coalesce(pl.col(PARSED_TS), fallback).alias("@timestamp"),
            pl.lit("event").alias("event.kind"),
            pl.lit("syslog").alias("event.module"),
            pl.concat_str([pl.lit("syslog."), app.fill_null("generic")]).alias("event.dataset"),
            (pl.col(PRIORITY) % 8).cast(pl.Int32).alias("event.severity"),
            pl.col(MESSAGE).alias("message"),
            pl.col(HOSTNAME).alias("observer.hostname"),
            pl.col(HOSTNAME).alias("host.name"),
            pl.col(LINE),
            pl.lit(batch.path).alias("log.file.path"),
        )
        return finish(
            events,
            batch.path,
            required={"@timestamp": "syslog timestamp"},
            quarantine=quarantine,
            raw=lambda: data.select(LINE, TEXT),
            skipped=skipped,
        )
