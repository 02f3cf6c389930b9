"""pfSense / OPNsense ``filterlog`` syslog lines (packet filter decisions) to ECS events.

The CSV body follows the pfSense "filter log format": rule number, sub rule, anchor,
tracker, interface, reason, action, direction, IP version; then for IPv4 TOS, ECN, TTL,
id, offset, flags, protocol id, protocol text, length, source, destination, and for IPv6
class, flow label, hop limit, protocol text, protocol id, length, source, destination;
then for TCP and UDP source port, destination port, data length (TCP goes on with flags,
sequence, ack, window, urg, options); ICMP carries its type and type-specific fields.
Fields are reached by position with list indexing over one ``str.split`` per batch.

Choices worth knowing:
- Time comes from the syslog header. RFC 5424 headers carry a full timestamp. RFC 3164
  headers have no year and no zone: the year is ``ctx["year"]`` (or the parser option
  ``year``), else the current year, moved back one year when that would lie more than a
  day ahead (a December line read in January); the zone is ``ctx["timezone"]`` (or the
  option ``timezone``, an IANA name), default UTC.
- Lines from other programs in the same syslog stream (dhcpd, unbound, ...) are kept as
  generic events: ``event.dataset`` "syslog", ``message`` "<program>[<pid>]: <text>",
  the header time and host. They are real records an analyst may need (DHCP leases feed
  the asset inventory). Lines without any syslog header are quarantined.
- A filterlog line whose action, IP version or addresses cannot be read is quarantined
  naming the field.
- ``observer.product``: "OPNsense" or "pfSense" when the syslog hostname says so; else
  "OPNsense" when the tracker is a 32-digit hex label (OPNsense rule labels); else the
  parser option ``product`` when given; else "filterlog".
- ``network.direction`` is the interface direction: in -> ingress, out -> egress.
- ``rule.id`` is the tracker (stable when rules are reordered; the rule number is not),
  ``rule.ruleset`` the interface the rule belongs to.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import polars as pl

from mimamori.events.schema import empty_quarantine
from mimamori.sources.base import ParseResult, SourceParser, finish, split_structural
from mimamori.sources.reader import LINE, TEXT, LineBatch, quarantine_rows
from mimamori.sources.syslog_header import (
    APPNAME,
    FORMAT,
    HOSTNAME,
    MESSAGE,
    PARSED_TS,
    PROCID,
    valid_ip,
    with_syslog_header,
)

# position of each common field in the CSV body
RULE, SUB_RULE, ANCHOR, TRACKER, INTERFACE, REASON, ACTION, DIRECTION, IP_VERSION = range(9)
#: per IP version: (protocol text, protocol id, length, source, destination, first L4 field)
V4 = {"proto": 16, "proto_id": 15, "length": 17, "src": 18, "dst": 19, "l4": 20}
V6 = {"proto": 12, "proto_id": 13, "length": 14, "src": 15, "dst": 16, "l4": 17}

#: IANA protocol numbers for lines whose protocol text is missing
_SNIFF = re.compile(r"\bfilterlog(?:\[\d+\]:| \d+ )")

TRANSPORTS = {"1": "icmp", "2": "igmp", "6": "tcp", "17": "udp", "58": "ipv6-icmp", "112": "carp"}


def _field(i: int) -> pl.Expr:
    v = pl.col("__f").list.get(i, null_on_oob=True)
    return pl.when(v == "").then(None).otherwise(v)


def _by_version(key: str, offset: int = 0) -> pl.Expr:
    v4, v6 = _field(V4[key] + offset), _field(V6[key] + offset)
    version = _field(IP_VERSION)
    return pl.when(version == "4").then(v4).when(version == "6").then(v6).otherwise(None)


def _filterlog_events(df: pl.DataFrame, product: str | None) -> pl.DataFrame:
    action = _field(ACTION).str.to_lowercase()
    direction = _field(DIRECTION).str.to_lowercase()
    proto_text = _by_version("proto").str.to_lowercase()
    proto_id = _by_version("proto_id")
    transport = pl.coalesce(
        proto_text.replace({"icmpv6": "ipv6-icmp", "ipv6-icmp": "ipv6-icmp"}),
        proto_id.replace_strict(TRANSPORTS, default=None, return_dtype=pl.String),
    )
    has_ports = transport.is_in(["tcp", "udp"])
    tracker = _field(TRACKER)
    host = pl.col(HOSTNAME).str.to_lowercase()
    guessed = (
        pl.when(host.str.contains("opnsense"))
        .then(pl.lit("OPNsense"))
        .when(host.str.contains("pfsense"))
        .then(pl.lit("pfSense"))
        .when(tracker.str.contains(r"^[0-9a-fA-F]{32}$"))
        .then(pl.lit("OPNsense"))
        .otherwise(pl.lit(product or "filterlog"))
    )
    vendor = (
        pl.when(guessed == "pfSense")
        .then(pl.lit("Netgate"))
        .when(guessed == "OPNsense")
        .then(pl.lit("Deciso"))
        .otherwise(None)
    )
    return df.select(
        LINE,
        pl.col(PARSED_TS).alias("@timestamp"),
        pl.lit("event").alias("event.kind"),
        pl.lit("network").alias("event.category"),
        pl.when(action == "pass")
        .then(pl.lit("allowed"))
        .when(action.is_in(["block", "reject"]))
        .then(pl.lit("denied"))
        .otherwise(pl.lit("connection"))
        .alias("event.type"),
        pl.when(action.is_in(["pass", "block", "reject"])).then(action).alias("event.action"),
        pl.when(action == "pass")
        .then(pl.lit("success"))
        .when(action.is_in(["block", "reject"]))
        .then(pl.lit("failure"))
        .otherwise(pl.lit("unknown"))
        .alias("event.outcome"),
        pl.lit("pfsense.filterlog").alias("event.dataset"),
        pl.lit("pfsense").alias("event.module"),
        _severity(),
        valid_ip(_by_version("src")).alias("source.ip"),
        pl.when(has_ports).then(_by_version("l4")).alias("source.port"),
        valid_ip(_by_version("dst")).alias("destination.ip"),
        pl.when(has_ports).then(_by_version("l4", 1)).alias("destination.port"),
        transport.alias("network.transport"),
        _by_version("length").alias("network.bytes"),
        pl.when(direction == "in")
        .then(pl.lit("ingress"))
        .when(direction == "out")
        .then(pl.lit("egress"))
        .otherwise(None)
        .alias("network.direction"),
        vendor.alias("observer.vendor"),
        guessed.alias("observer.product"),
        pl.col(HOSTNAME).alias("observer.hostname"),
        pl.coalesce(tracker, _field(RULE)).alias("rule.id"),
        _field(INTERFACE).alias("rule.ruleset"),
        pl.when(_field(IP_VERSION).is_in(["4", "6"])).then(pl.lit("ok")).alias("__version"),
    )


def _severity() -> pl.Expr:
    """The syslog severity is the low 3 bits of the header priority."""
    return (pl.col("syslog.priority") % 8).cast(pl.Int32).alias("event.severity")


def _syslog_events(df: pl.DataFrame) -> pl.DataFrame:
    """Other programs' lines: generic events with the message text."""
    tag = pl.concat_str(
        [
            pl.col(APPNAME),
            pl.when(pl.col(PROCID).is_not_null()).then(
                pl.concat_str([pl.lit("["), pl.col(PROCID), pl.lit("]")])
            ),
            pl.lit(": "),
        ],
        ignore_nulls=True,
    )
    message = (
        pl.when(pl.col(APPNAME).is_not_null())
        .then(pl.concat_str([tag, pl.col(MESSAGE).fill_null("")]))
        .otherwise(pl.col(MESSAGE))
    )
    return df.select(
        LINE,
        pl.col(PARSED_TS).alias("@timestamp"),
        pl.lit("event").alias("event.kind"),
        pl.lit("syslog").alias("event.dataset"),
        pl.lit("pfsense").alias("event.module"),
        _severity(),
        message.alias("message"),
        pl.col(HOSTNAME).alias("host.name"),
        pl.col(HOSTNAME).alias("observer.hostname"),
    )


