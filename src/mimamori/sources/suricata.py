"""Suricata EVE JSON (one event per line) normalised to ECS events.

EVE nests protocol details under the protocol's name (``alert.signature``,
``http.hostname``, ``dns.rrname``), so one declared mapping (``EVE_MAPPING``) serves every
``event_type``; what differs per type (kind, category, type) is declared in ``EVE_TYPES``.
Event types without their own entry keep the common fields (time, flow id, addresses).
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any, ClassVar

import polars as pl

from mimamori.events.schema import EVENT_SCHEMA, empty_events, empty_quarantine
from mimamori.sources.base import (
    ParseResult,
    SourceParser,
    finish,
    iso_timestamp,
    json_lines,
    split_structural,
)
from mimamori.sources.reader import LINE, TEXT, LineBatch

_S = pl.String()
_QUESTION = pl.List(pl.Struct({"rrname": _S, "rrtype": _S}))

#: The EVE fields read (dotted paths into the nested objects) and how they are read: text,
#: a list of text, or a list of DNS records. Other keys of a line are not needed by ECS.
EVE_FIELDS: dict[str, pl.DataType] = {
    **dict.fromkeys(
        [
            "timestamp", "flow_id", "event_type", "src_ip", "src_port", "dest_ip", "dest_port",
            "proto", "app_proto", "host",
            "alert.action", "alert.signature", "alert.signature_id", "alert.category",
            "alert.severity",
            "anomaly.event", "anomaly.type", "anomaly.layer",
            "http.hostname", "http.http_port", "http.url", "http.http_user_agent",
            "http.http_method", "http.status", "http.http_content_type",
            "dns.rrname", "dns.rrtype", "dns.rcode", "dns.rdata",
            "tls.sni", "tls.version",
            "fileinfo.filename", "fileinfo.md5", "fileinfo.sha1", "fileinfo.sha256",
            "fileinfo.size", "fileinfo.magic",
            "flow.bytes_toserver", "flow.bytes_toclient", "flow.pkts_toserver",
            "flow.pkts_toclient", "flow.start", "flow.end",
            "smtp.mail_from", "email.subject", "email.message_id",
            "dhcp.assigned_ip", "dhcp.client_mac", "dhcp.hostname", "dhcp.dhcp_type",
            "dhcp.vendor_class_identifier",
        ],
        _S,
    ),
    "smtp.rcpt_to": pl.List(_S),
    "email.attachment": pl.List(_S),
    # DNS in EVE v2/v3 and in alert metadata: lists of question / answer records
    "dns.query": _QUESTION,
    "dns.queries": _QUESTION,
    "dns.answers": pl.List(pl.Struct({"rdata": _S})),
}  # fmt: skip

_LIST_FIELDS = {f for f, t in EVE_FIELDS.items() if t == pl.List(_S)}
_RECORD_FIELDS = {f for f, t in EVE_FIELDS.items() if isinstance(t, pl.List) and t != pl.List(_S)}


def _col(name: str) -> pl.Expr:
    return pl.col(name)


def _no_brackets(expr: pl.Expr) -> pl.Expr:
    """SMTP envelope addresses come as ``<user@example.org>``."""
    return expr.str.strip_chars(" ").str.strip_prefix("<").str.strip_suffix(">")


def _non_zero_ip(name: str) -> pl.Expr:
    return pl.when(~_col(name).is_in(["0.0.0.0", "::"])).then(_col(name))


_EMPTY_TO_NULL = {"failed": None, "unknown": None, "": None}

#: event_types named after their application protocol (network.protocol when no app_proto)
APP_LAYER_TYPES = [
    "dns", "http", "http2", "tls", "smtp", "dhcp", "ssh", "ftp", "smb", "nfs", "krb5", "rdp",
    "sip", "snmp", "mqtt", "quic", "ike", "tftp", "rfb", "dnp3", "modbus", "pgsql", "ldap",
]  # fmt: skip


def _eve_time(expr: pl.Expr) -> pl.Expr:
    """EVE's own timestamp format, ``2017-01-30T16:12:26.985026+0100`` (others -> null)."""
    parsed = expr.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%z", strict=False, time_unit="us")
    return parsed.dt.convert_time_zone("UTC")


