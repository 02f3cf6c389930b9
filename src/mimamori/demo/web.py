"""Demo accounts and sensors for the web console: who can sign in, and a sensor that fell silent.

Passwords are fixed demo values (printed by ``mimamori demo``); provider users get a fresh
TOTP secret each run. One sensor per tenant and source reports the time its data last
arrived; one is left silent for a day so the silent-sensor check raises its incident.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from mimamori.db import repo
from mimamori.db.models import IngestRun
from mimamori.db.models_share import Partner, WarningRecipient
from mimamori.db.session import session_scope
from mimamori.incidents.sensor_health import check_silent_sensors
from mimamori.web.accounts import create_user
from mimamori.web.security import totp_now

PASSWORD = "mimamori-demo-2025"  # demo only; printed with the users


def add_demo_sensors(engine: Engine, now: datetime | None = None) -> list[dict[str, Any]]:
    """A sensor per (tenant, source) seen in the demo's ingest runs, last heard from 'now';
    the first tenant's first sensor has been silent for 26 hours."""
    now = now or datetime.now(UTC)
    silent: list[dict[str, Any]] = []
    with session_scope(engine) as s:
        pairs = s.execute(
            select(IngestRun.tenant_id, IngestRun.source)
            .group_by(IngestRun.tenant_id, IngestRun.source)
            .order_by(IngestRun.tenant_id, IngestRun.source)
        ).all()
        first = True
        for tenant_id, source in pairs:
            sensor, _token = repo.add_sensor(s, tenant_id, f"{source}-1", source)
            sensor.created_at = now - timedelta(days=30)
            sensor.last_seen_at = now - timedelta(hours=26) if first else now - timedelta(minutes=3)
            first = False
        s.flush()
        for x in check_silent_sensors(s, now=now):
            silent.append({"tenant": x.tenant_id, "sensor": x.name})
    return silent


def add_demo_users(engine: Engine, tenants: list[str]) -> list[dict[str, Any]]:
    """Provider users, an owner and a viewer of the first tenant, and a partner viewer."""
    out: list[dict[str, Any]] = []
    with session_scope(engine) as s:
        owner_tenant = tenants[0]
        specs: list[tuple[str, str, str, str | None, int | None]] = [
            ("admin", "provider_admin", "管理者 / Provider admin", None, None),
            ("analyst", "analyst", "佐藤 (analyst)", None, None),
        ]
        # the SME owner: a tenant with open incidents reads their status in Japanese
        counts = repo.counts_by_tenant(s)
        busiest = max(tenants, key=lambda t: counts.get(t, 0)) if counts else owner_tenant
        specs.append(("owner", "tenant_owner", "社長 (owner)", busiest, None))
        specs.append(("staff", "tenant_viewer", "事務員 (staff)", busiest, None))
        # a partner that was sent a warning reads it in the partner view
        row = s.execute(
            select(Partner.id, Partner.tenant_id)
            .join(WarningRecipient, WarningRecipient.partner_id == Partner.id)
            .group_by(Partner.id, Partner.tenant_id)
            .order_by(func.min(WarningRecipient.id))
        ).first()
        if row is not None:
            specs.append(("partner", "partner_viewer", "取引先 (partner)", row.tenant_id, row.id))
        for username, role, name, tenant_id, partner_id in specs:
            u = create_user(
                s,
                username,
                PASSWORD,
                role,
                display_name=name,
                tenant_id=tenant_id,
                partner_id=partner_id,
                actor="demo",
            )
            out.append(
                {
                    "username": username,
                    "password": PASSWORD,
                    "role": role,
                    "tenant": tenant_id,
                    "totp_secret": u.totp_secret,
                    "totp_now": totp_now(u.totp_secret) if u.totp_secret else None,
                }
            )
    return out
