"""Partners, trust groups, consent and provider permissions (tenant-scoped where owned).

A partner row is owned by one tenant. Trust groups span tenants; a member is a tenant or
one of a tenant's partners, and nothing is shared with a member that has not consented.
"""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mimamori.db.models import Incident, Tenant
from mimamori.db.models_share import (
    Partner,
    PartnerContact,
    ShareApiKey,
    SharingPermission,
    TrustGroup,
    TrustGroupMember,
)
from mimamori.db.repo import audit, hash_token
from mimamori.share.tlp import TLP

RELATIONS = ("supplier", "customer", "logistics", "outsourcer", "site", "group_company", "other")
GROUP_KINDS = ("supply_chain", "industry")
ROLES = ("lead", "supplier", "site", "member", "provider")
CONTACT_KINDS = ("staff", "provider")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9-]{1,63}\.)+[a-z]{2,63}$")


class ShareError(Exception):
    """A sharing request that cannot be carried out (shown to the user)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _tenant(session: Session, tenant_id: str) -> Tenant:
    t = session.get(Tenant, tenant_id)
    if t is None:
        raise ShareError(f"unknown tenant {tenant_id!r}")
    return t


# ------------------------------------------------------------------------------ partners


def add_partner(
    session: Session,
    tenant_id: str,
    name: str,
    *,
    relation: str = "supplier",
    domains: list[str] | None = None,
    partner_tenant_id: str | None = None,
    language: str = "ja",
    notes: str | None = None,
    actor: str = "cli",
) -> Partner:
    _tenant(session, tenant_id)
    if relation not in RELATIONS:
        raise ShareError(f"unknown relation {relation!r} ({', '.join(RELATIONS)})")
    if not name.strip():
        raise ShareError("a partner needs a name")
    if partner_tenant_id is not None:
        _tenant(session, partner_tenant_id)
        if partner_tenant_id == tenant_id:
            raise ShareError("a tenant is not its own partner")
    doms = []
    for d in domains or []:
        d = d.strip().lower().rstrip(".")
        if not _DOMAIN.match(d):
            raise ShareError(f"not a domain name: {d!r}")
        doms.append(d)
    if session.scalar(select(Partner).where(Partner.tenant_id == tenant_id, Partner.name == name)):
        raise ShareError(f"tenant {tenant_id!r} already has a partner named {name!r}")
    p = Partner(
        tenant_id=tenant_id,
        name=name.strip(),
        relation=relation,
        domains=doms,
        partner_tenant_id=partner_tenant_id,
        language=language,
        notes=notes,
    )
    session.add(p)
    session.flush()
    audit(session, actor, "share.partner.add", tenant_id, partner=p.id, name=p.name)
    return p


def get_partner(session: Session, tenant_id: str, partner: int | str) -> Partner:
    """A tenant's partner by id or exact name; never another tenant's."""
    stmt = select(Partner).where(Partner.tenant_id == tenant_id)
    if isinstance(partner, int) or str(partner).isdigit():
        stmt = stmt.where(Partner.id == int(partner))
    else:
        stmt = stmt.where(Partner.name == partner)
    p = session.scalar(stmt)
    if p is None:
        raise ShareError(f"tenant {tenant_id!r} has no partner {partner!r}")
    return p


def list_partners(session: Session, tenant_id: str) -> list[Partner]:
    return list(session.scalars(select(Partner).where(Partner.tenant_id == tenant_id).order_by(Partner.id)))


def add_contact(
    session: Session,
    tenant_id: str,
    partner: int | str,
    name: str,
    email: str,
    *,
    phone: str | None = None,
    role: str | None = None,
    kind: str = "staff",
    actor: str = "cli",
) -> PartnerContact:
    p = get_partner(session, tenant_id, partner)
    if not _EMAIL.match(email.strip()):
        raise ShareError(f"not a mail address: {email!r}")
    if kind not in CONTACT_KINDS:
        raise ShareError(f"unknown contact kind {kind!r} ({', '.join(CONTACT_KINDS)})")
    c = PartnerContact(
        partner_id=p.id,
        tenant_id=tenant_id,
        name=name,
        email=email.strip(),
        phone=phone,
        role=role,
        kind=kind,
    )
    session.add(c)
    session.flush()
    audit(session, actor, "share.contact.add", tenant_id, partner=p.id, contact=c.id)
    return c


def partner_dict(p: Partner) -> dict[str, Any]:
    return {
        "id": p.id,
        "tenant": p.tenant_id,
        "name": p.name,
        "relation": p.relation,
        "domains": p.domains,
        "customer_tenant": p.partner_tenant_id,
        "is_customer": p.partner_tenant_id is not None,
        "language": p.language,
        "contacts": [
            {
                "id": c.id,
                "name": c.name,
                "email": c.email,
                "phone": c.phone,
                "role": c.role,
                "kind": c.kind,
                "active": c.active,
            }
            for c in p.contacts
        ],
    }


# ------------------------------------------------------------------------------ trust groups


def add_group(
    session: Session,
    slug: str,
    name: str,
    *,
    kind: str = "supply_chain",
    lead_tenant_id: str | None = None,
    description: str | None = None,
    actor: str = "cli",
) -> TrustGroup:
    if not _SLUG.match(slug):
        raise ShareError(f"group id {slug!r}: lower-case letters, digits, - and _ only")
    if kind not in GROUP_KINDS:
        raise ShareError(f"unknown group kind {kind!r} ({', '.join(GROUP_KINDS)})")
    if session.scalar(select(TrustGroup).where(TrustGroup.slug == slug)):
        raise ShareError(f"trust group {slug!r} already exists")
    g = TrustGroup(
        slug=slug,
        name=name,
        kind=kind,
        lead_tenant_id=lead_tenant_id,
        description=description,
        collection_id=str(uuid.uuid4()),
    )
    session.add(g)
    session.flush()
    if lead_tenant_id is not None:
        _tenant(session, lead_tenant_id)
        # the lead company founds the group: its consent is the act of creating it
        add_member(session, slug, tenant_id=lead_tenant_id, role="lead", consent=True, actor=actor)
    audit(session, actor, "share.group.add", lead_tenant_id, group=slug)
    return g


def get_group(session: Session, group: str | int) -> TrustGroup:
    stmt = select(TrustGroup)
    if isinstance(group, int):
        stmt = stmt.where(TrustGroup.id == group)
    else:
        stmt = stmt.where((TrustGroup.slug == group) | (TrustGroup.collection_id == group))
    g = session.scalar(stmt)
    if g is None:
        raise ShareError(f"unknown trust group {group!r}")
    return g


def list_groups(session: Session, tenant_id: str | None = None) -> list[TrustGroup]:
    """All groups (provider view) or the groups a tenant belongs to or leads."""
    stmt = select(TrustGroup).order_by(TrustGroup.id)
    if tenant_id is not None:
        member_of = select(TrustGroupMember.group_id).where(TrustGroupMember.tenant_id == tenant_id)
        stmt = stmt.where(TrustGroup.id.in_(member_of) | (TrustGroup.lead_tenant_id == tenant_id))
    return list(session.scalars(stmt))


def add_member(
    session: Session,
    group: str,
    *,
    tenant_id: str | None = None,
    partner_of: str | None = None,
    partner: int | str | None = None,
    role: str = "member",
    consent: bool = False,
    consent_by: str | None = None,
    actor: str = "cli",
) -> TrustGroupMember:
    """A tenant (``tenant_id``) or a tenant's partner (``partner_of`` + ``partner``)."""
    g = get_group(session, group)
    if role not in ROLES:
        raise ShareError(f"unknown role {role!r} ({', '.join(ROLES)})")
    partner_id = None
    if tenant_id is not None and partner is not None:
        raise ShareError("a member is a tenant or a partner, not both")
    if tenant_id is not None:
        _tenant(session, tenant_id)
    elif partner is not None and partner_of is not None:
        partner_id = get_partner(session, partner_of, partner).id
    else:
        raise ShareError("name a tenant, or a partner and the tenant it belongs to")
    exists = session.scalar(
        select(TrustGroupMember).where(
            TrustGroupMember.group_id == g.id,
            TrustGroupMember.tenant_id.is_(None)
            if tenant_id is None
            else TrustGroupMember.tenant_id == tenant_id,
            TrustGroupMember.partner_id.is_(None)
            if partner_id is None
            else TrustGroupMember.partner_id == partner_id,
        )
    )
    if exists is not None:
        raise ShareError(f"already a member of {g.slug}")
    m = TrustGroupMember(
        group_id=g.id,
        tenant_id=tenant_id,
        partner_id=partner_id,
        role=role,
        consent=consent,
        consent_at=_now() if consent else None,
        consent_by=(consent_by or actor) if consent else None,
    )
    session.add(m)
    session.flush()
    audit(session, actor, "share.member.add", tenant_id or partner_of, group=g.slug, member=m.id, role=role)
    return m


