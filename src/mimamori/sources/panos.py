"""Palo Alto Networks PAN-OS syslog CSV (TRAFFIC, THREAT and the other log types) to ECS.

Fields are positional, in the order of the PAN-OS syslog field descriptions (PAN-OS 8.1
to 11.x; newer releases only append fields). A syslog header in front of the CSV is
stripped. CSV is split with one regex per batch: every field is matched together with the
comma before it (``,"quoted, ""with"" commas"`` or ``,bare``), so empty fields and quoted
commas need no Python code per line.

TRAFFIC and THREAT are mapped in full; SYSTEM, CONFIG, GLOBALPROTECT, HIPMATCH and
CORRELATION keep the common fields plus the few that say what happened (event id,
description, command, user, address); any other type keeps the common fields
(receive time, serial, type, subtype, generated time) with ``event.dataset``
``panos.<type>``.

Choices worth knowing:
- ``@timestamp`` is Generated Time (receive time when that is unusable), read in the
  parser option ``timezone`` (IANA name, default UTC): PAN-OS writes local device time
  without an offset, so set the device's zone when it is not UTC.
- Severity: critical 1, high 2, medium 3, low 4, informational 5 (1 is the most
  severe, as IDS engines and the IDS detector count).
- THREAT: the threat name goes to ``rule.name`` and the number in its parentheses to
  ``rule.id``; the URL/Filename field goes to ``url.full`` for ``url`` logs and to
  ``file.name`` for file, virus and WildFire logs (other subtypes: neither).
  ``event.category`` is "malware" (and the threat name also ``threat.indicator.name``)
  for virus and wildfire-virus logs and WildFire verdicts "malicious"/"phishing";
  spyware (command-and-control signatures), vulnerability, flood, scan and packet logs
  are "intrusion_detection", url "web", file/data and other WildFire verdicts "file".
- SYSTEM lines one field short (no virtual-system column, seen in vendor samples) are
  recognised by where the severity word sits and read shifted by one.
- ``observer.hostname`` is the Device Name field, else the syslog hostname, else the
  serial number.
"""

from __future__ import annotations

from typing import Any, ClassVar

import polars as pl

from mimamori.events.schema import empty_quarantine
from mimamori.sources.base import ParseResult, SourceParser, finish, split_structural
from mimamori.sources.reader import LINE, TEXT, LineBatch, quarantine_rows
from mimamori.sources.syslog_header import (
    HOSTNAME,
    MESSAGE,
    local_to_utc,
    valid_ip,
    with_syslog_header,
)

_PAN_TS = r"\d{4}/\d{1,2}/\d{1,2} \d{1,2}:\d{2}:\d{2}"
#: the start of a PAN-OS CSV record: FUTURE_USE (usually "1"), Receive Time, ...
CSV_START = rf"\d*,{_PAN_TS},"
_FIELD = r',(?:"(?:[^"]|"")*"[^,]*|[^,]*)'

KNOWN_TYPES = (
    "TRAFFIC", "THREAT", "SYSTEM", "CONFIG", "GLOBALPROTECT", "HIPMATCH", "CORRELATION",
    "USERID", "AUTH", "DECRYPTION", "TUNNEL", "GTP", "SCTP", "IPTAG", "AUDIT",
)  # fmt: skip

# Positions (0-based) of the fields this module reads, per log type.
COMMON = {"receive_time": 1, "serial": 2, "type": 3, "subtype": 4, "generated_time": 6}
#: shared by TRAFFIC and THREAT (positions 0-30)
SESSION = {
    "src": 7, "dst": 8, "rule": 11, "src_user": 12, "app": 14, "vsys": 15, "session_id": 22,
    "sport": 24, "dport": 25, "proto": 29, "action": 30,
}  # fmt: skip
TRAFFIC = {
    "bytes": 31, "bytes_sent": 32, "bytes_received": 33, "packets": 34, "elapsed": 36,
    "category": 37, "packets_sent": 44, "packets_received": 45, "end_reason": 46,
    "device_name": 52,
}  # fmt: skip
THREAT = {
    "url_or_file": 31, "threat_id": 32, "category": 33, "severity": 34, "direction": 35,
    "content_type": 41, "file_digest": 43, "user_agent": 46, "file_type": 47, "sender": 50,
    "subject": 51, "recipient": 52, "device_name": 59, "http_method": 63,
}  # fmt: skip
SYSTEM = {"event_id": 8, "object": 9, "module": 12, "severity": 13, "description": 14}
CONFIG = {"host": 7, "command": 9, "admin": 10, "client": 11, "result": 12, "path": 13}
GLOBALPROTECT = {
    "event_id": 8, "stage": 9, "user": 12, "machine": 14, "public_ip": 15, "private_ip": 17,
    "os": 22, "os_version": 23, "reason": 25, "error": 26, "description": 27, "status": 28,
}  # fmt: skip
HIPMATCH = {"user": 7, "machine": 9, "os": 10, "src": 11, "hip": 12, "device_name": 24}
CORRELATION = {
    "src": 7, "user": 8, "category": 10, "severity": 11, "device_name": 17, "object": 19,
    "object_id": 20, "evidence": 21,
}  # fmt: skip

