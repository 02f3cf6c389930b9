"""Readers for MISP: static feed directories (``manifest.json`` + events) and single events.

Only attributes flagged ``to_ids`` become indicators (the producer's own "use this for
detection" switch), from the event and from its objects. Composite types
(``ip-dst|port``, ``filename|sha256``, ``domain|ip``) yield their matchable part(s).
The event's galaxy tags name the threat when present, else the event ``info``; tags of
the event and of the attribute become indicator tags; ``threat_level_id`` sets confidence.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, ClassVar

from mimamori.intel.base import IndicatorRows, ReadResult, parse_time, read_head
from mimamori.intel.normalize import (
    CIDR,
    DOMAIN,
    IP,
    MD5,
    SHA1,
    SHA256,
    URL,
    NormalizeError,
    normalize_domain,
)

DEFAULT_SOURCE = "MISP"

#: threat_level_id (1 high, 2 medium, 3 low, 4 undefined) -> confidence.
CONFIDENCE_BY_THREAT_LEVEL = {1: 90, 2: 75, 3: 60, 4: 50}

#: MISP attribute type -> (indicator type, index of the part of a ``a|b`` value).
ATTRIBUTE_TYPES: dict[str, tuple[tuple[str, int], ...]] = {
    "ip-dst": ((IP, 0),),
    "ip-src": ((IP, 0),),
    "ip-dst|port": ((IP, 0),),
    "ip-src|port": ((IP, 0),),
    "domain": ((DOMAIN, 0),),
    "hostname": ((DOMAIN, 0),),
    "hostname|port": ((DOMAIN, 0),),
    "domain|ip": ((DOMAIN, 0), (IP, 1)),
    "url": ((URL, 0),),
    "md5": ((MD5, 0),),
    "sha1": ((SHA1, 0),),
    "sha256": ((SHA256, 0),),
    "filename|md5": ((MD5, 1),),
    "filename|sha1": ((SHA1, 1),),
    "filename|sha256": ((SHA256, 1),),
    "malware-sample": ((MD5, 1),),
}
# ip-dst|port values are written "1.2.3.4|443" (and sometimes "1.2.3.4:443").
_GALAXY = re.compile(r'^misp-galaxy:([^=]+)="(.+)"$')
_THREAT_GALAXIES = ("malpedia", "ransomware", "banker", "rat", "stealer", "tool", "threat-actor")


# Endings that are file names, not top-level domains (url attributes sometimes hold a file).
_FILE_ENDINGS = frozenset(
    {
        *("exe", "dll", "sys", "dat", "bin", "tmp", "txt", "log", "ini", "cfg", "lnk", "uin"),
        *("doc", "docx", "xls", "xlsx", "ppt", "pdf", "rtf", "hta", "msi", "iso", "img"),
        *("js", "vbs", "ps1", "bat", "cmd", "scr", "jar", "php", "asp", "aspx", "jsp"),
        *("html", "htm", "png", "jpg", "gif"),
    }
)


def _is_host(value: str) -> bool:
    """A bare host name (``www.evil.top``), not a file name such as ``igfxtray.exe``."""
    try:
        host = normalize_domain(value)
    except NormalizeError:
        return False
    return host.rsplit(".", 1)[-1] not in _FILE_ENDINGS


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes"}
    return bool(value)


def _tag_names(obj: dict[str, Any]) -> list[str]:
    tags = obj.get("Tag") or []
    return [str(t["name"]) for t in tags if isinstance(t, dict) and t.get("name")]


def _threat(event: dict[str, Any], tags: list[str]) -> str | None:
    found: dict[str, str] = {}
    for tag in tags:
        m = _GALAXY.match(tag)
        if m and m.group(1) not in found:
            found[m.group(1)] = m.group(2)
    for galaxy in _THREAT_GALAXIES:
        if galaxy in found:
            return found[galaxy]
    info = event.get("info")
    return str(info) if info else None


def read_event(event: dict[str, Any], rows: IndicatorRows, label: str) -> None:
    """Add the ``to_ids`` attributes of one MISP event (the object inside ``{"Event": ...}``)."""
    uuid = event.get("uuid")
    orgc = event.get("Orgc") if isinstance(event.get("Orgc"), dict) else {}
    source = str(orgc.get("name")) if orgc and orgc.get("name") else None
    event_tags = _tag_names(event)
    threat = _threat(event, event_tags)
    try:
        level = int(event.get("threat_level_id") or 4)
    except (TypeError, ValueError):
        level = 4
    confidence = CONFIDENCE_BY_THREAT_LEVEL.get(level, 50)
    event_date = rows.time(event.get("date"), "event date", None)
    reference = f"misp:event/{uuid}" if uuid else None
    attributes: list[tuple[str, dict[str, Any]]] = []
    for i, attr in enumerate(event.get("Attribute") or [], 1):
        attributes.append((f"{label} Attribute {i}", attr))
    for j, obj in enumerate(event.get("Object") or [], 1):
        if not isinstance(obj, dict) or _truthy(obj.get("deleted")):
            continue
        for i, attr in enumerate(obj.get("Attribute") or [], 1):
            attributes.append((f"{label} Object {j} ({obj.get('name')}) Attribute {i}", attr))
    for where, attr in attributes:
        if not isinstance(attr, dict):
            rows.issue(None, f"{where}: not an object", attr)
            continue
        if not _truthy(attr.get("to_ids")) or _truthy(attr.get("deleted")):
            rows.skipped += 1
            continue
        kinds = ATTRIBUTE_TYPES.get(str(attr.get("type")))
        if kinds is None:
            rows.skipped += 1
            continue
        value = attr.get("value")
        if not isinstance(value, str) or not value.strip():
            rows.issue(None, f"{where}: {attr.get('type')} attribute without a value", attr)
            continue
        parts = value.split("|")
        try:
            last = parse_time(attr.get("last_seen")) or parse_time(attr.get("timestamp"))
        except (ValueError, OverflowError, OSError):
            last = None
        for kind, index in kinds:
            if index >= len(parts):
                rows.issue(None, f"{where}: {attr.get('type')} value {value!r} has no part {index + 1}")
                continue
            part = parts[index].strip()
            if kind == IP and part.count(":") == 1 and "." in part:
                part = part.split(":")[0]  # "1.2.3.4:443" written into ip-dst|port
            if kind == IP and "/" in part:
                kind = CIDR
            elif kind == URL and "://" not in part and _is_host(part):
                kind = DOMAIN  # a bare host filed as a url attribute
            rows.add(
                kind,
                part,
                threat=threat,
                reference=reference,
                confidence=confidence,
                first_seen=attr.get("first_seen") or event_date,
                last_seen=last,
                tags=event_tags + _tag_names(attr),
                source=source,
                raw=f"{where}: {attr.get('type')} {value}",
            )


def _load_event(path: Path, rows: IndicatorRows) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig", errors="replace"))
    except OSError as exc:
        rows.issue(None, f"cannot read event file {path.name}: {exc}")
        return None
    except json.JSONDecodeError as exc:
        rows.issue(exc.lineno, f"invalid JSON in {path.name}: {exc.msg} (column {exc.colno})")
        return None
    if isinstance(doc, dict) and isinstance(doc.get("Event"), dict):
        return doc["Event"]
    if isinstance(doc, dict) and ("Attribute" in doc or "Object" in doc):
        return doc
    rows.issue(None, f"{path.name} is not a MISP event (no Event object)")
    return None


class MispEventReader:
    """One MISP event in JSON (``{"Event": {...}}`` or the bare event), e.g. CIRCL OSINT."""

    name: ClassVar[str] = "misp_event"
    description: ClassVar[str] = "MISP event JSON"

    def sniff(self, path: Path) -> bool:
        head = read_head(path)
        if not head.lstrip().startswith("{"):
            return False
        if re.match(r'\s*\{\s*"Event"\s*:', head):
            return True
        return '"Attribute"' in head and ('"to_ids"' in head or '"category"' in head)

    def read(self, path: Path) -> ReadResult:
        rows = IndicatorRows(path, DEFAULT_SOURCE)
        event = _load_event(path, rows)
        if event is not None:
            read_event(event, rows, f"Event {event.get('uuid') or path.stem}")
        return rows.result()


class MispFeedReader:
    """A MISP static feed directory: ``manifest.json`` listing ``<uuid>.json`` events."""

    name: ClassVar[str] = "misp_feed"
    description: ClassVar[str] = "MISP feed directory (manifest.json + events)"

    def sniff(self, path: Path) -> bool:
        return path.is_dir() and (path / "manifest.json").is_file()

    def read(self, path: Path) -> ReadResult:
        rows = IndicatorRows(path, DEFAULT_SOURCE)
        manifest_path = path / "manifest.json"
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError) as exc:
            rows.issue(None, f"cannot read manifest.json: {exc}")
            return rows.result()
        except json.JSONDecodeError as exc:
            rows.file = str(manifest_path)
            rows.issue(exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})")
            return rows.result()
        if not isinstance(manifest, dict):
            rows.issue(None, "manifest.json is not an object keyed by event uuid")
            return rows.result()
        for uuid in sorted(manifest):
            event_path = path / f"{uuid}.json"
            if not re.fullmatch(r"[0-9a-fA-F-]{36}", uuid):
                rows.issue(None, f"manifest key {uuid!r} is not an event uuid")
                continue
            if not event_path.is_file():
                rows.issue(None, f"event {uuid} is in manifest.json but {event_path.name} is missing")
                continue
            rows.file = str(event_path)  # issues inside an event point at its file
            event = _load_event(event_path, rows)
            if event is not None:
                read_event(event, rows, f"Event {uuid}")
            rows.file = str(path)
        return rows.result()
