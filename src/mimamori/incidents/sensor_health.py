"""Silent sensors: a sensor that has sent nothing for too long is itself an alert.

A UTM that stops sending logs may be switched off, unplugged, broken, or disabled by an
attacker; the SME cannot tell, so the provider must notice. ``check_silent_sensors`` raises
one ``sensor_silent`` alert per silence (the dedup key names the sensor and the time it was
last heard from, so a sensor that comes back and falls silent again raises a new one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from mimamori.db.models import Sensor, Tenant
from mimamori.detect.base import AlertDraft
from mimamori.incidents.engine import ingest_alerts

DEFAULT_SILENCE = timedelta(hours=6)


@dataclass(frozen=True)
class SilentSensor:
    tenant_id: str
    sensor_id: int
    name: str
    last_seen_at: datetime | None
    new_alert: bool


def check_silent_sensors(
    session: Session,
    *,
    now: datetime | None = None,
    silence: timedelta = DEFAULT_SILENCE,
    tenant_id: str | None = None,
) -> list[SilentSensor]:
    """Raise a ``sensor_silent`` alert for every active sensor not heard from within ``silence``.

    A sensor never heard from counts from its creation. Returns every silent sensor, with
    ``new_alert`` telling whether this call raised its alert (repeat calls do not).
    """
    now = now or datetime.now(UTC)
    stmt = select(Sensor).where(Sensor.revoked.is_(False))
    if tenant_id is not None:
        stmt = stmt.where(Sensor.tenant_id == tenant_id)
    out: list[SilentSensor] = []
    for sensor in session.scalars(stmt.order_by(Sensor.id)):
        last = sensor.last_seen_at or sensor.created_at
        if last is None or now - last < silence:
            continue
        hours = int((now - last).total_seconds() // 3600)
        draft = AlertDraft(
            detector="sensor_health",
            kind="sensor_silent",
            severity="medium",
            title=f"sensor {sensor.name} ({sensor.source}) silent for {hours} h",
            first_seen=last,
            last_seen=now,
            keys=[f"sensor:{sensor.id}"],
            evidence={
                "sensor": sensor.name,
                "source": sensor.source,
                "last_seen_at": sensor.last_seen_at.isoformat() if sensor.last_seen_at else None,
                "silent_hours": hours,
            },
        ).with_dedup(sensor.id, last.isoformat())
        tenant = session.get_one(Tenant, sensor.tenant_id)
        result = ingest_alerts(session, tenant, [draft], now=now)
        out.append(
            SilentSensor(
                sensor.tenant_id, sensor.id, sensor.name, sensor.last_seen_at, bool(result.alerts_new)
            )
        )
    return out
