"""Readers for the abuse.ch exports: Feodo Tracker, URLhaus and ThreatFox (CSV and JSON).

The CSV exports share a shape: a ``#`` banner, a header row (quoted, or inside a comment),
quoted rows (ThreatFox separates fields with ``", "``), and sometimes a closing count
(``# END 28 entries``, ``# Number of entries: N``) which is checked to spot truncated
downloads. Columns are taken from the header when there is one, so the older layouts
(URLhaus without ``last_online``, ThreatFox without ``is_compromised``) need no special case.
JSON comes as a list, as NDJSON (the API samples), or as the export's ``{id: [record]}``.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mimamori.intel.base import IndicatorRows, ReadResult, read_head, split_tags
from mimamori.intel.normalize import DOMAIN, IP, MD5, SHA1, SHA256, URL, NormalizeError, split_ip_port

FEODO_SOURCE = "abuse.ch Feodo Tracker"
URLHAUS_SOURCE = "abuse.ch URLhaus"
THREATFOX_SOURCE = "abuse.ch ThreatFox"

_FEODO_HEAD = re.compile(r'^"?first_seen_utc"?\s*,\s*"?dst_ip"?\s*,', re.MULTILINE)
_URLHAUS_HEAD = re.compile(r"^#\s*id\s*,\s*dateadded\s*,\s*url\s*,", re.MULTILINE)
_URLHAUS_ROW = re.compile(r'^"\d+","\d{4}-\d\d-\d\d \d\d:\d\d:\d\d","[a-zA-Z][\w+.-]*://', re.MULTILINE)
_THREATFOX_HEAD = re.compile(r'^#?\s*"?[a-z_]+"?\s*,\s*"?ioc_id"?\s*,\s*"?ioc_value"?', re.MULTILINE)
_THREATFOX_ROW = re.compile(
    r'^"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "\d+", "[^"]+", "[a-z0-9_:]+", ', re.MULTILINE
)
_DECLARED = re.compile(r"#\s*(?:END\s+(\d+)\s+entries|Number of entries:\s*(\d+))", re.IGNORECASE)


# ------------------------------------------------------------------------------ CSV


@dataclass
class _CsvRow:
    line: int
    fields: dict[str, str]
    raw: str


def _csv_rows(
    path: Path,
    rows: IndicatorRows,
    *,
    header_key: str,
    layouts: dict[int, tuple[str, ...]],
) -> Iterator[_CsvRow]:
    """Data rows of an abuse.ch CSV as dicts keyed by column name; bad rows become issues.

    The header is the first line (commented or not) whose fields include ``header_key``;
    without one, the column count picks a layout from ``layouts``.
    """
    columns: tuple[str, ...] | None = None
    declared: int | None = None
    seen = 0
    with path.open(encoding="utf-8", errors="replace", newline="") as fh:
        for no, line in enumerate(fh, 1):
            text = line.strip().lstrip("\ufeff")
            if not text:
                continue
            if text.startswith("#"):
                m = _DECLARED.match(text)
                if m:
                    declared = int(m.group(1) or m.group(2))
                    continue
                body = text.lstrip("#").strip()
                if columns is None and header_key in body:
                    columns = tuple(_split(body))
                continue
            fields = _split(text)
            if columns is None and header_key in fields:
                columns = tuple(fields)
                continue
            seen += 1
            cols = columns or layouts.get(len(fields))
            if cols is None:
                want = " or ".join(str(n) for n in sorted(layouts))
                rows.issue(no, f"expected {want} fields, found {len(fields)}", text)
                continue
            if len(fields) != len(cols):
                rows.issue(no, f"expected {len(cols)} fields, found {len(fields)}", text)
                continue
            yield _CsvRow(no, dict(zip(cols, fields, strict=True)), text)
    if declared is not None and declared != seen:
        rows.issue(None, f"file declares {declared} entries but has {seen} (truncated download?)")


def _split(text: str) -> list[str]:
    return [f.strip() for f in next(csv.reader([text], skipinitialspace=True), [])]


def _value(fields: dict[str, Any], *names: str) -> Any:
    for name in names:
        v = fields.get(name)
        if v is not None and v != "":
            return v
    return None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# ------------------------------------------------------------------------------ JSON


def _json_records(path: Path, rows: IndicatorRows) -> Iterator[tuple[int | None, str, dict[str, Any]]]:
    """Records of a JSON export as ``(line, label, record)``; bad JSON becomes issues.

    Shapes: a list, NDJSON, an API answer (``{"data": [...]}``, ``{"urls": [...]}``), or
    the bulk export ``{"<id>": [record, ...]}`` whose key is the record id.
    """
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        rows.issue(None, f"cannot read file: {exc}")
        return
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if len(lines) < 2 or not lines[0].lstrip().startswith("{"):
            rows.issue(exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})")
            return
        yield from _ndjson(text, rows)
        return
    if isinstance(doc, dict):
        for key in ("data", "urls", "payloads"):
            if isinstance(doc.get(key), list):
                doc = doc[key]
                break
    if isinstance(doc, list):
        for i, rec in enumerate(doc, 1):
            if isinstance(rec, dict):
                yield None, f"record {i}", rec
            else:
                rows.issue(None, f"record {i}: a JSON {type(rec).__name__}, not an object", rec)
        return
    if isinstance(doc, dict):
        if doc and all(isinstance(v, list) for v in doc.values()):
            for key, recs in doc.items():
                for rec in recs:
                    if isinstance(rec, dict):
                        yield None, f"id {key}", {"id": key, **rec}
                    else:
                        rows.issue(None, f"id {key}: a JSON {type(rec).__name__}, not an object", rec)
            return
        yield None, "record 1", doc
        return
    rows.issue(None, f"JSON document is a {type(doc).__name__}, not a list of records")


def _ndjson(text: str, rows: IndicatorRows) -> Iterator[tuple[int | None, str, dict[str, Any]]]:
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            rows.issue(no, f"invalid JSON: {exc.msg} (column {exc.colno})", line)
            continue
        if not isinstance(rec, dict):
            rows.issue(no, f"a JSON {type(rec).__name__}, not an object", line)
            continue
        yield no, f"line {no}", rec


def _where(line: int | None, label: str) -> str:
    return "" if line is not None else f"{label}: "


# ------------------------------------------------------------------------------ Feodo


class _Reader:
    name: ClassVar[str]
    description: ClassVar[str]
    source: ClassVar[str]


class FeodoCsvReader(_Reader):
    """Feodo Tracker botnet C2 blocklist, CSV (``ipblocklist.csv``)."""

    name = "feodo_csv"
    description = "abuse.ch Feodo Tracker botnet C2 IP blocklist (CSV)"
    source = FEODO_SOURCE
    _COLUMNS = ("first_seen_utc", "dst_ip", "dst_port", "c2_status", "last_online", "malware")

    def sniff(self, path: Path) -> bool:
        return bool(_FEODO_HEAD.search(read_head(path)))

    def read(self, path: Path) -> ReadResult:
        rows = IndicatorRows(path, self.source)
        for row in _csv_rows(path, rows, header_key="dst_ip", layouts={6: self._COLUMNS}):
            _feodo_row(rows, row.fields, row.line, "", row.raw)
        return rows.result()


class FeodoJsonReader(_Reader):
    """Feodo Tracker botnet C2 blocklist, JSON (``ipblocklist.json``, ``..._recommended.json``)."""

    name = "feodo_json"
    description = "abuse.ch Feodo Tracker botnet C2 IP blocklist (JSON)"
    source = FEODO_SOURCE

    def sniff(self, path: Path) -> bool:
        head = read_head(path)
        return head.lstrip().startswith(("[", "{")) and '"ip_address"' in head and '"malware"' in head

    def read(self, path: Path) -> ReadResult:
        rows = IndicatorRows(path, self.source)
        for line, label, rec in _json_records(path, rows):
            fields = {
                "dst_ip": rec.get("ip_address"),
                "dst_port": rec.get("port"),
                "c2_status": rec.get("status"),
                "first_seen_utc": rec.get("first_seen"),
                "last_online": rec.get("last_online"),
                "malware": rec.get("malware"),
            }
            _feodo_row(rows, fields, line, _where(line, label), rec)
        return rows.result()


def _feodo_row(rows: IndicatorRows, f: dict[str, Any], line: int | None, where: str, raw: Any) -> None:
    ip = f.get("dst_ip")
    if not ip:
        rows.issue(line, f"{where}no IP address", raw)
        return
    status = str(f.get("c2_status") or "").lower()
    port = f.get("dst_port")
    tags = ["botnet_cc"] + ([f"port:{port}"] if port not in (None, "") else [])
    rows.add(
        IP,
        str(ip),
        line=line,
        threat=f.get("malware") or None,
        reference=f"https://feodotracker.abuse.ch/browse/host/{str(ip).strip()}/",
        confidence=90 if status == "online" else 75,
        first_seen=f.get("first_seen_utc"),
        last_seen=f.get("last_online") or f.get("first_seen_utc"),
        tags=tags,
        raw=raw,
    )


# ------------------------------------------------------------------------------ URLhaus

_URLHAUS_COLUMNS = (
    "id", "dateadded", "url", "url_status", "last_online", "threat", "tags", "urlhaus_link", "reporter",
)  # fmt: skip
_URLHAUS_OLD = tuple(c for c in _URLHAUS_COLUMNS if c != "last_online")


class UrlhausCsvReader(_Reader):
    """URLhaus database dumps (``csv_recent``, ``csv_online``, full ``csv``)."""

    name = "urlhaus_csv"
    description = "abuse.ch URLhaus malware URL dump (CSV)"
    source = URLHAUS_SOURCE

    def sniff(self, path: Path) -> bool:
        head = read_head(path)
        return bool(_URLHAUS_HEAD.search(head) or _URLHAUS_ROW.search(head))

    def read(self, path: Path) -> ReadResult:
        rows = IndicatorRows(path, self.source)
        layouts = {9: _URLHAUS_COLUMNS, 8: _URLHAUS_OLD}
        for row in _csv_rows(path, rows, header_key="dateadded", layouts=layouts):
            _urlhaus_row(rows, row.fields, row.line, "", row.raw)
        return rows.result()


class UrlhausJsonReader(_Reader):
    """URLhaus JSON dumps (``json_recent``: ``{id: [record]}``) and NDJSON/API records."""

    name = "urlhaus_json"
    description = "abuse.ch URLhaus malware URL dump (JSON)"
    source = URLHAUS_SOURCE

    def sniff(self, path: Path) -> bool:
        head = read_head(path)
        return head.lstrip().startswith(("[", "{")) and ('"urlhaus_link"' in head or '"url_status"' in head)

    def read(self, path: Path) -> ReadResult:
        rows = IndicatorRows(path, self.source)
        for line, label, rec in _json_records(path, rows):
            _urlhaus_row(rows, rec, line, _where(line, label), rec)
        return rows.result()


def _urlhaus_row(rows: IndicatorRows, f: dict[str, Any], line: int | None, where: str, raw: Any) -> None:
    url = f.get("url")
    if not url:
        rows.issue(line, f"{where}no url", raw)
        return
    status = str(f.get("url_status") or "").lower()
    reference = f.get("urlhaus_link") or (f"https://urlhaus.abuse.ch/url/{f['id']}/" if f.get("id") else None)
    rows.add(
        URL,
        str(url),
        line=line,
        threat=f.get("threat") or None,
        reference=reference,
        confidence={"online": 80, "offline": 60}.get(status, 70),
        first_seen=f.get("dateadded"),
        last_seen=_value(f, "last_online", "dateadded"),
        tags=split_tags(f.get("tags")),
        raw=raw,
    )


# ------------------------------------------------------------------------------ ThreatFox

_THREATFOX_COLUMNS = (
    "first_seen_utc", "ioc_id", "ioc_value", "ioc_type", "threat_type", "fk_malware",
    "malware_alias", "malware_printable", "last_seen_utc", "confidence_level",
    "is_compromised", "reference", "tags", "anonymous", "reporter",
)  # fmt: skip
_THREATFOX_OLD = tuple(c for c in _THREATFOX_COLUMNS if c != "is_compromised")
_THREATFOX_TYPES = {
    "domain": DOMAIN,
    "url": URL,
    "md5_hash": MD5,
    "sha1_hash": SHA1,
    "sha256_hash": SHA256,
}


class ThreatFoxCsvReader(_Reader):
    """ThreatFox IOC exports (``export/csv/recent``, ``full``), 14- and 15-column layouts."""

    name = "threatfox_csv"
    description = "abuse.ch ThreatFox IOC export (CSV)"
    source = THREATFOX_SOURCE

    def sniff(self, path: Path) -> bool:
        head = read_head(path)
        return bool(_THREATFOX_HEAD.search(head) or _THREATFOX_ROW.search(head))

    def read(self, path: Path) -> ReadResult:
        rows = IndicatorRows(path, self.source)
        layouts = {15: _THREATFOX_COLUMNS, 14: _THREATFOX_OLD}
        for row in _csv_rows(path, rows, header_key="ioc_value", layouts=layouts):
            _threatfox_row(rows, row.fields, row.line, "", row.raw)
        return rows.result()


class ThreatFoxJsonReader(_Reader):
    """ThreatFox JSON: the export (``{id: [record]}``) and API records (NDJSON or ``data``)."""

    name = "threatfox_json"
    description = "abuse.ch ThreatFox IOCs (JSON export or API records)"
    source = THREATFOX_SOURCE

    def sniff(self, path: Path) -> bool:
        head = read_head(path)
        return head.lstrip().startswith(("[", "{")) and '"ioc_type"' in head and '"threat_type"' in head

    def read(self, path: Path) -> ReadResult:
        rows = IndicatorRows(path, self.source)
        for line, label, rec in _json_records(path, rows):
            fields = dict(rec)
            fields["ioc_value"] = _value(rec, "ioc_value", "ioc")
            fields["ioc_id"] = _value(rec, "ioc_id", "id")
            fields["first_seen_utc"] = _value(rec, "first_seen_utc", "first_seen")
            fields["last_seen_utc"] = _value(rec, "last_seen_utc", "last_seen")
            _threatfox_row(rows, fields, line, _where(line, label), rec)
        return rows.result()


def _threatfox_row(rows: IndicatorRows, f: dict[str, Any], line: int | None, where: str, raw: Any) -> None:
    value = f.get("ioc_value")
    ioc_type = str(f.get("ioc_type") or "").strip().lower()
    if not value:
        rows.issue(line, f"{where}no ioc_value", raw)
        return
    reference = _value(f, "reference")
    if reference is None or str(reference).lower() == "none":
        reference = f"https://threatfox.abuse.ch/ioc/{f['ioc_id']}/" if f.get("ioc_id") else None
    threat = _value(f, "malware_printable", "malware")
    fields: dict[str, Any] = {
        "line": line,
        "threat": None if threat in (None, "None") else str(threat),
        "reference": reference,
        "confidence": _int(f.get("confidence_level")),
        "first_seen": f.get("first_seen_utc"),
        "last_seen": _value(f, "last_seen_utc", "first_seen_utc"),
        "tags": split_tags(f.get("tags")) + split_tags(f.get("threat_type")),
    }
    if ioc_type in {"ip:port", "ipv4:port", "ipv6:port"}:
        try:
            ip = split_ip_port(str(value))
        except NormalizeError as exc:
            rows.issue(line, f"{where}{exc}", raw)
            return
        rows.add(IP, ip, raw=raw, **fields)
        return
    kind = _THREATFOX_TYPES.get(ioc_type)
    if kind is None:
        rows.issue(line, f"{where}unsupported ioc_type {ioc_type!r}", raw)
        return
    rows.add(kind, str(value), raw=raw, **fields)
