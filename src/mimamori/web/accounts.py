"""Accounts: users, sign-in with lockout and rate limits, server-side sessions, API tokens.

Used by the web console and by ``mimamori users``/``mimamori tokens``. Every sign-in
(success or failure) and every change is written to the audit log.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mimamori.db.models import Tenant
from mimamori.db.models_share import Partner
from mimamori.db.models_web import PROVIDER_ROLES, ROLES, TENANT_ROLES, ApiToken, WebSession, WebUser
from mimamori.db.repo import audit
from mimamori.web.security import (
    RateLimiter,
    hash_password,
    hash_token,
    new_token,
    new_totp_secret,
    password_problem,
    verify_password,
    verify_totp,
)
from mimamori.web.settings import WebSettings


class AccountError(Exception):
    """A user or token request that cannot be done (unknown tenant, weak password ...)."""


class SignInError(Exception):
    """Sign-in refused. ``reason`` is for the audit log; users see one generic message."""

    def __init__(self, reason: str, *, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def _now() -> datetime:
    return datetime.now(UTC)


def needs_totp(user: WebUser) -> bool:
    return user.role in PROVIDER_ROLES or user.totp_enabled


# ---------------------------------------------------------------------------- users


def create_user(
    session: Session,
    username: str,
    password: str,
    role: str,
    *,
    display_name: str | None = None,
    tenant_id: str | None = None,
    partner_id: int | None = None,
    language: str = "ja",
    totp: bool | None = None,
    actor: str = "cli",
) -> WebUser:
    """A new user. Provider roles get a TOTP secret (required); others only if ``totp``."""
    username = username.strip().lower()
    if not username or len(username) > 200 or any(c.isspace() for c in username):
        raise AccountError("username must be 1-200 characters without spaces")
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r} ({', '.join(ROLES)})")
    problem = password_problem(password)
    if problem:
        raise AccountError(problem)
    if role in PROVIDER_ROLES:
        if tenant_id is not None:
            raise AccountError(f"{role} is a provider role: it belongs to no tenant")
    else:
        if tenant_id is None or session.get(Tenant, tenant_id) is None:
            raise AccountError(f"{role} needs an existing --tenant")
    if role == "partner_viewer":
        p = session.get(Partner, partner_id) if partner_id is not None else None
        if p is None or p.tenant_id != tenant_id:
            raise AccountError("partner_viewer needs --partner, a partner id of that tenant")
    elif partner_id is not None:
        raise AccountError("--partner is only for partner_viewer")
    if session.scalar(select(WebUser).where(WebUser.username == username)) is not None:
        raise AccountError(f"user {username!r} already exists")
    want_totp = role in PROVIDER_ROLES or bool(totp)
    user = WebUser(
        username=username,
        display_name=display_name or username,
        role=role,
        tenant_id=tenant_id,
        partner_id=partner_id,
        password_hash=hash_password(password),
        totp_secret=new_totp_secret() if want_totp else None,
        totp_enabled=want_totp,
        language=language if language in ("ja", "en") else "ja",
    )
    session.add(user)
    session.flush()
    audit(session, actor, "user.create", tenant_id, username=username, role=role)
    return user


def get_user(session: Session, username: str) -> WebUser:
    user = session.scalar(select(WebUser).where(WebUser.username == username.strip().lower()))
    if user is None:
        raise AccountError(f"no user {username!r}")
    return user


def list_users(session: Session) -> list[WebUser]:
    return list(session.scalars(select(WebUser).order_by(WebUser.id)))


def disable_user(session: Session, username: str, *, actor: str = "cli") -> WebUser:
    user = get_user(session, username)
    user.disabled = True
    session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    audit(session, actor, "user.disable", user.tenant_id, username=user.username)
    return user


def unlock_user(session: Session, username: str, *, actor: str = "cli") -> WebUser:
    user = get_user(session, username)
    user.failed_logins = 0
    user.locked_until = None
    audit(session, actor, "user.unlock", user.tenant_id, username=user.username)
    return user


def enable_totp(session: Session, user: WebUser, secret: str, code: str, *, actor: str) -> bool:
    """Turn on TOTP for a user who proved they hold ``secret`` with a current code."""
    step = verify_totp(secret, code, 0)
    if step is None:
        return False
    user.totp_secret = secret
    user.totp_enabled = True
    user.totp_last_step = step
    audit(session, actor, "user.totp_enable", user.tenant_id, username=user.username)
    return True


def user_dict(u: WebUser) -> dict[str, object]:
    return {
        "id": u.id,
        "username": u.username,
        "display_name": u.display_name,
        "role": u.role,
        "tenant": u.tenant_id,
        "partner": u.partner_id,
        "totp": u.totp_enabled,
        "disabled": u.disabled,
        "locked_until": u.locked_until.isoformat() if u.locked_until else None,
        "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None,
    }


# ---------------------------------------------------------------------------- sign-in


@dataclass
class SignInGuard:
    """Per-source limits in memory: failed sign-ins and distinct accounts tried."""

    settings: WebSettings

    def __post_init__(self) -> None:
        self.failures = RateLimiter(self.settings.source_window_seconds)

    def check(self, source: str) -> None:
        if self.failures.count(source) >= self.settings.source_failures:
            raise SignInError("rate_limited_source", status=429)
        if self.failures.distinct(source) >= self.settings.source_accounts:
            raise SignInError("rate_limited_accounts", status=429)

    def failed(self, source: str, username: str) -> None:
        self.failures.hit(source, username)


def authenticate_password(
    session: Session,
    guard: SignInGuard,
    username: str,
    password: str,
    source: str,
    *,
    now: datetime | None = None,
) -> WebUser:
    """The user if the password is right and nothing blocks them; else ``SignInError``."""
    now = now or _now()
    name = username.strip().lower()[:200]
    try:
        guard.check(source)
    except SignInError as exc:
        audit(session, name or "-", "signin.refused", None, reason=exc.reason, source=source)
        raise
    user = session.scalar(select(WebUser).where(WebUser.username == name)) if name else None
    ok = verify_password(user.password_hash if user else None, password[:1024])
    if user is None:
        guard.failed(source, name)
        audit(session, name or "-", "signin.failed", None, reason="unknown_user", source=source)
        raise SignInError("unknown_user")
    if user.locked_until is not None and user.locked_until > now:
        guard.failed(source, name)
        audit(session, name, "signin.refused", user.tenant_id, reason="locked", source=source)
        # answered like a wrong password: a distinct status would tell which accounts exist
        raise SignInError("locked")
    if user.disabled:
        guard.failed(source, name)
        audit(session, name, "signin.refused", user.tenant_id, reason="disabled", source=source)
        raise SignInError("disabled")
    if not ok:
        guard.failed(source, name)
        user.failed_logins = (user.failed_logins or 0) + 1
        reason = "bad_password"
        if user.failed_logins >= guard.settings.lockout_failures:
            user.locked_until = now + guard.settings.lockout_for
            user.failed_logins = 0
            reason = "bad_password_locked"
        audit(session, name, "signin.failed", user.tenant_id, reason=reason, source=source)
        raise SignInError(reason)
    return user


def complete_totp(
    session: Session, guard: SignInGuard, user: WebUser, code: str, source: str, *, at: float | None = None
) -> None:
    """Check the second factor; a replayed or wrong code counts as a failed sign-in."""
    guard.check(source)
    step = verify_totp(user.totp_secret or "", code[:16], user.totp_last_step or 0, at=at)
    if step is None:
        guard.failed(source, user.username)
        user.failed_logins = (user.failed_logins or 0) + 1
        if user.failed_logins >= guard.settings.lockout_failures:
            user.locked_until = _now() + guard.settings.lockout_for
            user.failed_logins = 0
        audit(session, user.username, "signin.failed", user.tenant_id, reason="bad_totp", source=source)
        raise SignInError("bad_totp")
    user.totp_last_step = step


def start_session(
    session: Session, user: WebUser, settings: WebSettings, source: str, *, mfa_done: bool
) -> tuple[str, WebSession]:
    """A new session (cookie value, row). Signing in always makes a new id (no fixation)."""
    token, digest = new_token("mms_")
    now = _now()
    ws = WebSession(
        id=digest,
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        mfa_done=mfa_done,
        created_at=now,
        last_seen_at=now,
        expires_at=now + settings.session_absolute,
        source_ip=source[:64],
    )
    session.add(ws)
    if mfa_done:
        finish_signin(session, user, source)
    session.flush()
    return token, ws


def finish_signin(session: Session, user: WebUser, source: str) -> None:
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = _now()
    audit(session, user.username, "signin.ok", user.tenant_id, source=source, role=user.role)


def load_session(
    session: Session, cookie: str, settings: WebSettings, *, now: datetime | None = None
) -> tuple[WebSession, WebUser] | None:
    """The live session behind a cookie value; expired or idle sessions are deleted."""
    now = now or _now()
    ws = session.get(WebSession, hash_token(cookie[:200]))
    if ws is None:
        return None
    user = session.get(WebUser, ws.user_id)
    if (
        user is None
        or user.disabled
        or ws.expires_at <= now
        or ws.last_seen_at + settings.session_idle <= now
    ):
        session.delete(ws)
        session.commit()
        return None
    if now - ws.last_seen_at > timedelta(seconds=30):  # keep writes rare
        ws.last_seen_at = now
        session.commit()
    return ws, user


def end_session(session: Session, ws: WebSession, user: WebUser) -> None:
    session.delete(ws)
    audit(session, user.username, "signout", user.tenant_id)


# ---------------------------------------------------------------------------- API tokens


def create_token(
    session: Session,
    tenant_id: str,
    name: str,
    *,
    role: str = "tenant_viewer",
    days: int | None = None,
    actor: str = "cli",
) -> tuple[ApiToken, str]:
    """A token for scripts, scoped to ``tenant_id``; returns (row, token shown once)."""
    if session.get(Tenant, tenant_id) is None:
        raise AccountError(f"no tenant {tenant_id!r}")
    if role not in (*TENANT_ROLES, "analyst"):
        raise AccountError("token role must be tenant_viewer, tenant_owner or analyst")
    token, digest = new_token("mmt_")
    row = ApiToken(
        token_hash=digest,
        name=name[:200],
        tenant_id=tenant_id,
        role=role,
        created_by=actor,
        expires_at=_now() + timedelta(days=days) if days else None,
    )
    session.add(row)
    session.flush()
    audit(session, actor, "token.create", tenant_id, token_id=row.id, name=name, role=role)
    return row, token


def revoke_token(session: Session, token_id: int, *, actor: str = "cli") -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise AccountError(f"no token {token_id}")
    if row.revoked_at is None:
        row.revoked_at = _now()
        audit(session, actor, "token.revoke", row.tenant_id, token_id=row.id)
    return row


def list_tokens(session: Session, tenant_id: str | None = None) -> list[ApiToken]:
    stmt = select(ApiToken).order_by(ApiToken.id)
    if tenant_id is not None:
        stmt = stmt.where(ApiToken.tenant_id == tenant_id)
    return list(session.scalars(stmt))


def token_dict(t: ApiToken) -> dict[str, object]:
    return {
        "id": t.id,
        "name": t.name,
        "tenant": t.tenant_id,
        "role": t.role,
        "created_by": t.created_by,
        "created_at": t.created_at.isoformat(),
        "expires_at": t.expires_at.isoformat() if t.expires_at else None,
        "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
        "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
    }


def load_token(session: Session, token: str, *, now: datetime | None = None) -> ApiToken | None:
    now = now or _now()
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token[:200])))
    if row is None or row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        return None
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        row.last_used_at = now
        session.commit()
    return row