def set_consent(
    session: Session, group: str, member_id: int, consent: bool, *, by: str, actor: str = "cli"
) -> TrustGroupMember:
    g = get_group(session, group)
    m = session.scalar(
        select(TrustGroupMember).where(TrustGroupMember.id == member_id, TrustGroupMember.group_id == g.id)
    )
    if m is None:
        raise ShareError(f"trust group {g.slug!r} has no member {member_id}")
    m.consent = consent
    m.consent_at = _now()
    m.consent_by = by
    audit(
        session, actor, "share.member.consent", m.tenant_id, group=g.slug, member=m.id, consent=consent, by=by
    )
    session.flush()
    return m


def member_name(session: Session, m: TrustGroupMember) -> str:
    if m.tenant_id is not None:
        t = session.get(Tenant, m.tenant_id)
        return t.name if t else m.tenant_id
    p = session.get(Partner, m.partner_id)
    return p.name if p else f"partner {m.partner_id}"


def member_contacts(session: Session, m: TrustGroupMember) -> list[tuple[str, str, str]]:
    """(name, email, kind) of whom to mail for a member: the tenant's contact, or the
    partner's active contacts."""
    if m.tenant_id is not None:
        t = session.get(Tenant, m.tenant_id)
        if t is not None and t.contact_email:
            return [(t.contact_name or t.name, t.contact_email, "staff")]
        return []
    p = session.get(Partner, m.partner_id)
    return [(c.name, c.email, c.kind) for c in p.contacts if c.active] if p else []