#: PAN-OS severity -> syslog severity number
SEVERITY = {"critical": 1, "high": 2, "medium": 3, "low": 4, "informational": 5}

ALLOW_ACTIONS = ("allow", "alert", "continue", "override")
BLOCK_ACTIONS = (
    "deny", "drop", "drop-icmp", "drop-all-packets", "reset-client", "reset-server",
    "reset-both", "block", "block-url", "block-continue", "block-override", "block-ip",
    "sinkhole", "random-drop",
)  # fmt: skip

#: THREAT subtype -> ECS event.category
THREAT_CATEGORY = {
    "virus": "malware", "wildfire-virus": "malware", "wildfire": "file",
    "spyware": "intrusion_detection", "vulnerability": "intrusion_detection", "flood": "intrusion_detection",
    "scan": "intrusion_detection", "packet": "intrusion_detection", "url": "web",
    "file": "file", "data": "file",
}  # fmt: skip
_FILE_SUBTYPES = ("file", "virus", "wildfire", "wildfire-virus")
TYPE_CATEGORY = {
    "TRAFFIC": "network", "SYSTEM": "host", "CONFIG": "configuration",
    "GLOBALPROTECT": "network", "HIPMATCH": "host", "CORRELATION": "threat",
    "USERID": "iam", "AUTH": "authentication", "DECRYPTION": "network", "TUNNEL": "network",
}  # fmt: skip


def _unquote(v: pl.Expr) -> pl.Expr:
    quoted = v.str.starts_with('"') & v.str.ends_with('"') & (v.str.len_chars() >= 2)
    inner = v.str.slice(1, v.str.len_chars() - 2).str.replace_all('""', '"', literal=True)
    return pl.when(quoted).then(inner).otherwise(v)


def _split_csv(lines: pl.DataFrame) -> pl.DataFrame:
    """Add ``__f``: the CSV fields of ``syslog.message``, unquoted.

    Lines without a double quote (nearly all) take a plain split; the rest the regex.
    """
    msg = pl.col(MESSAGE)
    has_quote = msg.str.contains('"', literal=True).fill_null(False)
    plain = lines.filter(~has_quote).with_columns(msg.str.split(",").alias("__f"))
    quoted = lines.filter(has_quote).with_columns(
        pl.concat_str([pl.lit(","), msg])
        .str.extract_all(_FIELD)
        .list.eval(_unquote(pl.element().str.slice(1)))
        .alias("__f")
    )
    return pl.concat([plain, quoted]).sort(LINE)


def _field(i: int) -> pl.Expr:
    """Field ``i`` of the split record; empty -> null."""
    v = pl.col("__f").list.get(i, null_on_oob=True)
    return pl.when(v == "").then(None).otherwise(v)


#: every position read below (SYSTEM ones also one to the left, for short lines)
_USED = sorted(
    {i for table in (COMMON, SESSION, TRAFFIC, THREAT, CONFIG) for i in table.values()}
    | {i for table in (GLOBALPROTECT, HIPMATCH, CORRELATION) for i in table.values()}
    | {j for i in SYSTEM.values() for j in (i, i - 1)}
)


def _with_fields(df: pl.DataFrame) -> pl.DataFrame:
    """Materialise the fields read by ``_ecs`` once, as ``__c<i>`` columns."""
    return df.with_columns(_field(i).alias(f"__c{i}") for i in _USED)


def _f(i: int) -> pl.Expr:
    return pl.col(f"__c{i}")


def _pan_time(expr: pl.Expr, timezone: str) -> pl.Expr:
    naive = expr.str.strip_chars().str.to_datetime("%Y/%m/%d %H:%M:%S", strict=False, time_unit="us")
    return local_to_utc(naive, timezone)


def _severity(expr: pl.Expr) -> pl.Expr:
    return expr.str.to_lowercase().replace_strict(SEVERITY, default=None, return_dtype=pl.Int32)


