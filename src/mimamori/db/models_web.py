"""Web console tables: users, server-side sessions, API tokens, the help-desk log and on-site visits.

Passwords are argon2id hashes; session ids and API tokens are stored only as SHA-256 hashes,
so a copy of the database does not let anyone sign in. Tenant-owned rows (help-desk
entries, visits, tenant users and tokens) carry ``tenant_id`` like every other table.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mimamori.db.models import Base, utcnow

#: provider roles see every tenant and must use TOTP; tenant and partner roles see one tenant
ROLES = ("provider_admin", "analyst", "tenant_owner", "tenant_viewer", "partner_viewer")
PROVIDER_ROLES = ("provider_admin", "analyst")
TENANT_ROLES = ("tenant_owner", "tenant_viewer")


class WebUser(Base):
    __tablename__ = "web_user"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(200), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    # the tenant a tenant or partner user belongs to (None for provider roles); a partner
    # viewer reads what that tenant shares with ``partner_id`` (a share_partner row)
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("share_partner.id", ondelete="CASCADE"))
    password_hash: Mapped[str] = mapped_column(String(255))
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    totp_last_step: Mapped[int] = mapped_column(Integer, default=0)  # replayed codes are refused
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    language: Mapped[str] = mapped_column(String(8), default="ja")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]


class WebSession(Base):
    """A signed-in browser. ``id`` is the SHA-256 of the cookie value."""

    __tablename__ = "web_session"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("web_user.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    mfa_done: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    source_ip: Mapped[str | None] = mapped_column(String(64))


class ApiToken(Base):
    """A token for scripts, scoped to one tenant with the rights of ``role``; revocable."""

    __tablename__ = "web_api_token"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32), default="tenant_viewer")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class HelpdeskEntry(Base):
    """A call, mail or portal report to the help desk; triaged into an incident or closed."""

    __tablename__ = "helpdesk_entry"
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    channel: Mapped[str] = mapped_column(String(16))  # phone, mail, portal
    direction: Mapped[str] = mapped_column(String(8), default="in")  # in (from the SME), out
    reporter: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    # open -> incident (opened or linked) | not_security (closed: not a security matter)
    status: Mapped[str] = mapped_column(String(16), default="open")
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incident.id", ondelete="SET NULL"))
    triaged_by: Mapped[str | None] = mapped_column(String(200))
    triaged_at: Mapped[datetime | None]
    triage_note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))


class OnsiteVisit(Base):
    """An escalation from remote support to a visit: who goes, when, and what they found."""

    __tablename__ = "onsite_visit"
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id", ondelete="CASCADE"), index=True)
    engineer: Mapped[str] = mapped_column(String(200))
    planned_at: Mapped[datetime]
    site: Mapped[str | None] = mapped_column(String(300))
    arrived_at: Mapped[datetime | None]
    findings: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
