"""Control-plane tables (SQLAlchemy 2): tenants, sensors, intel, alerts, incidents, assets.

Low-volume records live here; events live in the Parquet archive. Every tenant-owned row
carries ``tenant_id`` and every query over such rows filters on it (see ``db.repo``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# JSONB on PostgreSQL: plain json has no equality operator (DISTINCT, GROUP BY fail).
JsonType = JSON().with_variant(JSONB(), "postgresql")

#: constraint names are fixed so SQLite batch migrations can alter or drop them later
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JsonType, list[Any]: JsonType}  # noqa: RUF012


class Provider(Base):
    __tablename__ = "provider"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Tenant(Base):
    """An SME customer of the provider."""

    __tablename__ = "tenant"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # slug, used in paths
    provider_id: Mapped[int] = mapped_column(ForeignKey("provider.id"))
    name: Mapped[str] = mapped_column(String(200))
    contact_name: Mapped[str | None] = mapped_column(String(200))
    contact_email: Mapped[str | None] = mapped_column(String(320))
    contact_phone: Mapped[str | None] = mapped_column(String(50))
    networks: Mapped[list[Any]] = mapped_column(default=list)  # internal CIDRs
    sites: Mapped[list[Any]] = mapped_column(default=list)  # [{"name", "address"}]
    service_level: Mapped[str] = mapped_column(String(32), default="standard")
    language: Mapped[str] = mapped_column(String(8), default="ja")
    retention_days: Mapped[int] = mapped_column(Integer, default=396)  # ~13 months of events
    intel_private_ranges: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    provider: Mapped[Provider] = relationship()


class Sensor(Base):
    """A data source of a tenant (a UTM, a Zeek box, an agent); authenticates by token."""

    __tablename__ = "sensor"
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(64))  # parser name
    token_hash: Mapped[str | None] = mapped_column(String(128), unique=True)
    last_seen_at: Mapped[datetime | None]
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)


class IngestRun(Base):
    """One file or request ingested: what came in, what was stored, what was quarantined."""

    __tablename__ = "ingest_run"
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    sensor_id: Mapped[int | None] = mapped_column(ForeignKey("sensor.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    lines_read: Mapped[int] = mapped_column(Integer, default=0)
    stored: Mapped[int] = mapped_column(Integer, default=0)
    quarantined: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    alerts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class IntelSource(Base):
    __tablename__ = "intel_source"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(64))  # feodo_csv, urlhaus_csv, misp_feed, stix ...
    url: Mapped[str | None] = mapped_column(Text)
    confidence: Mapped[int] = mapped_column(Integer, default=70)
    last_imported_at: Mapped[datetime | None]


class Indicator(Base):
    """One observable value, deduplicated across sources (see ``IndicatorSighting``)."""

    __tablename__ = "indicator"
    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(16))  # ip, cidr, domain, url, md5, sha1, sha256
    value: Mapped[str] = mapped_column(String(2048))
    threat: Mapped[str | None] = mapped_column(String(200))  # malware family / threat name
    confidence: Mapped[int] = mapped_column(Integer, default=50)
    first_seen: Mapped[datetime | None]
    last_seen: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    tags: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (UniqueConstraint("type", "value"),)


class IndicatorSighting(Base):
    """Which source reported an indicator, and what it said about it."""

    __tablename__ = "indicator_sighting"
    id: Mapped[int] = mapped_column(primary_key=True)
    indicator_id: Mapped[int] = mapped_column(ForeignKey("indicator.id", ondelete="CASCADE"), index=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("intel_source.id", ondelete="CASCADE"), index=True)
    reference: Mapped[str | None] = mapped_column(Text)
    threat: Mapped[str | None] = mapped_column(String(200))
    confidence: Mapped[int | None] = mapped_column(Integer)
    first_seen: Mapped[datetime | None]
    last_seen: Mapped[datetime | None]
    __table_args__ = (UniqueConstraint("indicator_id", "source_id"),)


class Incident(Base):
    __tablename__ = "incident"
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(32), default="new")
    title: Mapped[str] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    origin: Mapped[str] = mapped_column(String(32), default="detection")  # helpdesk, notice
    reporter: Mapped[str | None] = mapped_column(String(200))
    not_security: Mapped[bool] = mapped_column(Boolean, default=False)
    alert_count: Mapped[int] = mapped_column(Integer, default=0)
    first_seen: Mapped[datetime | None]
    last_seen: Mapped[datetime | None]
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    acknowledged_at: Mapped[datetime | None]
    first_response_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    ack_due_at: Mapped[datetime | None]
    response_due_at: Mapped[datetime | None]

    keys: Mapped[list[IncidentKey]] = relationship(cascade="all, delete-orphan", passive_deletes=True)
    timeline: Mapped[list[TimelineEntry]] = relationship(
        cascade="all, delete-orphan", order_by="TimelineEntry.id", passive_deletes=True
    )
    tasks: Mapped[list[PlaybookTask]] = relationship(
        cascade="all, delete-orphan", order_by="PlaybookTask.position", passive_deletes=True
    )
    __table_args__ = (Index("ix_incident_tenant_state", "tenant_id", "state"),)


class IncidentKey(Base):
    """A grouping key of an incident (``host:10.0.0.5``, ``sha256:…``, ``subject:…``)."""

    __tablename__ = "incident_key"
    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(512))
    __table_args__ = (
        UniqueConstraint("incident_id", "key"),
        Index("ix_incident_key_lookup", "tenant_id", "kind", "key"),
    )


class TimelineEntry(Base):
    __tablename__ = "timeline_entry"
    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    entry: Mapped[str] = mapped_column(String(32))  # opened, state, note, alert
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str | None] = mapped_column(String(32))
    text: Mapped[str | None] = mapped_column(Text)


class PlaybookTask(Base):
    __tablename__ = "playbook_task"
    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(64))
    phase: Mapped[str] = mapped_column(String(32))
    title_ja: Mapped[str] = mapped_column(Text)
    title_en: Mapped[str] = mapped_column(Text)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    done_by: Mapped[str | None] = mapped_column(String(200))
    done_at: Mapped[datetime | None]


class Alert(Base):
    """One detector finding; many alerts make one incident."""

    __tablename__ = "alert"
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incident.id", ondelete="SET NULL"), index=True
    )
    detector: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(64))  # incident kind it points to
    severity: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(64))  # internal address involved
    indicator: Mapped[str | None] = mapped_column(String(2048))
    keys: Mapped[list[Any]] = mapped_column(default=list)
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    event_count: Mapped[int] = mapped_column(Integer, default=1)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    dedup_key: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (UniqueConstraint("tenant_id", "dedup_key"),)


class Asset(Base):
    """A device of a tenant; filled by passive inventory (later) and by import."""

    __tablename__ = "asset"
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    mac: Mapped[str | None] = mapped_column(String(32))
    ip: Mapped[str | None] = mapped_column(String(64))
    hostname: Mapped[str | None] = mapped_column(String(255))
    vendor: Mapped[str | None] = mapped_column(String(255))
    os_name: Mapped[str | None] = mapped_column(String(128))
    os_version: Mapped[str | None] = mapped_column(String(128))
    end_of_life: Mapped[bool | None] = mapped_column(Boolean)
    isolated: Mapped[bool] = mapped_column(Boolean, default=False)
    has_antimalware: Mapped[bool | None] = mapped_column(Boolean)
    has_endpoint_agent: Mapped[bool | None] = mapped_column(Boolean)
    risk_score: Mapped[float | None] = mapped_column(Float)
    first_seen: Mapped[datetime | None]
    last_seen: Mapped[datetime | None]
    notes: Mapped[str | None] = mapped_column(Text)
    # passive inventory (assets.inventory): phone/tablet/pc/unknown, and a bounded record of
    # what identified the device (user agents, OS families with when last seen, software)
    device_class: Mapped[str | None] = mapped_column(String(16))
    fingerprint: Mapped[dict[str, Any] | None] = mapped_column(JsonType, default=dict)
    __table_args__ = (
        Index("ix_asset_tenant_mac", "tenant_id", "mac"),
        Index("ix_asset_tenant_ip", "tenant_id", "ip"),
    )


class DhcpLease(Base):
    """One tenure of an address by a device: (mac, ip) from ``start`` while renewals continue.

    ``ends_at`` is when the tenure is presumed over (last renewal plus the assumed lease
    time); ``assets.inventory.lease_at`` answers "which device held this address then".
    """

    __tablename__ = "dhcp_lease"
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"))
    mac: Mapped[str] = mapped_column(String(32))
    ip: Mapped[str] = mapped_column(String(64))
    hostname: Mapped[str | None] = mapped_column(String(255))
    start: Mapped[datetime]
    last_seen: Mapped[datetime]
    ends_at: Mapped[datetime]
    __table_args__ = (
        Index("ix_dhcp_lease_tenant_ip_start", "tenant_id", "ip", "start"),
        Index("ix_dhcp_lease_tenant_mac", "tenant_id", "mac"),
    )


class AuditLog(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    tenant_id: Mapped[str | None] = mapped_column(String(64), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


from mimamori.db import models_collect as _models_collect  # noqa: E402,F401
from mimamori.db import models_internet as _models_internet  # noqa: E402,F401
from mimamori.db import models_share as _models_share  # noqa: E402,F401
from mimamori.db import models_web as _models_web  # noqa: E402,F401
