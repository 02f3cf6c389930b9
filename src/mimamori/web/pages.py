"""Server-rendered pages: sign-in, the analyst console, the manager view, the SME portal and
the partner view. Forms post back here with a CSRF token; every read and write goes
through the tenant-scoped repository (``deps.Repo``), exactly like the API.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from mimamori.db.models_web import PROVIDER_ROLES, TENANT_ROLES, WebUser
from mimamori.incidents.catalog import load_catalog
from mimamori.incidents.engine import STATES, TRANSITIONS
from mimamori.web import portal
from mimamori.web.accounts import (
    SignInError,
    authenticate_password,
    complete_totp,
    enable_totp,
    end_session,
    finish_signin,
    load_session,
    needs_totp,
    start_session,
)
from mimamori.web.deps import (
    PRE_COOKIE,
    SESSION_COOKIE,
    Analyst,
    CurrentPrincipal,
    Db,
    PartnerViewer,
    Principal,
    Repo,
    check_csrf,
    client_ip,
    optional_principal,
    require,
    web_settings,
)
from mimamori.web.repo import asset_dict, incident_public, sla_minutes_left
from mimamori.web.security import new_totp_secret, totp_uri

SIGNIN_FAILED = "サインインできませんでした / Sign-in failed"
_ID = Path(ge=1, le=2**31 - 1)
IdParam = Annotated[int, _ID]
TenantParam = Annotated[str, Path(max_length=64)]
Short = Annotated[str, Form(max_length=200)]
Long = Annotated[str, Form(max_length=10_000)]
TenantUser = Annotated[Principal, Depends(require(*TENANT_ROLES))]


def _templates(request: Request) -> Jinja2Templates:
    t: Jinja2Templates = request.app.state.templates
    return t


def _render(
    request: Request, name: str, principal: Principal | None, status: int = 200, **ctx: Any
) -> Response:
    lang = principal.language if principal else (request.cookies.get("mm_lang") or "ja")
    ctx.update(principal=principal, lang=lang if lang in ("ja", "en") else "ja", now=datetime.now(UTC))
    return _templates(request).TemplateResponse(request, name, ctx, status_code=status)


def _set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        path="/",
        secure=web_settings(request).cookie_secure,
    )


def _see(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _home_for(role: str) -> str:
    if role in PROVIDER_ROLES:
        return "/console"
    if role == "partner_viewer":
        return "/partner"
    return "/portal"


def _parse_local(value: str) -> datetime:
    """A ``datetime-local`` form value, taken as UTC (the console shows UTC)."""
    try:
        d = datetime.fromisoformat(value)
    except ValueError as exc:
        raise HTTPException(422, "date and time not understood") from exc
    return d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)


def page_router() -> APIRouter:
    r = APIRouter(include_in_schema=False)

    # ------------------------------------------------------------------ sign-in
    @r.get("/")
    def home(p: Annotated[Principal | None, Depends(optional_principal)]) -> Response:
        return _see(_home_for(p.role) if p else "/login")

    @r.get("/login")
    def login_form(request: Request) -> Response:
        pre = secrets.token_urlsafe(24)
        resp = _render(request, "login.html", None, csrf=pre, error=None)
        _set_cookie(resp, request, PRE_COOKIE, pre, 3600)
        return resp

    @r.post("/login")
    async def login(
        request: Request,
        db: Db,
        username: Short,
        password: Annotated[str, Form(max_length=1024)],
        csrf_token: Annotated[str, Form(max_length=200)],
    ) -> Response:
        pre = request.cookies.get(PRE_COOKIE, "")
        if not pre or not hmac.compare_digest(pre.encode(), csrf_token.encode()):
            raise HTTPException(403, "CSRF token missing or wrong; reload the page and try again")
        source = client_ip(request)
        try:
            user = authenticate_password(db, request.app.state.guard, username, password, source)
        except SignInError as exc:
            db.commit()  # the audit row and the failure count
            status = 429 if exc.status == 429 else 401
            return _render(request, "login.html", None, status=status, csrf=pre, error=SIGNIN_FAILED)
        token, _ws = start_session(db, user, web_settings(request), source, mfa_done=not needs_totp(user))
        db.commit()
        resp = _see("/login/totp" if needs_totp(user) else _home_for(user.role))
        _set_cookie(resp, request, SESSION_COOKIE, token, None)
        resp.delete_cookie(PRE_COOKIE, path="/")
        return resp

    @r.get("/login/totp")
    def totp_form(request: Request, db: Db) -> Response:
        cookie = request.cookies.get(SESSION_COOKIE)
        loaded = load_session(db, cookie, web_settings(request)) if cookie else None
        if loaded is None:
            return _see("/login")
        ws, _user = loaded
        if ws.mfa_done:
            return _see("/")
        return _render(request, "totp.html", None, csrf=ws.csrf_token, error=None)

    @r.post("/login/totp")
    async def totp_submit(request: Request, db: Db, code: Annotated[str, Form(max_length=16)]) -> Response:
        cookie = request.cookies.get(SESSION_COOKIE)
        loaded = load_session(db, cookie, web_settings(request)) if cookie else None
        if loaded is None:
            return _see("/login")
        ws, user = loaded
        await check_csrf(request, ws.csrf_token)
        if ws.mfa_done:
            return _see("/")
        source = client_ip(request)
        try:
            complete_totp(db, request.app.state.guard, user, code, source)
        except SignInError as exc:
            if user.locked_until is not None:
                db.delete(ws)
            db.commit()
            status = 429 if exc.status == 429 else 401
            return _render(request, "totp.html", None, status=status, csrf=ws.csrf_token, error=SIGNIN_FAILED)
        db.delete(ws)  # a fresh session id once fully signed in
        token, _new = start_session(db, user, web_settings(request), source, mfa_done=False)
        _new.mfa_done = True
        finish_signin(db, user, source)
        db.commit()
        resp = _see(_home_for(user.role))
        _set_cookie(resp, request, SESSION_COOKIE, token, None)
        return resp

    @r.post("/logout")
    async def logout(request: Request, db: Db, p: CurrentPrincipal) -> Response:
        if p.web_session is not None and p.user is not None:
            end_session(db, p.web_session, p.user)
            db.commit()
        resp = _see("/login")
        resp.delete_cookie(SESSION_COOKIE, path="/")
        return resp

    @r.get("/lang/{code}")
    def set_lang(
        request: Request, code: Annotated[str, Path(pattern="^(ja|en)$")], back: str = "/"
    ) -> Response:
        resp = _see(back if back.startswith("/") and not back.startswith("//") else "/")
        resp.set_cookie(
            "mm_lang",
            code,
            max_age=365 * 86400,
            samesite="lax",
            path="/",
            secure=web_settings(request).cookie_secure,
        )
        return resp

    # ------------------------------------------------------------------ account (MFA for SME users)
    @r.get("/account")
    def account(request: Request, p: CurrentPrincipal) -> Response:
        secret = new_totp_secret()
        user = p.user
        uri = totp_uri(secret, user.username) if user else ""
        return _render(request, "account.html", p, secret=secret, uri=uri, error=None, done=False)

    @r.post("/account/totp")
    async def account_totp(
        request: Request,
        db: Db,
        p: CurrentPrincipal,
        secret: Annotated[str, Form(max_length=64)],
        code: Annotated[str, Form(max_length=16)],
    ) -> Response:
        if p.user is None:
            raise HTTPException(403, "only people can enrol a second factor")
        user = db.get(WebUser, p.user.id)
        assert user is not None
        if not enable_totp(db, user, secret.strip().upper(), code, actor=p.name):
            db.rollback()
            return _render(
                request,
                "account.html",
                p,
                status=422,
                secret=secret,
                uri=totp_uri(secret, user.username),
                error="コードが正しくありません / Wrong code",
                done=False,
            )
        db.commit()
        return _render(request, "account.html", p, secret=None, uri=None, error=None, done=True)

    # ------------------------------------------------------------------ analyst console
    @r.get("/console")
    def console(
        request: Request, p: Analyst, repo: Repo, tenant: Annotated[str | None, Query(max_length=64)] = None
    ) -> Response:
        now = datetime.now(UTC)
        incs = repo.incidents(tenant_id=tenant or None, open_only=True)
        names = {t.id: t.name for t in repo.tenants()}
        rows = [(i, incident_public(i, now), sla_minutes_left(i, now)) for i in incs]
        open_help = repo.helpdesk(open_only=True)
        return _render(request, "queue.html", p, rows=rows, names=names, open_help=open_help)

    @r.get("/console/incidents/{incident_id}")
    def incident_page(request: Request, incident_id: IdParam, p: Analyst, repo: Repo) -> Response:
        detail = repo.incident_detail(incident_id)
        inc = repo.incident(incident_id)
        evidence = repo.evidence(incident_id, per_alert=10)
        tenant = repo.tenant(inc.tenant_id)
        allowed = [s for s in TRANSITIONS.get(inc.state, ()) if s in STATES]
        return _render(
            request,
            "incident.html",
            p,
            d=detail,
            inc=inc,
            tenant=tenant,
            evidence=evidence,
            allowed=allowed,
            left=sla_minutes_left(inc, datetime.now(UTC)),
        )

    def _back(incident_id: int) -> RedirectResponse:
        return _see(f"/console/incidents/{incident_id}")

    @r.post("/console/incidents/{incident_id}/transition")
    def incident_transition(
        incident_id: IdParam,
        p: Analyst,
        repo: Repo,
        to_state: Short,
        note: Annotated[str, Form(max_length=10_000)] = "",
    ) -> Response:
        repo.transition(incident_id, to_state, note or None, not_security=to_state == "false_positive")
        repo.session.commit()
        return _back(incident_id)

    @r.post("/console/incidents/{incident_id}/note")
    def incident_note(incident_id: IdParam, p: Analyst, repo: Repo, text: Long) -> Response:
        if text.strip():
            repo.add_note(incident_id, text.strip())
            repo.session.commit()
        return _back(incident_id)

    @r.post("/console/incidents/{incident_id}/tasks/{task_id}")
    def incident_task(
        incident_id: IdParam,
        task_id: IdParam,
        p: Analyst,
        repo: Repo,
        done: Annotated[str, Form(max_length=5)] = "",
    ) -> Response:
        repo.set_task(incident_id, task_id, done == "1")
        repo.session.commit()
        return _back(incident_id)

    @r.post("/console/incidents/{incident_id}/onsite")
    def incident_onsite(
        incident_id: IdParam,
        p: Analyst,
        repo: Repo,
        engineer: Short,
        planned_at: Annotated[str, Form(max_length=40)],
        site: Annotated[str, Form(max_length=300)] = "",
    ) -> Response:
        repo.escalate_onsite(incident_id, engineer.strip(), _parse_local(planned_at), site or None, None)
        repo.session.commit()
        return _back(incident_id)

    @r.post("/console/incidents/{incident_id}/visits/{visit_id}")
    def incident_visit(
        incident_id: IdParam,
        visit_id: IdParam,
        p: Analyst,
        repo: Repo,
        findings: Long,
        arrived_at: Annotated[str, Form(max_length=40)] = "",
    ) -> Response:
        repo.record_visit(
            incident_id, visit_id, _parse_local(arrived_at) if arrived_at else None, findings or None
        )
        repo.session.commit()
        return _back(incident_id)

    @r.get("/console/tenants/{tenant_id}/helpdesk")
    def helpdesk_page(request: Request, tenant_id: TenantParam, p: Analyst, repo: Repo) -> Response:
        tenant = repo.tenant(tenant_id)
        entries = repo.helpdesk(tenant_id)
        incs = repo.incidents(tenant_id=tenant_id, open_only=True)
        return _render(request, "helpdesk.html", p, tenant=tenant, entries=entries, incidents=incs)

    @r.post("/console/tenants/{tenant_id}/helpdesk")
    def helpdesk_add(
        tenant_id: TenantParam,
        p: Analyst,
        repo: Repo,
        reporter: Short,
        text: Long,
        channel: Annotated[str, Form(max_length=10)] = "phone",
        direction: Annotated[str, Form(pattern="^(in|out)$")] = "in",
        incident_id: Annotated[str, Form(max_length=12)] = "",
    ) -> Response:
        inc_id = int(incident_id) if incident_id.isdigit() else None
        repo.add_helpdesk(
            tenant_id, channel=channel, reporter=reporter, text=text, direction=direction, incident_id=inc_id
        )
        repo.session.commit()
        return _see(f"/console/tenants/{quote(tenant_id)}/helpdesk")

    @r.post("/console/helpdesk/{entry_id}/triage")
    def helpdesk_triage(
        entry_id: IdParam,
        p: Analyst,
        repo: Repo,
        action: Short,
        note: Annotated[str, Form(max_length=10_000)] = "",
        incident_id: Annotated[str, Form(max_length=12)] = "",
    ) -> Response:
        entry = repo.triage_helpdesk(
            entry_id,
            action,
            note=note or None,
            incident_id=int(incident_id) if incident_id.isdigit() else None,
        )
        repo.session.commit()
        if entry.incident_id is not None and action == "open_incident":
            return _back(entry.incident_id)
        return _see(f"/console/tenants/{quote(entry.tenant_id)}/helpdesk")

    # ------------------------------------------------------------------ manager view
    @r.get("/manager")
    def manager(request: Request, p: Analyst, repo: Repo) -> Response:
        return _render(
            request,
            "manager.html",
            p,
            rows=repo.overview(),
            silence_hours=web_settings(request).sensor_silence.total_seconds() / 3600,
        )

    # ------------------------------------------------------------------ SME portal
    @r.get("/portal")
    def portal_home(request: Request, p: TenantUser, repo: Repo, sent: int = 0) -> Response:
        assert p.scope is not None
        return _render(
            request,
            "portal.html",
            p,
            s=portal.status(repo, p.scope),
            sent=bool(sent),
            received=repo.received_warnings(p.scope),
        )

    @r.post("/portal/warnings/{recipient_id}/ack")
    def portal_ack(recipient_id: IdParam, p: TenantUser, repo: Repo) -> Response:
        """The SME confirms it has read a partner's warning (the sender's incident shows it)."""
        assert p.scope is not None
        repo.acknowledge_received(p.scope, recipient_id, by=f"{p.name} (portal)")
        repo.session.commit()
        return _see("/portal")

    @r.get("/portal/devices")
    def portal_devices(request: Request, p: TenantUser, repo: Repo) -> Response:
        assert p.scope is not None
        return _render(
            request, "portal_devices.html", p, assets=[asset_dict(a) for a in repo.assets(p.scope)]
        )

    @r.get("/portal/incidents/{incident_id}")
    def portal_incident(request: Request, incident_id: IdParam, p: TenantUser, repo: Repo) -> Response:
        inc = repo.incident(incident_id)
        k = load_catalog().kind(inc.kind)
        advice = portal.ADVICE.get(inc.kind, portal.GENERIC)
        state = portal.STATE_WORDS.get(inc.state, (inc.state, inc.state))
        visits = repo.visits(inc.id)
        return _render(
            request, "portal_incident.html", p, inc=inc, kind=k, advice=advice, state=state, visits=visits
        )

    @r.post("/portal/report")
    def portal_report(p: TenantUser, repo: Repo, text: Long, reporter: Short) -> Response:
        assert p.scope is not None
        if not text.strip():
            raise HTTPException(422, "内容を書いてください / Please describe what happened")
        repo.add_helpdesk(p.scope, channel="portal", reporter=reporter.strip() or p.name, text=text.strip())
        repo.session.commit()
        return _see("/portal?sent=1")

    # ------------------------------------------------------------------ partner view
    @r.get("/partner")
    def partner(request: Request, p: PartnerViewer, repo: Repo) -> Response:
        assert p.scope is not None and p.partner_id is not None
        tenant = repo.tenant(p.scope)
        return _render(
            request, "partner.html", p, tenant=tenant, warnings=repo.partner_warnings(p.scope, p.partner_id)
        )

    @r.post("/partner/warnings/{warning_id}/ack")
    def partner_ack(warning_id: IdParam, p: PartnerViewer, repo: Repo) -> Response:
        assert p.scope is not None and p.partner_id is not None
        repo.acknowledge_as_partner(p.scope, p.partner_id, warning_id, by=f"{p.name} (partner view)")
        repo.session.commit()
        return _see("/partner")

    return r


__all__ = ["HTMLResponse", "page_router"]
