"""Moving STIX between incidents, trust-group collections, MISP feeds and the intel store.

- ``publish_incident``: a tenant shares an incident's bundle into a trust group it is a
  consenting member of (the group's TAXII collection; TLP checked for a community).
- ``write_misp_feed``: a trust group's collection as a static MISP feed directory
  (``manifest.json``, ``hashes.csv``, one ``<uuid>.json`` per report), TLP tags kept.
- ``import_bundle``: a STIX 2.1 bundle from outside: its indicators go into the intel store
  through the intel package's reader; re-sharing it into a group is an *onward* share and
  is refused where its TLP does not allow that (AMBER and stricter stay with the recipient).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mimamori.db.models_share import TaxiiObject, TaxiiStatus, TrustGroup, TrustGroupMember
from mimamori.incidents.engine import get_incident
from mimamori.intel.importer import ImportReport, import_paths
from mimamori.intel.normalize import CIDR, DOMAIN, IP, MD5, SHA1, SHA256, URL
from mimamori.intel.stix import UnsupportedPattern, pattern_values
from mimamori.share.partners import ShareError, get_group
from mimamori.share.stix_export import export_incident
from mimamori.share.taxii import add_objects, parse_ts
from mimamori.share.tlp import TLP, Audience, Reach, TlpViolation, decide, tlp_of_markings

_MISP_TYPES = {
    IP: ("ip-dst", "Network activity"),
    CIDR: ("ip-dst", "Network activity"),
    DOMAIN: ("domain", "Network activity"),
    URL: ("url", "Network activity"),
    MD5: ("md5", "Payload delivery"),
    SHA1: ("sha1", "Payload delivery"),
    SHA256: ("sha256", "Payload delivery"),
}
# MISP distribution: 0 own organisation, 1 this community, 3 all communities
_DISTRIBUTION = {TLP.CLEAR: "3", TLP.GREEN: "1", TLP.AMBER: "0", TLP.AMBER_STRICT: "0", TLP.RED: "0"}
_THREAT_LEVEL = {"critical": "1", "high": "1", "medium": "2", "low": "3"}


def _member_of(session: Session, g: TrustGroup, tenant_id: str) -> TrustGroupMember:
    m = session.scalar(
        select(TrustGroupMember).where(
            TrustGroupMember.group_id == g.id, TrustGroupMember.tenant_id == tenant_id
        )
    )
    if m is None:
        raise ShareError(f"tenant {tenant_id!r} is not a member of trust group {g.slug!r}")
    if not m.consent:
        raise ShareError(f"tenant {tenant_id!r} has not consented to sharing in {g.slug!r}")
    return m


def publish_incident(
    session: Session, tenant_id: str, incident_id: int, group: str, *, tlp: TLP
) -> TaxiiStatus:
    """Share an incident's STIX bundle into a trust group's collection."""
    g = get_group(session, group)
    _member_of(session, g, tenant_id)
    get_incident(session, tenant_id, incident_id)  # tenant-scoped existence check
    bundle = export_incident(
        session, tenant_id, incident_id, tlp=tlp, audience=Audience(Reach.COMMUNITY, f"group:{g.slug}")
    )
    return add_objects(session, g, bundle["objects"], origin=f"tenant:{tenant_id}")


# ------------------------------------------------------------------------------ MISP feed


def _latest(session: Session, g: TrustGroup) -> dict[str, dict[str, Any]]:
    rows = session.scalars(select(TaxiiObject).where(TaxiiObject.group_id == g.id).order_by(TaxiiObject.id))
    latest: dict[str, tuple[datetime, dict[str, Any]]] = {}
    for r in rows:
        v = parse_ts(r.version)
        if r.object_id not in latest or v >= latest[r.object_id][0]:
            latest[r.object_id] = (v, r.body)
    return {k: v[1] for k, v in latest.items()}


def _epoch(text: str | None) -> str:
    if not text:
        return str(int(datetime.now(UTC).timestamp()))
    return str(int(parse_ts(text).timestamp()))


def misp_event(report: dict[str, Any], objects: dict[str, dict[str, Any]], g: TrustGroup) -> dict[str, Any]:
    """A MISP event (feed format) for a STIX report and the indicators it refers to."""
    tlp = tlp_of_markings(report.get("object_marking_refs")) or TLP.AMBER
    event_uuid = str(uuid.UUID(report["id"].split("--", 1)[1]))
    severity = next(
        (lab.split(":", 1)[1] for lab in report.get("labels", []) if lab.startswith("severity:")), ""
    )
    attributes: list[dict[str, Any]] = []
    malware: set[str] = set()
    for ref in report.get("object_refs", []):
        obj = objects.get(ref)
        if obj is None:
            continue
        if obj.get("type") == "malware" and obj.get("name"):
            malware.add(str(obj["name"]))
        if obj.get("type") != "indicator" or obj.get("pattern_type", "stix") != "stix":
            continue
        try:
            values, _bad = pattern_values(str(obj.get("pattern", "")))
        except UnsupportedPattern:
            continue
        for kind, value in values:
            mtype, category = _MISP_TYPES[kind]
            attributes.append(
                {
                    "uuid": str(uuid.uuid5(uuid.UUID(event_uuid), f"{kind}:{value}")),
                    "type": mtype,
                    "category": category,
                    "value": value,
                    "to_ids": True,
                    "comment": str(obj.get("name", "")),
                    "timestamp": _epoch(obj.get("modified")),
                    "first_seen": obj.get("valid_from"),
                    "distribution": "5",
                }
            )
    tags = [{"name": f"tlp:{tlp.value.lower()}"}] + [
        {"name": f'misp-galaxy:malpedia="{m}"'} for m in sorted(malware)
    ]
    stamp = _epoch(report.get("modified"))
    return {
        "Event": {
            "uuid": event_uuid,
            "info": str(report.get("name", "")),
            "threat_level_id": _THREAT_LEVEL.get(severity, "4"),
            "analysis": "1",
            "distribution": _DISTRIBUTION[tlp],
            "timestamp": stamp,
            "publish_timestamp": stamp,
            "published": True,
            "date": str(report.get("published", report.get("created", "")))[:10],
            "Orgc": {"name": g.name, "uuid": g.collection_id},
            "Tag": tags,
            "Attribute": attributes,
            "Object": [],
        }
    }


@dataclass
class FeedWritten:
    events: int = 0
    attributes: int = 0
    withheld: list[str] = field(default_factory=list)  # report ids left out, with why


def write_misp_feed(session: Session, group: str, out_dir: Path, *, public: bool = False) -> FeedWritten:
    """Write the group's reports as a MISP feed directory.

    ``public``: the directory will be published openly, so only TLP:CLEAR events go in.
    """
    g = get_group(session, group)
    objects = _latest(session, g)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {}
    hashes: list[str] = []
    result = FeedWritten()
    audience = Audience(Reach.PUBLIC if public else Reach.COMMUNITY, f"misp-feed:{g.slug}")
    for obj in objects.values():
        if obj.get("type") != "report":
            continue
        tlp = tlp_of_markings(obj.get("object_marking_refs")) or TLP.AMBER
        d = decide(tlp, audience, first_hand=True)
        if not d.allowed:
            result.withheld.append(f"{obj['id']}: {d.reason}")
            continue
        event = misp_event(obj, objects, g)
        ev = event["Event"]
        (out_dir / f"{ev['uuid']}.json").write_text(json.dumps(event, ensure_ascii=False, indent=1))
        manifest[ev["uuid"]] = {
            "Orgc": ev["Orgc"],
            "Tag": ev["Tag"],
            "info": ev["info"],
            "date": ev["date"],
            "analysis": ev["analysis"],
            "threat_level_id": ev["threat_level_id"],
            "timestamp": ev["timestamp"],
        }
        for a in ev["Attribute"]:
            hashes.append(f"{hashlib.md5(a['value'].encode()).hexdigest()},{ev['uuid']}")
        result.events += 1
        result.attributes += len(ev["Attribute"])
    (out_dir / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1))
    (out_dir / "hashes.csv").write_text("".join(h + "\n" for h in hashes))
    return result


# ------------------------------------------------------------------------------ import


@dataclass
class BundleImport:
    intel: ImportReport
    tlp: TLP | None
    shared: TaxiiStatus | None = None


def import_bundle(
    session: Session,
    path: Path,
    *,
    source_name: str | None = None,
    share_to: str | None = None,
    assume: TLP = TLP.AMBER,
    now: datetime | None = None,
) -> BundleImport:
    """Import a STIX bundle's indicators into the intel store; optionally pass the bundle on
    to a trust group (an onward share: TLP decides, ``TlpViolation`` if not allowed)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise ShareError(f"{path}: cannot read a STIX bundle: {exc}") from exc
    objects = doc.get("objects", []) if isinstance(doc, dict) else doc if isinstance(doc, list) else []
    objects = [o for o in objects if isinstance(o, dict)]
    labels = [t for o in objects if (t := tlp_of_markings(o.get("object_marking_refs"))) is not None]
    tlp = max(labels, key=lambda t: t.rank) if labels else None
    status = None
    if share_to is not None:
        g = get_group(session, share_to)
        label = tlp or assume  # unmarked outside information: AMBER unless told otherwise
        d = decide(label, Audience(Reach.COMMUNITY, f"group:{g.slug}"), first_hand=False)
        if not d.allowed:
            raise TlpViolation(label, Audience(Reach.COMMUNITY, f"group:{g.slug}"), d.reason)
    report = import_paths(session, [path], source_name, reader="stix21", now=now)
    if share_to is not None:
        status = add_objects(session, get_group(session, share_to), objects, origin=f"import:{path.name}")
    return BundleImport(intel=report, tlp=tlp, shared=status)
