"""FortiGate (FortiOS) key=value syslog: traffic, utm and event logs, to ECS events.

Each line is ``key=value`` pairs (values bare or double-quoted; a quoted value may hold
spaces, ``=`` and ``\\"``), with or without a syslog header in front. Pairs are pulled
out with one regex over the batch, exploded to (line, key, value) rows and pivoted back
to one column per key this module maps; no Python code runs per line.

Time: ``eventtime`` (epoch in s, ms, us or ns; the unit is told by its magnitude) wins;
otherwise ``date`` + ``time`` read in ``tz`` ("+0900") when the line has it, else in the
parser option ``timezone`` (IANA name, default UTC). No usable time -> quarantined.

Choices worth knowing:
- ``event.severity``: an IPS/anomaly ``severity`` (critical 1, high 2, medium 3, low 4,
  info 5, the scale the PAN-OS parser and the IDS detector use) when the line has one,
  else ``level`` on the syslog scale (0 emergency .. 7 debug; "alert" is 1).
- ``rule.name``/``rule.id``: the IPS ``attack``/``attackid``; traffic and event logs fall
  back to the firewall ``policyname``/``policyid``, utm logs do not (a policy is not a
  signature, and the IDS detector reads utm alerts with a rule name as signature hits).
- ``event.category`` of a virus log is "malware" when it names a virus or is an
  "infected" verdict; a bare sandbox submission (``eventtype=analytics``) is "file".
- ``event.outcome``: ``status`` (success/failed) when present, else from ``action``:
  allowing actions -> success, blocking actions -> failure, others -> unknown.
- ``service`` becomes ``network.protocol`` lower-cased; port-only services such as
  ``udp/4163`` carry no application protocol and are left out.
- Addresses that are not IPs (FortiOS writes ``N/A``; vendor samples anonymise to
  ``x.x.x.x``) become null rather than poisoning IP columns.
- ``checksum``/``analyticscksum``/``filehash`` fill ``file.hash.sha256`` when 64 hex
  digits and ``file.hash.md5`` when 32; FortiOS's 8-digit CRC ``checksum`` is dropped.
"""

from __future__ import annotations

from typing import Any, ClassVar

import polars as pl

from mimamori.events.schema import TS, empty_quarantine
from mimamori.sources.base import ParseResult, SourceParser, finish, split_structural
from mimamori.sources.reader import LINE, TEXT, LineBatch, quarantine_rows
from mimamori.sources.syslog_header import (
    HOSTNAME,
    MESSAGE,
    iso_datetime,
    local_to_utc,
    syslog_severity,
    valid_ip,
    with_syslog_header,
)

#: one key=value pair; the leading whitespace (or line start) keeps keys from matching
#: inside values, the quoted branch keeps "=" and spaces inside a value
_PAIR = r'(?:^|\s)[A-Za-z_][\w.\-]*=(?:"(?:[^"\\]|\\.)*"|\S*)'

#: keys this parser reads; everything else on the line is ignored
KEYS: tuple[str, ...] = (
    "date", "time", "tz", "eventtime", "devname", "logid", "type", "subtype", "eventtype",
    "level", "severity", "srcip", "srcport", "srcmac", "dstip", "dstport", "dstmac", "remip", "locip",
    "proto", "service", "sentbyte", "rcvdbyte", "sentpkt", "rcvdpkt", "duration", "action",
    "status", "direction", "hostname", "url", "qname", "qtype", "ipaddr", "virus", "attack",
    "attackid", "filename", "filesize", "checksum", "analyticscksum", "filehash", "from",
    "sender", "to", "recipient", "subject", "user", "unauthuser", "agent", "msg", "logdesc",
    "policyid", "policyname", "profile", "catdesc", "osname", "osversion",
)  # fmt: skip