_flow_start = _eve_time(_col("flow.start"))
_flow_end = _eve_time(_col("flow.end"))
_URL = _col("http.url")
_URL_FULL = (
    pl.when(_URL.str.contains(r"^[A-Za-z][A-Za-z0-9+.-]*://"))
    .then(_URL)  # proxied requests log the absolute URL
    .when(_col("http.hostname").is_not_null() & (_col("http.http_method") != "CONNECT").fill_null(True))
    .then(
        pl.concat_str(
            pl.lit("http://"),
            _col("http.hostname"),
            pl.when(_col("http.http_port").is_not_null())
            .then(pl.lit(":") + _col("http.http_port"))
            .otherwise(pl.lit("")),
            _URL.fill_null(""),
        )
    )
)
_ANOMALY_MESSAGE = pl.format(
    "{} anomaly: {}{}",
    _col("anomaly.type").fill_null("unknown"),
    _col("anomaly.event"),
    pl.when(_col("anomaly.layer").is_not_null())
    .then(pl.lit(" (layer ") + _col("anomaly.layer") + ")")
    .otherwise(pl.lit("")),
)
_NETWORK_BYTES = pl.when(
    _col("flow.bytes_toserver").is_not_null() | _col("flow.bytes_toclient").is_not_null()
).then(
    _col("flow.bytes_toserver").cast(pl.Int64, strict=False).fill_null(0)
    + _col("flow.bytes_toclient").cast(pl.Int64, strict=False).fill_null(0)
)

#: ECS name -> EVE field (a dotted path), or an expression over EVE fields, or a tuple of
#: those where the first non-null wins. ``dns.query.rrname``/``rrtype`` and
#: ``dns.answers.rdata`` are the first question / all answers of the record lists.
EVE_MAPPING: dict[str, str | pl.Expr | tuple[str | pl.Expr, ...]] = {
    "@timestamp": "@timestamp",  # parsed from ``timestamp`` first, see _timestamps
    "event.id": "flow_id",
    "source.ip": "src_ip",
    "source.port": "src_port",
    "destination.ip": "dest_ip",
    "destination.port": "dest_port",
    "network.transport": _col("proto").str.to_lowercase(),
    "network.protocol": (
        _col("app_proto").str.to_lowercase().replace(_EMPTY_TO_NULL),
        pl.when(_col("event_type").is_in(APP_LAYER_TYPES)).then(_col("event_type")),
    ),
    "observer.hostname": "host",
    "rule.name": ("alert.signature", "anomaly.event"),
    "rule.id": "alert.signature_id",
    "rule.category": ("alert.category", "anomaly.type"),
    "event.severity": "alert.severity",
    "event.action": ("alert.action", "dhcp.dhcp_type"),
    "message": pl.when(_col("anomaly.event").is_not_null()).then(_ANOMALY_MESSAGE),
    "url.domain": "http.hostname",
    "url.path": "http.url",
    "url.full": _URL_FULL,
    "http.request.method": "http.http_method",
    "http.response.status_code": "http.status",
    # DHCP option 60 (EVE's extended dhcp log) is the client's self-description, like a UA
    "user_agent.original": ("http.http_user_agent", "dhcp.vendor_class_identifier"),
    "dns.question.name": ("dns.rrname", "dns.query.rrname"),
    "dns.question.type": ("dns.rrtype", "dns.query.rrtype"),
    "dns.response_code": "dns.rcode",
    "dns.answers": ("dns.answers.rdata", "dns.rdata"),
    "destination.domain": ("http.hostname", "tls.sni", "dns.rrname", "dns.query.rrname"),
    "tls.client.server_name": "tls.sni",
    "tls.version": "tls.version",
    "file.name": "fileinfo.filename",
    # a MIME type when the file came over HTTP, else libmagic's description
    "file.mime_type": pl.when(_col("fileinfo.filename").is_not_null()).then(
        pl.coalesce(_col("http.http_content_type"), _col("fileinfo.magic"))
    ),
    "file.size": "fileinfo.size",
    "file.hash.md5": "fileinfo.md5",
    "file.hash.sha1": "fileinfo.sha1",
    "file.hash.sha256": "fileinfo.sha256",
    "source.bytes": "flow.bytes_toserver",
    "destination.bytes": "flow.bytes_toclient",
    "source.packets": "flow.pkts_toserver",
    "destination.packets": "flow.pkts_toclient",
    "network.bytes": _NETWORK_BYTES,
    "event.duration": (_flow_end - _flow_start).dt.total_nanoseconds(),
    "email.from.address": _no_brackets(_col("smtp.mail_from")),
    "email.to.address": _no_brackets(
        _col("smtp.rcpt_to").list.eval(_no_brackets(pl.element())).list.join(",")
    ),
    "email.subject": "email.subject",
    "email.message_id": "email.message_id",
    "email.attachments.file.name": _col("email.attachment").list.join(","),
    "source.mac": "dhcp.client_mac",
    "host.name": "dhcp.hostname",
    "host.ip": _non_zero_ip("dhcp.assigned_ip"),
}

