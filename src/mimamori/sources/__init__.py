"""Source parsers: one module per source type, registered by name in one table."""

from __future__ import annotations

import importlib
from typing import Any

from mimamori.sources.base import (
    ParseResult,
    SourceConfigError,
    SourceError,
    SourceParser,
    UnknownSourceError,
)
from mimamori.sources.reader import LineBatch, head_lines, read_batches

#: source name -> "module:Class". The one place a parser is registered; names are unique
#: by construction (a dict literal with a repeated key is flagged by ruff, F601).
PARSERS: dict[str, str] = {
    "zeek": "mimamori.sources.zeek:ZeekParser",
    "suricata": "mimamori.sources.suricata:SuricataEveParser",
    "fortigate": "mimamori.sources.fortigate:FortiGateSyslogParser",
    "panos": "mimamori.sources.panos:PanOsCsvParser",
    "filterlog": "mimamori.sources.filterlog:FilterlogParser",
    "ndjson": "mimamori.sources.ndjson_map:MappedNdjsonParser",
    "apache": "mimamori.sources.weblog:ApacheAccessParser",
    "iis": "mimamori.sources.weblog:IisW3cParser",
    "entra_signin": "mimamori.sources.cloud:EntraSigninParser",
    "m365_audit": "mimamori.sources.cloud:M365AuditParser",
    "gws_login": "mimamori.sources.cloud:GoogleWorkspaceLoginParser",
    "authlog": "mimamori.sources.authlog:AuthLogParser",
    "syslog": "mimamori.sources.syslog_generic:GenericSyslogParser",
    "evtx": "mimamori.sources.evtx:EvtxParser",
    "winlog_json": "mimamori.sources.evtx:WinlogJsonParser",
}

#: order in which formats are tried when the source is not named (most specific first)
SNIFF_ORDER = (
    "zeek", "suricata", "fortigate", "panos", "filterlog", "iis", "entra_signin", "m365_audit", "gws_login",
    "apache", "authlog", "evtx", "winlog_json",
)  # fmt: skip


def parser_class(name: str) -> type[SourceParser]:
    try:
        target = PARSERS[name]
    except KeyError:
        raise UnknownSourceError(name, sorted(PARSERS)) from None
    module, cls = target.split(":")
    found: type[SourceParser] = getattr(importlib.import_module(module), cls)
    if found.name != name:
        raise SourceError(f"parser {target} declares name {found.name!r}, registered as {name!r}")
    return found


def get_parser(name: str, **options: Any) -> SourceParser:
    """An instance of the named parser; ``options`` go to its constructor (e.g. ``timezone``)."""
    cls = parser_class(name)
    try:
        return cls(**options)
    except TypeError as exc:
        raise SourceConfigError(name, f"bad parser option(s) {sorted(options)}: {exc}") from exc


def detect_source(head: list[str]) -> str | None:
    """Name of the first parser whose format check accepts these lines, or None."""
    for name in SNIFF_ORDER:
        if parser_class(name)().sniff(head):
            return name
    return None


__all__ = [
    "PARSERS",
    "LineBatch",
    "ParseResult",
    "SourceConfigError",
    "SourceError",
    "SourceParser",
    "UnknownSourceError",
    "detect_source",
    "get_parser",
    "head_lines",
    "parser_class",
    "read_batches",
]
