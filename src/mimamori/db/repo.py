"""Tenant-scoped reads and writes of the control plane, shared by the CLI and the API.

Every function that returns tenant-owned rows takes ``tenant_id``; ``None`` means
provider-wide access and is only passed by provider-side callers.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mimamori.archive import check_tenant_id
from mimamori.db.models import Alert, AuditLog, Incident, Provider, Sensor, Tenant
from mimamori.events.net import validate_cidrs
from mimamori.incidents.engine import get_incident, sla_status

SERVICE_LEVELS = ("standard", "premium")


class RepoError(Exception):
    pass


def audit(session: Session, actor: str, action: str, tenant_id: str | None, **detail: Any) -> None:
    session.add(AuditLog(actor=actor, action=action, tenant_id=tenant_id, detail=detail))


def ensure_provider(session: Session, name: str = "default") -> Provider:
    p = session.scalar(select(Provider).where(Provider.name == name))
    if p is None:
        p = Provider(name=name)
        session.add(p)
        session.flush()
    return p


def add_tenant(
    session: Session,
    tenant_id: str,
    name: str,
    *,
    networks: list[str] | None = None,
    service_level: str = "standard",
    contact_name: str | None = None,
    contact_email: str | None = None,
    contact_phone: str | None = None,
    sites: list[dict[str, str]] | None = None,
    language: str = "ja",
    retention_days: int = 396,
    actor: str = "cli",
) -> Tenant:
    try:
        check_tenant_id(tenant_id)
    except Exception as exc:
        raise RepoError(str(exc)) from exc
    if service_level not in SERVICE_LEVELS:
        raise RepoError(f"unknown service level {service_level!r} ({', '.join(SERVICE_LEVELS)})")
    if session.get(Tenant, tenant_id) is not None:
        raise RepoError(f"tenant {tenant_id!r} already exists")
    try:
        nets = validate_cidrs(networks or [])
    except ValueError as exc:
        raise RepoError(str(exc)) from exc
    provider = ensure_provider(session)
    t = Tenant(
        id=tenant_id,
        provider_id=provider.id,
        name=name,
        networks=nets,
        service_level=service_level,
        contact_name=contact_name,
        contact_email=contact_email,
        contact_phone=contact_phone,
        sites=sites or [],
        language=language,
        retention_days=retention_days,
    )
    session.add(t)
    audit(session, actor, "tenant.add", tenant_id, name=name, networks=nets)
    session.flush()
    return t


def tenant_dict(t: Tenant) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "networks": t.networks,
        "service_level": t.service_level,
        "contact_name": t.contact_name,
        "contact_email": t.contact_email,
        "sites": t.sites,
        "retention_days": t.retention_days,
    }


def list_tenants(session: Session) -> list[Tenant]:
    return list(session.scalars(select(Tenant).order_by(Tenant.id)))


def add_sensor(session: Session, tenant_id: str, name: str, source: str) -> tuple[Sensor, str]:
    """A sensor with a new token; only the token's hash is stored. Returns (sensor, token)."""
    token = "mms_" + secrets.token_urlsafe(32)
    s = Sensor(tenant_id=tenant_id, name=name, source=source, token_hash=hash_token(token))
    session.add(s)
    session.flush()
    return s, token


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _iso(d: datetime | None) -> str | None:
    return d.isoformat() if d else None


def incident_summary(inc: Incident, now: datetime | None = None) -> dict[str, Any]:
    return {
        "id": inc.id,
        "tenant": inc.tenant_id,
        "kind": inc.kind,
        "severity": inc.severity,
        "state": inc.state,
        "title": inc.title,
        "origin": inc.origin,
        "alerts": inc.alert_count,
        "first_seen": _iso(inc.first_seen),
        "last_seen": _iso(inc.last_seen),
        "opened_at": _iso(inc.opened_at),
        "sla": sla_status(inc, now),
    }


def list_incidents(
    session: Session, tenant_id: str | None, *, state: str | None = None, open_only: bool = False
) -> list[Incident]:
    from mimamori.incidents.engine import OPEN_STATES

    stmt = select(Incident)
    if tenant_id is not None:
        stmt = stmt.where(Incident.tenant_id == tenant_id)
    if state:
        stmt = stmt.where(Incident.state == state)
    if open_only:
        stmt = stmt.where(Incident.state.in_(OPEN_STATES))
    return list(session.scalars(stmt.order_by(Incident.id)))


def incident_detail(session: Session, tenant_id: str | None, incident_id: int) -> dict[str, Any]:
    inc = get_incident(session, tenant_id, incident_id)
    alerts = session.scalars(
        select(Alert).where(Alert.incident_id == inc.id, Alert.tenant_id == inc.tenant_id).order_by(Alert.id)
    ).all()
    out = incident_summary(inc)
    out.update(
        summary=inc.summary,
        reporter=inc.reporter,
        not_security=inc.not_security,
        keys=[k.key for k in inc.keys],
        timeline=[
            {
                "at": _iso(e.at),
                "actor": e.actor,
                "entry": e.entry,
                "from": e.from_state,
                "to": e.to_state,
                "text": e.text,
            }
            for e in inc.timeline
        ],
        tasks=[
            {"key": t.key, "phase": t.phase, "ja": t.title_ja, "en": t.title_en, "done": t.done}
            for t in inc.tasks
        ],
        alert_list=[alert_dict(a) for a in alerts],
    )
    from mimamori.incidents.personal_data import ppc_obligations

    out["personal_data"] = ppc_obligations(session, inc, alerts)  # PPC triggers and deadlines
    return out


def alert_dict(a: Alert) -> dict[str, Any]:
    return {
        "id": a.id,
        "tenant": a.tenant_id,
        "incident": a.incident_id,
        "detector": a.detector,
        "kind": a.kind,
        "severity": a.severity,
        "title": a.title,
        "host": a.host,
        "indicator": a.indicator,
        "events": a.event_count,
        "first_seen": _iso(a.first_seen),
        "last_seen": _iso(a.last_seen),
        "evidence": a.evidence,
    }


def list_alerts(session: Session, tenant_id: str | None, limit: int = 500) -> list[Alert]:
    stmt = select(Alert)
    if tenant_id is not None:
        stmt = stmt.where(Alert.tenant_id == tenant_id)
    return list(session.scalars(stmt.order_by(Alert.id.desc()).limit(limit)))


def counts_by_tenant(session: Session) -> dict[str, int]:
    rows = session.execute(select(Incident.tenant_id, func.count()).group_by(Incident.tenant_id)).all()
    return {t: n for t, n in rows}
