"""Collection tables: batches already processed (exactly-once) and syslog sender addresses.

``collect_batch`` gets one row per processed batch id, written in the same transaction as
the batch's alerts and ingest run; its primary key makes a second processing of the same
batch (a redelivery after a crash, two workers racing) fail instead of counting twice.
``collect_sender`` maps a syslog sender's source address (a CIDR) to a sensor, and so to
its tenant.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mimamori.db.models import Base, utcnow


class CollectBatch(Base):
    """A batch from the spool or JetStream, stored once."""

    __tablename__ = "collect_batch"
    batch_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    sensor_id: Mapped[int | None] = mapped_column(ForeignKey("sensor.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(64))
    lines_read: Mapped[int] = mapped_column(Integer, default=0)
    stored: Mapped[int] = mapped_column(Integer, default=0)
    quarantined: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    processed_at: Mapped[datetime] = mapped_column(default=utcnow)


class CollectSender(Base):
    """Syslog from ``network`` belongs to ``sensor_id`` (most specific network wins)."""

    __tablename__ = "collect_sender"
    id: Mapped[int] = mapped_column(primary_key=True)
    sensor_id: Mapped[int] = mapped_column(ForeignKey("sensor.id", ondelete="CASCADE"), index=True)
    network: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