class FilterlogParser(SourceParser):
    """pfSense / OPNsense filterlog (BSD or RFC 5424 syslog; IPv4 and IPv6)."""

    name: ClassVar[str] = "filterlog"
    description: ClassVar[str] = "pfSense / OPNsense filterlog syslog"

    def __init__(self, year: int | None = None, timezone: str = "UTC", product: str | None = None) -> None:
        self.year = year
        self.timezone = timezone
        self.product = product

    def sniff(self, head: list[str]) -> bool:
        return any(_SNIFF.search(line) for line in head)

    def parse(self, batch: LineBatch, ctx: dict[str, Any]) -> ParseResult:
        year = ctx.get("year", self.year)
        timezone = str(ctx.get("timezone") or self.timezone)
        data, skipped = split_structural(batch)
        lines = with_syslog_header(
            data, TEXT, year=int(year) if year is not None else None, timezone=timezone
        )
        has_header = pl.col(FORMAT).is_in(["rfc3164", "rfc5424"]).fill_null(False)
        is_filterlog = has_header & (pl.col(APPNAME) == "filterlog").fill_null(False)
        quarantine: list[pl.DataFrame] = [empty_quarantine()]
        bad = lines.filter(~has_header)
        if bad.height:
            quarantine.append(
                quarantine_rows(
                    batch.path,
                    bad[LINE].to_list(),
                    ["not a syslog line (no RFC 3164 / RFC 5424 header)"] * bad.height,
                    bad[TEXT].to_list(),
                )
            )
        fl = lines.filter(is_filterlog).with_columns(
            pl.col(MESSAGE).fill_null("").str.split(",").alias("__f")
        )
        other = lines.filter(has_header & ~is_filterlog)
        events = pl.concat(
            [_filterlog_events(fl, self.product), _syslog_events(other)], how="diagonal_relaxed"
        ).sort(LINE)
        required = {
            "@timestamp": "syslog timestamp",
            "__filterlog": "action",
            "__ipver": "ip version",
            "__src": "source address",
            "__dst": "destination address",
        }
        is_fl = pl.col("event.dataset") == "pfsense.filterlog"
        events = events.with_columns(
            pl.when(is_fl & pl.col("event.action").is_null())
            .then(None)
            .otherwise(pl.lit(1))
            .alias("__filterlog"),
            pl.when(is_fl & pl.col("__version").is_null()).then(None).otherwise(pl.lit(1)).alias("__ipver"),
            pl.when(is_fl & pl.col("source.ip").is_null()).then(None).otherwise(pl.lit(1)).alias("__src"),
            pl.when(is_fl & pl.col("destination.ip").is_null())
            .then(None)
            .otherwise(pl.lit(1))
            .alias("__dst"),
        )
        return finish(
            events,
            batch.path,
            required=required,
            quarantine=pl.concat(quarantine),
            raw=data.select(LINE, TEXT),
            skipped=skipped,
        )


__all__ = ["FilterlogParser"]