#: event_type -> (event.kind, event.category, event.type); others: event / network / info.
EVE_TYPES: dict[str, tuple[str, str, str]] = {
    "alert": ("alert", "intrusion_detection", "info"),  # type refined by alert.action
    "anomaly": ("alert", "intrusion_detection", "info"),
    "flow": ("event", "network", "connection"),
    "dns": ("event", "network", "protocol"),
    "http": ("event", "network", "protocol"),
    "tls": ("event", "network", "protocol"),
    "dhcp": ("event", "network", "protocol"),
    "smtp": ("event", "email", "protocol"),
    "fileinfo": ("event", "file", "info"),
}
DEFAULT_TYPE = ("event", "network", "info")
#: alert.action -> event.type
ALERT_ACTIONS = {"allowed": "allowed", "blocked": "denied"}


class SuricataEveParser(SourceParser):
    """Suricata EVE JSON: alerts, anomalies, flows and protocol records."""

    name: ClassVar[str] = "suricata"
    description: ClassVar[str] = "Suricata EVE JSON lines (eve.json)"

    def sniff(self, head: list[str]) -> bool:
        for ln in [ln.strip() for ln in head if ln.strip()][:5]:
            if not ln.startswith("{"):
                continue
            try:
                obj = json.loads(ln)
            except ValueError:
                continue
            if isinstance(obj, dict) and "event_type" in obj and "timestamp" in obj:
                return True
        return False

    def parse(self, batch: LineBatch, ctx: dict[str, Any]) -> ParseResult:
        data, skipped = split_structural(batch)
        df, bad = _read_eve(data, batch.path)
        if df.height == 0:
            return ParseResult(empty_events(), bad.sort(LINE), skipped)
        df = _timestamps(_canonical_ips(df, "src_ip", "dest_ip"))
        event_type = _col("event_type")
        exprs: list[pl.Expr] = []
        for ecs, src in EVE_MAPPING.items():
            alternatives = [
                _col(s) if isinstance(s, str) else s for s in (src if isinstance(src, tuple) else (src,))
            ]
            target = EVENT_SCHEMA[ecs]
            cast = [a.cast(target, strict=False) for a in alternatives]
            exprs.append((pl.coalesce(cast) if len(cast) > 1 else cast[0]).alias(ecs))
        exprs += [
            pl.lit("suricata").alias("event.module"),
            pl.concat_str(pl.lit("suricata."), event_type.fill_null("unknown")).alias("event.dataset"),
            _by_type(0).alias("event.kind"),
            _by_type(1).alias("event.category"),
            pl.when(event_type == "alert")
            .then(_col("alert.action").replace_strict(ALERT_ACTIONS, default="info").fill_null("info"))
            .otherwise(_by_type(2))
            .alias("event.type"),
            pl.lit("OISF").alias("observer.vendor"),
            pl.lit("suricata").alias("observer.product"),
            _col(LINE),
        ]
        result = finish(
            df.select(exprs),
            batch.path,
            required={"@timestamp": "timestamp"},
            quarantine=bad,
            raw=data,
            skipped=skipped,
        )
        result.quarantine = result.quarantine.sort(LINE)
        return result


def _timestamps(df: pl.DataFrame) -> pl.DataFrame:
    """``timestamp`` -> ``@timestamp``. EVE writes ``2017-01-30T16:12:26.985026+0100``; other
    ISO forms take the slower general parser, and only when some line needs it."""
    ts = _col("timestamp")
    df = df.with_columns(_eve_time(ts).alias("@timestamp"))
    if df.select((_col("@timestamp").is_null() & ts.is_not_null()).any()).item():
        df = df.with_columns(pl.coalesce(_col("@timestamp"), iso_timestamp(ts)).alias("@timestamp"))
    return df


def _by_type(i: int) -> pl.Expr:
    """One element of ``EVE_TYPES`` for each row's event_type."""
    mapping = {t: meta[i] for t, meta in EVE_TYPES.items()}
    return _col("event_type").replace_strict(mapping, default=DEFAULT_TYPE[i], return_dtype=pl.String)


