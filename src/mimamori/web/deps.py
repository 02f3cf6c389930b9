"""Dependencies shared by every route: the database session, the current principal (a signed-in
user or an API token), CSRF, role checks and the tenant-scoped repository.

Tenant scoping happens here once: ``Repo`` is a ``TenantRepo`` bound to the principal's scope
(all tenants for provider roles, one tenant otherwise); routes only talk to it.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from mimamori.db.models_web import PROVIDER_ROLES, TENANT_ROLES, ApiToken, WebSession, WebUser
from mimamori.web.accounts import load_session, load_token
from mimamori.web.repo import TenantRepo
from mimamori.web.settings import WebSettings

SESSION_COOKIE = "mm_session"
PRE_COOKIE = "mm_pre"  # CSRF token for forms shown before sign-in (double submit)
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class NotSignedIn(Exception):
    """No valid session or token; pages redirect to sign-in, the API answers 401."""


def get_db(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as s:
        yield s


Db = Annotated[Session, Depends(get_db)]


def web_settings(request: Request) -> WebSettings:
    settings: WebSettings = request.app.state.web_settings
    return settings


@dataclass
class Principal:
    name: str
    role: str
    scope: str | None  # tenant id, or None for provider-wide
    user: WebUser | None = None
    token: ApiToken | None = None
    web_session: WebSession | None = None
    partner_id: int | None = None
    language: str = "ja"

    @property
    def is_provider(self) -> bool:
        return self.role in PROVIDER_ROLES and self.scope is None

    @property
    def csrf(self) -> str:
        return self.web_session.csrf_token if self.web_session else ""


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _submitted_csrf(request: Request) -> str:
    header = request.headers.get("x-csrf-token")
    if header:
        return header
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()  # cached by Starlette; the route's Form() fields still work
        value = form.get("csrf_token")
        return value if isinstance(value, str) else ""
    return ""


async def check_csrf(request: Request, expected: str) -> None:
    got = await _submitted_csrf(request)
    if not expected or not got or not hmac.compare_digest(got.encode(), expected.encode()):
        raise HTTPException(403, "CSRF token missing or wrong; reload the page and try again")


async def optional_principal(request: Request, db: Db) -> Principal | None:
    settings = web_settings(request)
    auth = request.headers.get("authorization", "")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise NotSignedIn()
        tok = load_token(db, value.strip())
        if tok is None:
            raise NotSignedIn()
        return Principal(name=f"token:{tok.name}", role=tok.role, scope=tok.tenant_id, token=tok)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    loaded = load_session(db, cookie, settings)
    if loaded is None or not loaded[0].mfa_done:
        return None
    ws, user = loaded
    if request.method in UNSAFE:
        await check_csrf(request, ws.csrf_token)
    scope = None if user.role in PROVIDER_ROLES else user.tenant_id
    lang = request.cookies.get("mm_lang") or user.language
    return Principal(
        name=user.username,
        role=user.role,
        scope=scope,
        user=user,
        web_session=ws,
        partner_id=user.partner_id,
        language=lang if lang in ("ja", "en") else "ja",
    )


async def current_principal(principal: Annotated[Principal | None, Depends(optional_principal)]) -> Principal:
    if principal is None:
        raise NotSignedIn()
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require(*roles: str) -> Callable[[Principal], Principal]:
    def check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in roles:
            raise HTTPException(403, "your role may not do this")
        return principal

    return check


READ_ROLES = (*PROVIDER_ROLES, *TENANT_ROLES)
Reader = Annotated[Principal, Depends(require(*READ_ROLES))]
Analyst = Annotated[Principal, Depends(require(*PROVIDER_ROLES))]
Owner = Annotated[Principal, Depends(require(*PROVIDER_ROLES, "tenant_owner"))]
PartnerViewer = Annotated[Principal, Depends(require("partner_viewer"))]


def _repo(request: Request, db: Db, principal: CurrentPrincipal) -> TenantRepo:
    return TenantRepo(db, principal.scope, actor=principal.name, archive_root=request.app.state.archive_root)


Repo = Annotated[TenantRepo, Depends(_repo)]


def require_json(request: Request) -> None:
    """State-changing API calls take JSON; anything else is 415, not a parse error."""
    if request.method in UNSAFE:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        has_body = request.headers.get("content-length", "0") not in ("", "0") or (
            "transfer-encoding" in request.headers
        )
        if has_body and ctype != "application/json":
            raise HTTPException(415, "send application/json")
