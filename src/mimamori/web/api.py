"""The REST API under /api/v1: one router per resource, JSON in and out, OpenAPI described.

Authentication: an API token (``Authorization: Bearer mmt_…``, scoped to one tenant) or the
console's session cookie (then state-changing calls need the ``X-CSRF-Token`` header).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Security
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from mimamori.db import repo as core
from mimamori.db.models_web import PROVIDER_ROLES
from mimamori.web import portal
from mimamori.web.deps import Analyst, CurrentPrincipal, PartnerViewer, Reader, Repo, require_json
from mimamori.web.repo import asset_dict, helpdesk_dict, incident_public, visit_dict

Text = Annotated[str, Field(min_length=1, max_length=10_000)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MePublic(BaseModel):
    name: str
    role: str
    tenant: str | None
    partner: int | None


class TenantPublic(BaseModel):
    id: str
    name: str
    service_level: str
    networks: list[Any]
    contact_name: str | None


class IncidentPublic(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int
    tenant: str
    kind: str
    severity: str
    state: str
    title: str
    sla_minutes_left: int | None


class TransitionCreate(_Strict):
    to_state: Literal[
        "triage", "remote_support", "onsite", "containment", "recovery", "closed", "false_positive"
    ]
    note: str | None = Field(default=None, max_length=10_000)
    not_security: bool = False


class NoteCreate(_Strict):
    text: Text


class TaskUpdate(_Strict):
    done: bool


class OnsiteCreate(_Strict):
    engineer: Name
    planned_at: datetime
    site: str | None = Field(default=None, max_length=300)
    note: str | None = Field(default=None, max_length=10_000)


class VisitUpdate(_Strict):
    arrived_at: datetime | None = None
    findings: str | None = Field(default=None, max_length=10_000)


class VisitPublic(BaseModel):
    id: int
    incident: int
    engineer: str
    planned_at: str | None
    site: str | None
    arrived_at: str | None
    findings: str | None
    created_by: str


class HelpdeskCreate(_Strict):
    channel: Literal["phone", "mail", "portal"] = "portal"
    direction: Literal["in", "out"] = "in"
    reporter: Name
    text: Text
    incident_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class HelpdeskTriage(_Strict):
    action: Literal["open_incident", "link", "not_security"]
    note: str | None = Field(default=None, max_length=10_000)
    incident_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    severity: Literal["low", "medium", "high", "critical"] | None = None


class HelpdeskPublic(BaseModel):
    id: int
    tenant: str
    at: str | None
    channel: str
    direction: str
    reporter: str
    text: str
    status: str
    incident: int | None
    triaged_by: str | None
    triaged_at: str | None
    triage_note: str | None


_ID = Path(ge=1, le=2**31 - 1)
IncidentId = Annotated[int, _ID]
TaskId = Annotated[int, _ID]
VisitId = Annotated[int, _ID]
EntryId = Annotated[int, _ID]
TenantId = Annotated[str, Path(max_length=64)]


#: declared for the OpenAPI description; ``deps.optional_principal`` does the checking
_BEARER = [Security(HTTPBearer(auto_error=False, description="API token (mmt_…), scoped to one tenant"))]


def api_routers() -> list[APIRouter]:
    me = APIRouter(prefix="/api/v1", tags=["me"], dependencies=_BEARER)
    tenants = APIRouter(prefix="/api/v1/tenants", tags=["tenants"], dependencies=_BEARER)
    incidents = APIRouter(
        prefix="/api/v1/incidents", tags=["incidents"], dependencies=[Depends(require_json)]
    )
    helpdesk = APIRouter(prefix="/api/v1", tags=["helpdesk"], dependencies=[*_BEARER, Depends(require_json)])
    overview = APIRouter(prefix="/api/v1/overview", tags=["overview"], dependencies=_BEARER)
    partner = APIRouter(prefix="/api/v1/partner", tags=["partner"], dependencies=_BEARER)

    @me.get("/me")
    def get_me(p: CurrentPrincipal) -> MePublic:
        return MePublic(name=p.name, role=p.role, tenant=p.scope, partner=p.partner_id)

    # ---------------------------------------------------------------- tenants
    @tenants.get("")
    def list_tenants(p: Reader, repo: Repo) -> list[TenantPublic]:
        return [TenantPublic(**core.tenant_dict(t)) for t in repo.tenants()]

    @tenants.get("/{tenant_id}")
    def get_tenant(tenant_id: TenantId, p: Reader, repo: Repo) -> TenantPublic:
        return TenantPublic(**core.tenant_dict(repo.tenant(tenant_id)))

    @tenants.get("/{tenant_id}/status")
    def tenant_status(tenant_id: TenantId, p: Reader, repo: Repo) -> dict[str, Any]:
        """The SME portal's plain-language status (Japanese and English)."""
        return portal.status(repo, tenant_id)

    @tenants.get("/{tenant_id}/incidents")
    def tenant_incidents(
        tenant_id: TenantId, p: Reader, repo: Repo, open_only: bool = False
    ) -> list[IncidentPublic]:
        return [
            IncidentPublic(**incident_public(i))
            for i in repo.incidents(tenant_id=tenant_id, open_only=open_only)
        ]

    @tenants.get("/{tenant_id}/assets")
    def tenant_assets(tenant_id: TenantId, p: Reader, repo: Repo) -> list[dict[str, Any]]:
        return [asset_dict(a) for a in repo.assets(tenant_id)]

    @tenants.get("/{tenant_id}/sensors")
    def tenant_sensors(tenant_id: TenantId, p: Reader, repo: Repo) -> dict[str, Any]:
        return {"sensors": repo.sensors(tenant_id), "last_data": repo.last_data(tenant_id)}

    # ---------------------------------------------------------------- incidents
    @incidents.get("")
    def queue(
        p: Reader,
        repo: Repo,
        open_only: bool = True,
        tenant: Annotated[str | None, Query(max_length=64)] = None,
    ) -> list[IncidentPublic]:
        """The queue: most severe first, then least SLA time left."""
        return [
            IncidentPublic(**incident_public(i))
            for i in repo.incidents(tenant_id=tenant, open_only=open_only)
        ]

    @incidents.get("/{incident_id}")
    def get_incident(incident_id: IncidentId, p: Reader, repo: Repo) -> dict[str, Any]:
        return repo.incident_detail(incident_id)

    @incidents.get("/{incident_id}/evidence")
    def evidence(incident_id: IncidentId, p: Analyst, repo: Repo) -> list[dict[str, Any]]:
        """The incident's alerts, each with the archived events behind it."""
        return repo.evidence(incident_id)

    @incidents.post("/{incident_id}/transitions", status_code=201)
    def post_transition(
        incident_id: IncidentId, body: TransitionCreate, p: Analyst, repo: Repo
    ) -> IncidentPublic:
        inc = repo.transition(incident_id, body.to_state, body.note, not_security=body.not_security)
        repo.session.commit()
        return IncidentPublic(**incident_public(inc))

    @incidents.post("/{incident_id}/notes", status_code=201)
    def post_note(incident_id: IncidentId, body: NoteCreate, p: Analyst, repo: Repo) -> IncidentPublic:
        inc = repo.add_note(incident_id, body.text)
        repo.session.commit()
        return IncidentPublic(**incident_public(inc))

    @incidents.patch("/{incident_id}/tasks/{task_id}")
    def patch_task(
        incident_id: IncidentId, task_id: TaskId, body: TaskUpdate, p: Analyst, repo: Repo
    ) -> dict[str, Any]:
        t = repo.set_task(incident_id, task_id, body.done)
        repo.session.commit()
        return {"id": t.id, "key": t.key, "done": t.done, "done_by": t.done_by}

    @incidents.post("/{incident_id}/onsite", status_code=201)
    def post_onsite(incident_id: IncidentId, body: OnsiteCreate, p: Analyst, repo: Repo) -> VisitPublic:
        """Escalate to an on-site visit: who goes, when, where."""
        v = repo.escalate_onsite(incident_id, body.engineer, body.planned_at, body.site, body.note)
        repo.session.commit()
        return VisitPublic(**visit_dict(v))

    @incidents.patch("/{incident_id}/visits/{visit_id}")
    def patch_visit(
        incident_id: IncidentId, visit_id: VisitId, body: VisitUpdate, p: Analyst, repo: Repo
    ) -> VisitPublic:
        """What the engineer found on site, and when they arrived."""
        v = repo.record_visit(incident_id, visit_id, body.arrived_at, body.findings)
        repo.session.commit()
        return VisitPublic(**visit_dict(v))

    # ---------------------------------------------------------------- help desk
    @helpdesk.get("/tenants/{tenant_id}/helpdesk")
    def list_helpdesk(tenant_id: TenantId, p: Reader, repo: Repo) -> list[HelpdeskPublic]:
        return [HelpdeskPublic(**helpdesk_dict(h)) for h in repo.helpdesk(tenant_id)]

    @helpdesk.post("/tenants/{tenant_id}/helpdesk", status_code=201)
    def post_helpdesk(tenant_id: TenantId, body: HelpdeskCreate, p: Reader, repo: Repo) -> HelpdeskPublic:
        """Log a call or mail (analysts), or report "something is wrong" (SME users, channel portal)."""
        if p.role in PROVIDER_ROLES:
            h = repo.add_helpdesk(
                tenant_id,
                channel=body.channel,
                reporter=body.reporter,
                text=body.text,
                direction=body.direction,
                incident_id=body.incident_id,
            )
        else:
            h = repo.add_helpdesk(tenant_id, channel="portal", reporter=body.reporter, text=body.text)
        repo.session.commit()
        return HelpdeskPublic(**helpdesk_dict(h))

    @helpdesk.post("/helpdesk/{entry_id}/triage")
    def triage(entry_id: EntryId, body: HelpdeskTriage, p: Analyst, repo: Repo) -> HelpdeskPublic:
        """Open an incident from the report, link it to one, or close it as not a security matter."""
        h = repo.triage_helpdesk(
            entry_id, body.action, note=body.note, incident_id=body.incident_id, severity=body.severity
        )
        repo.session.commit()
        return HelpdeskPublic(**helpdesk_dict(h))

    # ---------------------------------------------------------------- manager, partner
    @overview.get("")
    def get_overview(p: Analyst, repo: Repo) -> list[dict[str, Any]]:
        """Every tenant at a glance: open incidents, sensors' last data, devices, SLA attainment."""
        return repo.overview()

    @partner.get("/warnings")
    def partner_warnings(p: PartnerViewer, repo: Repo) -> list[dict[str, Any]]:
        """What the tenant chose to share with this partner (sent warnings), nothing else."""
        assert p.scope is not None and p.partner_id is not None
        return repo.partner_warnings(p.scope, p.partner_id)

    return [me, tenants, incidents, helpdesk, overview, partner]
