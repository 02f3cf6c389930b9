"""The tenant-scoped repository every web route goes through.

``TenantRepo(session, scope)`` with ``scope=None`` is provider-wide (provider roles);
otherwise every read and write is confined to that one tenant. A row of another tenant
is reported exactly like a row that does not exist (``NotFoundError`` → 404), so ids
cannot be probed across tenants. Routes never query tables themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mimamori.archive import Archive
from mimamori.db import repo as core
from mimamori.db.models import Alert, Asset, Incident, IngestRun, PlaybookTask, Sensor, Tenant, TimelineEntry
from mimamori.db.models_share import Partner, ShareWarning, WarningRecipient
from mimamori.db.models_web import HelpdeskEntry, OnsiteVisit
from mimamori.detect.base import severity_rank
from mimamori.incidents.engine import (
    OPEN_STATES,
    IncidentError,
    NotFoundError,
    get_incident,
    open_manual,
    sla_status,
    transition,
)
from mimamori.share.partner_warnings import acknowledge_as_partner, acknowledge_in_portal, portal_warnings
from mimamori.share.partners import ShareError

EVIDENCE_COLUMNS = (
    "@timestamp",
    "event.dataset",
    "event.action",
    "source.ip",
    "source.port",
    "destination.ip",
    "destination.port",
    "destination.domain",
    "url.full",
    "dns.question.name",
    "file.hash.sha256",
    "message",
)
_TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # as archive.check_tenant_id
_INDICATOR_COLUMNS = (
    "destination.ip",
    "destination.domain",
    "url.full",
    "dns.question.name",
    "file.hash.sha256",
)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(d: datetime | None) -> str | None:
    return d.isoformat() if d else None


def sla_minutes_left(inc: Incident, now: datetime) -> float:
    """Minutes until the next open SLA clock runs out (negative: overdue); inf when none runs."""
    lefts = [
        (due - now).total_seconds() / 60
        for due, done in ((inc.ack_due_at, inc.acknowledged_at), (inc.response_due_at, inc.first_response_at))
        if due is not None and done is None
    ]
    return min(lefts) if lefts else float("inf")


def queue_order(incidents: list[Incident], now: datetime) -> list[Incident]:
    """Most severe first; within a severity, the least SLA time left first."""
    return sorted(incidents, key=lambda i: (-severity_rank(i.severity), sla_minutes_left(i, now), i.id))


@dataclass
class TenantRepo:
    session: Session
    scope: str | None  # None: every tenant (provider roles)
    actor: str = "web"
    archive_root: Any = None

    # ------------------------------------------------------------------ tenants
    def tenant(self, tenant_id: str) -> Tenant:
        if (self.scope is not None and tenant_id != self.scope) or not _TENANT_RE.match(tenant_id):
            raise NotFoundError("tenant not found")
        t = self.session.get(Tenant, tenant_id)
        if t is None:
            raise NotFoundError(f"tenant {tenant_id} not found")
        return t

    def tenants(self) -> list[Tenant]:
        stmt = select(Tenant).order_by(Tenant.id)
        if self.scope is not None:
            stmt = stmt.where(Tenant.id == self.scope)
        return list(self.session.scalars(stmt))

    # ------------------------------------------------------------------ incidents
    def incidents(self, *, tenant_id: str | None = None, open_only: bool = True) -> list[Incident]:
        if tenant_id is not None:
            self.tenant(tenant_id)
        stmt = select(Incident)
        scope = tenant_id or self.scope
        if scope is not None:
            stmt = stmt.where(Incident.tenant_id == scope)
        if open_only:
            stmt = stmt.where(Incident.state.in_(OPEN_STATES))
        return queue_order(list(self.session.scalars(stmt)), _now())

    def incident(self, incident_id: int) -> Incident:
        return get_incident(self.session, self.scope, incident_id)

    def incident_detail(self, incident_id: int) -> dict[str, Any]:
        inc = self.incident(incident_id)
        out = core.incident_detail(self.session, inc.tenant_id, inc.id)
        out["tasks"] = [
            {
                "id": t.id,
                "key": t.key,
                "phase": t.phase,
                "ja": t.title_ja,
                "en": t.title_en,
                "done": t.done,
                "done_by": t.done_by,
                "done_at": _iso(t.done_at),
            }
            for t in inc.tasks
        ]
        out["visits"] = [visit_dict(v) for v in self.visits(inc.id)]
        out["helpdesk"] = [
            helpdesk_dict(h)
            for h in self.session.scalars(
                select(HelpdeskEntry).where(
                    HelpdeskEntry.incident_id == inc.id, HelpdeskEntry.tenant_id == inc.tenant_id
                )
            )
        ]
        return out

    def alerts(self, incident_id: int) -> list[Alert]:
        inc = self.incident(incident_id)
        return list(
            self.session.scalars(
                select(Alert)
                .where(Alert.incident_id == inc.id, Alert.tenant_id == inc.tenant_id)
                .order_by(Alert.id)
            )
        )

    def evidence(self, incident_id: int, per_alert: int = 20) -> list[dict[str, Any]]:
        """Each alert with the archived events behind it (same host or indicator, same time)."""
        inc = self.incident(incident_id)
        archive = Archive(self.archive_root) if self.archive_root is not None else None
        out = []
        for a in self.alerts(inc.id):
            events: list[dict[str, Any]] = []
            if archive is not None:
                events = _events_for(archive, inc.tenant_id, a, per_alert)
            d = core.alert_dict(a)
            d["archive_events"] = events
            out.append(d)
        return out

    def _timeline(self, inc: Incident, entry: str, text: str | None, **kw: Any) -> None:
        self.session.add(
            TimelineEntry(
                incident_id=inc.id, tenant_id=inc.tenant_id, actor=self.actor, entry=entry, text=text, **kw
            )
        )

    def transition(
        self, incident_id: int, to_state: str, note: str | None, *, not_security: bool = False
    ) -> Incident:
        inc = self.incident(incident_id)
        transition(self.session, inc, to_state, self.actor, note, not_security=not_security)
        core.audit(
            self.session, self.actor, "incident.transition", inc.tenant_id, incident=inc.id, to=to_state
        )
        return inc

    def add_note(self, incident_id: int, text: str) -> Incident:
        inc = self.incident(incident_id)
        self._timeline(inc, "note", text)
        core.audit(self.session, self.actor, "incident.note", inc.tenant_id, incident=inc.id)
        self.session.flush()
        return inc

    def _of_incident(self, model: Any, row_id: int, inc: Incident, what: str) -> Any:
        """A row (task, visit) that belongs to this incident of this tenant, else 404."""
        row = self.session.scalar(
            select(model).where(
                model.id == row_id, model.incident_id == inc.id, model.tenant_id == inc.tenant_id
            )
        )
        if row is None:
            raise NotFoundError(f"{what} {row_id} not found")
        return row

    def set_task(self, incident_id: int, task_id: int, done: bool) -> PlaybookTask:
        inc = self.incident(incident_id)
        task: PlaybookTask = self._of_incident(PlaybookTask, task_id, inc, "task")
        if task.done != done:
            task.done = done
            task.done_by = self.actor if done else None
            task.done_at = _now() if done else None
            self._timeline(inc, "task", f"{'done' if done else 'reopened'}: {task.title_en}")
            core.audit(
                self.session,
                self.actor,
                "incident.task",
                inc.tenant_id,
                incident=inc.id,
                task=task.key,
                done=done,
            )
        self.session.flush()
        return task

    # ------------------------------------------------------------------ on-site visits
    def visits(self, incident_id: int) -> list[OnsiteVisit]:
        inc = self.incident(incident_id)
        return list(
            self.session.scalars(
                select(OnsiteVisit)
                .where(OnsiteVisit.incident_id == inc.id, OnsiteVisit.tenant_id == inc.tenant_id)
                .order_by(OnsiteVisit.id)
            )
        )

    def escalate_onsite(
        self, incident_id: int, engineer: str, planned_at: datetime, site: str | None, note: str | None
    ) -> OnsiteVisit:
        """One click from remote support to a visit: the state moves to onsite and the visit is recorded."""
        inc = self.incident(incident_id)
        if inc.state != "onsite":
            transition(self.session, inc, "onsite", self.actor, note or f"on-site visit: {engineer}")
        visit = OnsiteVisit(
            tenant_id=inc.tenant_id,
            incident_id=inc.id,
            engineer=engineer,
            planned_at=planned_at,
            site=site,
            created_by=self.actor,
        )
        self.session.add(visit)
        self._timeline(
            inc,
            "onsite",
            f"{engineer} goes on site at {planned_at:%Y-%m-%d %H:%M} UTC" + (f" ({site})" if site else ""),
        )
        core.audit(
            self.session,
            self.actor,
            "incident.escalate_onsite",
            inc.tenant_id,
            incident=inc.id,
            engineer=engineer,
        )
        self.session.flush()
        return visit

    def record_visit(
        self, incident_id: int, visit_id: int, arrived_at: datetime | None, findings: str | None
    ) -> OnsiteVisit:
        inc = self.incident(incident_id)
        visit: OnsiteVisit = self._of_incident(OnsiteVisit, visit_id, inc, "visit")
        if arrived_at is not None:
            visit.arrived_at = arrived_at
        if findings:
            visit.findings = findings
            self._timeline(inc, "onsite", f"found on site by {visit.engineer}: {findings}")
        core.audit(self.session, self.actor, "incident.visit", inc.tenant_id, incident=inc.id, visit=visit.id)
        self.session.flush()
        return visit

    # ------------------------------------------------------------------ help desk
    def helpdesk(self, tenant_id: str | None = None, *, open_only: bool = False) -> list[HelpdeskEntry]:
        if tenant_id is not None:
            self.tenant(tenant_id)
        stmt = select(HelpdeskEntry)
        scope = tenant_id or self.scope
        if scope is not None:
            stmt = stmt.where(HelpdeskEntry.tenant_id == scope)
        if open_only:
            stmt = stmt.where(HelpdeskEntry.status == "open")
        return list(self.session.scalars(stmt.order_by(HelpdeskEntry.id.desc())))

    def add_helpdesk(
        self,
        tenant_id: str,
        *,
        channel: str,
        reporter: str,
        text: str,
        direction: str = "in",
        incident_id: int | None = None,
    ) -> HelpdeskEntry:
        t = self.tenant(tenant_id)
        if channel not in ("phone", "mail", "portal"):
            raise IncidentError("channel must be phone, mail or portal")
        entry = HelpdeskEntry(
            tenant_id=t.id,
            channel=channel,
            direction=direction,
            reporter=reporter,
            text=text,
            created_by=self.actor,
        )
        if incident_id is not None:
            inc = get_incident(self.session, t.id, incident_id)
            entry.incident_id = inc.id
            entry.status = "incident"
            self._timeline(inc, "helpdesk", f"{channel} ({direction}) {reporter}: {text}")
        self.session.add(entry)
        self.session.flush()
        core.audit(self.session, self.actor, "helpdesk.add", t.id, entry=entry.id, channel=channel)
        return entry

    def helpdesk_entry(self, entry_id: int) -> HelpdeskEntry:
        stmt = select(HelpdeskEntry).where(HelpdeskEntry.id == entry_id)
        if self.scope is not None:
            stmt = stmt.where(HelpdeskEntry.tenant_id == self.scope)
        entry = self.session.scalar(stmt)
        if entry is None:
            raise NotFoundError(f"help-desk entry {entry_id} not found")
        return entry

    def triage_helpdesk(
        self,
        entry_id: int,
        action: str,
        *,
        note: str | None = None,
        incident_id: int | None = None,
        severity: str | None = None,
    ) -> HelpdeskEntry:
        """``open_incident``, ``link`` (to ``incident_id``) or ``not_security`` (closed)."""
        entry = self.helpdesk_entry(entry_id)
        if entry.status != "open":
            raise IncidentError(f"help-desk entry {entry_id} is already triaged ({entry.status})")
        tenant = self.session.get_one(Tenant, entry.tenant_id)
        if action == "open_incident":
            inc = open_manual(
                self.session,
                tenant,
                origin="helpdesk",
                title=entry.text[:200],
                reporter=entry.reporter,
                actor=self.actor,
                severity=severity,
                summary=entry.text,
            )
            entry.incident_id = inc.id
            entry.status = "incident"
        elif action == "link":
            if incident_id is None:
                raise IncidentError("link needs incident_id")
            inc = get_incident(self.session, tenant.id, incident_id)
            self._timeline(inc, "helpdesk", f"{entry.channel} {entry.reporter}: {entry.text}")
            entry.incident_id = inc.id
            entry.status = "incident"
        elif action == "not_security":
            entry.status = "not_security"
        else:
            raise IncidentError("action must be open_incident, link or not_security")
        entry.triaged_by = self.actor
        entry.triaged_at = _now()
        entry.triage_note = note
        core.audit(self.session, self.actor, "helpdesk.triage", tenant.id, entry=entry.id, how=action)
        self.session.flush()
        return entry

    # ------------------------------------------------------------------ estate
    def sensors(self, tenant_id: str) -> list[dict[str, Any]]:
        t = self.tenant(tenant_id)
        rows = []
        for s in self.session.scalars(select(Sensor).where(Sensor.tenant_id == t.id).order_by(Sensor.id)):
            rows.append(
                {
                    "id": s.id,
                    "name": s.name,
                    "source": s.source,
                    "last_seen_at": _iso(s.last_seen_at),
                    "revoked": s.revoked,
                }
            )
        return rows

    def last_data(self, tenant_id: str) -> dict[str, str | None]:
        """Per source type: when data was last received (ingest runs, any path)."""
        t = self.tenant(tenant_id)
        rows = self.session.execute(
            select(IngestRun.source, func.max(IngestRun.finished_at))
            .where(IngestRun.tenant_id == t.id)
            .group_by(IngestRun.source)
        ).all()
        return {src: _iso(at) for src, at in sorted(rows)}

    def assets(self, tenant_id: str) -> list[Asset]:
        t = self.tenant(tenant_id)
        return list(self.session.scalars(select(Asset).where(Asset.tenant_id == t.id).order_by(Asset.id)))

    def sla_attainment(self, tenant_id: str, days: int = 30) -> dict[str, Any]:
        t = self.tenant(tenant_id)
        since = _now() - timedelta(days=days)
        incs = list(
            self.session.scalars(
                select(Incident).where(Incident.tenant_id == t.id, Incident.opened_at >= since)
            )
        )
        now = _now()
        met = missed = 0
        for inc in incs:
            for due, done in (
                (inc.ack_due_at, inc.acknowledged_at),
                (inc.response_due_at, inc.first_response_at),
            ):
                if due is None:
                    continue
                if done is not None:
                    met, missed = (met + 1, missed) if done <= due else (met, missed + 1)
                elif due < now:
                    missed += 1
        total = met + missed
        return {
            "clocks_met": met,
            "clocks_missed": missed,
            "percent": round(100 * met / total) if total else None,
        }

    def overview(self) -> list[dict[str, Any]]:
        out = []
        for t in self.tenants():
            incs = self.incidents(tenant_id=t.id, open_only=True)
            out.append(
                {
                    "tenant": t.id,
                    "name": t.name,
                    "service_level": t.service_level,
                    "open_incidents": len(incs),
                    "worst_severity": incs[0].severity if incs else None,
                    "sensors": self.sensors(t.id),
                    "last_data": self.last_data(t.id),
                    "assets": len(self.assets(t.id)),
                    "sla": self.sla_attainment(t.id),
                }
            )
        return out

    # ------------------------------------------------------------------ partner view
    def received_warnings(self, tenant_id: str) -> list[dict[str, Any]]:
        """Warnings partners sent to this tenant (when it is a partner of theirs), for its portal."""
        return portal_warnings(self.session, self.tenant(tenant_id).id)

    def acknowledge_received(self, tenant_id: str, recipient_id: int, by: str) -> None:
        try:
            acknowledge_in_portal(self.session, self.tenant(tenant_id).id, recipient_id, by=by)
        except ShareError as exc:
            raise NotFoundError(f"warning {recipient_id} not found") from exc

    def acknowledge_as_partner(self, tenant_id: str, partner_id: int, warning_id: int, by: str) -> None:
        """A partner's user acknowledges a warning the tenant sent it (partner view)."""
        try:
            acknowledge_as_partner(self.session, self.tenant(tenant_id).id, partner_id, warning_id, by=by)
        except ShareError as exc:
            raise NotFoundError(f"warning {warning_id} not found") from exc

    def partner_warnings(self, tenant_id: str, partner_id: int) -> list[dict[str, Any]]:
        """Warnings the tenant sent to this partner: only what it chose to share with it."""
        t = self.tenant(tenant_id)
        p = self.session.get(Partner, partner_id)
        if p is None or p.tenant_id != t.id:
            raise NotFoundError(f"partner {partner_id} not found")
        rows = self.session.execute(
            select(ShareWarning, WarningRecipient)
            .join(WarningRecipient, WarningRecipient.warning_id == ShareWarning.id)
            .where(
                ShareWarning.tenant_id == t.id,
                WarningRecipient.partner_id == p.id,
                ShareWarning.state == "sent",
            )
            .order_by(ShareWarning.id.desc())
        ).all()
        seen: set[int] = set()
        out = []
        for w, r in rows:
            if w.id in seen:
                continue
            seen.add(w.id)
            out.append(
                {
                    "id": w.id,
                    "tlp": w.tlp,
                    "sent_at": _iso(w.sent_at),
                    "subject_ja": w.subject_ja,
                    "body_ja": w.body_ja,
                    "subject_en": w.subject_en,
                    "body_en": w.body_en,
                    "acknowledged_at": _iso(r.acknowledged_at),
                }
            )
        return out


