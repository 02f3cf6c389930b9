"""Supply-chain sharing tables: partners, trust groups, TLP permissions, warnings and their
acknowledgements, check-and-report requests, information classes, and the TAXII store.

A *partner* belongs to one tenant (its trading partner); it may itself be a tenant of the
provider (``partner_tenant_id``) or not. A *trust group* spans tenants and partners (a lead
company and its suppliers, an industry group); membership carries a role and the member's
consent, and nothing is shared with a member who has not consented.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mimamori.db.models import Base, utcnow


class Partner(Base):
    """A trading partner of a tenant (supplier, customer, logistics, overseas site ...)."""

    __tablename__ = "share_partner"
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    relation: Mapped[str] = mapped_column(String(32), default="supplier")  # supplier, customer, ...
    # the partner's own mail domains: a warning reaches partners these domains mail with
    domains: Mapped[list[Any]] = mapped_column(default=list)
    # set when the partner is itself a customer of the provider (portal delivery)
    partner_tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenant.id", ondelete="SET NULL"))
    language: Mapped[str] = mapped_column(String(8), default="ja")
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    contacts: Mapped[list[PartnerContact]] = relationship(
        cascade="all, delete-orphan", order_by="PartnerContact.id", passive_deletes=True
    )
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)


class PartnerContact(Base):
    """A person (or role mailbox) at a partner; ``kind=provider`` is the partner's own
    security provider, which is "another provider" for TLP AMBER purposes."""

    __tablename__ = "share_partner_contact"
    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("share_partner.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(50))
    role: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16), default="staff")  # staff, provider
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class TrustGroup(Base):
    """A closed sharing community: a lead company and its suppliers, or an industry group."""

    __tablename__ = "share_trust_group"
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32), default="supply_chain")  # supply_chain, industry
    lead_tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenant.id", ondelete="SET NULL"))
    description: Mapped[str | None] = mapped_column(Text)
    collection_id: Mapped[str] = mapped_column(String(36), unique=True)  # TAXII collection, MISP org
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    members: Mapped[list[TrustGroupMember]] = relationship(
        cascade="all, delete-orphan", order_by="TrustGroupMember.id", passive_deletes=True
    )


class TrustGroupMember(Base):
    """A tenant or a (non-customer) partner in a trust group, its role and its consent."""

    __tablename__ = "share_trust_member"
    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("share_trust_group.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"))
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("share_partner.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(32), default="member")  # lead, supplier, site, member
    consent: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_at: Mapped[datetime | None]
    consent_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (UniqueConstraint("group_id", "tenant_id", "partner_id"),)


class SharingPermission(Base):
    """An originator's permission to pass its AMBER / AMBER+STRICT information to another
    security provider (TLP 2.0 note for provider platforms). ``incident_id`` None = any."""

    __tablename__ = "share_permission"
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(200))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incident.id", ondelete="CASCADE"))
    max_tlp: Mapped[str] = mapped_column(String(16), default="AMBER+STRICT")
    granted_by: Mapped[str] = mapped_column(String(200))
    evidence: Mapped[str | None] = mapped_column(Text)  # how it was given (mail, contract clause)
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class ShareWarning(Base):
    """A warning drafted from an incident and sent to the partners it may reach."""

    __tablename__ = "share_warning"
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id", ondelete="CASCADE"), index=True)
    tlp: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8), default="ja")
    subject_ja: Mapped[str] = mapped_column(Text)
    body_ja: Mapped[str] = mapped_column(Text)
    subject_en: Mapped[str] = mapped_column(Text)
    body_en: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="draft")  # draft, sent
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]

    recipients: Mapped[list[WarningRecipient]] = relationship(
        cascade="all, delete-orphan", order_by="WarningRecipient.id", passive_deletes=True
    )


class WarningRecipient(Base):
    """One contact a warning goes to, its delivery and its acknowledgement."""

    __tablename__ = "share_warning_recipient"
    id: Mapped[int] = mapped_column(primary_key=True)
    warning_id: Mapped[int] = mapped_column(ForeignKey("share_warning.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    partner_id: Mapped[int] = mapped_column(ForeignKey("share_partner.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("share_partner_contact.id", ondelete="SET NULL")
    )
    email: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str | None] = mapped_column(Text)  # why this partner may be reached
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    portal_tenant_id: Mapped[str | None] = mapped_column(String(64), index=True)
    delivered_at: Mapped[datetime | None]
    delivery_error: Mapped[str | None] = mapped_column(Text)
    acknowledged_at: Mapped[datetime | None]
    ack_by: Mapped[str | None] = mapped_column(String(200))
    ack_note: Mapped[str | None] = mapped_column(Text)
    chase_count: Mapped[int] = mapped_column(Integer, default=0)
    last_chased_at: Mapped[datetime | None]


class CheckRequest(Base):
    """A lead company (or the provider for a group) asks members to check for a threat."""

    __tablename__ = "share_check_request"
    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("share_trust_group.id", ondelete="CASCADE"), index=True)
    requester_tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenant.id", ondelete="SET NULL"))
    requested_by: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(Text)
    instructions: Mapped[str] = mapped_column(Text)
    indicators: Mapped[list[Any]] = mapped_column(default=list)
    tlp: Mapped[str] = mapped_column(String(16), default="AMBER")
    deadline: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]

    responses: Mapped[list[CheckResponse]] = relationship(
        cascade="all, delete-orphan", order_by="CheckResponse.id", passive_deletes=True
    )


class CheckResponse(Base):
    """One member's answer to a check request (pending until answered)."""

    __tablename__ = "share_check_response"
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("share_check_request.id", ondelete="CASCADE"), index=True
    )
    member_id: Mapped[int] = mapped_column(ForeignKey("share_trust_member.id", ondelete="CASCADE"))
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, clean, found, unable
    answer: Mapped[str | None] = mapped_column(Text)
    findings: Mapped[list[Any]] = mapped_column(default=list)  # indicator values seen
    answered_by: Mapped[str | None] = mapped_column(String(200))
    answered_at: Mapped[datetime | None]
    chase_count: Mapped[int] = mapped_column(Integer, default=0)
    last_chased_at: Mapped[datetime | None]
    __table_args__ = (UniqueConstraint("request_id", "member_id"),)


