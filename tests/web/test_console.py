"""The analyst console and the SME portal as people use them: triage, playbook, notes,
escalation on site with findings, the help-desk log and its triage, evidence from the
archive, the manager view with a silent sensor, the partner view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from sqlalchemy import select

from mimamori.archive import Archive
from mimamori.db.models import Incident, Sensor
from mimamori.db.session import session_scope
from mimamori.events.schema import EVENT_SCHEMA
from mimamori.incidents.sensor_health import check_silent_sensors
from tests.web.conftest import World, csrf_header, csrf_of, sign_in


def test_triage_tick_note_escalate_and_record_findings(world: World) -> None:
    c = sign_in(world, "ana")
    h = csrf_header(c)
    inc = world.incidents["acme"]
    assert (
        c.post(f"/api/v1/incidents/{inc}/transitions", json={"to_state": "triage"}, headers=h).status_code
        == 201
    )
    r = c.post(
        f"/api/v1/incidents/{inc}/transitions",
        json={"to_state": "remote_support", "note": "called"},
        headers=h,
    )
    assert r.json()["state"] == "remote_support"
    # not allowed from remote_support: clear 409 naming the allowed states
    r = c.post(f"/api/v1/incidents/{inc}/transitions", json={"to_state": "triage"}, headers=h)
    assert r.status_code == 409 and "allowed" in r.json()["detail"]
    r = c.patch(f"/api/v1/incidents/{inc}/tasks/{world.tasks['acme']}", json={"done": True}, headers=h)
    assert r.json() == {"id": world.tasks["acme"], "key": "identify", "done": True, "done_by": "ana"}
    assert (
        c.post(f"/api/v1/incidents/{inc}/notes", json={"text": "PC is in the office"}, headers=h).status_code
        == 201
    )
    when = "2030-04-01T09:30:00Z"
    r = c.post(
        f"/api/v1/incidents/{inc}/onsite",
        json={"engineer": "田中", "planned_at": when, "site": "本社"},
        headers=h,
    )
    assert r.status_code == 201
    visit = r.json()
    assert visit["engineer"] == "田中" and visit["planned_at"].startswith("2030-04-01T09:30")
    r = c.patch(
        f"/api/v1/incidents/{inc}/visits/{visit['id']}",
        json={"arrived_at": "2030-04-01T09:50:00Z", "findings": "USB stick with malware"},
        headers=h,
    )
    assert r.json()["findings"] == "USB stick with malware"
    d = c.get(f"/api/v1/incidents/{inc}").json()
    assert d["state"] == "onsite"
    entries = [(e["entry"], e.get("to"), e["text"]) for e in d["timeline"]]
    assert ("state", "onsite", "on-site visit: 田中") in entries
    assert ("note", None, "PC is in the office") in entries
    assert any(e[0] == "onsite" and "USB stick" in (e[2] or "") for e in entries)
    assert d["visits"][0]["arrived_at"].startswith("2030-04-01T09:50")
    page = c.get(f"/console/incidents/{inc}")
    assert "USB stick with malware" in page.text and "田中" in page.text


def test_escalation_by_form_in_one_click(world: World) -> None:
    c = sign_in(world, "ana")
    inc = world.incidents["beta"]
    page = c.get(f"/console/incidents/{inc}")
    r = c.post(
        f"/console/incidents/{inc}/onsite",
        data={
            "engineer": "鈴木",
            "planned_at": "2030-05-01T14:00",
            "site": "",
            "csrf_token": csrf_of(page.text),
        },
    )
    assert r.status_code == 303
    with session_scope(world.engine) as s:
        assert s.get_one(Incident, inc).state == "onsite"


def test_queue_ranks_by_severity_then_sla(world: World) -> None:
    from mimamori.db.models import Tenant
    from mimamori.incidents.engine import open_manual

    with session_scope(world.engine) as s:
        crit = open_manual(
            s,
            s.get_one(Tenant, "beta"),
            origin="notice",
            title="card company notice",
            reporter="card co",
            actor="t",
            severity="critical",
        ).id
        low = open_manual(
            s,
            s.get_one(Tenant, "acme"),
            origin="helpdesk",
            title="slow PC",
            reporter="x",
            actor="t",
            severity="low",
        ).id
    c = sign_in(world, "ana")
    ids = [i["id"] for i in c.get("/api/v1/incidents").json()]
    assert ids[0] == crit and ids[-1] == low
    highs = ids[1:-1]
    assert sorted(highs) == sorted([world.incidents["acme"], world.incidents["beta"]])
    page = c.get("/console").text
    assert page.index("card company notice") < page.index("slow PC")


def test_sme_reports_something_wrong_and_analyst_triages(world: World) -> None:
    o = sign_in(world, "owner-acme")
    page = o.get("/portal")
    r = o.post(
        "/portal/report",
        data={"reporter": "山田", "text": "プリンタが印刷しない", "csrf_token": csrf_of(page.text)},
    )
    assert r.status_code == 303
    assert "ご連絡ありがとうございます" in o.get("/portal?sent=1").text
    r = o.post(
        "/portal/report",
        data={"reporter": "山田", "text": "知らない画面が出た", "csrf_token": csrf_of(page.text)},
    )
    c = sign_in(world, "ana")
    h = csrf_header(c)
    entries = c.get("/api/v1/tenants/acme/helpdesk").json()
    assert [(e["channel"], e["status"]) for e in entries] == [("portal", "open"), ("portal", "open")]
    printer = next(e for e in entries if "プリンタ" in e["text"])
    screen = next(e for e in entries if "画面" in e["text"])
    r = c.post(
        f"/api/v1/helpdesk/{printer['id']}/triage",
        json={"action": "not_security", "note": "out of paper"},
        headers=h,
    )
    assert r.json()["status"] == "not_security"
    r = c.post(f"/api/v1/helpdesk/{screen['id']}/triage", json={"action": "open_incident"}, headers=h)
    new_inc = r.json()["incident"]
    assert r.json()["status"] == "incident" and new_inc
    assert c.get(f"/api/v1/incidents/{new_inc}").json()["kind"] == "helpdesk_report"
    # triaging twice is a clear 422
    r = c.post(f"/api/v1/helpdesk/{screen['id']}/triage", json={"action": "not_security"}, headers=h)
    assert r.status_code == 422
    # an analyst logs a phone call linked to the incident
    r = c.post(
        "/api/v1/tenants/acme/helpdesk",
        headers=h,
        json={"channel": "phone", "reporter": "山田", "text": "再起動した", "incident_id": new_inc},
    )
    assert r.status_code == 201 and r.json()["incident"] == new_inc
    texts = [e["text"] for e in c.get(f"/api/v1/incidents/{new_inc}").json()["timeline"]]
    assert any("再起動した" in (t or "") for t in texts)


def test_sme_portal_in_japanese_and_english(world: World) -> None:
    o = sign_in(world, "owner-acme")
    page = o.get("/portal").text
    assert "対応が必要な問題があります" in page
    assert "ネットバンキングを使わないでください" in page  # what to do now, in plain words
    assert "ネットバンキングを狙うウイルスの感染の疑い" in page
    assert "Dyre" not in page  # no jargon: the detector's title stays in the console
    assert "サポート終了" in o.get("/portal/devices").text
    r = o.get("/lang/en?back=/portal")
    assert r.status_code == 303 and r.headers["location"] == "/portal"
    page = o.get("/portal").text
    assert "Something needs your attention" in page and "Do not use online banking" in page
    st = o.get("/api/v1/tenants/acme/status").json()
    assert st["level"] == "action" and st["caught_30d"][0]["count"] == 1


def test_evidence_reads_events_from_the_archive(world: World) -> None:
    at = datetime.now(UTC) - timedelta(hours=1)
    rows = {k: [None, None] for k in EVENT_SCHEMA}
    rows["@timestamp"] = [at, at]
    rows["source.ip"] = ["10.0.0.5", "10.0.0.9"]
    rows["destination.ip"] = ["203.0.113.7", "203.0.113.8"]
    rows["event.dataset"] = ["zeek.conn", "zeek.conn"]
    df = pl.DataFrame(rows, schema=EVENT_SCHEMA)
    Archive(world.settings.archive_dir).write_events(df, "acme", "b1")
    Archive(world.settings.archive_dir).write_events(df, "beta", "b1")
    c = sign_in(world, "ana")
    ev = c.get(f"/api/v1/incidents/{world.incidents['acme']}/evidence").json()
    assert [e["destination.ip"] for e in ev[0]["archive_events"]] == ["203.0.113.7"]
    assert "203.0.113.7" in c.get(f"/console/incidents/{world.incidents['acme']}").text


def test_manager_view_and_silent_sensor(world: World) -> None:
    from mimamori.db import repo

    now = datetime.now(UTC)
    with session_scope(world.engine) as s:
        live, _ = repo.add_sensor(s, "acme", "utm-1", "fortigate")
        quiet, _ = repo.add_sensor(s, "beta", "zeek-1", "zeek")
        live.last_seen_at = now - timedelta(minutes=5)
        quiet.last_seen_at = now - timedelta(hours=9)
        s.flush()
        first = check_silent_sensors(s, now=now)
        again = check_silent_sensors(s, now=now + timedelta(minutes=5))
        assert [(x.tenant_id, x.name, x.new_alert) for x in first] == [("beta", "zeek-1", True)]
        assert [x.new_alert for x in again] == [False]
        silent = s.scalars(select(Incident).where(Incident.kind == "sensor_silent")).all()
        assert [(i.tenant_id, i.alert_count) for i in silent] == [("beta", 1)]
        assert s.scalar(select(Sensor).where(Sensor.name == "zeek-1")) is not None
    c = sign_in(world, "ana")
    rows = {r["tenant"]: r for r in c.get("/api/v1/overview").json()}
    assert rows["beta"]["open_incidents"] == 2 and rows["acme"]["open_incidents"] == 1
    assert rows["acme"]["assets"] == 1 and rows["acme"]["sensors"][0]["name"] == "utm-1"
    page = c.get("/manager").text
    assert "zeek-1" in page and "Beta 商店" in page
    o = sign_in(world, "owner-beta")
    assert "監視機器（UTM）の電源とケーブル" in o.get("/portal").text


def test_partner_sees_only_what_was_sent_to_it(world: World) -> None:
    from mimamori.db.models_share import ShareWarning, WarningRecipient

    with session_scope(world.engine) as s:
        for tid, state, subject in (
            ("acme", "sent", "shared warning"),
            ("acme", "draft", "draft only"),
            ("beta", "sent", "beta's warning"),
        ):
            w = ShareWarning(
                tenant_id=tid,
                incident_id=world.incidents[tid],
                tlp="AMBER",
                subject_ja=subject,
                body_ja="本文",
                subject_en=subject,
                body_en="body",
                state=state,
                created_by="t",
                sent_at=datetime.now(UTC),
            )
            s.add(w)
            s.flush()
            s.add(
                WarningRecipient(
                    warning_id=w.id, tenant_id=tid, partner_id=world.partners[tid], email="x@example.jp"
                )
            )
    p = sign_in(world, "partner-acme")
    page = p.get("/partner").text
    assert "shared warning" in page and "draft only" not in page and "beta's warning" not in page
    assert [w["subject_en"] for w in p.get("/api/v1/partner/warnings").json()] == ["shared warning"]
    # a partner reads nothing else of the tenant
    assert p.get("/api/v1/tenants/acme/incidents").status_code == 403
    assert p.get("/portal").status_code == 403


def test_link_a_call_to_an_incident_by_form_and_filter_the_queue(world: World) -> None:
    from mimamori.db import repo

    with session_scope(world.engine) as s:
        sensor, _ = repo.add_sensor(s, "acme", "utm-1", "fortigate")
        sensor.last_seen_at = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
    o = sign_in(world, "owner-acme")
    assert "2030-01-02 03:04 UTC" in o.get("/portal").text  # latest data, in the SME's words
    page = o.get("/portal")
    o.post(
        "/portal/report",
        data={"reporter": "山田", "text": "また警告が出た", "csrf_token": csrf_of(page.text)},
    )
    c = sign_in(world, "ana")
    page = c.get("/console/tenants/acme/helpdesk")
    assert "また警告が出た" in page.text
    entry = c.get("/api/v1/tenants/acme/helpdesk").json()[0]["id"]
    inc = world.incidents["acme"]
    r = c.post(
        f"/console/helpdesk/{entry}/triage",
        data={"action": "link", "incident_id": str(inc), "csrf_token": csrf_of(page.text)},
    )
    assert r.status_code == 303
    assert c.get("/api/v1/tenants/acme/helpdesk").json()[0]["incident"] == inc
    queue = c.get("/console", params={"tenant": "beta"}).text
    assert "(beta)" in queue and "(acme)" not in queue


def _sent_warning(world: World, tenant: str, partner_id: int, portal_tenant: str | None) -> tuple[int, int]:
    from mimamori.db.models_share import ShareWarning, WarningRecipient

    with session_scope(world.engine) as s:
        w = ShareWarning(
            tenant_id=tenant,
            incident_id=world.incidents[tenant],
            tlp="AMBER",
            subject_ja="取引先への注意喚起",
            body_ja="弊社名を騙るメールにご注意ください",
            subject_en="warning to partners",
            body_en="beware of mail in our name",
            state="sent",
            created_by="t",
            sent_at=datetime.now(UTC),
        )
        s.add(w)
        s.flush()
        r = WarningRecipient(
            warning_id=w.id,
            tenant_id=tenant,
            partner_id=partner_id,
            email="it@partner.example",
            portal_tenant_id=portal_tenant,
            delivered_at=datetime.now(UTC),
        )
        s.add(r)
        s.flush()
        return w.id, r.id


def _acked(world: World, recipient_id: int) -> tuple[object, str | None, list[str]]:
    from mimamori.db.models import TimelineEntry
    from mimamori.db.models_share import WarningRecipient

    with session_scope(world.engine) as s:
        r = s.get_one(WarningRecipient, recipient_id)
        notes = [
            e.text
            for e in s.scalars(
                select(TimelineEntry).where(TimelineEntry.incident_id == world.incidents["acme"])
            )
        ]
        return r.acknowledged_at, r.ack_by, notes


def test_a_partner_that_is_a_customer_acknowledges_in_its_portal(world: World) -> None:
    """acme warns its partner beta (also a customer): beta's owner reads it in the portal and
    acknowledges; acme's incident shows who knows. Nobody else can acknowledge it."""
    from mimamori.db.models_share import Partner

    with session_scope(world.engine) as s:
        s.get_one(Partner, world.partners["acme"]).partner_tenant_id = "beta"
    _w, rid = _sent_warning(world, "acme", world.partners["acme"], portal_tenant="beta")
    acme = sign_in(world, "owner-acme")
    assert "弊社名を騙るメール" not in acme.get("/portal").text  # the sender's own portal
    h = csrf_header(acme)
    assert acme.post(f"/portal/warnings/{rid}/ack", headers=h).status_code == 404
    beta = sign_in(world, "owner-beta")
    page = beta.get("/portal").text
    assert "弊社名を騙るメール" in page and "内容を確認しました" in page
    assert beta.post(f"/portal/warnings/{rid}/ack").status_code == 403  # no CSRF token
    assert _acked(world, rid)[0] is None
    r = beta.post(f"/portal/warnings/{rid}/ack", data={"csrf_token": csrf_of(page)})
    assert r.status_code == 303
    at, by, notes = _acked(world, rid)
    assert at is not None and by is not None and "(portal)" in by
    assert any("acknowledged warning" in n for n in notes)
    assert "確認済み" in beta.get("/portal").text


def test_a_partner_viewer_acknowledges_in_the_partner_view(world: World) -> None:
    wid, rid = _sent_warning(world, "acme", world.partners["acme"], portal_tenant=None)
    other_wid, _ = _sent_warning(world, "beta", world.partners["beta"], portal_tenant=None)
    p = sign_in(world, "partner-acme")
    page = p.get("/partner").text
    assert "内容を確認しました" in page
    token = csrf_of(page)
    assert p.post(f"/partner/warnings/{other_wid}/ack", data={"csrf_token": token}).status_code == 404
    assert p.post(f"/partner/warnings/{wid}/ack", data={"csrf_token": token}).status_code == 303
    at, by, notes = _acked(world, rid)
    assert at is not None and by is not None and "partner view" in by
    assert any("acknowledged warning" in n for n in notes)
    assert "確認済み" in p.get("/partner").text