def group_dict(session: Session, g: TrustGroup) -> dict[str, Any]:
    return {
        "id": g.slug,
        "name": g.name,
        "kind": g.kind,
        "lead": g.lead_tenant_id,
        "collection": g.collection_id,
        "members": [
            {
                "member": m.id,
                "tenant": m.tenant_id,
                "partner": m.partner_id,
                "name": member_name(session, m),
                "role": m.role,
                "consent": m.consent,
                "consent_at": m.consent_at.isoformat() if m.consent_at else None,
                "consent_by": m.consent_by,
            }
            for m in g.members
        ],
    }


def consenting_members(g: TrustGroup) -> list[TrustGroupMember]:
    return [m for m in g.members if m.consent]


# ------------------------------------------------------------------------------ permissions


def grant_provider_permission(
    session: Session,
    tenant_id: str,
    provider: str,
    *,
    granted_by: str,
    max_tlp: TLP = TLP.AMBER_STRICT,
    incident_id: int | None = None,
    evidence: str | None = None,
    actor: str = "cli",
) -> SharingPermission:
    """Record the originator's permission to pass its AMBER/AMBER+STRICT to ``provider``."""
    _tenant(session, tenant_id)
    if max_tlp is TLP.RED:
        raise ShareError("TLP:RED is never passed to a provider; permission goes up to AMBER+STRICT")
    if incident_id is not None:
        inc = session.get(Incident, incident_id)
        if inc is None or inc.tenant_id != tenant_id:
            raise ShareError(f"tenant {tenant_id!r} has no incident {incident_id}")
    perm = SharingPermission(
        tenant_id=tenant_id,
        provider=provider,
        incident_id=incident_id,
        max_tlp=max_tlp.value,
        granted_by=granted_by,
        evidence=evidence,
    )
    session.add(perm)
    session.flush()
    audit(session, actor, "share.permission.grant", tenant_id, provider=provider, max_tlp=max_tlp.value,
          incident=incident_id, granted_by=granted_by)  # fmt: skip
    return perm


