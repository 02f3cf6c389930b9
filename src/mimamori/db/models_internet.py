"""Control-plane tables of the internet-facing area: checkout pages under integrity watch,
and the systems of a tenant that hold personal or card data (for the PPC report duties)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mimamori.db.models import Base, utcnow


class CheckoutPage(Base):
    """A payment page of a tenant's web shop and the approved baseline of the scripts it loads.

    ``baseline`` is a list of ``{"kind": "external"|"inline", "src": url|None, "sha256": hex}``;
    ``last_result`` the outcome of the newest check (``ok``, ``changed``, ``error``) with details.
    """

    __tablename__ = "checkout_page"
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    name: Mapped[str | None] = mapped_column(String(200))
    baseline: Mapped[list[Any]] = mapped_column(default=list)
    approved_at: Mapped[datetime | None]
    approved_by: Mapped[str | None] = mapped_column(String(200))
    last_checked_at: Mapped[datetime | None]
    last_status: Mapped[str | None] = mapped_column(String(16))
    last_result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (UniqueConstraint("tenant_id", "url"),)


class DataScope(Base):
    """A system of a tenant that holds personal data and/or card data.

    ``system`` is what incidents name it by: an IP address, a host or site name
    (``shop.example.jp``), or a URL prefix (``https://shop.example.jp/checkout``).
    """

    __tablename__ = "data_scope"
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    system: Mapped[str] = mapped_column(String(2048))
    name: Mapped[str | None] = mapped_column(String(200))
    personal_data: Mapped[bool] = mapped_column(Boolean, default=True)
    card_data: Mapped[bool] = mapped_column(Boolean, default=False)
    sensitive_data: Mapped[bool] = mapped_column(Boolean, default=False)  # 要配慮個人情報
    persons: Mapped[int | None] = mapped_column(Integer)  # about how many people
    encrypted: Mapped[bool] = mapped_column(Boolean, default=False)  # strong encryption: exempt
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (UniqueConstraint("tenant_id", "system"),)
