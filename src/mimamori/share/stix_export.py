"""An incident as a STIX 2.1 bundle: indicators, sightings, malware, a report, TLP 2.0 marked.

Only what describes the attacker leaves: indicator values that are internal to the tenant
(its CIDRs, private ranges, its host names) are dropped, free text is sanitised, and the
tenant appears as an anonymised identity in ``where_sighted_refs``. Every object carries
the OASIS TLP 2.0 marking of the export, and the export is checked against the TLP rules
for its audience first (``share.tlp``). Ids are deterministic (UUIDv5), so re-exports of
the same incident update rather than duplicate objects at the receiver.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mimamori.db.models import Alert, Incident, Provider, Tenant
from mimamori.incidents.engine import get_incident
from mimamori.intel.normalize import DOMAIN, IP, MD5, SHA1, SHA256, URL, NormalizeError, detect
from mimamori.share.sanitize import Sanitizer
from mimamori.share.tlp import TLP, Audience, Reach, enforce, marking_definition

#: salt of our deterministic STIX ids
NS = uuid.UUID("5c1f7a0e-3d1b-4e0a-9d55-6d696d616d6f")

_PATTERN = {
    URL: "url:value",
    DOMAIN: "domain-name:value",
    MD5: "file:hashes.MD5",
    SHA1: "file:hashes.'SHA-1'",
    SHA256: "file:hashes.'SHA-256'",
}


def stix_time(d: datetime) -> str:
    return d.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def sid(kind: str, *parts: object) -> str:
    """A deterministic id: a hash of ``parts`` shaped as a UUIDv4 (what STIX 2.1 asks of SDOs)."""
    digest = hashlib.sha256(NS.bytes + "|".join(str(p) for p in parts).encode()).digest()
    return f"{kind}--{uuid.UUID(bytes=digest[:16], version=4)}"


def pattern_for(kind: str, value: str) -> str:
    esc = value.replace("\\", "\\\\").replace("'", "\\'")
    if kind == IP:
        path = "ipv6-addr:value" if ":" in value else "ipv4-addr:value"
        return f"[{path} = '{esc}']"
    return f"[{_PATTERN[kind]} = '{esc}']"


def incident_indicators(session: Session, inc: Incident, sanitizer: Sanitizer) -> list[dict[str, Any]]:
    """External indicator values of an incident's alerts: type, value, threat, counts, times."""
    alerts = session.scalars(
        select(Alert).where(Alert.incident_id == inc.id, Alert.tenant_id == inc.tenant_id).order_by(Alert.id)
    ).all()
    by_value: dict[tuple[str, str], dict[str, Any]] = {}
    for a in alerts:
        if not a.indicator:
            continue
        try:
            kind, value = detect(a.indicator)
        except NormalizeError:
            continue
        if kind not in (IP, DOMAIN, URL, MD5, SHA1, SHA256) or sanitizer.is_internal(value):
            continue
        threat = (a.evidence or {}).get("threat") if isinstance(a.evidence, dict) else None
        row = by_value.setdefault(
            (kind, value),
            {
                "type": kind,
                "value": value,
                "threat": threat,
                "count": 0,
                "first_seen": a.first_seen,
                "last_seen": a.last_seen,
            },
        )
        row["count"] += a.event_count or 1
        row["first_seen"] = min(row["first_seen"], a.first_seen)
        row["last_seen"] = max(row["last_seen"], a.last_seen)
        row["threat"] = row["threat"] or threat
    return list(by_value.values())


def provider_identity(session: Session, tenant: Tenant) -> dict[str, Any]:
    p = session.get(Provider, tenant.provider_id)
    name = p.name if p else "mimamori"
    return {
        "type": "identity",
        "spec_version": "2.1",
        "id": sid("identity", "provider", name),
        "created": stix_time(p.created_at if p else datetime(2026, 1, 1, tzinfo=UTC)),
        "modified": stix_time(p.created_at if p else datetime(2026, 1, 1, tzinfo=UTC)),
        "name": f"{name} (mimamori)",
        "identity_class": "organization",
        "sectors": ["technology"],
    }