#: IANA protocol numbers FortiOS writes in ``proto`` -> ECS network.transport
TRANSPORTS: dict[str, str] = {
    "1": "icmp", "2": "igmp", "6": "tcp", "17": "udp", "41": "ipv6", "47": "gre",
    "50": "esp", "51": "ah", "58": "ipv6-icmp", "89": "ospf", "103": "pim", "112": "vrrp",
    "132": "sctp",
}  # fmt: skip

ALLOW_ACTIONS = (
    "accept", "pass", "passthrough", "allow", "allowed", "permit", "close", "timeout",
    "server-rst", "client-rst", "start", "monitored", "detected",
)  # fmt: skip
BLOCK_ACTIONS = ("deny", "denied", "block", "blocked", "drop", "dropped", "reset", "reject")
SUCCESS_STATUS = ("success", "succeeded", "logon", "up")
FAILURE_STATUS = ("failed", "failure", "fail", "negotiate_error", "error", "down")

#: IPS / anomaly signature severity -> event.severity (1 is the most severe)
ATTACK_SEVERITY = {"critical": 1, "high": 2, "medium": 3, "low": 4, "info": 5, "information": 5}

#: utm subtype -> ECS event.category (unknown utm subtypes fall back to network)
UTM_CATEGORY: dict[str, str] = {
    "virus": "malware", "ips": "intrusion_detection", "anomaly": "intrusion_detection",
    "virtual-patch": "intrusion_detection", "webfilter": "web", "waf": "web", "dns": "network",
    "app-ctrl": "network", "ssl": "network", "ssh": "network", "voip": "network",
    "emailfilter": "email", "dlp": "file", "file-filter": "file", "cifs": "file",
}  # fmt: skip

#: event subtype -> ECS event.category (login/logout actions -> authentication)
EVENT_CATEGORY: dict[str, str] = {
    "user": "authentication", "vpn": "network", "wireless": "network", "router": "network",
    "system": "host", "ha": "host", "endpoint": "host", "security-rating": "configuration",
}  # fmt: skip

_MAIL_SERVICES = ("smtp", "smtps", "pop3", "pop3s", "imap", "imaps", "mapi")


def _kv_frame(lines: pl.DataFrame) -> pl.DataFrame:
    """(line, __msg) -> one row per line with a String column per key in ``KEYS``."""
    pairs = (
        lines.select(LINE, pl.col("__msg").str.extract_all(_PAIR).alias("__kv"))
        .explode("__kv")
        .drop_nulls("__kv")
        .select(LINE, pl.col("__kv").str.strip_chars_start().str.splitn("=", 2).alias("__s"))
        .unnest("__s")
        .rename({"field_0": "__k", "field_1": "__v"})
        .filter(pl.col("__k").is_in(KEYS))
    )
    v = pl.col("__v")
    quoted = v.str.starts_with('"') & v.str.ends_with('"') & (v.str.len_chars() >= 2)
    unquoted = v.str.slice(1, v.str.len_chars() - 2).str.replace_all(r'\\(["\\])', "$1")
    value = pl.when(quoted).then(unquoted).otherwise(v)
    value = pl.when(value.is_in(["", "N/A"])).then(None).otherwise(value)
    pairs = pairs.select(LINE, "__k", value.alias("__v"))
    if pairs.height == 0:
        return lines.select(LINE)
    wide = pairs.pivot(on="__k", index=LINE, values="__v", aggregate_function="first")
    return lines.select(LINE).join(wide, on=LINE, how="left")


def _col(df: pl.DataFrame, name: str) -> pl.Expr:
    if name in df.columns:
        return pl.col(name)
    return pl.lit(None, dtype=pl.String)


def _int(df: pl.DataFrame, name: str) -> pl.Expr:
    return _col(df, name).cast(pl.Int64, strict=False)


def _hex(expr: pl.Expr, digits: int) -> pl.Expr:
    s = expr.str.to_lowercase()
    return pl.when(s.str.contains(rf"^[0-9a-f]{{{digits}}}$")).then(s).otherwise(None)