def _by_type(typ: pl.Expr, cases: dict[str, pl.Expr]) -> pl.Expr:
    """``cases[type]`` for each row's log type, null for other types."""
    out: Any = None
    for name, expr in cases.items():
        out = (pl.when if out is None else out.when)(typ == name).then(expr)
    return (out.otherwise(None) if out is not None else pl.lit(None)).cast(pl.String)


def _ecs(df: pl.DataFrame, timezone: str) -> pl.DataFrame:
    typ = pl.col("__type")
    sub = _f(COMMON["subtype"]).str.to_lowercase()
    action = _f(SESSION["action"])
    act = action.str.to_lowercase()
    is_session = typ.is_in(["TRAFFIC", "THREAT"])
    is_threat = typ == "THREAT"
    allowed, blocked = act.is_in(ALLOW_ACTIONS), act.is_in(BLOCK_ACTIONS)

    # SYSTEM: the virtual-system column may be missing; find the severity word
    sev_at = _f(SYSTEM["severity"]).str.to_lowercase().is_in(list(SEVERITY))
    sev_before = _f(SYSTEM["severity"] - 1).str.to_lowercase().is_in(list(SEVERITY))
    sys_short = (~sev_at.fill_null(False)) & sev_before.fill_null(False)

    def sys_f(key: str) -> pl.Expr:
        return pl.when(sys_short).then(_f(SYSTEM[key] - 1)).otherwise(_f(SYSTEM[key]))

    threat_id = _f(THREAT["threat_id"])
    threat_name = threat_id.str.extract(r"^(.*?)\s*\(\d+\)\s*$", 1)
    threat_name = pl.when(threat_name.str.strip_chars() == "").then(None).otherwise(threat_name)
    threat_num = pl.coalesce(threat_id.str.extract(r"\((\d+)\)\s*$", 1), threat_id.str.extract(r"^(\d+)$", 1))
    url_or_file = _f(THREAT["url_or_file"])
    url_full = pl.when(is_threat & (sub == "url")).then(url_or_file)
    digest = _f(THREAT["file_digest"]).str.to_lowercase()

    severity = _by_type(
        typ,
        {
            "THREAT": _f(THREAT["severity"]),
            "SYSTEM": sys_f("severity"),
            "CORRELATION": _f(CORRELATION["severity"]),
        },
    )
    threat_category = _f(THREAT["category"]).str.to_lowercase()
    malicious = is_threat & (
        sub.is_in(["virus", "wildfire-virus"])
        | ((sub == "wildfire") & threat_category.is_in(["malicious", "phishing"]))
    )
    category = (
        pl.when(malicious)
        .then(pl.lit("malware"))
        .when(is_threat)
        .then(sub.replace_strict(THREAT_CATEGORY, default="intrusion_detection", return_dtype=pl.String))
        .otherwise(typ.replace_strict(TYPE_CATEGORY, default=None, return_dtype=pl.String))
    )
    event_type = (
        pl.when(blocked & is_session)
        .then(pl.lit("denied"))
        .when(allowed & is_session)
        .then(pl.lit("allowed"))
        .when(typ == "TRAFFIC")
        .then(pl.lit("connection"))
        .when(typ == "CONFIG")
        .then(pl.lit("change"))
        .when(is_threat | (typ == "CORRELATION"))
        .then(pl.lit("indicator"))
        .otherwise(pl.lit("info"))
    )
    status = _by_type(
        typ,
        {"CONFIG": _f(CONFIG["result"]), "GLOBALPROTECT": _f(GLOBALPROTECT["status"])},
    ).str.to_lowercase()
    outcome = (
        pl.when(status.is_in(["succeeded", "success"]))
        .then(pl.lit("success"))
        .when(status.is_in(["failed", "failure"]))
        .then(pl.lit("failure"))
        .when(is_session & blocked)
        .then(pl.lit("failure"))
        .when(is_session & allowed)
        .then(pl.lit("success"))
        .otherwise(pl.lit("unknown"))
    )
    elapsed = _f(TRAFFIC["elapsed"]).cast(pl.Int64, strict=False) * 1_000_000_000
    gp_message = pl.coalesce(
        _f(GLOBALPROTECT["description"]), _f(GLOBALPROTECT["error"]), _f(GLOBALPROTECT["reason"])
    )
    config_message = pl.concat_str(
        [_f(CONFIG["command"]), _f(CONFIG["path"])], separator=" ", ignore_nulls=True
    )

    return df.select(
        LINE,
        pl.coalesce(
            _pan_time(_f(COMMON["generated_time"]), timezone),
            _pan_time(_f(COMMON["receive_time"]), timezone),
        ).alias("@timestamp"),
        pl.when(is_threat | (typ == "CORRELATION"))
        .then(pl.lit("alert"))
        .otherwise(pl.lit("event"))
        .alias("event.kind"),
        category.alias("event.category"),
        event_type.alias("event.type"),
        _by_type(
            typ,
            {
                "TRAFFIC": action,
                "THREAT": action,
                "SYSTEM": sys_f("event_id"),
                "CONFIG": _f(CONFIG["command"]),
                "GLOBALPROTECT": _f(GLOBALPROTECT["event_id"]),
                "HIPMATCH": pl.lit("hip-match"),
                "CORRELATION": _f(CORRELATION["object"]),
            },
        ).alias("event.action"),
        outcome.alias("event.outcome"),
        pl.concat_str([pl.lit("panos."), typ.str.to_lowercase()]).alias("event.dataset"),
        pl.lit("panos").alias("event.module"),
        _severity(severity).alias("event.severity"),
        pl.when(typ == "TRAFFIC").then(elapsed).alias("event.duration"),
        _by_type(
            typ,
            {
                "SYSTEM": sys_f("description"),
                "CONFIG": config_message,
                "GLOBALPROTECT": gp_message,
                "HIPMATCH": _f(HIPMATCH["hip"]),
                "CORRELATION": _f(CORRELATION["evidence"]),
            },
        ).alias("message"),
        valid_ip(
            _by_type(
                typ,
                {
                    "TRAFFIC": _f(SESSION["src"]),
                    "THREAT": _f(SESSION["src"]),
                    "CONFIG": _f(CONFIG["host"]),
                    "GLOBALPROTECT": _f(GLOBALPROTECT["public_ip"]),
                    "HIPMATCH": _f(HIPMATCH["src"]),
                    "CORRELATION": _f(CORRELATION["src"]),
                },
            )
        ).alias("source.ip"),
        pl.when(is_session).then(_f(SESSION["sport"])).alias("source.port"),
        pl.when(typ == "TRAFFIC").then(_f(TRAFFIC["bytes_sent"])).alias("source.bytes"),
        pl.when(typ == "TRAFFIC").then(_f(TRAFFIC["packets_sent"])).alias("source.packets"),
        pl.when(is_session).then(valid_ip(_f(SESSION["dst"]))).alias("destination.ip"),
        pl.when(is_session).then(_f(SESSION["dport"])).alias("destination.port"),
        pl.when(typ == "TRAFFIC").then(_f(TRAFFIC["bytes_received"])).alias("destination.bytes"),
        pl.when(typ == "TRAFFIC").then(_f(TRAFFIC["packets_received"])).alias("destination.packets"),
        pl.when(is_session).then(_f(SESSION["proto"]).str.to_lowercase()).alias("network.transport"),
        pl.when(is_session).then(_f(SESSION["app"])).alias("network.protocol"),
        pl.when(typ == "TRAFFIC").then(_f(TRAFFIC["bytes"])).alias("network.bytes"),
        url_full.alias("url.full"),
        pl.when(url_full.is_not_null())
        .then(url_full.str.extract(r"^(?:[A-Za-z][A-Za-z0-9+.\-]*://)?([^/:?#]+)", 1))
        .alias("url.domain"),
        pl.when(url_full.is_not_null())
        .then(url_full.str.extract(r"^(?:[A-Za-z][A-Za-z0-9+.\-]*://)?[^/?#]*(/[^?#]*)", 1))
        .alias("url.path"),
        pl.when(is_threat).then(_f(THREAT["http_method"])).alias("http.request.method"),
        pl.when(is_threat).then(_f(THREAT["user_agent"])).alias("user_agent.original"),
        pl.when(is_threat & sub.is_in(_FILE_SUBTYPES)).then(url_or_file).alias("file.name"),
        pl.when(is_threat & digest.str.contains(r"^[0-9a-f]{64}$")).then(digest).alias("file.hash.sha256"),
        pl.when(is_threat).then(_f(THREAT["sender"])).alias("email.from.address"),
        pl.when(is_threat).then(_f(THREAT["recipient"])).alias("email.to.address"),
        pl.when(is_threat).then(_f(THREAT["subject"])).alias("email.subject"),
        pl.when(is_threat & _f(THREAT["sender"]).is_not_null() & sub.is_in(_FILE_SUBTYPES))
        .then(url_or_file)
        .alias("email.attachments.file.name"),
        pl.lit("Palo Alto Networks").alias("observer.vendor"),
        pl.lit("PAN-OS").alias("observer.product"),
        pl.coalesce(
            _by_type(
                typ,
                {
                    "TRAFFIC": _f(TRAFFIC["device_name"]),
                    "THREAT": _f(THREAT["device_name"]),
                    "HIPMATCH": _f(HIPMATCH["device_name"]),
                    "CORRELATION": _f(CORRELATION["device_name"]),
                },
            ),
            pl.col(HOSTNAME),
            _f(COMMON["serial"]),
        ).alias("observer.hostname"),
        _by_type(
            typ,
            {"GLOBALPROTECT": _f(GLOBALPROTECT["machine"]), "HIPMATCH": _f(HIPMATCH["machine"])},
        ).alias("host.name"),
        _by_type(typ, {"GLOBALPROTECT": valid_ip(_f(GLOBALPROTECT["private_ip"]))}).alias("host.ip"),
        _by_type(typ, {"GLOBALPROTECT": _f(GLOBALPROTECT["os"]), "HIPMATCH": _f(HIPMATCH["os"])}).alias(
            "host.os.name"
        ),
        _by_type(typ, {"GLOBALPROTECT": _f(GLOBALPROTECT["os_version"])}).alias("host.os.version"),
        _by_type(
            typ,
            {
                "TRAFFIC": _f(SESSION["src_user"]),
                "THREAT": _f(SESSION["src_user"]),
                "CONFIG": _f(CONFIG["admin"]),
                "GLOBALPROTECT": _f(GLOBALPROTECT["user"]),
                "HIPMATCH": _f(HIPMATCH["user"]),
                "CORRELATION": _f(CORRELATION["user"]),
            },
        ).alias("user.name"),
        _by_type(typ, {"THREAT": threat_num, "CORRELATION": _f(CORRELATION["object_id"])}).alias("rule.id"),
        _by_type(
            typ,
            {
                "TRAFFIC": _f(SESSION["rule"]),
                "THREAT": threat_name,
                "CORRELATION": _f(CORRELATION["object"]),
            },
        ).alias("rule.name"),
        _by_type(
            typ,
            {"THREAT": _f(THREAT["category"]), "CORRELATION": _f(CORRELATION["category"])},
        ).alias("rule.category"),
        pl.when(malicious).then(threat_name).alias("threat.indicator.name"),
    )


