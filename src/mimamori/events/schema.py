"""The normalised event schema: Elastic Common Schema names, one Polars dtype per column.

Every batch that leaves a parser is conformed to ``EVENT_SCHEMA`` (missing columns become
nulls, extra columns are dropped), so detectors and the archive can rely on one shape.
Fields that ECS lacks are namespaced where ECS would put them (``log.file.line``).
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

TS = pl.Datetime("us", "UTC")

#: column name -> dtype. Order is the column order of every batch.
EVENT_SCHEMA: dict[str, pl.DataType] = {
    "@timestamp": TS,
    "tenant.id": pl.String(),
    "event.id": pl.String(),
    "event.kind": pl.String(),  # event | alert | metric | state
    "event.category": pl.String(),  # network | intrusion_detection | malware | email | web ...
    "event.type": pl.String(),  # connection | protocol | denied | allowed | info ...
    "event.action": pl.String(),
    "event.outcome": pl.String(),  # success | failure | unknown
    "event.dataset": pl.String(),  # zeek.conn, suricata.alert, fortigate.utm ...
    "event.module": pl.String(),  # zeek, suricata, fortigate, panos, pfsense, ndjson
    "event.severity": pl.Int32(),
    "event.duration": pl.Int64(),  # nanoseconds
    "message": pl.String(),
    "source.ip": pl.String(),
    "source.port": pl.Int32(),
    "source.mac": pl.String(),
    "source.bytes": pl.Int64(),
    "source.packets": pl.Int64(),
    "destination.ip": pl.String(),
    "destination.port": pl.Int32(),
    "destination.mac": pl.String(),
    "destination.domain": pl.String(),
    "destination.bytes": pl.Int64(),
    "destination.packets": pl.Int64(),
    "network.transport": pl.String(),
    "network.protocol": pl.String(),
    "network.bytes": pl.Int64(),
    "network.direction": pl.String(),
    "url.full": pl.String(),
    "url.domain": pl.String(),
    "url.path": pl.String(),
    "http.request.method": pl.String(),
    "http.response.status_code": pl.Int32(),
    "user_agent.original": pl.String(),
    "dns.question.name": pl.String(),
    "dns.question.type": pl.String(),
    "dns.response_code": pl.String(),
    "dns.answers": pl.String(),  # answers joined with ","
    "tls.client.server_name": pl.String(),
    "tls.version": pl.String(),
    "file.name": pl.String(),
    "file.mime_type": pl.String(),
    "file.size": pl.Int64(),
    "file.hash.md5": pl.String(),
    "file.hash.sha1": pl.String(),
    "file.hash.sha256": pl.String(),
    "email.from.address": pl.String(),
    "email.to.address": pl.String(),
    "email.subject": pl.String(),
    "email.message_id": pl.String(),
    "email.attachments.file.name": pl.String(),
    "observer.vendor": pl.String(),
    "observer.product": pl.String(),
    "observer.hostname": pl.String(),
    "host.name": pl.String(),
    "host.ip": pl.String(),
    "host.os.name": pl.String(),
    "host.os.version": pl.String(),
    "user.name": pl.String(),
    "package.name": pl.String(),
    "package.version": pl.String(),
    "rule.id": pl.String(),
    "rule.name": pl.String(),
    "rule.category": pl.String(),
    "rule.ruleset": pl.String(),
    "threat.indicator.name": pl.String(),  # e.g. a malware/virus name reported by a UTM
    # --- internet-facing services (web access logs, cloud sign-ins, mailbox audit) -------
    "url.original": pl.String(),  # the request target as logged (path and query)
    "url.query": pl.String(),
    "http.request.referrer": pl.String(),
    "http.response.body.bytes": pl.Int64(),
    "http.request.x_forwarded_for": pl.String(),  # the X-Forwarded-For chain as logged
    "http.request.peer_ip": pl.String(),  # the address that connected (the last proxy)
    "network.application": pl.String(),  # sign-in client protocol (IMAP4, Exchange ActiveSync ...)
    "event.reason": pl.String(),  # why a sign-in failed, what a mailbox rule does
    "source.geo.country_iso_code": pl.String(),
    "source.geo.city_name": pl.String(),
    "source.geo.location.lat": pl.Float64(),
    "source.geo.location.lon": pl.Float64(),
    # --- end internet-facing ----------------------------------------------------------
    # --- endpoint (Windows event logs: EVTX, Sysmon, winlogbeat) -----------------------
    "event.code": pl.String(),  # the Windows EventID
    "event.provider": pl.String(),
    "winlog.channel": pl.String(),
    "winlog.record_id": pl.Int64(),
    "process.executable": pl.String(),
    "process.command_line": pl.String(),
    "process.parent.executable": pl.String(),
    "file.path": pl.String(),
    "winlog.event_data": pl.String(),  # every Windows field by its Sigma name, as one JSON object
    # --- end endpoint -------------------------------------------------------------------
    "log.file.path": pl.String(),
    "log.file.line": pl.Int64(),
}

COLUMNS: tuple[str, ...] = tuple(EVENT_SCHEMA)

QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "tenant.id": pl.String(),
    "log.file.path": pl.String(),
    "log.file.line": pl.Int64(),
    "reason": pl.String(),
    "raw": pl.String(),  # the line as decoded; undecodable bytes are kept with \\x escapes
}


def empty_events() -> pl.DataFrame:
    return pl.DataFrame(schema=EVENT_SCHEMA)


def empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(schema=QUARANTINE_SCHEMA)


def conform(df: pl.DataFrame, schema: Mapping[str, pl.DataType] = EVENT_SCHEMA) -> pl.DataFrame:
    """Return ``df`` with exactly the schema's columns, in order, cast to its dtypes.

    Casts are non-strict for strings (anything becomes text) and strict-free for numbers:
    a value that cannot be cast becomes null. Parsers validate fields they care about
    (timestamps) before calling this, so nothing they count on is nulled here.
    """
    exprs: list[pl.Expr] = []
    present = set(df.columns)
    for name, dtype in schema.items():
        if name in present:
            col = pl.col(name)
            if df.schema[name] != dtype:
                col = col.cast(dtype, strict=False)
            exprs.append(col.alias(name))
        else:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
    return df.select(exprs)