def _read_eve(lines: pl.DataFrame, path: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """EVE lines -> one text (or list) column per ``EVE_FIELDS`` path, plus derived DNS fields.

    Fast path: one NDJSON read with the nested schema of just those fields (no inference
    over the large ``stats`` objects). If a line is not JSON or a field has an unexpected
    shape, ``json_lines`` checks each line, quarantines the bad ones and infers types.
    """
    if lines.height == 0:
        return pl.DataFrame(), empty_quarantine()
    buf = lines[TEXT].str.join("\n").cast(pl.Binary).item()
    try:
        nested = pl.read_ndjson(buf, schema=_NESTED_SCHEMA)
        if nested.height != lines.height:
            raise ValueError("row count mismatch")
        flat = nested.select(_leaf(f).alias(f) for f in EVE_FIELDS).with_columns(lines[LINE])
        bad = empty_quarantine()
    except Exception:
        flat, bad = json_lines(lines, path)
    return _normalise(flat), bad


def _nested(fields: dict[str, pl.DataType]) -> dict[str, pl.DataType]:
    tree: dict[str, Any] = {}
    for dotted, dtype in fields.items():
        node = tree
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = dtype

    def build(node: dict[str, Any]) -> dict[str, pl.DataType]:
        return {k: pl.Struct(build(v)) if isinstance(v, dict) else v for k, v in node.items()}

    return build(tree)


_NESTED_SCHEMA = _nested(EVE_FIELDS)


def _leaf(dotted: str) -> pl.Expr:
    first, *rest = dotted.split(".")
    expr = pl.col(first)
    for name in rest:
        expr = expr.struct.field(name)
    return expr


def _normalise(df: pl.DataFrame) -> pl.DataFrame:
    """Every ``EVE_FIELDS`` path as text (lists as List(String)), whatever JSON types the
    slow path inferred; a value of the wrong shape becomes null. Adds the DNS record fields."""
    exprs: list[pl.Expr] = []
    schema = df.schema
    for f in EVE_FIELDS:
        if f in _RECORD_FIELDS:
            continue
        dtype = schema.get(f)
        if f in _LIST_FIELDS:
            if isinstance(dtype, pl.List) and not dtype.inner.is_nested():
                exprs.append(_col(f).cast(pl.List(pl.String), strict=False))
            elif dtype is not None and not dtype.is_nested():
                exprs.append(
                    pl.when(_col(f).is_not_null()).then(pl.concat_list(_col(f).cast(pl.String))).alias(f)
                )
            else:
                exprs.append(pl.lit(None, dtype=pl.List(pl.String)).alias(f))
        elif dtype is None or dtype.is_nested():
            exprs.append(pl.lit(None, dtype=pl.String).alias(f))
        elif dtype != pl.String:
            exprs.append(_col(f).cast(pl.String))
        else:
            exprs.append(_col(f))
    question = [c for c in ("dns.query", "dns.queries") if _record_has(df, c, "rrname")]
    first_q = [_col(c).list.first() for c in question]
    exprs.append(
        (
            pl.coalesce([q.struct.field("rrname").cast(pl.String) for q in first_q])
            if first_q
            else pl.lit(None, pl.String)
        ).alias("dns.query.rrname")
    )
    typed_q = [
        _col(c).list.first().struct.field("rrtype").cast(pl.String)
        for c in question
        if _record_has(df, c, "rrtype")
    ]
    exprs.append((pl.coalesce(typed_q) if typed_q else pl.lit(None, pl.String)).alias("dns.query.rrtype"))
    if _record_has(df, "dns.answers", "rdata"):
        rdata = (
            _col("dns.answers")
            .list.eval(pl.element().struct.field("rdata").cast(pl.String))
            .list.drop_nulls()
        )
        exprs.append(pl.when(rdata.list.len() > 0).then(rdata.list.join(",")).alias("dns.answers.rdata"))
    else:
        exprs.append(pl.lit(None, pl.String).alias("dns.answers.rdata"))
    exprs.append(_col(LINE))
    return df.select(exprs)


def _record_has(df: pl.DataFrame, name: str, field: str) -> bool:
    """Whether column ``name`` is a list of records with a scalar ``field``."""
    dtype = df.schema.get(name)
    if not isinstance(dtype, pl.List) or not isinstance(dtype.inner, pl.Struct):
        return False
    return any(f.name == field and not f.dtype.is_nested() for f in dtype.inner.fields)


def _canonical_ips(df: pl.DataFrame, *names: str) -> pl.DataFrame:
    """IPv6 addresses in their canonical short form (EVE writes ``fe80:0000:...:0001``),
    so they compare equal to other sources' addresses. One conversion per distinct value."""
    exprs = []
    for name in names:
        values = (
            df.get_column(name).filter(df.get_column(name).str.contains(":", literal=True)).unique().to_list()
        )
        mapping = {}
        for value in values:
            try:
                short = ipaddress.IPv6Address(value).compressed
            except ValueError:
                continue
            if short != value:
                mapping[value] = short
        if mapping:
            exprs.append(_col(name).replace(mapping))
    return df.with_columns(exprs) if exprs else df