def _mac(expr: pl.Expr) -> pl.Expr:
    s = expr.str.to_lowercase()
    return pl.when(s.str.contains(r"^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$")).then(s).otherwise(None)


def _eventtime(expr: pl.Expr) -> pl.Expr:
    """Epoch in s / ms / us / ns, told apart by magnitude (2001..2286 for seconds)."""
    n = expr.str.strip_chars().cast(pl.Int64, strict=False)
    micros = (
        pl.when(n >= 10**17)
        .then(n // 1000)
        .when(n >= 10**14)
        .then(n)
        .when(n >= 10**11)
        .then(n * 1000)
        .when(n >= 10**9)
        .then(n * 1_000_000)
        .otherwise(None)
    )
    return micros.cast(pl.Datetime("us", "UTC")).cast(TS)


def _date_time(df: pl.DataFrame, timezone: str) -> pl.Expr:
    date = _col(df, "date").str.strip_chars()
    time = _col(df, "time").str.strip_chars()
    tz = _col(df, "tz").str.strip_chars()
    naive = pl.concat_str([date, pl.lit("T"), time])
    with_tz = iso_datetime(pl.concat_str([naive, tz]))
    return (
        pl.when(tz.str.contains(r"^[+-]\d{2}:?\d{2}$"))
        .then(with_tz)
        .otherwise(
            local_to_utc(
                naive.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False, time_unit="us"),
                timezone,
            )
        )
    )


