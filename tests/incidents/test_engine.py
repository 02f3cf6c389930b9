"""Incident grouping, state machine, SLA clocks and manual incidents, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from mimamori.db.models import Alert, Incident, PlaybookTask, TimelineEntry
from mimamori.db.repo import add_tenant
from mimamori.db.session import session_scope
from mimamori.detect.base import AlertDraft
from mimamori.incidents.catalog import load_catalog
from mimamori.incidents.engine import (
    TransitionError,
    get_incident,
    ingest_alerts,
    open_manual,
    sla_status,
    transition,
)

T0 = datetime(2025, 4, 15, 9, 0, tzinfo=UTC)


def draft(kind: str, keys: list[str], *, at: datetime = T0, sev: str = "high", tag: str = "") -> AlertDraft:
    return AlertDraft(
        detector="test",
        kind=kind,
        severity=sev,
        title=f"{kind} {keys}",
        first_seen=at,
        last_seen=at,
        keys=keys,
    ).with_dedup(kind, *keys, at.isoformat(), tag)


@pytest.fixture
def tenants(db_engine):
    with session_scope(db_engine) as s:
        add_tenant(s, "acme", "Acme", networks=["192.168.1.0/24"])
        add_tenant(s, "beta", "Beta", service_level="premium")
    return db_engine


def test_alerts_sharing_a_key_join_one_incident_per_tenant_and_kind(tenants):
    with session_scope(tenants) as s:
        acme = s.get_one(__import__("mimamori.db.models", fromlist=["Tenant"]).Tenant, "acme")
        r = ingest_alerts(
            s,
            acme,
            [
                draft("malware_mail_campaign", ["sha:aa", "subject:請求書 no.#"]),
                draft(
                    "malware_mail_campaign", ["sha:bb", "subject:請求書 no.#"], at=T0 + timedelta(minutes=5)
                ),
                draft("malware_mail_campaign", ["sha:bb", "subject:賞与 #月"], at=T0 + timedelta(minutes=9)),
                draft("malware_mail_campaign", ["sha:cc", "subject:unrelated"], at=T0 + timedelta(minutes=9)),
                draft("banking_malware", ["host:192.168.1.5"]),
            ],
            now=T0,
        )
        assert r.alerts_new == 5
        assert len(r.incidents_opened) == 3
        incs = s.scalars(select(Incident).where(Incident.tenant_id == "acme").order_by(Incident.id)).all()
        assert [(i.kind, i.alert_count) for i in incs] == [
            ("malware_mail_campaign", 3),
            ("malware_mail_campaign", 1),
            ("banking_malware", 1),
        ]
        assert {k.key for k in incs[0].keys} == {
            "sha:aa",
            "sha:bb",
            "subject:請求書 no.#",
            "subject:賞与 #月",
        }
        # playbook tasks were created from the YAML playbook
        pb = load_catalog().playbook_for("malware_mail_campaign")
        assert [t.key for t in incs[0].tasks] == [t.key for t in pb.tasks]
        assert any(t.key == "warn_partner" for t in incs[0].tasks)


def test_same_keys_in_another_tenant_do_not_merge(tenants):
    from mimamori.db.models import Tenant

    with session_scope(tenants) as s:
        ingest_alerts(s, s.get_one(Tenant, "acme"), [draft("banking_malware", ["host:10.0.0.1"])], now=T0)
        r = ingest_alerts(s, s.get_one(Tenant, "beta"), [draft("banking_malware", ["host:10.0.0.1"])], now=T0)
        assert len(r.incidents_opened) == 1
        assert s.scalar(select(func.count()).select_from(Incident)) == 2


def test_repeated_alert_is_stored_once(tenants):
    from mimamori.db.models import Tenant

    with session_scope(tenants) as s:
        acme = s.get_one(Tenant, "acme")
        d = draft("malicious_destination", ["host:192.168.1.9"])
        ingest_alerts(s, acme, [d], now=T0)
        r = ingest_alerts(s, acme, [d], now=T0)
        assert (r.alerts_new, r.alerts_duplicate) == (0, 1)
        assert s.scalar(select(func.count()).select_from(Alert)) == 1


def test_window_and_closed_incidents_start_new_ones(tenants):
    from mimamori.db.models import Tenant

    with session_scope(tenants) as s:
        acme = s.get_one(Tenant, "acme")
        window = load_catalog().kind("malicious_destination").window_hours
        r1 = ingest_alerts(s, acme, [draft("malicious_destination", ["host:h"])], now=T0)
        late = T0 + timedelta(hours=window + 1)
        r2 = ingest_alerts(s, acme, [draft("malicious_destination", ["host:h"], at=late)], now=late)
        assert r1.incidents_opened != r2.incidents_opened and len(r2.incidents_opened) == 1
        inc = get_incident(s, "acme", r2.incidents_opened[0])
        transition(s, inc, "closed", "analyst1", now=late)
        r3 = ingest_alerts(s, acme, [draft("malicious_destination", ["host:h"], at=late, tag="x")], now=late)
        assert len(r3.incidents_opened) == 1


def test_severity_is_raised_by_a_worse_alert(tenants):
    from mimamori.db.models import Tenant

    with session_scope(tenants) as s:
        acme = s.get_one(Tenant, "acme")
        r = ingest_alerts(s, acme, [draft("ids_alert", ["host:h"], sev="medium")], now=T0)
        ingest_alerts(s, acme, [draft("ids_alert", ["host:h"], sev="critical", tag="2")], now=T0)
        inc = get_incident(s, "acme", r.incidents_opened[0])
        assert inc.severity == "critical"
        assert any(e.entry == "severity" for e in inc.timeline)


def test_state_machine_records_who_and_when_and_refuses_bad_moves(tenants):
    from mimamori.db.models import Tenant

    with session_scope(tenants) as s:
        acme = s.get_one(Tenant, "acme")
        inc_id = ingest_alerts(s, acme, [draft("banking_malware", ["host:h"])], now=T0).incidents_opened[0]
        inc = get_incident(s, "acme", inc_id)
        with pytest.raises(TransitionError):
            transition(s, inc, "recovery", "a")
        steps = ["triage", "remote_support", "onsite", "containment", "recovery", "closed"]
        for i, st in enumerate(steps):
            transition(s, inc, st, f"analyst{i}", now=T0 + timedelta(minutes=10 * (i + 1)))
        assert inc.acknowledged_at == T0 + timedelta(minutes=10)
        assert inc.first_response_at == T0 + timedelta(minutes=20)
        assert inc.closed_at == T0 + timedelta(minutes=60)
        entries = s.scalars(
            select(TimelineEntry).where(TimelineEntry.incident_id == inc_id, TimelineEntry.entry == "state")
        ).all()
        assert [(e.from_state, e.to_state, e.actor) for e in entries] == [
            ("new", "triage", "analyst0"),
            ("triage", "remote_support", "analyst1"),
            ("remote_support", "onsite", "analyst2"),
            ("onsite", "containment", "analyst3"),
            ("containment", "recovery", "analyst4"),
            ("recovery", "closed", "analyst5"),
        ]
        with pytest.raises(TransitionError):
            transition(s, inc, "onsite", "a")
        transition(s, inc, "triage", "a", "reopened")
        assert inc.closed_at is None


def test_sla_clocks_follow_service_level_and_severity(tenants):
    from mimamori.db.models import Tenant

    cat = load_catalog()
    with session_scope(tenants) as s:
        for tid in ("acme", "beta"):
            t = s.get_one(Tenant, tid)
            inc = get_incident(
                s,
                tid,
                ingest_alerts(s, t, [draft("banking_malware", ["host:x"])], now=T0).incidents_opened[0],
            )
            ack, resp = cat.sla_minutes(t.service_level, inc.severity)
            assert inc.ack_due_at == T0 + timedelta(minutes=ack)
            assert inc.response_due_at == T0 + timedelta(minutes=resp)
            st = sla_status(inc, now=T0 + timedelta(minutes=ack + 5))
            assert st["ack"]["minutes_left"] == -5
        assert cat.sla_minutes("premium", "high")[0] < cat.sla_minutes("standard", "high")[0]


def test_manual_incident_from_helpdesk_can_end_as_not_security(tenants):
    from mimamori.db.models import Tenant

    with session_scope(tenants) as s:
        acme = s.get_one(Tenant, "acme")
        inc = open_manual(
            s,
            acme,
            origin="helpdesk",
            title="PCが遅い。攻撃でしょうか？",
            reporter="山田 (電話)",
            actor="analyst1",
            now=T0,
        )
        assert inc.kind == "helpdesk_report" and inc.origin == "helpdesk"
        assert (
            s.scalar(select(func.count()).select_from(PlaybookTask).where(PlaybookTask.incident_id == inc.id))
            > 0
        )
        transition(s, inc, "triage", "analyst1", now=T0)
        transition(
            s, inc, "closed", "analyst1", "メモリ不足。セキュリティ事案ではない", not_security=True, now=T0
        )
        assert inc.not_security and inc.state == "closed"
        notice = open_manual(
            s, acme, origin="notice", title="カード会社から通報", reporter="card co", actor="a"
        )
        assert notice.kind == "external_notice"


def test_incident_lookup_is_scoped_by_tenant(tenants):
    from mimamori.db.models import Tenant
    from mimamori.incidents.engine import NotFoundError

    with session_scope(tenants) as s:
        inc_id = ingest_alerts(
            s, s.get_one(Tenant, "acme"), [draft("ids_alert", ["host:h"])], now=T0
        ).incidents_opened[0]
        assert get_incident(s, "acme", inc_id).id == inc_id
        with pytest.raises(NotFoundError):
            get_incident(s, "beta", inc_id)


def test_specific_kind_absorbs_and_reclassifies_related_alerts_on_the_same_host(tenants):
    from mimamori.db.models import Tenant

    with session_scope(tenants) as s:
        acme = s.get_one(Tenant, "acme")
        host = "host:192.168.1.50"
        r1 = ingest_alerts(
            s, acme, [draft("malicious_destination", [host, "indicator:203.0.113.88"])], now=T0
        )
        r2 = ingest_alerts(s, acme, [draft("banking_malware", [host, "family:dyre"])], now=T0)
        assert r2.incidents_opened == []  # the open incident was reclassified, not duplicated
        inc = get_incident(s, "acme", r1.incidents_opened[0])
        assert inc.kind == "banking_malware" and inc.alert_count == 2
        assert any(e.entry == "reclassified" for e in inc.timeline)
        assert any(t.key == "stop_banking" for t in inc.tasks)
        # a later known-bad contact from the same PC joins the banking incident
        r3 = ingest_alerts(s, acme, [draft("malicious_destination", [host, "indicator:x"], tag="3")], now=T0)
        assert r3.incidents_opened == [] and inc.alert_count == 3 and inc.kind == "banking_malware"
        # an unrelated host still gets its own incident
        r4 = ingest_alerts(s, acme, [draft("malicious_destination", ["host:192.168.1.51"])], now=T0)
        assert len(r4.incidents_opened) == 1


def test_a_specific_kind_merges_every_related_open_incident_on_the_host(tenants):
    from mimamori.db.models import Tenant

    with session_scope(tenants) as s:
        acme = s.get_one(Tenant, "acme")
        host = "host:192.168.1.60"
        a = ingest_alerts(s, acme, [draft("lateral_movement", [host])], now=T0).incidents_opened[0]
        b = ingest_alerts(s, acme, [draft("malicious_destination", [host, "indicator:k.test"])], now=T0)
        c = ingest_alerts(s, acme, [draft("ransomware", [host, "family:wannacry"], sev="critical")], now=T0)
        assert c.incidents_opened == []
        incs = {i.id: i for i in s.scalars(select(Incident).where(Incident.tenant_id == "acme"))}
        open_ = [i for i in incs.values() if i.state != "closed"]
        assert len(open_) == 1 and open_[0].kind == "ransomware" and open_[0].alert_count == 3
        assert s.scalar(select(func.count()).select_from(Alert).where(Alert.incident_id == open_[0].id)) == 3
        merged = [i for i in incs.values() if i.state == "closed"]
        assert {i.id for i in merged} == {a, b.incidents_opened[0]} - {open_[0].id}
        assert all(any(e.entry == "merged" for e in i.timeline) for i in merged)
