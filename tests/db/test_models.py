"""Control-plane models on a migrated database: every table round-trips, constraints hold.

Each test runs twice through ``db_engine``: on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, delete, func, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from mimamori.db.models import (
    Alert,
    Asset,
    AuditLog,
    Incident,
    IncidentKey,
    Indicator,
    IndicatorSighting,
    IngestRun,
    IntelSource,
    PlaybookTask,
    Provider,
    Sensor,
    Tenant,
    TimelineEntry,
)

T0 = datetime(2025, 4, 1, 9, 30, 15, 123456, tzinfo=UTC)
JST = timezone(timedelta(hours=9))


@pytest.fixture
def session(db_engine: Engine) -> Iterator[Session]:
    with Session(db_engine) as session:
        yield session


@pytest.fixture
def tenant(session: Session) -> Tenant:
    provider = Provider(name="Kansai MSSP")
    tenant = Tenant(
        id="sakura-clinic",
        provider=provider,
        name="さくら歯科クリニック",
        contact_email="it@sakura.example",
        networks=["192.168.10.0/24", "10.20.0.0/16"],
        sites=[{"name": "本院", "address": "大阪市北区1-2-3"}, {"name": "分院", "address": None}],
    )
    session.add(tenant)
    session.commit()
    return tenant


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_provider_and_tenant_round_trip(db_engine: Engine, tenant: Tenant) -> None:
    with Session(db_engine) as fresh:
        got = fresh.get_one(Tenant, "sakura-clinic")
        assert got.name == "さくら歯科クリニック"
        assert got.provider.name == "Kansai MSSP"
        assert got.networks == ["192.168.10.0/24", "10.20.0.0/16"]
        assert got.sites == [
            {"name": "本院", "address": "大阪市北区1-2-3"},
            {"name": "分院", "address": None},
        ]
        assert (got.service_level, got.language, got.retention_days) == ("standard", "ja", 396)
        assert got.intel_private_ranges is False
        assert got.contact_phone is None
        assert got.created_at.tzinfo is UTC
        assert got.provider.created_at.tzinfo is UTC


def test_provider_name_is_unique(session: Session, tenant: Tenant) -> None:
    session.add(Provider(name="Kansai MSSP"))
    with pytest.raises(IntegrityError):
        session.flush()


def test_sensor_and_ingest_run(db_engine: Engine, session: Session, tenant: Tenant) -> None:
    sensor = Sensor(tenant_id=tenant.id, name="fw1", source="fortigate", token_hash="h1")
    session.add_all([sensor, Sensor(tenant_id=tenant.id, name="zeek", source="zeek")])
    session.add(Sensor(tenant_id=tenant.id, name="agent", source="sysmon"))  # NULL token twice
    session.flush()
    run = IngestRun(tenant_id=tenant.id, sensor_id=sensor.id, source="fortigate", path="/in/fw1.log")
    run.lines_read, run.stored, run.quarantined = 120, 118, 2
    run.finished_at = T0
    session.add(run)
    session.commit()

    with Session(db_engine) as fresh:
        got = fresh.scalars(select(IngestRun)).one()
        assert (got.lines_read, got.stored, got.quarantined, got.skipped, got.alerts) == (
            120,
            118,
            2,
            0,
            0,
        )
        assert got.finished_at == T0
        assert got.started_at.tzinfo is UTC
        fw1 = fresh.scalars(select(Sensor).where(Sensor.name == "fw1")).one()
        assert (fw1.revoked, fw1.last_seen_at, fw1.token_hash) == (False, None, "h1")

    # Deleting the sensor keeps the run for the record, detached (ON DELETE SET NULL).
    session.execute(delete(Sensor).where(Sensor.id == sensor.id))
    session.commit()
    assert session.scalars(select(IngestRun.sensor_id)).one() is None


@pytest.mark.parametrize(
    "duplicate",
    [
        {"name": "fw1", "token_hash": None},  # (tenant_id, name)
        {"name": "fw2", "token_hash": "h1"},  # token_hash
    ],
)
def test_sensor_unique_constraints(
    session: Session, tenant: Tenant, duplicate: dict[str, str | None]
) -> None:
    session.add(Sensor(tenant_id=tenant.id, name="fw1", source="fortigate", token_hash="h1"))
    session.flush()
    session.add(Sensor(tenant_id=tenant.id, source="fortigate", **duplicate))
    with pytest.raises(IntegrityError):
        session.flush()


def test_indicators_and_sightings(db_engine: Engine, session: Session) -> None:
    feodo = IntelSource(name="Feodo Tracker", kind="feodo_csv", url="https://feodo.example/x")
    urlhaus = IntelSource(name="URLhaus", kind="urlhaus_csv", confidence=80)
    ioc = Indicator(type="ip", value="203.0.113.7", threat="Emotet", tags=["botnet_cc"])
    ioc.first_seen, ioc.expires_at = T0, T0 + timedelta(days=30)
    session.add_all([feodo, urlhaus, ioc])
    session.flush()
    session.add_all(
        [
            IndicatorSighting(indicator_id=ioc.id, source_id=feodo.id, threat="Emotet"),
            IndicatorSighting(indicator_id=ioc.id, source_id=urlhaus.id, confidence=90),
        ]
    )
    session.commit()

    with Session(db_engine) as fresh:
        got = fresh.scalars(select(Indicator)).one()
        assert (got.type, got.value, got.threat, got.confidence) == (
            "ip",
            "203.0.113.7",
            "Emotet",
            50,
        )
        assert got.tags == ["botnet_cc"]
        assert got.expires_at == T0 + timedelta(days=30)
        assert got.last_seen is None
        sources = fresh.scalars(
            select(IntelSource.name)
            .join(IndicatorSighting, IndicatorSighting.source_id == IntelSource.id)
            .order_by(IntelSource.name)
        ).all()
        assert sources == ["Feodo Tracker", "URLhaus"]
        assert fresh.scalars(select(IntelSource.confidence).order_by(IntelSource.id)).all() == [
            70,
            80,
        ]

    # Deleting an indicator takes its sightings with it (ON DELETE CASCADE).
    session.execute(delete(Indicator))
    session.commit()
    assert count(session, IndicatorSighting) == 0
    assert count(session, IntelSource) == 2


def test_indicator_type_value_is_unique(session: Session) -> None:
    session.add_all([Indicator(type="ip", value="203.0.113.7"), Indicator(type="cidr", value="x")])
    session.flush()
    session.add(Indicator(type="domain", value="203.0.113.7"))  # same value, other type: fine
    session.flush()
    session.add(Indicator(type="ip", value="203.0.113.7"))
    with pytest.raises(IntegrityError):
        session.flush()


def test_one_sighting_per_indicator_and_source(session: Session) -> None:
    source, ioc = IntelSource(name="URLhaus", kind="urlhaus_csv"), Indicator(type="ip", value="a")
    session.add_all([source, ioc])
    session.flush()
    session.add(IndicatorSighting(indicator_id=ioc.id, source_id=source.id))
    session.flush()
    session.add(IndicatorSighting(indicator_id=ioc.id, source_id=source.id))
    with pytest.raises(IntegrityError):
        session.flush()


def make_incident(tenant: Tenant) -> Incident:
    incident = Incident(
        tenant_id=tenant.id, kind="c2_beacon", severity="high", title="C2 beacon from 10.20.0.5"
    )
    incident.first_seen = T0
    incident.keys = [
        IncidentKey(tenant_id=tenant.id, kind="host", key="host:10.20.0.5"),
        IncidentKey(tenant_id=tenant.id, kind="indicator", key="ip:203.0.113.7"),
    ]
    incident.timeline = [
        TimelineEntry(tenant_id=tenant.id, actor="system", entry="opened", at=T0),
        TimelineEntry(
            tenant_id=tenant.id,
            actor="analyst@mssp",
            entry="state",
            from_state="new",
            to_state="acknowledged",
            at=T0 + timedelta(minutes=5),
        ),
    ]
    incident.tasks = [
        PlaybookTask(
            tenant_id=tenant.id,
            position=position,
            key=key,
            phase="contain",
            title_ja=f"手順 {position}",
            title_en=f"Step {position}",
        )
        for position, key in ((2, "block_ip"), (1, "isolate_host"))
    ]
    return incident


def test_incident_with_keys_timeline_and_tasks(db_engine: Engine, tenant: Tenant) -> None:
    with Session(db_engine) as session:
        session.add(make_incident(tenant))
        session.commit()

    with Session(db_engine) as fresh:
        got = fresh.scalars(select(Incident)).one()
        assert (got.state, got.origin, got.not_security, got.alert_count) == (
            "new",
            "detection",
            False,
            0,
        )
        assert got.opened_at.tzinfo is UTC
        assert got.first_seen == T0
        assert got.closed_at is None
        assert sorted(k.key for k in got.keys) == ["host:10.20.0.5", "ip:203.0.113.7"]
        assert [e.entry for e in got.timeline] == ["opened", "state"]
        assert got.timeline[1].to_state == "acknowledged"
        assert [t.key for t in got.tasks] == ["isolate_host", "block_ip"]  # by position
        assert got.tasks[0].title_ja == "手順 1"
        assert got.tasks[0].done is False

        fresh.delete(got)  # ORM cascade: delete-orphan on keys, timeline and tasks
        fresh.commit()
        for model in (Incident, IncidentKey, TimelineEntry, PlaybookTask):
            assert count(fresh, model) == 0


def test_incident_key_unique_per_incident(session: Session, tenant: Tenant) -> None:
    incident = make_incident(tenant)
    incident.keys.append(IncidentKey(tenant_id=tenant.id, kind="host", key="host:10.20.0.5"))
    session.add(incident)
    with pytest.raises(IntegrityError):
        session.flush()


def test_deleting_an_incident_in_sql_cascades_and_detaches_alerts(session: Session, tenant: Tenant) -> None:
    incident = make_incident(tenant)
    session.add(incident)
    session.flush()
    session.add(alert(tenant, incident_id=incident.id))
    session.commit()

    session.execute(delete(Incident))  # no ORM cascade: the database's ON DELETE does it
    session.commit()
    for model in (IncidentKey, TimelineEntry, PlaybookTask):
        assert count(session, model) == 0
    assert session.scalars(select(Alert.incident_id)).one() is None


def alert(tenant: Tenant, dedup_key: str = "beacon:10.20.0.5", **fields: object) -> Alert:
    return Alert(
        tenant_id=tenant.id,
        detector="beacon",
        kind="c2_beacon",
        severity="high",
        title="Periodic connections to 203.0.113.7",
        first_seen=T0,
        last_seen=T0 + timedelta(hours=1),
        dedup_key=dedup_key,
        **fields,
    )


def test_alert_round_trip(db_engine: Engine, session: Session, tenant: Tenant) -> None:
    evidence = {"interval_s": 60.0, "jitter": 0.02, "samples": [1, 2, 3], "note": "定期通信"}
    session.add(alert(tenant, host="10.20.0.5", keys=["host:10.20.0.5"], evidence=evidence))
    session.commit()

    with Session(db_engine) as fresh:
        got = fresh.scalars(select(Alert)).one()
        assert got.evidence == evidence
        assert got.keys == ["host:10.20.0.5"]
        assert (got.event_count, got.incident_id, got.indicator) == (1, None, None)
        assert (got.first_seen, got.last_seen) == (T0, T0 + timedelta(hours=1))


def test_alert_dedup_key_is_unique_per_tenant(session: Session, tenant: Tenant) -> None:
    other = Tenant(id="other", provider_id=tenant.provider_id, name="Other")
    session.add(other)
    session.flush()  # no Tenant<->Alert relationship tells the ORM to insert the tenant first
    session.add_all([alert(tenant), alert(other)])  # same key, other tenant: fine
    session.flush()
    session.add(alert(tenant))
    with pytest.raises(IntegrityError):
        session.flush()


def test_asset_round_trip(db_engine: Engine, session: Session, tenant: Tenant) -> None:
    session.add(
        Asset(
            tenant_id=tenant.id,
            mac="00:11:22:33:44:55",
            ip="10.20.0.5",
            hostname="reception-pc",
            os_name="Windows",
            os_version="10 22H2",
            end_of_life=True,
            risk_score=7.5,
            last_seen=T0,
        )
    )
    session.commit()
    with Session(db_engine) as fresh:
        got = fresh.scalars(select(Asset)).one()
        assert (got.hostname, got.end_of_life, got.isolated, got.risk_score) == (
            "reception-pc",
            True,
            False,
            7.5,
        )
        assert (got.has_antimalware, got.has_endpoint_agent, got.vendor) == (None, None, None)
        assert got.last_seen == T0


def test_audit_log_round_trip(db_engine: Engine, session: Session) -> None:
    # tenant_id is not a foreign key: the audit trail outlives deleted tenants.
    detail = {"fields": ["contact_email"], "via": "api"}
    session.add(AuditLog(actor="admin", action="tenant.update", tenant_id="gone", detail=detail))
    session.add(AuditLog(actor="admin", action="login"))
    session.commit()
    with Session(db_engine) as fresh:
        rows = fresh.scalars(select(AuditLog).order_by(AuditLog.id)).all()
        assert [(r.action, r.tenant_id, r.detail) for r in rows] == [
            ("tenant.update", "gone", detail),
            ("login", None, {}),
        ]
        assert all(r.at.tzinfo is UTC for r in rows)


def test_deleting_a_tenant_removes_its_rows(session: Session, tenant: Tenant) -> None:
    sensor = Sensor(tenant_id=tenant.id, name="fw1", source="fortigate")
    session.add_all([sensor, make_incident(tenant), alert(tenant), Asset(tenant_id=tenant.id)])
    session.flush()
    session.add(IngestRun(tenant_id=tenant.id, sensor_id=sensor.id, source="x", path="p"))
    session.commit()

    session.execute(delete(Tenant))
    session.commit()
    for model in (Sensor, IngestRun, Incident, IncidentKey, TimelineEntry, PlaybookTask):
        assert count(session, model) == 0
    assert count(session, Alert) == count(session, Asset) == 0
    assert count(session, Provider) == 1


def test_foreign_keys_are_enforced(db_engine: Engine, session: Session) -> None:
    if db_engine.dialect.name == "sqlite":
        assert session.scalar(text("PRAGMA foreign_keys")) == 1
    session.add(Sensor(tenant_id="no-such-tenant", name="fw1", source="fortigate"))
    with pytest.raises(IntegrityError):
        session.flush()


def test_a_tenant_with_rows_needs_its_provider(session: Session, tenant: Tenant) -> None:
    with pytest.raises(IntegrityError):  # tenant.provider_id has no ON DELETE: refused
        session.execute(delete(Provider))


class TestUtcDateTime:
    def test_aware_datetimes_come_back_as_utc(self, db_engine: Engine, session: Session) -> None:
        local = datetime(2025, 4, 1, 18, 30, 15, 123456, tzinfo=JST)  # == T0
        session.add(AuditLog(actor="a", action="x", at=local))
        session.commit()
        with Session(db_engine) as fresh:
            if db_engine.dialect.name == "postgresql":
                # The server's zone must not leak into what we read.
                fresh.execute(text("SET TIME ZONE INTERVAL '+09:00' HOUR TO MINUTE"))
            got = fresh.scalars(select(AuditLog.at)).one()
        assert got == T0
        assert got.tzinfo is UTC
        assert got.utcoffset() == timedelta(0)

    def test_compares_as_an_instant(self, session: Session) -> None:
        session.add_all(
            [
                AuditLog(actor="a", action="before", at=T0 - timedelta(seconds=1)),
                AuditLog(actor="a", action="after", at=T0 + timedelta(seconds=1)),
            ]
        )
        session.commit()
        since = T0.astimezone(JST)  # the same instant, written in another zone
        assert session.scalars(select(AuditLog.action).where(AuditLog.at > since)).all() == ["after"]

    @pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
    def test_sqlite_stores_utc_wall_time(self, session: Session) -> None:
        session.add(AuditLog(actor="a", action="x", at=T0.astimezone(JST)))
        session.commit()
        assert session.scalar(text("SELECT at FROM audit_log")) == "2025-04-01 09:30:15.123456"

    def test_naive_datetimes_are_rejected(self, session: Session) -> None:
        session.add(AuditLog(actor="a", action="x", at=datetime(2025, 4, 1, 9, 30)))
        with pytest.raises(StatementError, match="naive datetime") as info:
            session.flush()
        assert isinstance(info.value.orig, ValueError)
        session.rollback()
        query = select(AuditLog).where(AuditLog.at > datetime(2025, 4, 1))
        with pytest.raises(StatementError, match="naive datetime"):
            session.execute(query)