def _url(df: pl.DataFrame) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(url.full, url.domain, url.path) from ``url`` (full URL or a path) and ``hostname``."""
    url = _col(df, "url")
    host = _col(df, "hostname")
    service = _col(df, "service").str.to_lowercase()
    has_scheme = url.str.contains(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
    scheme = (
        pl.when(service == "https")
        .then(pl.lit("https"))
        .when(service == "http")
        .then(pl.lit("http"))
        .otherwise(None)
    )
    built = pl.concat_str([scheme, pl.lit("://"), host, url])
    full = (
        pl.when(has_scheme)
        .then(url)
        .when(url.str.starts_with("/") & host.is_not_null())
        .then(built)
        .otherwise(None)
    )
    domain = pl.coalesce(host, url.str.extract(r"^[A-Za-z][A-Za-z0-9+.\-]*://([^/:?#]+)", 1))
    path = pl.coalesce(
        url.str.extract(r"^[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*(/[^?#]*)", 1),
        pl.when(url.str.starts_with("/")).then(url.str.extract(r"^([^?#]*)", 1)),
    )
    return full, domain, path


def _categorise(df: pl.DataFrame) -> list[pl.Expr]:
    typ = _col(df, "type").str.to_lowercase()
    sub = _col(df, "subtype").str.to_lowercase()
    action = _col(df, "action").str.to_lowercase()
    status = _col(df, "status").str.to_lowercase()
    allowed = action.is_in(ALLOW_ACTIONS)
    blocked = action.is_in(BLOCK_ACTIONS)
    login = action.is_in(["login", "logout", "auth-logon", "auth-logout"])
    verdict = (
        _col(df, "virus").is_not_null() | (_col(df, "eventtype").str.to_lowercase() == "infected")
    ).fill_null(False)
    category = (
        pl.when(typ == "traffic")
        .then(pl.lit("network"))
        .when((typ == "utm") & (sub == "virus") & ~verdict)
        .then(pl.lit("file"))
        .when(typ == "utm")
        .then(sub.replace_strict(UTM_CATEGORY, default="network", return_dtype=pl.String))
        .when((typ == "event") & login)
        .then(pl.lit("authentication"))
        .when(typ == "event")
        .then(sub.replace_strict(EVENT_CATEGORY, default="host", return_dtype=pl.String))
        .otherwise(None)
    )
    event_type = (
        pl.when(blocked)
        .then(pl.lit("denied"))
        .when(allowed)
        .then(pl.lit("allowed"))
        .when(action.is_in(["login", "auth-logon"]))
        .then(pl.lit("start"))
        .when(action.is_in(["logout", "auth-logout"]))
        .then(pl.lit("end"))
        .when(typ == "traffic")
        .then(pl.lit("connection"))
        .otherwise(pl.lit("info"))
    )
    outcome = (
        pl.when(status.is_in(SUCCESS_STATUS))
        .then(pl.lit("success"))
        .when(status.is_in(FAILURE_STATUS))
        .then(pl.lit("failure"))
        .when(blocked)
        .then(pl.lit("failure"))
        .when(allowed)
        .then(pl.lit("success"))
        .otherwise(pl.lit("unknown"))
    )
    kind = pl.when(typ == "utm").then(pl.lit("alert")).otherwise(pl.lit("event"))
    dataset = pl.concat_str([pl.lit("fortigate."), typ])
    return [
        category.alias("event.category"),
        event_type.alias("event.type"),
        outcome.alias("event.outcome"),
        kind.alias("event.kind"),
        dataset.alias("event.dataset"),
    ]


def _ecs(df: pl.DataFrame, timezone: str) -> pl.DataFrame:
    """The wide key frame (plus header columns) -> ECS-named columns."""
    hashes = [_col(df, k) for k in ("filehash", "analyticscksum", "checksum")]
    full, domain, path = _url(df)
    service = _col(df, "service").str.to_lowercase()
    email_from = pl.coalesce(_col(df, "from"), _col(df, "sender"))
    email_to = pl.coalesce(_col(df, "to"), _col(df, "recipient"))
    is_mail = (
        email_from.is_not_null()
        | email_to.is_not_null()
        | _col(df, "subject").is_not_null()
        | service.is_in(_MAIL_SERVICES)
    )
    sent, rcvd = _int(df, "sentbyte"), _int(df, "rcvdbyte")
    is_utm = (_col(df, "type").str.to_lowercase() == "utm").fill_null(False)
    direction = _col(df, "direction").str.to_lowercase()
    return df.select(
        LINE,
        pl.coalesce(_eventtime(_col(df, "eventtime")), _date_time(df, timezone)).alias("@timestamp"),
        *_categorise(df),
        pl.lit("fortigate").alias("event.module"),
        _col(df, "action").alias("event.action"),
        pl.coalesce(
            _col(df, "severity")
            .str.to_lowercase()
            .replace_strict(ATTACK_SEVERITY, default=None, return_dtype=pl.Int32),
            syslog_severity(_col(df, "level")),
        ).alias("event.severity"),
        (_col(df, "duration").cast(pl.Float64, strict=False) * 1e9)
        .cast(pl.Int64, strict=False)
        .alias("event.duration"),
        pl.coalesce(_col(df, "msg"), _col(df, "logdesc")).alias("message"),
        pl.coalesce(valid_ip(_col(df, "srcip")), valid_ip(_col(df, "remip"))).alias("source.ip"),
        _int(df, "srcport").alias("source.port"),
        _mac(_col(df, "srcmac")).alias("source.mac"),
        sent.alias("source.bytes"),
        _int(df, "sentpkt").alias("source.packets"),
        pl.coalesce(valid_ip(_col(df, "dstip")), valid_ip(_col(df, "locip"))).alias("destination.ip"),
        _int(df, "dstport").alias("destination.port"),
        _mac(_col(df, "dstmac")).alias("destination.mac"),
        _col(df, "hostname").alias("destination.domain"),
        rcvd.alias("destination.bytes"),
        _int(df, "rcvdpkt").alias("destination.packets"),
        _col(df, "proto")
        .str.strip_chars()
        .replace_strict(TRANSPORTS, default=None, return_dtype=pl.String)
        .alias("network.transport"),
        pl.when(service.str.contains(r"^(?:tcp|udp|sctp|icmp6?|ip)/|^\d+(?:/|$)"))
        .then(None)
        .otherwise(service)
        .alias("network.protocol"),
        (sent + rcvd).alias("network.bytes"),
        pl.when(direction == "incoming")
        .then(pl.lit("inbound"))
        .when(direction == "outgoing")
        .then(pl.lit("outbound"))
        .otherwise(None)
        .alias("network.direction"),
        full.alias("url.full"),
        domain.alias("url.domain"),
        path.alias("url.path"),
        _col(df, "agent").alias("user_agent.original"),
        _col(df, "qname").alias("dns.question.name"),
        _col(df, "qtype").alias("dns.question.type"),
        _col(df, "ipaddr").str.replace_all(r"\s*,\s*", ",").alias("dns.answers"),
        _col(df, "filename").alias("file.name"),
        _int(df, "filesize").alias("file.size"),
        pl.coalesce([_hex(h, 64) for h in hashes]).alias("file.hash.sha256"),
        pl.coalesce([_hex(h, 32) for h in hashes]).alias("file.hash.md5"),
        email_from.alias("email.from.address"),
        email_to.alias("email.to.address"),
        _col(df, "subject").alias("email.subject"),
        pl.when(is_mail).then(_col(df, "filename")).alias("email.attachments.file.name"),
        pl.lit("Fortinet").alias("observer.vendor"),
        pl.lit("FortiGate").alias("observer.product"),
        pl.coalesce(_col(df, "devname"), _col(df, HOSTNAME)).alias("observer.hostname"),
        _col(df, "osname").alias("host.os.name"),
        _col(df, "osversion").alias("host.os.version"),
        pl.coalesce(_col(df, "user"), _col(df, "unauthuser")).alias("user.name"),
        pl.coalesce(_col(df, "attackid"), pl.when(~is_utm).then(_col(df, "policyid"))).alias("rule.id"),
        pl.coalesce(_col(df, "attack"), pl.when(~is_utm).then(_col(df, "policyname"))).alias("rule.name"),
        _col(df, "catdesc").alias("rule.category"),
        _col(df, "profile").alias("rule.ruleset"),
        _col(df, "virus").alias("threat.indicator.name"),
    )


class FortiGateSyslogParser(SourceParser):
    """FortiGate key=value logs (traffic, utm, event), with or without a syslog header."""

    name: ClassVar[str] = "fortigate"
    description: ClassVar[str] = "FortiGate / FortiOS key=value syslog (traffic, utm, event)"

    def __init__(self, timezone: str = "UTC") -> None:
        self.timezone = timezone

    def sniff(self, head: list[str]) -> bool:
        return any(("devid=" in line or "logid=" in line) and "type=" in line for line in head)

    def parse(self, batch: LineBatch, ctx: dict[str, Any]) -> ParseResult:
        timezone = str(ctx.get("timezone") or self.timezone)
        data, skipped = split_structural(batch)
        lines = with_syslog_header(data, TEXT, timezone=timezone)
        lines = lines.with_columns(pl.col(MESSAGE).fill_null("").alias("__msg"))
        is_kv = pl.col("__msg").str.contains(_PAIR)
        not_kv = lines.filter(~is_kv)
        quarantine: list[pl.DataFrame] = [empty_quarantine()]
        if not_kv.height:
            quarantine.append(
                quarantine_rows(
                    batch.path,
                    not_kv[LINE].to_list(),
                    ["not a FortiGate key=value line"] * not_kv.height,
                    not_kv[TEXT].to_list(),
                )
            )
        lines = lines.filter(is_kv)
        wide = _kv_frame(lines).join(lines.select(LINE, HOSTNAME), on=LINE, how="left")
        events = _ecs(wide, timezone)
        return finish(
            events,
            batch.path,
            required={"@timestamp": "eventtime/date/time"},
            quarantine=pl.concat(quarantine),
            raw=data.select(LINE, TEXT),
            skipped=skipped,
        )


__all__ = ["FortiGateSyslogParser"]
