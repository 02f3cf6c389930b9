"""Zeek logs (TSV with ``#`` headers, or JSON lines) normalised to ECS events.

The log type comes from ``#path`` (TSV), the ``_path`` field (JSON), the file name
(``conn.log``, ``dns.04:00:00-05:00:00.log.gz``, ``ssl.json.gz``) or, failing those, a
fingerprint of the fields. Sixteen types have a full mapping (``ZEEK_MAPPINGS``); every other
type keeps the common fields (``ts``, ``uid``, ``id.*``) so nothing is dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import PurePath
from typing import Any, ClassVar, Literal

import polars as pl

from mimamori.events.schema import EVENT_SCHEMA, QUARANTINE_SCHEMA, conform, empty_events, empty_quarantine
from mimamori.sources.base import (
    ParseResult,
    SourceParser,
    epoch_seconds,
    finish,
    iso_timestamp,
    json_lines,
)
from mimamori.sources.ndjson_stream import NdjsonStream, rows_agree
from mimamori.sources.reader import LINE, TEXT, LineBatch

#: A mapping source: a Zeek field name, an expression over Zeek field columns, or a tuple
#: of those where the first non-null value wins (older and newer Zeek versions differ).
Source = str | pl.Expr | tuple[str | pl.Expr, ...]


def _first(field: str) -> pl.Expr:
    """First element of a set/vector field (``tx_hosts``, ``uids``)."""
    return pl.col(field).list.first()


def _joined(field: str) -> pl.Expr:
    """A set/vector field as text joined with "," (empty set -> null)."""
    joined = pl.col(field).list.join(",")
    return pl.when(pl.col(field).list.len() > 0).then(joined)


def _flag(field: str) -> pl.Expr:
    """Zeek bool as written in TSV (``T``/``F``) or JSON text (true/false) -> Boolean."""
    text = pl.col(field).cast(pl.String).str.to_lowercase()
    return pl.when(text.is_in(["t", "true"])).then(True).when(text.is_in(["f", "false"])).then(False)


def _count(field: str) -> pl.Expr:
    return pl.col(field).cast(pl.Int64, strict=False)


def _seconds_to_ns(field: str) -> pl.Expr:
    secs = pl.col(field).cast(pl.Float64, strict=False)
    return (secs * 1e9).round(0).cast(pl.Int64, strict=False)


def _domain(field: str) -> pl.Expr:
    """A Host header / server name without a trailing ``:port``; empty -> null."""
    host = pl.col(field).cast(pl.String).str.replace(r"^(\[[^\]]*\]|[^:]*):\d+$", "${1}")
    return pl.when(host.str.len_bytes() > 0).then(host)


def _outcome(field: str) -> pl.Expr:
    """A Zeek success flag -> ECS ``event.outcome`` (unset -> null)."""
    return pl.when(pl.col(field)).then(pl.lit("success")).when(~pl.col(field)).then(pl.lit("failure"))


_FAILED_STATES = ["S0", "REJ", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR"]
_SUCCESS_STATES = ["SF", "S1", "S2", "S3"]

_CONN_OUTCOME = (
    pl.when(pl.col("conn_state").is_in(_SUCCESS_STATES))
    .then(pl.lit("success"))
    .when(pl.col("conn_state").is_in(_FAILED_STATES))
    .then(pl.lit("failure"))
    .when(pl.col("conn_state").is_not_null())
    .then(pl.lit("unknown"))
)

_orig, _resp = pl.col("local_orig"), pl.col("local_resp")  # Boolean after _prepare
_DIRECTION = (
    pl.when(_orig & _resp)
    .then(pl.lit("internal"))
    .when(_orig & ~_resp)
    .then(pl.lit("outbound"))
    .when(~_orig & _resp)
    .then(pl.lit("inbound"))
    .when(~_orig & ~_resp)
    .then(pl.lit("external"))
)

_NETWORK_BYTES = pl.when(pl.col("orig_bytes").is_not_null() | pl.col("resp_bytes").is_not_null()).then(
    _count("orig_bytes").fill_null(0) + _count("resp_bytes").fill_null(0)
)

_uri = pl.col("uri").cast(pl.String)
_host = _domain("host")
_URL_FULL = (
    pl.when(_uri.str.contains(r"^[A-Za-z][A-Za-z0-9+.-]*://"))
    .then(_uri)  # proxy requests carry an absolute URI already
    .when(_host.is_not_null() & (pl.col("method").cast(pl.String) != "CONNECT").fill_null(True))
    .then(pl.concat_str(pl.lit("http://"), pl.col("host").cast(pl.String), _uri.fill_null("")))
)

_VERSION_PARTS = ["version.major", "version.minor", "version.minor2", "version.minor3"]
_SOFTWARE_VERSION = pl.coalesce(
    pl.concat_str(
        [pl.col(p).cast(pl.String) for p in _VERSION_PARTS], separator=".", ignore_nulls=True
    ).replace("", None),
    pl.col("unparsed_version").cast(pl.String),
)

#: ECS name -> Zeek field for every log type, including ones without their own mapping.
COMMON: dict[str, Source] = {
    "@timestamp": "ts",
    "event.id": "uid",
    "source.ip": "id.orig_h",
    "source.port": "id.orig_p",
    "destination.ip": "id.resp_h",
    "destination.port": "id.resp_p",
    "network.transport": "proto",
}

#: Per log type: ECS name -> Zeek field (or alternatives / a derived expression).
ZEEK_MAPPINGS: dict[str, dict[str, Source]] = {
    "conn": {
        **COMMON,
        "network.protocol": "service",
        "event.duration": _seconds_to_ns("duration"),
        "source.bytes": "orig_bytes",
        "destination.bytes": "resp_bytes",
        "network.bytes": _NETWORK_BYTES,
        "source.packets": "orig_pkts",
        "destination.packets": "resp_pkts",
        "source.mac": "orig_l2_addr",
        "destination.mac": "resp_l2_addr",
        "event.action": "conn_state",
        "event.outcome": _CONN_OUTCOME,
        "network.direction": _DIRECTION,
    },
    "dns": {
        **COMMON,
        "network.protocol": pl.lit("dns"),
        "dns.question.name": "query",
        "destination.domain": "query",
        "dns.question.type": "qtype_name",
        "dns.response_code": "rcode_name",
        "dns.answers": _joined("answers"),
    },
    "http": {
        **COMMON,
        "network.protocol": pl.lit("http"),
        "url.domain": _host,
        "destination.domain": _host,
        "url.path": "uri",
        "url.full": _URL_FULL,
        "http.request.method": "method",
        "http.response.status_code": "status_code",
        "user_agent.original": "user_agent",
        "user.name": "username",
    },
    "ssl": {
        **COMMON,
        "network.protocol": pl.lit("tls"),
        "tls.client.server_name": "server_name",
        "destination.domain": _domain("server_name"),
        "tls.version": "version",
    },
    "dhcp": {
        **COMMON,
        "event.id": ("uid", _first("uids")),
        "network.protocol": pl.lit("dhcp"),
        "source.ip": ("assigned_addr", "assigned_ip", "client_addr", "id.orig_h"),
        "destination.ip": ("server_addr", "id.resp_h"),
        "source.mac": "mac",
        "host.name": "host_name",
        "host.ip": ("assigned_addr", "assigned_ip"),
        "event.action": _joined("msg_types"),
        # option 60, the vendor class ("MSFT 5.0", "android-dhcp-13"), logged by
        # policy/protocols/dhcp/software.zeek
        "user_agent.original": "client_software",
    },
    "software": {
        "@timestamp": "ts",
        "source.ip": "host",
        "source.port": "host_p",
        "host.ip": "host",
        "event.action": "software_type",
        "package.name": "name",
        "package.version": _SOFTWARE_VERSION,
        "user_agent.original": "unparsed_version",
    },
    "files": {
        **COMMON,
        "event.id": "fuid",
        "source.ip": (_first("tx_hosts"), "id.orig_h"),
        "destination.ip": (_first("rx_hosts"), "id.resp_h"),
        "network.protocol": pl.col("source").cast(pl.String).str.to_lowercase(),
        "file.name": "filename",
        "file.mime_type": "mime_type",
        "file.size": ("total_bytes", "seen_bytes"),
        "file.hash.md5": "md5",
        "file.hash.sha1": "sha1",
        "file.hash.sha256": "sha256",
    },
    "smtp": {
        **COMMON,
        "network.protocol": pl.lit("smtp"),
        "email.from.address": "mailfrom",
        "email.to.address": _joined("rcptto"),
        "email.subject": "subject",
        "email.message_id": "msg_id",
        "user_agent.original": "user_agent",
    },
    "notice": {
        **COMMON,
        "source.ip": ("src", "id.orig_h"),
        "destination.ip": ("dst", "id.resp_h"),
        "destination.port": ("p", "id.resp_p"),
        "rule.name": "note",
        "message": "msg",
    },
    # Windows and remote-access protocols: what lateral movement and credential use leave.
    "smb_mapping": {
        **COMMON,
        "network.protocol": pl.lit("smb"),
        "url.path": "path",  # the share's UNC path, like \\host\ADMIN$
        "event.action": "share_type",
    },
    "smb_files": {
        **COMMON,
        "event.id": ("uid", "fuid"),
        "network.protocol": pl.lit("smb"),
        "url.path": "path",
        "file.name": "name",  # also named pipes: \\svcctl, \\atsvc
        "file.size": "size",
        "event.action": "action",
    },
    "dce_rpc": {
        **COMMON,
        "network.protocol": pl.lit("dce_rpc"),
        "event.action": "operation",
        "message": "endpoint",
    },
    "ntlm": {
        **COMMON,
        "network.protocol": pl.lit("ntlm"),
        "user.name": "username",
        "host.name": "hostname",
        "event.outcome": _outcome("success"),
    },
    "kerberos": {
        **COMMON,
        "network.protocol": pl.lit("kerberos"),
        "user.name": "client",
        "event.action": "request_type",
        "event.outcome": _outcome("success"),
    },
    "rdp": {
        **COMMON,
        "network.protocol": pl.lit("rdp"),
        "user.name": "cookie",
        "event.action": "result",
    },
    "ssh": {
        **COMMON,
        "network.protocol": pl.lit("ssh"),
        "user_agent.original": "client",
        "event.outcome": _outcome("auth_success"),
    },
}

#: Logs written by Zeek packages in the format of a mapped type (RITA's open connections).
MAPPING_ALIASES = {"open_conn": "conn", "open_http": "http", "open_ssl": "ssl"}

#: Per mapped type: event.kind, event.category, event.type. Others: event/network/info.
TYPE_META: dict[str, tuple[str, str, str]] = {
    "conn": ("event", "network", "connection"),
    "dns": ("event", "network", "protocol"),
    "http": ("event", "network", "protocol"),
    "ssl": ("event", "network", "protocol"),
    "dhcp": ("event", "network", "protocol"),
    "software": ("event", "network", "info"),
    "files": ("event", "file", "info"),
    "smtp": ("event", "email", "protocol"),
    "notice": ("alert", "network", "info"),
    "smb_mapping": ("event", "network", "access"),
    "smb_files": ("event", "file", "access"),
    "dce_rpc": ("event", "network", "protocol"),
    "ntlm": ("event", "authentication", "info"),
    "kerberos": ("event", "authentication", "info"),
    "rdp": ("event", "network", "protocol"),
    "ssh": ("event", "network", "protocol"),
}
DEFAULT_META = ("event", "network", "info")

#: Fields holding Zeek sets/vectors; normalised to List(String) before mapping.
CONTAINER_FIELDS = frozenset({"answers", "uids", "msg_types", "tx_hosts", "rx_hosts", "rcptto"})

#: Zeek JSON value types of the fields read as numbers or booleans (the rest as text, so an
#: ISO ``ts`` and an epoch ``ts`` both read). A line that disagrees sends the batch down the
#: slow, type-inferring path; it is not lost.
_COUNT = pl.Int64()
JSON_TYPES: dict[str, pl.DataType] = {
    **{f: pl.List(pl.String()) for f in CONTAINER_FIELDS},
    **{f: _COUNT for f in ("id.orig_p", "id.resp_p", "orig_bytes", "resp_bytes", "orig_pkts")},
    **{f: _COUNT for f in ("resp_pkts", "status_code", "total_bytes", "seen_bytes", "host_p", "p")},
    **{f: _COUNT for f in _VERSION_PARTS},
    "duration": pl.Float64(),
    "local_orig": pl.Boolean(),
    "local_resp": pl.Boolean(),
}

#: Zeek bools: ``T``/``F`` in TSV, true/false in JSON; normalised to Boolean before mapping.
FLAG_FIELDS = frozenset({"local_orig", "local_resp", "success", "auth_success"})

#: Field-name fingerprints for logs whose type is named nowhere: (type, fields all present).
FINGERPRINTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("notice", ("note", "msg")),
    ("files", ("fuid", "seen_bytes")),
    ("conn", ("conn_state",)),
    ("dns", ("query", "trans_id")),
    ("dns", ("query", "qtype_name")),
    ("software", ("software_type",)),
    ("smtp", ("helo",)),
    ("smtp", ("mailfrom",)),
    ("dhcp", ("msg_types",)),
    ("dhcp", ("mac", "assigned_ip")),
    ("ssl", ("resumed", "established")),
    ("ssl", ("server_name", "cipher")),
    ("http", ("method", "trans_depth", "host")),
    ("http", ("method", "trans_depth", "resp_fuids")),
    ("http", ("method", "trans_depth", "status_msg")),
    ("x509", ("fingerprint", "certificate.subject")),
    ("weird", ("name", "notice", "peer")),
)

#: Zeek's standard log names (and common package logs), recognised in file names.
KNOWN_LOGS = frozenset(
    {
        *ZEEK_MAPPINGS,
        *MAPPING_ALIASES,
        "analyzer", "capture_loss", "cluster", "conn_long", "dce_rpc", "dnp3", "dpd", "ftp",
        "intel", "irc", "kerberos", "known_certs", "known_hosts", "known_modbus",
        "known_services", "ldap", "ldap_search", "loaded_scripts", "modbus", "mqtt_connect",
        "mqtt_publish", "mqtt_subscribe", "mysql", "netcontrol", "notice_alarm", "ntlm", "ntp",
        "ocsp", "packet_filter", "pe", "print", "quic", "radius", "rdp", "reporter", "rfb",
        "signatures", "sip", "smb_cmd", "smb_files", "smb_mapping", "snmp", "socks",
        "software", "ssh", "stats", "syslog", "traceroute", "tunnel", "unified2", "weird",
        "websocket", "x509",
    }
)  # fmt: skip

#: JSON exporters that cannot write dots in keys use underscores (``id_orig_h``).
_UNDERSCORE_KEYS = {
    f.replace(".", "_"): f
    for f in ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", *_VERSION_PARTS, "version.addl")
}

_DIRECTIVE = re.compile(
    r"^#(?:separator|(?:set_separator|empty_field|unset_field|path|fields|types)(?:[^A-Za-z0-9_]|$))"
)
_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|t|\\)")
_NAME_OK = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_TYPE_COL = "__mimamori_zeek_type"
_NO_HEADER = "Zeek TSV data line before any #fields header (or not a Zeek log line)"


def _unescape(m: re.Match[str]) -> str:
    """``\\x09`` (what Zeek writes), ``\\t`` (seen in the wild) or ``\\\\`` (an escaped
    backslash, as in SMB paths) -> the character."""
    code = m.group(1)
    if code == "t":
        return "\t"
    return "\\" if code == "\\" else chr(int(code[1:], 16))


@dataclass(frozen=True)
class _Header:
    """The TSV header in force: set by ``#`` directives, carried across batches in ctx."""

    separator: str = "\t"
    set_separator: str = ","
    empty_field: str = "(empty)"
    unset_field: str = "-"
    path: str | None = None
    fields: tuple[str, ...] | None = None
    types: tuple[str, ...] | None = None

    def apply(self, line: str) -> _Header:
        """The header after one directive line (unknown directives change nothing)."""
        if line.startswith("#separator"):
            sep = _ESCAPE.sub(_unescape, line[len("#separator") :].strip(" "))
            return _Header(separator=sep or "\t")  # a new header block starts afresh
        parts = line.split(self.separator)
        key, values = parts[0][1:], parts[1:]
        value = values[0] if values else ""
        if key == "fields":
            return replace(self, fields=tuple(values), types=None)
        if key == "types":
            return replace(self, types=tuple(values))
        if key == "path":
            return replace(self, path=value or None)
        if key == "set_separator" and value:
            return replace(self, set_separator=value)
        if key == "empty_field" and value:
            return replace(self, empty_field=value)
        if key == "unset_field" and value:
            return replace(self, unset_field=value)
        return self


