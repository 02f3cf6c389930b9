"""Alerts into incidents: storing alerts idempotently, grouping, states, SLA clocks.

Grouping: an alert joins an open incident of the same tenant and kind that shares any
grouping key (``host:…``, ``indicator:…``, ``sha:…``, ``subject:…``) and was active
within the kind's window; otherwise it opens a new incident with its playbook's tasks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mimamori.db.models import (
    Alert,
    Incident,
    IncidentKey,
    PlaybookTask,
    Tenant,
    TimelineEntry,
)
from mimamori.detect.base import AlertDraft, severity_rank
from mimamori.incidents.catalog import Catalog, load_catalog

STATES = ("new", "triage", "remote_support", "onsite", "containment", "recovery", "closed", "false_positive")
OPEN_STATES = STATES[:6]

#: state -> states it may move to. Closed incidents can be reopened into triage.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("triage", "remote_support", "onsite", "containment", "closed", "false_positive"),
    "triage": ("remote_support", "onsite", "containment", "closed", "false_positive"),
    "remote_support": ("onsite", "containment", "recovery", "closed", "false_positive"),
    "onsite": ("containment", "recovery", "closed", "false_positive"),
    "containment": ("onsite", "recovery", "closed"),
    "recovery": ("containment", "closed"),
    "closed": ("triage",),
    "false_positive": ("triage",),
}
_RESPONSE_STATES = {"remote_support", "onsite", "containment"}


class IncidentError(Exception):
    """Root of incident errors."""


class TransitionError(IncidentError):
    def __init__(self, incident_id: int, from_state: str, to_state: str) -> None:
        allowed = ", ".join(TRANSITIONS.get(from_state, ())) or "none"
        super().__init__(
            f"incident {incident_id}: cannot go from {from_state} to {to_state} (allowed: {allowed})"
        )
        self.from_state = from_state
        self.to_state = to_state


class NotFoundError(IncidentError):
    pass


@dataclass
class GroupingResult:
    alerts_new: int = 0
    alerts_duplicate: int = 0
    incidents_opened: list[int] = field(default_factory=list)
    incidents_updated: set[int] = field(default_factory=set)


def _now() -> datetime:
    return datetime.now(UTC)


def _open_incident(
    session: Session,
    tenant: Tenant,
    kind: str,
    severity: str,
    title: str,
    at: datetime,
    catalog: Catalog,
    *,
    origin: str = "detection",
    reporter: str | None = None,
    summary: str | None = None,
    actor: str = "mimamori",
) -> Incident:
    ack, resp = catalog.sla_minutes(tenant.service_level, severity)
    inc = Incident(
        tenant_id=tenant.id,
        kind=kind,
        severity=severity,
        state="new",
        title=title,
        summary=summary,
        origin=origin,
        reporter=reporter,
        opened_at=at,
        ack_due_at=at + timedelta(minutes=ack),
        response_due_at=at + timedelta(minutes=resp),
        alert_count=0,
    )
    session.add(inc)
    session.flush()
    pb = catalog.playbook_for(kind)
    for i, t in enumerate(pb.tasks):
        inc.tasks.append(
            PlaybookTask(
                tenant_id=tenant.id, position=i, key=t.key, phase=t.phase, title_ja=t.ja, title_en=t.en
            )
        )
    inc.timeline.append(
        TimelineEntry(tenant_id=tenant.id, at=at, actor=actor, entry="opened", to_state="new", text=title)
    )
    return inc


def ingest_alerts(
    session: Session,
    tenant: Tenant,
    drafts: Iterable[AlertDraft],
    *,
    now: datetime | None = None,
    catalog: Catalog | None = None,
) -> GroupingResult:
    """Store new alerts (a repeated ``dedup_key`` is skipped) and group them into incidents.

    The open incidents that share a key with any of the alerts are loaded in one query, and
    the index is kept up to date as alerts join or open incidents.
    """
    catalog = catalog or load_catalog()
    now = now or _now()
    result = GroupingResult()
    drafts = list(drafts)
    seen = _existing(session, tenant.id, [d.dedup_key for d in drafts])
    fresh = []
    for d in drafts:
        if d.dedup_key in seen:
            result.alerts_duplicate += 1
        else:
            seen.add(d.dedup_key)
            fresh.append(d)
    index = _open_by_key(session, tenant.id, {k for d in fresh for k in d.keys})
    for d in fresh:
        kind = catalog.kind(d.kind)
        absorbs, absorbed_by = catalog.related(d.kind)
        inc = _pick(index, d, kind.window_hours, absorbs, {d.kind} | absorbed_by)
        if inc is None:
            severity = (
                d.severity if severity_rank(d.severity) >= severity_rank(kind.severity) else kind.severity
            )
            inc = _open_incident(session, tenant, d.kind, severity, d.title, now, catalog)
            inc.first_seen = d.first_seen
            result.incidents_opened.append(inc.id)
        else:
            if inc.kind in absorbs:
                _reclassify(session, inc, d.kind, d.title, catalog, now)
            if severity_rank(d.severity) > severity_rank(inc.severity):
                session.add(
                    TimelineEntry(
                        incident_id=inc.id,
                        tenant_id=tenant.id,
                        at=now,
                        actor="mimamori",
                        entry="severity",
                        text=f"severity raised from {inc.severity} to {d.severity}",
                    )
                )
                inc.severity = d.severity
        if absorbs and inc.kind == d.kind:
            _absorb_related(session, index, inc, d.keys, absorbs, now)
        session.add(
            Alert(
                tenant_id=tenant.id,
                incident_id=inc.id,
                detector=d.detector,
                kind=d.kind,
                severity=d.severity,
                title=d.title,
                host=d.host,
                indicator=d.indicator,
                keys=list(d.keys),
                evidence=d.evidence,
                event_count=d.event_count,
                first_seen=d.first_seen,
                last_seen=d.last_seen,
                dedup_key=d.dedup_key,
            )
        )
        inc.alert_count = (inc.alert_count or 0) + 1
        inc.first_seen = min(inc.first_seen or d.first_seen, d.first_seen)
        inc.last_seen = max(inc.last_seen or d.last_seen, d.last_seen)
        # Child rows are added directly, not through the collections, so that grouping
        # never loads an incident's whole timeline.
        for key in dict.fromkeys(d.keys):
            holders = index.setdefault(key, [])
            if inc not in holders:
                holders.append(inc)
                session.add(IncidentKey(incident_id=inc.id, tenant_id=tenant.id, kind=inc.kind, key=key))
        session.add(
            TimelineEntry(
                incident_id=inc.id, tenant_id=tenant.id, at=now, actor=d.detector, entry="alert", text=d.title
            )
        )
        result.alerts_new += 1
        if inc.id not in result.incidents_opened:
            result.incidents_updated.add(inc.id)
    session.flush()
    return result


def _existing(session: Session, tenant_id: str, dedup_keys: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(dedup_keys), 500):
        chunk = dedup_keys[i : i + 500]
        found.update(
            session.scalars(
                select(Alert.dedup_key).where(Alert.tenant_id == tenant_id, Alert.dedup_key.in_(chunk))
            )
        )
    return found


def _open_by_key(session: Session, tenant_id: str, keys: set[str]) -> dict[str, list[Incident]]:
    """Open incidents of the tenant holding any of ``keys``, by key."""
    index: dict[str, list[Incident]] = {}
    ordered = sorted(keys)
    for i in range(0, len(ordered), 500):
        rows = session.execute(
            select(IncidentKey.key, Incident)
            .join(Incident, IncidentKey.incident_id == Incident.id)
            .where(
                IncidentKey.tenant_id == tenant_id,
                IncidentKey.key.in_(ordered[i : i + 500]),
                Incident.tenant_id == tenant_id,
                Incident.state.in_(OPEN_STATES),
            )
            .order_by(Incident.id)
        )
        for key, inc in rows:
            index.setdefault(key, []).append(inc)
    return index


def _pick(
    index: dict[str, list[Incident]],
    d: AlertDraft,
    window_hours: float,
    absorbs: set[str],
    preferred: set[str],
) -> Incident | None:
    """The open incident this alert belongs to: same kind, or a related kind, sharing a key
    and active within the window. The same or a more specific kind is preferred."""
    if window_hours <= 0:
        return None
    since = d.first_seen - timedelta(hours=window_hours)
    best: Incident | None = None
    for key in d.keys:
        for inc in index.get(key, ()):
            if inc.kind not in preferred and inc.kind not in absorbs:
                continue
            if inc.state not in OPEN_STATES or inc.last_seen is None or inc.last_seen < since:
                continue
            rank = (inc.kind not in preferred, inc.id)
            if best is None or rank < (best.kind not in preferred, best.id):
                best = inc
    return best


def _absorb_related(
    session: Session,
    index: dict[str, list[Incident]],
    inc: Incident,
    keys: list[str],
    absorbs: set[str],
    now: datetime,
) -> None:
    """Fold other open incidents of absorbed kinds that share a key into ``inc``.

    Their alerts and keys move over; each is closed with a timeline entry naming ``inc``.
    """
    others = {o.id: o for k in keys for o in index.get(k, ()) if o is not inc and o.kind in absorbs}
    for other in others.values():
        if other.state not in OPEN_STATES:
            continue
        session.flush()
        session.execute(update(Alert).where(Alert.incident_id == other.id).values(incident_id=inc.id))
        own = set(session.scalars(select(IncidentKey.key).where(IncidentKey.incident_id == inc.id)))
        for key in session.scalars(select(IncidentKey.key).where(IncidentKey.incident_id == other.id)):
            if key not in own:
                session.add(IncidentKey(incident_id=inc.id, tenant_id=inc.tenant_id, kind=inc.kind, key=key))
            holders = index.setdefault(key, [])
            if inc not in holders:
                holders.append(inc)
        for holders in index.values():
            if other in holders:
                holders.remove(other)
        inc.alert_count = (inc.alert_count or 0) + (other.alert_count or 0)
        if other.first_seen and (inc.first_seen is None or other.first_seen < inc.first_seen):
            inc.first_seen = other.first_seen
        if other.last_seen and (inc.last_seen is None or other.last_seen > inc.last_seen):
            inc.last_seen = other.last_seen
        if severity_rank(other.severity) > severity_rank(inc.severity):
            inc.severity = other.severity
        for target, text in (
            (inc, f"absorbed incident #{other.id} ({other.kind}: {other.title})"),
            (other, f"merged into incident #{inc.id} ({inc.kind})"),
        ):
            session.add(
                TimelineEntry(
                    incident_id=target.id,
                    tenant_id=inc.tenant_id,
                    at=now,
                    actor="mimamori",
                    entry="merged",
                    text=text,
                )
            )
        session.add(
            TimelineEntry(
                incident_id=other.id,
                tenant_id=inc.tenant_id,
                at=now,
                actor="mimamori",
                entry="state",
                from_state=other.state,
                to_state="closed",
                text=f"merged into incident #{inc.id}",
            )
        )
        other.state = "closed"
        other.closed_at = now
        other.alert_count = 0


def _reclassify(
    session: Session, inc: Incident, kind: str, title: str, catalog: Catalog, now: datetime
) -> None:
    """A more specific kind arrived for this incident: take its kind, title and playbook tasks."""
    session.add(
        TimelineEntry(
            incident_id=inc.id,
            tenant_id=inc.tenant_id,
            at=now,
            actor="mimamori",
            entry="reclassified",
            text=f"reclassified from {inc.kind} to {kind}",
        )
    )
    inc.kind = kind
    inc.title = title
    for k in inc.keys:
        k.kind = kind
    have = {t.key for t in inc.tasks}
    position = len(inc.tasks)
    for t in catalog.playbook_for(kind).tasks:
        if t.key not in have:
            inc.tasks.append(
                PlaybookTask(
                    tenant_id=inc.tenant_id,
                    position=position,
                    key=t.key,
                    phase=t.phase,
                    title_ja=t.ja,
                    title_en=t.en,
                )
            )
            position += 1


def get_incident(session: Session, tenant_id: str | None, incident_id: int) -> Incident:
    """The incident, only if it belongs to the tenant (None: provider-wide access)."""
    stmt = select(Incident).where(Incident.id == incident_id)
    if tenant_id is not None:
        stmt = stmt.where(Incident.tenant_id == tenant_id)
    inc = session.scalar(stmt)
    if inc is None:
        raise NotFoundError(f"incident {incident_id} not found")
    return inc


def transition(
    session: Session,
    inc: Incident,
    to_state: str,
    actor: str,
    note: str | None = None,
    *,
    not_security: bool = False,
    now: datetime | None = None,
) -> Incident:
    """Move an incident to another state, timestamped and attributed."""
    if to_state not in STATES:
        raise IncidentError(f"unknown state {to_state!r}; states: {', '.join(STATES)}")
    if to_state not in TRANSITIONS[inc.state]:
        raise TransitionError(inc.id, inc.state, to_state)
    now = now or _now()
    if inc.acknowledged_at is None and inc.state == "new":
        inc.acknowledged_at = now
    if inc.first_response_at is None and to_state in _RESPONSE_STATES:
        inc.first_response_at = now
    if to_state in ("closed", "false_positive"):
        inc.closed_at = now
        inc.not_security = not_security or to_state == "false_positive"
    elif inc.state in ("closed", "false_positive"):
        inc.closed_at = None
        inc.not_security = False
    inc.timeline.append(
        TimelineEntry(
            tenant_id=inc.tenant_id,
            at=now,
            actor=actor,
            entry="state",
            from_state=inc.state,
            to_state=to_state,
            text=note,
        )
    )
    inc.state = to_state
    session.flush()
    return inc


def open_manual(
    session: Session,
    tenant: Tenant,
    *,
    origin: str,
    title: str,
    reporter: str,
    actor: str,
    kind: str | None = None,
    severity: str | None = None,
    summary: str | None = None,
    now: datetime | None = None,
    catalog: Catalog | None = None,
) -> Incident:
    """An incident opened by hand: a help-desk call or an outside notice."""
    if origin not in ("helpdesk", "notice"):
        raise IncidentError(f"unknown origin {origin!r} (helpdesk or notice)")
    catalog = catalog or load_catalog()
    kind = kind or ("helpdesk_report" if origin == "helpdesk" else "external_notice")
    severity = severity or catalog.kind(kind).severity
    now = now or _now()
    inc = _open_incident(
        session,
        tenant,
        kind,
        severity,
        title,
        now,
        catalog,
        origin=origin,
        reporter=reporter,
        summary=summary,
        actor=actor,
    )
    inc.first_seen = inc.last_seen = now
    session.flush()
    return inc


def sla_status(inc: Incident, now: datetime | None = None) -> dict[str, object]:
    """Minutes left (negative: overdue) on the acknowledge and first-response clocks."""
    now = now or _now()

    def clock(due: datetime | None, done: datetime | None) -> dict[str, object]:
        if due is None:
            return {"due": None, "met": None, "minutes_left": None}
        if done is not None:
            return {"due": due.isoformat(), "met": done <= due, "minutes_left": None}
        return {"due": due.isoformat(), "met": None, "minutes_left": round((due - now).total_seconds() / 60)}

    return {
        "ack": clock(inc.ack_due_at, inc.acknowledged_at),
        "response": clock(inc.response_due_at, inc.first_response_at),
    }