def _events_for(archive: Archive, tenant: str, a: Alert, limit: int) -> list[dict[str, Any]]:
    lf = archive.scan_events(tenant, since=(a.first_seen - timedelta(days=1)).date())
    names = lf.collect_schema().names()
    lo, hi = a.first_seen - timedelta(minutes=1), a.last_seen + timedelta(minutes=1)
    conds = []
    if a.host:
        conds += [pl.col(c) == a.host for c in ("source.ip", "destination.ip") if c in names]
    if a.indicator:
        conds += [pl.col(c) == a.indicator for c in _INDICATOR_COLUMNS if c in names]
    if not conds or "@timestamp" not in names:
        return []
    match = conds[0]
    for c in conds[1:]:
        match = match | c
    cols = [c for c in EVIDENCE_COLUMNS if c in names]
    df = (
        lf.filter(pl.col("@timestamp").is_between(lo, hi) & match)
        .select(cols)
        .sort("@timestamp")
        .head(limit)
        .collect()
    )
    rows = df.to_dicts()
    for r in rows:
        ts = r.get("@timestamp")
        if isinstance(ts, datetime):
            r["@timestamp"] = ts.isoformat()
    return rows


def helpdesk_dict(h: HelpdeskEntry) -> dict[str, Any]:
    return {
        "id": h.id,
        "tenant": h.tenant_id,
        "at": _iso(h.at),
        "channel": h.channel,
        "direction": h.direction,
        "reporter": h.reporter,
        "text": h.text,
        "status": h.status,
        "incident": h.incident_id,
        "triaged_by": h.triaged_by,
        "triaged_at": _iso(h.triaged_at),
        "triage_note": h.triage_note,
    }