@dataclass
class _FileState:
    header: _Header
    file_type: str | None  # log type named by the file name, if recognised
    file_stem: str | None  # the file name's first component, for otherwise unknown logs
    json: bool | None = None  # decided by the first data lines of a file without header
    #: DuckDB's read of the whole file (``ndjson_stream``), with the log types its schema
    #: covers; False once it does not apply or has failed for this file
    stream: NdjsonStream | Literal[False] | None = None
    stream_types: frozenset[str] = frozenset()
    stream_hints: _Hints | None = None


def _names_from_path(path: str) -> tuple[str | None, str | None]:
    """``/x/dns.04:00:00-05:00:00.log.gz`` -> ("dns", "dns"); ``conn_json.log`` -> (None, ...)."""
    stem = PurePath(path).name.split(".", 1)[0]
    if not _NAME_OK.match(stem):
        return None, None
    return (stem if stem in KNOWN_LOGS else None), stem


class ZeekParser(SourceParser):
    """Zeek TSV and JSON logs of any type; nine types mapped in full to ECS."""

    name: ClassVar[str] = "zeek"
    description: ClassVar[str] = "Zeek (Bro) logs, TSV with #fields header or JSON lines"

    def sniff(self, head: list[str]) -> bool:
        lines = [ln.strip() for ln in head if ln.strip()]
        if any(ln.startswith(("#separator", "#fields")) for ln in lines[:12]):
            return True
        for ln in lines[:5]:
            if not ln.startswith("{"):
                continue
            try:
                obj = json.loads(ln)
            except ValueError:
                continue
            if isinstance(obj, dict) and "ts" in obj:
                keys = set(obj)
                if keys & {"uid", "id.orig_h", "id_orig_h", "_path", "fuid"} or isinstance(
                    obj.get("id"), dict
                ):
                    return True
        return False

    def parse(self, batch: LineBatch, ctx: dict[str, Any]) -> ParseResult:
        state: _FileState | None = ctx.get("zeek")
        if state is None:
            file_type, stem = _names_from_path(batch.path)
            state = ctx["zeek"] = _FileState(_Header(), file_type, stem)
        if batch.clean and state.header.fields is None and state.json is not False:
            fast = _read_json_raw(batch, state)
            if fast is not None:  # JSON lines, all parsed: no line frame needed
                state.json = True
                return finish(
                    self._map_json(fast, state),
                    batch.path,
                    required={"@timestamp": "ts"},
                    raw=lambda: batch.lines,
                )
        lines = batch.lines
        groups, skipped = self._split(lines, state)
        quarantine: list[pl.DataFrame] = []
        parts: list[pl.DataFrame] = []
        for header, rows in groups:
            if header.fields is not None:
                mapped, bad = self._tsv(rows, header, state, batch.path)
                parts.append(mapped)
                quarantine.append(bad)
                continue
            if state.json is None:
                state.json = bool(rows.select(pl.col(TEXT).str.contains(r"^\s*\{").any()).item())
            if state.json:
                mapped, bad = self._json(rows, state, batch.path)
                parts.append(mapped)
                quarantine.append(bad)
            else:
                quarantine.append(_quarantine(rows, batch.path, pl.lit(_NO_HEADER)))
        if len(parts) > 1:
            events = pl.concat([conform(p) for p in parts]).sort(LINE)
        else:
            events = parts[0] if parts else empty_events()
        bad_rows = [q for q in quarantine if q.height]
        result = finish(
            events,
            batch.path,
            required={"@timestamp": "ts"},
            quarantine=pl.concat(bad_rows) if bad_rows else empty_quarantine(),
            raw=lines,
            skipped=skipped,
        )
        if result.quarantine.height > 1:
            result.quarantine = result.quarantine.sort(LINE)
        return result

    @staticmethod
    def _split(lines: pl.DataFrame, state: _FileState) -> tuple[list[tuple[_Header, pl.DataFrame]], int]:
        """Data lines grouped by the header in force for them, and the count of header,
        comment and blank lines. Updates the file's header state."""
        structural = lines.select(pl.col(TEXT).str.contains(r"^(?:#|[ \r\n]*$)"))[TEXT]
        n_structural = int(structural.sum())
        if n_structural == 0:
            return [(state.header, lines)], 0
        hashed = lines.filter(structural & pl.col(TEXT).str.starts_with("#"))
        directive_lines: list[int] = []
        headers = [state.header]
        # Header directives are few: apply them in order, one header state per directive.
        for line_no, line_text in hashed.iter_rows():
            if _DIRECTIVE.match(line_text):
                directive_lines.append(line_no)
                headers.append(headers[-1].apply(line_text))
        state.header = headers[-1]
        data = lines.filter(~structural)
        if not directive_lines or data.height == 0:
            return ([(headers[-1], data)] if data.height else []), n_structural
        # For each data line: how many directives precede it = index of its header state.
        which = pl.Series(directive_lines, dtype=pl.Int64).search_sorted(data[LINE], side="left")
        keyed = data.with_columns(which.alias("__header"))
        groups = []
        for (index,), rows in keyed.partition_by("__header", as_dict=True, maintain_order=True).items():
            groups.append((headers[int(index)], rows.drop("__header")))
        return groups, n_structural

    # ------------------------------------------------------------------------ TSV

    def _tsv(
        self, rows: pl.DataFrame, header: _Header, state: _FileState, path: str
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        assert header.fields is not None
        fields = header.fields
        n = len(fields)
        cols = pl.col("__cols")
        # A trailing separator (seen in RITA's agent-tagged logs) adds one empty column.
        trailing = (cols.list.len() == n + 1) & (cols.list.last() == "")
        split = rows.with_columns(pl.col(TEXT).str.split(header.separator).alias("__cols")).with_columns(
            pl.when(trailing).then(n).otherwise(cols.list.len()).alias("__n")
        )
        bad = _quarantine(
            split.filter(pl.col("__n") != n),
            path,
            pl.format("expected {} fields, got {}", pl.lit(n), pl.col("__n")),
        )
        good = split.filter(pl.col("__n") == n)

        log_type = (
            header.path or state.file_type or _fingerprint_names(fields) or state.file_stem or "unknown"
        )
        mapping = _mapping_for(log_type)
        index: dict[str, int] = {}
        for i, f in enumerate(fields):
            index.setdefault(f, i)
        types = header.types if header.types is not None and len(header.types) == n else None
        exprs: list[pl.Expr] = []
        for f in sorted(_referenced(mapping)):
            if f not in index:
                continue
            i = index[f]
            value = pl.col("__cols").list.get(i, null_on_oob=True)
            unset = value == header.unset_field
            container = types[i].startswith(("set[", "vector[")) if types else f in CONTAINER_FIELDS
            if container:
                expr = (
                    pl.when(unset)
                    .then(pl.lit(None, dtype=pl.List(pl.String)))
                    .when(value == header.empty_field)
                    .then(pl.lit([], dtype=pl.List(pl.String)))
                    .otherwise(value.str.split(header.set_separator))
                )
            else:
                expr = (
                    pl.when(unset)
                    .then(None)
                    .when(value == header.empty_field)
                    .then(pl.lit(""))
                    .otherwise(value)
                )
            exprs.append(expr.alias(f))
        fields_df = _unescape_values(good.select(pl.col(LINE), *exprs))
        return _map(fields_df, log_type, mapping), bad

    # ------------------------------------------------------------------------ JSON

    def _json(self, rows: pl.DataFrame, state: _FileState, path: str) -> tuple[pl.DataFrame, pl.DataFrame]:
        df, bad = _read_json(rows, state, path)
        if df.height == 0:
            return empty_events(), bad
        return self._map_json(df, state), bad

    @staticmethod
    def _map_json(df: pl.DataFrame, state: _FileState) -> pl.DataFrame:
        df = df.with_columns(
            (pl.coalesce(pl.col(dotted), pl.col(alt)) if dotted in df.columns else pl.col(alt)).alias(dotted)
            for alt, dotted in _UNDERSCORE_KEYS.items()
            if alt in df.columns
        )
        candidates: list[pl.Expr] = []
        if "_path" in df.columns and _is_scalar(df.schema["_path"]):
            path_col = pl.col("_path").cast(pl.String)
            path_col = pl.when(path_col.str.len_bytes() > 0).then(path_col)
            first = df.select(path_col.first()).item()
            if first is not None and df.select((path_col == first).fill_null(False).all()).item():
                return _map(df, first, _mapping_for(first))  # the common case: one type
            candidates.append(path_col)
        if state.file_type:
            candidates.append(pl.lit(state.file_type))
        candidates.append(_fingerprint_rows(df))
        candidates.append(pl.lit(state.file_stem or "unknown"))
        df = df.with_columns(pl.coalesce(candidates).alias(_TYPE_COL))
        if df[_TYPE_COL].n_unique() == 1:
            name = str(df[_TYPE_COL][0])
            return _map(df, name, _mapping_for(name))
        out: list[pl.DataFrame] = []
        for (log_type,), part in df.partition_by(_TYPE_COL, as_dict=True, maintain_order=True).items():
            name = str(log_type)
            out.append(conform(_map(part, name, _mapping_for(name))))
        return pl.concat(out).sort(LINE)


def _read_json(rows: pl.DataFrame, state: _FileState, path: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Zeek JSON lines -> a frame holding the fields the mappings read.

    Fast path: ``_read_ndjson`` (one NDJSON read with an explicit schema). Anything unusual
    (invalid lines, nested objects, a value of an unexpected JSON type) goes through
    ``json_lines``, which checks each line, quarantines the bad ones and infers types.
    """
    texts = rows[TEXT]
    buf = texts.str.join("\n").cast(pl.Binary).item()  # bytes without a Python str copy
    df = _read_ndjson(buf, texts[0], rows.height, state)
    if df is not None:
        return df.with_columns(rows[LINE]), empty_quarantine()
    return json_lines(rows, path)


def _read_json_raw(batch: LineBatch, state: _FileState) -> pl.DataFrame | None:
    """The fast path of ``_read_json`` on a clean block; None when it does not apply."""
    first_line, last_line = batch.edge_lines()
    if first_line[:1] != b"{":
        return None
    first = first_line.decode("utf-8")
    df = _from_stream(batch, first, last_line, state)
    if df is None:
        raw = batch.raw
        assert raw is not None
        df = _read_ndjson(raw, first, batch.n_lines, state)
    if df is None:
        return None
    line = pl.int_range(batch.first_line, batch.first_line + batch.n_lines, dtype=pl.Int64)
    return df.with_columns(line.alias(LINE))


def _from_stream(batch: LineBatch, first: str, last: bytes, state: _FileState) -> pl.DataFrame | None:
    """This block's rows from DuckDB's read of the file (``ndjson_stream``), or None: the
    file is not on disk, a line is not one object, or the stream failed or read a log type
    its schema lacks. After a None the file's later blocks are read by ``_read_ndjson``."""
    if state.stream is False:
        return None
    if batch.file is None or batch.lead != ord("{"):
        _stop_stream(state)  # a block read otherwise leaves the stream's rows misaligned
        return None
    if state.stream is None:
        state.stream_hints = hints = _first_line_hints(first)
        state.stream_types = hints.paths | ({state.file_type} if state.file_type else set())
        state.stream = NdjsonStream.open(batch.file, _json_schema(state.stream_types, hints)) or False
        if state.stream is False:
            return None
    df = state.stream.take(batch.n_lines)
    if df is None or not rows_agree(df, first, last):
        _stop_stream(state)
        return None
    assert state.stream_hints is not None
    verdict = _check_read(df, state.stream_hints, state)
    if verdict is None or verdict == "general" or not verdict <= state.stream_types:
        _stop_stream(state)
        return None
    return df


def _stop_stream(state: _FileState) -> None:
    if state.stream:
        state.stream.close()
    state.stream = False


def _read_ndjson(buf: bytes, first: str, n_lines: int, state: _FileState) -> pl.DataFrame | None:
    """One NDJSON read with an explicit schema of only the fields the batch's log types need,
    which skips schema inference; None when the batch needs the careful path.

    The types are guessed from the file name and the first line and, if ``_path`` shows
    others, the batch is read once more. The first line also tells whether ``ts`` is a number
    and which spelling the connection fields use (``id.orig_h`` or ``id_orig_h``), so the
    common case reads neither a number as text nor columns that cannot occur; a later line
    that disagrees (a parse error, or the spelling's field missing) costs one read with the
    general schema.
    """
    known = {state.file_type} if state.file_type else set()
    hints = _first_line_hints(first)
    guess = known | hints.paths
    general = _Hints(hints.paths)
    for _ in range(4):
        try:
            df = pl.read_ndjson(buf, schema=_json_schema(frozenset(guess), hints))
        except Exception:
            if hints == general:
                return None
            hints = general
            continue
        if df.height != n_lines:
            return None
        verdict = _check_read(df, hints, state)
        if verdict is None:
            return None
        if verdict == "general":
            hints = general
            continue
        if verdict <= guess:
            return df
        guess |= verdict
    return None


def _check_read(
    df: pl.DataFrame, hints: _Hints, state: _FileState
) -> frozenset[str] | Literal["general"] | None:
    """What a read with ``hints`` shows: "general" when some line spells its fields
    differently from the first (or nests them), None when nested ``{"id": {...}}`` objects
    need ``json_lines``, else the log types the rows hold (the read is right if its schema
    covered them)."""
    if hints.spelling in df.columns and df[hints.spelling].null_count():
        return "general"
    if "id" in df.columns and df["id"].str.starts_with("{").any():
        return None  # json_lines flattens them
    paths = df["_path"]
    need = set(paths.drop_nulls().unique().to_list()) | ({state.file_type} if state.file_type else set())
    if paths.null_count() and not state.file_type:
        need |= _FINGERPRINT_TYPES
    return frozenset(need)


@dataclass(frozen=True)
class _Hints:
    """What the first JSON line of a batch says about the rest."""

    paths: frozenset[str] = frozenset()
    ts_number: bool = False
    #: ``id.orig_h`` or ``id_orig_h`` when the first line has that key, else None
    spelling: str | None = None


def _first_line_hints(line: str) -> _Hints:
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return _Hints()
    if not isinstance(obj, dict):
        return _Hints()
    path = obj.get("_path")
    ts = obj.get("ts")
    spelling = next((k for k in ("id.orig_h", "id_orig_h") if k in obj and "id" not in obj), None)
    return _Hints(
        frozenset({path}) if isinstance(path, str) else frozenset(),
        isinstance(ts, int | float) and not isinstance(ts, bool),
        spelling,
    )


_FINGERPRINT_TYPES = frozenset(t for t, _ in FINGERPRINTS)


@lru_cache(maxsize=64)
def _json_schema(types: frozenset[str], hints: _Hints = _Hints()) -> dict[str, pl.DataType]:
    """NDJSON read schema for these log types: their fields, with Zeek's JSON value types."""
    fields: set[str] = {"_path", "id"}
    for t in types:
        fields |= _referenced(_mapping_for(t))
        fields.update(f for fp_type, needed in FINGERPRINTS if fp_type == t for f in needed)
    fields.update([alt for alt, dotted in _UNDERSCORE_KEYS.items() if dotted in fields])
    if hints.spelling == "id.orig_h":
        fields -= {"id", *_UNDERSCORE_KEYS}
    elif hints.spelling == "id_orig_h":
        fields -= {"id", *_UNDERSCORE_KEYS.values()}
    schema = {f: JSON_TYPES.get(_UNDERSCORE_KEYS.get(f, f), pl.String()) for f in sorted(fields)}
    if hints.ts_number and "ts" in schema:
        schema["ts"] = pl.Float64()
    return schema


def _quarantine(rows: pl.DataFrame, path: str, reason: pl.Expr) -> pl.DataFrame:
    """Quarantine rows built column-wise from a frame of ``log.file.line`` and ``text``."""
    return conform(
        rows.select(
            pl.lit(path).alias("log.file.path"),
            pl.col(LINE),
            reason.alias("reason"),
            pl.col(TEXT).alias("raw"),
        ),
        QUARANTINE_SCHEMA,
    )


def _unescape_values(df: pl.DataFrame) -> pl.DataFrame:
    r"""Undo the ASCII writer's escapes in text values: ``\\`` -> ``\`` (SMB paths are written
    ``\\\\host\\ADMIN$``) and ``\xNN`` -> that character. Vectorised: only the codes that
    occur in the batch are replaced, each with one literal pass."""
    texts = [
        c for c, t in df.schema.items() if t == pl.String and df[c].str.contains("\\", literal=True).any()
    ]
    if not texts:
        return df
    hexes: set[str] = set()
    for c in texts:
        hexes.update(df[c].str.extract_all(r"\\x[0-9A-Fa-f]{2}").explode().drop_nulls().unique().to_list())
    sentinel = "\x00\uffff"  # stands in for an escaped backslash while \xNN are decoded
    out = []
    for c in texts:
        col = pl.col(c).str.replace_all("\\\\", sentinel, literal=True)
        for h in hexes:
            col = col.str.replace_all(h, chr(int(h[2:], 16)), literal=True)
        out.append(col.str.replace_all(sentinel, "\\", literal=True).alias(c))
    return df.with_columns(out)


# ---------------------------------------------------------------------------- mapping


def _mapping_for(log_type: str) -> dict[str, Source]:
    return ZEEK_MAPPINGS.get(MAPPING_ALIASES.get(log_type, log_type), COMMON)


def _sources(src: Source) -> tuple[str | pl.Expr, ...]:
    return src if isinstance(src, tuple) else (src,)


def _referenced(mapping: Mapping[str, Source]) -> set[str]:
    """Every Zeek field a mapping reads."""
    out: set[str] = set()
    for src in mapping.values():
        for s in _sources(src):
            out.update([s] if isinstance(s, str) else s.meta.root_names())
    return out


def _is_scalar(dtype: pl.DataType) -> bool:
    return not dtype.is_nested()


def _prepare(df: pl.DataFrame, needed: set[str]) -> pl.DataFrame:
    """Give every needed field a column of a predictable type: containers as List(String),
    other fields as scalars (a nested value where a scalar belongs becomes null)."""
    exprs: list[pl.Expr] = []
    schema = df.schema
    for f in needed:
        dtype = schema.get(f)
        if f in CONTAINER_FIELDS:
            if dtype is None:
                exprs.append(pl.lit(None, dtype=pl.List(pl.String)).alias(f))
            elif isinstance(dtype, pl.List) and not dtype.inner.is_nested():
                if dtype != pl.List(pl.String):
                    exprs.append(pl.col(f).cast(pl.List(pl.String), strict=False))
            elif dtype.is_nested():
                exprs.append(pl.lit(None, dtype=pl.List(pl.String)).alias(f))
            else:
                value = pl.col(f).cast(pl.String)
                exprs.append(pl.when(value.is_not_null()).then(pl.concat_list(value)).alias(f))
        elif f in FLAG_FIELDS:
            if dtype is None or dtype.is_nested():
                exprs.append(pl.lit(None, dtype=pl.Boolean).alias(f))
            elif dtype != pl.Boolean:
                exprs.append(_flag(f).alias(f))
        elif dtype is None or dtype.is_nested():
            exprs.append(pl.lit(None, dtype=pl.String).alias(f))
    return df.with_columns(exprs) if exprs else df


def _timestamp(df: pl.DataFrame) -> pl.Expr:
    """Zeek ``ts``: epoch seconds (TSV, most JSON) or ISO 8601 (JSON with ISO timestamps)."""
    ts = pl.col("ts")
    dtype = df.schema["ts"]
    if dtype.is_numeric():
        return epoch_seconds(ts)
    if dtype != pl.String:
        return pl.lit(None, dtype=pl.Datetime("us", "UTC"))
    epoch = epoch_seconds(ts)
    if not df.select((epoch.is_null() & ts.is_not_null()).any()).item():
        return epoch
    return pl.coalesce(epoch, iso_timestamp(ts))


def _map(df: pl.DataFrame, log_type: str, mapping: Mapping[str, Source]) -> pl.DataFrame:
    """Zeek field columns -> ECS columns (a subset of the event schema, not yet conformed)."""
    df = _prepare(df, _referenced(mapping))
    exprs: list[pl.Expr] = []
    for ecs, src in mapping.items():
        if ecs == "@timestamp":
            exprs.append(_timestamp(df).alias(ecs))
            continue
        alternatives = [pl.col(s) if isinstance(s, str) else s for s in _sources(src)]
        target = EVENT_SCHEMA[ecs]
        cast = [
            a.cast(target, strict=False) if target != pl.String else a.cast(pl.String) for a in alternatives
        ]
        exprs.append((pl.coalesce(cast) if len(cast) > 1 else cast[0]).alias(ecs))
    kind, category, etype = TYPE_META.get(MAPPING_ALIASES.get(log_type, log_type), DEFAULT_META)
    exprs += [
        pl.lit("zeek").alias("event.module"),
        pl.lit(f"zeek.{log_type}").alias("event.dataset"),
        pl.lit(kind).alias("event.kind"),
        pl.lit(category).alias("event.category"),
        pl.lit(etype).alias("event.type"),
        pl.lit("zeek").alias("observer.vendor"),
        pl.lit("zeek").alias("observer.product"),
        pl.col(LINE),
    ]
    return df.select(exprs)


def _fingerprint_names(fields: tuple[str, ...]) -> str | None:
    present = set(fields)
    for log_type, needed in FINGERPRINTS:
        if present.issuperset(needed):
            return log_type
    return None


def _fingerprint_rows(df: pl.DataFrame) -> pl.Expr:
    """Per row, the first fingerprint whose fields are all non-null (null when none)."""
    expr: pl.Expr = pl.lit(None, dtype=pl.String)
    for log_type, needed in reversed(FINGERPRINTS):
        if not all(f in df.columns for f in needed):
            continue
        present = pl.all_horizontal([pl.col(f).is_not_null() for f in needed])
        expr = pl.when(present).then(pl.lit(log_type)).otherwise(expr)
    return expr