def revoke_provider_permission(
    session: Session, tenant_id: str, permission_id: int, *, actor: str = "cli"
) -> None:
    perm = session.scalar(
        select(SharingPermission).where(
            SharingPermission.id == permission_id, SharingPermission.tenant_id == tenant_id
        )
    )
    if perm is None:
        raise ShareError(f"tenant {tenant_id!r} has no permission {permission_id}")
    perm.revoked_at = _now()
    audit(session, actor, "share.permission.revoke", tenant_id, permission=permission_id)
    session.flush()


def has_provider_permission(
    session: Session, tenant_id: str, provider: str, tlp: TLP, incident_id: int | None = None
) -> bool:
    """Has the originator ``tenant_id`` allowed ``tlp`` information to go to ``provider``?"""
    rows = session.scalars(
        select(SharingPermission).where(
            SharingPermission.tenant_id == tenant_id,
            SharingPermission.provider == provider,
            SharingPermission.revoked_at.is_(None),
        )
    )
    for perm in rows:
        if perm.incident_id is not None and perm.incident_id != incident_id:
            continue
        if tlp <= TLP.parse(perm.max_tlp):
            return True
    return False


def list_permissions(session: Session, tenant_id: str) -> list[SharingPermission]:
    return list(
        session.scalars(
            select(SharingPermission)
            .where(SharingPermission.tenant_id == tenant_id)
            .order_by(SharingPermission.id)
        )
    )


def permission_dict(p: SharingPermission) -> dict[str, Any]:
    return {
        "id": p.id,
        "tenant": p.tenant_id,
        "provider": p.provider,
        "incident": p.incident_id,
        "max_tlp": p.max_tlp,
        "granted_by": p.granted_by,
        "evidence": p.evidence,
        "granted_at": p.granted_at.isoformat(),
        "revoked_at": p.revoked_at.isoformat() if p.revoked_at else None,
    }


# ------------------------------------------------------------------------------ API keys


def add_api_key(
    session: Session,
    label: str,
    *,
    group: str | None = None,
    member_id: int | None = None,
    can_write: bool = False,
    actor: str = "cli",
) -> tuple[ShareApiKey, str]:
    """A bearer token for the TAXII server: a consenting member of one group, or (no group)
    a provider analyst key. Only the hash is stored; the token is returned once."""
    group_id = None
    if group is not None:
        g = get_group(session, group)
        group_id = g.id
        if member_id is not None:
            m = session.get(TrustGroupMember, member_id)
            if m is None or m.group_id != g.id:
                raise ShareError(f"trust group {g.slug!r} has no member {member_id}")
    token = "mmt_" + secrets.token_urlsafe(32)
    key = ShareApiKey(
        token_hash=hash_token(token), label=label, group_id=group_id, member_id=member_id, can_write=can_write
    )
    session.add(key)
    session.flush()
    audit(session, actor, "share.apikey.add", None, label=label, group=group, write=can_write)
    return key, token