def visit_dict(v: OnsiteVisit) -> dict[str, Any]:
    return {
        "id": v.id,
        "incident": v.incident_id,
        "engineer": v.engineer,
        "planned_at": _iso(v.planned_at),
        "site": v.site,
        "arrived_at": _iso(v.arrived_at),
        "findings": v.findings,
        "created_by": v.created_by,
    }


def asset_dict(a: Asset) -> dict[str, Any]:
    return {
        "id": a.id,
        "ip": a.ip,
        "mac": a.mac,
        "hostname": a.hostname,
        "vendor": a.vendor,
        "os": " ".join(x for x in (a.os_name, a.os_version) if x) or None,
        "device_class": a.device_class,
        "end_of_life": a.end_of_life,
        "isolated": a.isolated,
        "last_seen": _iso(a.last_seen),
    }


def incident_public(inc: Incident, now: datetime | None = None) -> dict[str, Any]:
    out = core.incident_summary(inc, now)
    out["sla_minutes_left"] = _finite(sla_minutes_left(inc, now or _now()))
    return out


def _finite(x: float) -> int | None:
    return None if x == float("inf") else round(x)


__all__ = [
    "TenantRepo",
    "asset_dict",
    "helpdesk_dict",
    "incident_public",
    "queue_order",
    "sla_status",
    "visit_dict",
]