class PanOsCsvParser(SourceParser):
    """PAN-OS syslog CSV logs (TRAFFIC, THREAT, SYSTEM, CONFIG, GLOBALPROTECT, ...)."""

    name: ClassVar[str] = "panos"
    description: ClassVar[str] = "Palo Alto Networks PAN-OS syslog CSV"

    def __init__(self, timezone: str = "UTC") -> None:
        self.timezone = timezone

    def sniff(self, head: list[str]) -> bool:
        df = pl.DataFrame({TEXT: head}, schema={TEXT: pl.String})
        df = with_syslog_header(df, TEXT, message=CSV_START)
        fields = pl.col(MESSAGE).str.split(",")
        ok = fields.list.get(3, null_on_oob=True).is_in(KNOWN_TYPES) & fields.list.get(
            1, null_on_oob=True
        ).str.contains(rf"^{_PAN_TS}$")
        return bool(df.select(ok.fill_null(False).any()).item())

    def parse(self, batch: LineBatch, ctx: dict[str, Any]) -> ParseResult:
        timezone = str(ctx.get("timezone") or self.timezone)
        data, skipped = split_structural(batch)
        lines = with_syslog_header(data, TEXT, message=CSV_START, timezone=timezone)
        lines = _split_csv(lines)
        lines = _with_fields(lines)
        lines = lines.with_columns(_f(COMMON["type"]).str.to_uppercase().alias("__type"))
        is_pan = pl.col(MESSAGE).is_not_null() & pl.col("__type").is_not_null()
        bad = lines.filter(~is_pan)
        quarantine: list[pl.DataFrame] = [empty_quarantine()]
        if bad.height:
            quarantine.append(
                quarantine_rows(
                    batch.path,
                    bad[LINE].to_list(),
                    ["not a PAN-OS CSV log line"] * bad.height,
                    bad[TEXT].to_list(),
                )
            )
        events = _ecs(lines.filter(is_pan), timezone)
        return finish(
            events,
            batch.path,
            required={"@timestamp": "Generated Time"},
            quarantine=pl.concat(quarantine),
            raw=data.select(LINE, TEXT),
            skipped=skipped,
        )


__all__ = ["PanOsCsvParser"]