class InfoClassTag(Base):
    """An information class held by an asset or a data store of a tenant.

    Either ``asset_id`` or ``host`` (an address or CIDR) ties the tag to incidents; a data
    store without a host is listed by name for the analyst.
    """

    __tablename__ = "share_info_class"
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    info_class: Mapped[str] = mapped_column(String(32))  # personal_data, card_data, export_controlled
    asset_id: Mapped[int | None] = mapped_column(ForeignKey("asset.id", ondelete="CASCADE"))
    host: Mapped[str | None] = mapped_column(String(64))
    store: Mapped[str | None] = mapped_column(String(200))  # data store name (DB, file share, SaaS)
    records: Mapped[int | None] = mapped_column(Integer)  # rough number of people / records
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ShareApiKey(Base):
    """A bearer token for the TAXII server and the sharing API: one member of one group
    (``group_id`` None: provider-wide analyst key)."""

    __tablename__ = "share_api_key"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(200))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("share_trust_group.id", ondelete="CASCADE"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("share_trust_member.id", ondelete="CASCADE"))
    can_write: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TaxiiObject(Base):
    """One version of a STIX object in a trust group's collection."""

    __tablename__ = "share_taxii_object"
    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("share_trust_group.id", ondelete="CASCADE"))
    object_id: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))  # modified (or created) as STIX timestamp
    spec_version: Mapped[str] = mapped_column(String(8), default="2.1")
    date_added: Mapped[datetime]
    tlp: Mapped[str | None] = mapped_column(String(16))
    added_by: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[dict[str, Any]] = mapped_column(default=dict)
    __table_args__ = (
        UniqueConstraint("group_id", "object_id", "version"),
        Index("ix_share_taxii_object_group_added", "group_id", "date_added"),
    )


class TaxiiStatus(Base):
    """The status resource of one TAXII POST."""

    __tablename__ = "share_taxii_status"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("share_trust_group.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="complete")
    request_timestamp: Mapped[datetime] = mapped_column(default=utcnow)
    total_count: Mapped[int] = mapped_column(Integer, default=0)
    success_count: Mapped[int] = mapped_column(Integer, default=0)
    failure_count: Mapped[int] = mapped_column(Integer, default=0)
    pending_count: Mapped[int] = mapped_column(Integer, default=0)
    successes: Mapped[list[Any]] = mapped_column(default=list)
    failures: Mapped[list[Any]] = mapped_column(default=list)


class BlockEntry(Base):
    """One value on a tenant's block list (ip, domain, url) that UTMs pull.

    ``pending`` entries (from a partner's incident) go live only when an analyst approves
    them; ``active`` entries are served until ``expires_at``.
    """

    __tablename__ = "share_block_entry"
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(16))  # ip, domain, url
    value: Mapped[str] = mapped_column(String(2048))
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending, active, rejected, expired
    source: Mapped[str] = mapped_column(String(200))  # analyst, incident:<tenant>:<id>
    reason: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(200))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    __table_args__ = (
        UniqueConstraint("tenant_id", "type", "value"),
        Index("ix_share_block_entry_tenant_state", "tenant_id", "state"),
    )


class BlockFeedToken(Base):
    """A token a tenant's UTM uses to pull its block lists."""

    __tablename__ = "share_block_token"
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(200))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