def export_incident(
    session: Session,
    tenant_id: str | None,
    incident_id: int,
    *,
    tlp: TLP,
    audience: Audience,
    provider_permission: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The STIX 2.1 bundle of an incident for ``audience``; raises ``TlpViolation``."""
    inc = get_incident(session, tenant_id, incident_id)
    enforce(tlp, audience, first_hand=True, provider_permission=provider_permission)
    tenant = session.get(Tenant, inc.tenant_id)
    assert tenant is not None
    now = now or datetime.now(UTC)
    san = Sanitizer.for_tenant(session, inc.tenant_id, language="en")
    mark = marking_definition(tlp)
    ident = {**provider_identity(session, tenant), "object_marking_refs": [mark["id"]]}
    common = {"spec_version": "2.1", "created_by_ref": ident["id"], "object_marking_refs": [mark["id"]]}
    created = stix_time(inc.opened_at)
    modified = stix_time(max(inc.last_seen or inc.opened_at, inc.opened_at))
    # the victim, anonymised: stable per tenant, not derivable from the tenant's slug alone
    secret = hashlib.sha256(f"{tenant.id}|{tenant.created_at.isoformat()}".encode()).hexdigest()
    victim = {
        "type": "identity",
        "id": sid("identity", "victim", secret),
        "created": stix_time(tenant.created_at),
        "modified": stix_time(tenant.created_at),
        "name": "Anonymised organisation",
        "description": "A monitored organisation; its name is withheld.",
        "identity_class": "organization",
        **common,
    }
    objects: list[dict[str, Any]] = [mark, ident, victim]
    refs: list[str] = [victim["id"]]
    malware: dict[str, dict[str, Any]] = {}
    for row in incident_indicators(session, inc, san):
        first, last = row["first_seen"], row["last_seen"]
        ind_id = sid("indicator", inc.tenant_id, inc.id, row["type"], row["value"])
        threat = row["threat"]
        indicator = {
            "type": "indicator",
            "id": ind_id,
            "created": created,
            "modified": modified,
            "name": f"{row['type']} {row['value']}" + (f" ({threat})" if threat else ""),
            "description": f"Seen in an incident of kind {inc.kind}"
            + (f", associated with {threat}" if threat else ""),
            "indicator_types": ["malicious-activity"],
            "pattern": pattern_for(row["type"], row["value"]),
            "pattern_type": "stix",
            "pattern_version": "2.1",
            "valid_from": stix_time(first),
            **common,
        }
        objects.append(indicator)
        refs.append(ind_id)
        sighting = {
            "type": "sighting",
            "id": sid("sighting", inc.tenant_id, inc.id, ind_id),
            "created": created,
            "modified": modified,
            "sighting_of_ref": ind_id,
            "where_sighted_refs": [victim["id"]],
            "first_seen": stix_time(first),
            "last_seen": stix_time(max(last, first)),
            "count": min(int(row["count"]), 999_999_999),
            **common,
        }
        objects.append(sighting)
        refs.append(sighting["id"])
        if threat:
            mw = malware.get(threat)
            if mw is None:
                mw = {
                    "type": "malware",
                    "id": sid("malware", threat.lower()),
                    "created": created,
                    "modified": modified,
                    "name": threat,
                    "description": f"{threat}, as named by the intelligence that matched.",
                    "malware_types": ["unknown"],
                    "is_family": True,
                    **common,
                }
                malware[threat] = mw
                objects.append(mw)
                refs.append(mw["id"])
            rel = {
                "type": "relationship",
                "id": sid("relationship", ind_id, "indicates", mw["id"]),
                "created": created,
                "modified": modified,
                "relationship_type": "indicates",
                "source_ref": ind_id,
                "target_ref": mw["id"],
                **common,
            }
            objects.append(rel)
            refs.append(rel["id"])
    report = {
        "type": "report",
        "id": sid("report", inc.tenant_id, inc.id),
        "created": created,
        "modified": stix_time(now),
        "name": san.text(inc.title),
        "description": san.text(inc.summary or inc.title),
        "report_types": ["threat-report"],
        "published": stix_time(now),
        "object_refs": refs,
        "labels": [f"severity:{inc.severity}", f"kind:{inc.kind}"],
        **common,
    }
    objects.append(report)
    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}


def validate_bundle(bundle: dict[str, Any]) -> list[str]:
    """Problems ``stix2-validator`` (strict) finds; empty when the bundle is valid."""
    import json

    from stix2validator import ValidationOptions, validate_string

    result = validate_string(json.dumps(bundle), ValidationOptions(version="2.1", strict=True))
    msgs: list[str] = []
    results = getattr(result, "object_results", None) or [result]
    for obj in results:
        msgs += [f"{obj.object_id}: {e.message}" for e in obj.errors or []]
        msgs += [f"{obj.object_id}: warning {w.message}" for w in obj.warnings or []]
    if not result.is_valid and not msgs:
        msgs.append("invalid")
    return msgs


def audience_of(spec: str) -> Audience:
    """``public``, ``group:<slug>``, ``org:<name>``, ``provider:<name>``, ``person:<mail>``."""
    kind, _, _name = spec.partition(":")
    reach = {
        "public": Reach.PUBLIC,
        "group": Reach.COMMUNITY,
        "org": Reach.ORGANISATION,
        "provider": Reach.PROVIDER,
        "person": Reach.PERSON,
        "own": Reach.OWN_ORGANISATION,
    }.get(kind)
    if reach is None:
        raise ValueError(
            f"unknown audience {spec!r} (public, group:ID, org:NAME, provider:NAME, person:MAIL, own)"
        )
    return Audience(reach, spec)
