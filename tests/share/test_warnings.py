"""Two tenants: a warning drafted, sanitised, sent over SMTP, acknowledged, chased, and the
incident shows who knows; a hacked partner is told its server sends malware."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mimamori.db.models import Alert, Incident, IncidentKey, TimelineEntry
from mimamori.incidents.engine import NotFoundError
from mimamori.share import partners as P
from mimamori.share.api import share_router
from mimamori.share.partner_warnings import (
    SmtpConfig,
    acknowledge_in_portal,
    candidate_recipients,
    chase,
    draft_warning,
    portal_warnings,
    send_warning,
    who_knows,
)
from mimamori.share.tlp import TLP
from tests.share.conftest import Sink, body_of, make_incident

LEAKS = ("10.10.1.23", "pc-sato-01", "sato@acme.co.jp", "佐藤", "03-1234-5678", "acme.local")


def partners(s: Session) -> None:
    beta = P.add_partner(s, "acme", "ベータ部品", domains=["beta-parts.jp"], partner_tenant_id="beta")
    P.add_contact(s, "acme", beta.id, "鈴木 花子", "suzuki@beta-parts.jp")
    gamma = P.add_partner(
        s, "acme", "ガンマ運輸", relation="logistics", domains=["gamma-unyu.co.jp"], language="en"
    )
    P.add_contact(s, "acme", gamma.id, "Kato Ken", "kato@gamma-unyu.co.jp")
    P.add_contact(s, "acme", gamma.id, "SOC desk", "soc@mssp.example", kind="provider")


def test_warning_drafted_sanitised_sent_acknowledged_chased(
    tenants: Session, engine: Engine, smtp_sink: tuple[Sink, int]
) -> None:
    s = tenants
    sink, port = smtp_sink
    partners(s)
    inc = make_incident(s)
    inc.summary += " (call 03-1234-5678, host pc-sato-01.acme.local)"
    cands = candidate_recipients(s, "acme", inc.id)
    assert [(c.partner.name, c.reason) for c in cands] == [
        ("ベータ部品", "impersonation"),
        ("ガンマ運輸", "impersonation"),
    ]
    with pytest.raises(NotFoundError):
        candidate_recipients(s, "beta", inc.id)  # another tenant's incident is invisible
    with pytest.raises(NotFoundError):
        draft_warning(s, "beta", inc.id)

    w = draft_warning(s, "acme", inc.id, tlp=TLP.AMBER, created_by="analyst-1")
    for text in (w.subject_ja, w.body_ja, w.subject_en, w.body_en):
        for leak in LEAKS:
            assert leak not in text, (leak, text)
    assert w.subject_ja.startswith("[TLP:AMBER]") and "■ 何が起きたか" in w.body_ja
    assert "■ 確認していただきたいこと" in w.body_ja and "■ お願いしたい対応" in w.body_ja
    assert "203[.]0[.]113[.]45" in w.body_ja and "evil-invoice[.]example" in w.body_en
    assert "What to look for" in w.body_en and "What to do" in w.body_en
    assert len(w.recipients) == 3

    smtp = SmtpConfig(port=port, sender="soc@provider.example", ack_base_url="https://soc.example")
    send_warning(s, "acme", w.id, smtp)
    s.commit()
    assert sorted(sink.rcpts) == ["kato@gamma-unyu.co.jp", "suzuki@beta-parts.jp"]
    by_to = {str(m["To"]): m for m in sink.messages}
    ja = by_to["suzuki@beta-parts.jp"]
    assert ja["X-TLP"] == "TLP:AMBER" and "弊社をかたる" in str(ja["Subject"])
    assert body_of(ja).index("何が起きたか") < body_of(ja).index("What happened")  # Japanese first
    en = by_to["kato@gamma-unyu.co.jp"]
    assert str(en["Subject"]).startswith("[TLP:AMBER] Warning")
    for m in sink.messages:
        for leak in LEAKS:
            assert leak not in body_of(m)
    # the partner's outsourced SOC is another provider: AMBER withheld without permission
    states = {r["email"]: r["state"] for r in who_knows(s, "acme", inc.id)}
    assert states == {
        "suzuki@beta-parts.jp": "delivered",
        "kato@gamma-unyu.co.jp": "delivered",
        "soc@mssp.example": "withheld",
    }
    P.grant_provider_permission(
        s, "acme", "ガンマ運輸", granted_by="佐藤 太郎", max_tlp=TLP.AMBER, incident_id=inc.id
    )
    send_warning(s, "acme", w.id, smtp)
    assert sink.rcpts.count("soc@mssp.example") == 1 and len(sink.messages) == 3

    # acknowledgement through the link (GET shows a form, POST records)
    link = re.search(r"https://soc\.example(/api/v1/share/ack/\S+)", body_of(en))
    assert link is not None
    app = FastAPI()
    app.state.sessions = sessionmaker(engine, expire_on_commit=False)
    app.include_router(share_router())
    s.commit()
    with TestClient(app) as client:
        assert "<form" in client.get(link.group(1)).text
        r = client.post(link.group(1), data={"by": "Kato Ken", "note": "blocked the IP"})
        assert r.status_code == 200 and r.json()["by"] == "Kato Ken"
        assert client.post("/api/v1/share/ack/not-a-token", json={"by": "x"}).status_code == 404
    s.expire_all()
    # the partner that is a tenant acknowledges in its portal
    portal = portal_warnings(s, "beta")
    assert (
        len(portal) == 1
        and portal[0]["from"] == "アクメ精機株式会社"
        and portal[0]["acknowledged_at"] is None
    )
    assert portal_warnings(s, "acme") == []
    acknowledge_in_portal(s, "beta", portal[0]["recipient"], by="鈴木 花子")

    # chase: only the unacknowledged, only after the configured time
    later = datetime.now(UTC) + timedelta(minutes=30)
    assert chase(s, smtp, after=timedelta(hours=4), now=later) == []
    chased = chase(s, smtp, after=timedelta(hours=4), now=later + timedelta(hours=4))
    assert [r.email for r in chased] == ["soc@mssp.example"]
    assert str(sink.messages[-1]["Subject"]).startswith("[Reminder]") or "再送" in str(
        sink.messages[-1]["Subject"]
    )
    knows = {r["email"]: (r["state"], r["chases"]) for r in who_knows(s, "acme", inc.id)}
    assert knows == {
        "suzuki@beta-parts.jp": ("acknowledged", 0),
        "kato@gamma-unyu.co.jp": ("acknowledged", 0),
        "soc@mssp.example": ("delivered", 1),
    }
    timeline = [e.text for e in s.query(TimelineEntry).filter_by(incident_id=inc.id, entry="share")]
    assert any("acknowledged warning" in t and "ガンマ運輸" in t for t in timeline)
    assert any("acknowledged warning" in t and "ベータ部品" in t for t in timeline)
    assert any(t.startswith("chased ガンマ運輸") for t in timeline)


def test_hacked_partner_is_told_its_server_sends_malware(
    tenants: Session, smtp_sink: tuple[Sink, int]
) -> None:
    s = tenants
    sink, port = smtp_sink
    partners(s)
    t0 = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
    inc = Incident(tenant_id="acme", kind="malware_mail_campaign", severity="high",
                   title="100 malware mails from gamma-unyu.co.jp", first_seen=t0, last_seen=t0)  # fmt: skip
    s.add(inc)
    s.flush()
    s.add(IncidentKey(incident_id=inc.id, tenant_id="acme", kind="x", key="sender:gamma-unyu.co.jp"))
    sha = "a" * 64
    s.add(
        Alert(tenant_id="acme", incident_id=inc.id, detector="malware_mail", kind="malware_mail_campaign",
              severity="high", title="100 malware mails from gamma-unyu.co.jp", indicator=sha,
              evidence={"mails": 100, "sender_domains": ["gamma-unyu.co.jp"], "attachment_hashes": [sha],
                        "recipients": ["sato@acme.co.jp"], "attachments": ["請求書_1120.zip"],
                        "families": ["emotet"]},
              event_count=100, first_seen=t0, last_seen=t0 + timedelta(hours=1), dedup_key="mm1")
    )  # fmt: skip
    s.flush()
    cands = candidate_recipients(s, "acme", inc.id)
    assert [(c.partner.name, c.reason) for c in cands] == [("ガンマ運輸", "source")]
    w = draft_warning(s, "acme", inc.id, tlp=TLP.AMBER_STRICT)
    assert "貴社のドメイン（gamma-unyu.co.jp）" in w.body_ja and "約100通" in w.body_ja
    assert "請求書_1120.zip" in w.body_ja and sha in w.body_ja and "sato@acme.co.jp" not in w.body_ja
    send_warning(s, "acme", w.id, SmtpConfig(port=port))
    assert sink.rcpts == ["kato@gamma-unyu.co.jp"]  # AMBER+STRICT never goes to the partner's SOC
    states = {r["email"]: r["state"] for r in who_knows(s, "acme", inc.id)}
    assert states["soc@mssp.example"] == "withheld"


def test_unreachable_mail_server_is_reported(tenants: Session) -> None:
    s = tenants
    partners(s)
    inc = make_incident(s)
    w = draft_warning(s, "acme", inc.id, tlp=TLP.GREEN)
    with pytest.raises(P.ShareError, match="cannot reach the mail server"):
        send_warning(s, "acme", w.id, SmtpConfig(port=1, timeout=2))


def test_company_name_survives_its_contacts_family_name(session: Session) -> None:
    from mimamori.db import repo
    from mimamori.share.sanitize import Sanitizer

    repo.add_tenant(
        session, "sakurai", "桜井商事", contact_name="桜井 一郎", contact_email="ichiro@sakurai.example"
    )
    san = Sanitizer.for_tenant(session, "sakurai")
    assert (
        san.text("桜井商事より: 桜井さん（桜井 一郎）に連絡")
        == "桜井商事より: [担当者]さん（[担当者]）に連絡"
    )


def test_red_warning_goes_to_named_people_not_the_portal(
    tenants: Session, smtp_sink: tuple[Sink, int]
) -> None:
    s = tenants
    sink, port = smtp_sink
    partners(s)
    inc = make_incident(s)
    w = draft_warning(s, "acme", inc.id, tlp=TLP.RED, partners=["ベータ部品"])
    send_warning(s, "acme", w.id, SmtpConfig(port=port))
    assert sink.rcpts == ["suzuki@beta-parts.jp"] and sink.messages[0]["X-TLP"] == "TLP:RED"
    assert portal_warnings(s, "beta") == []
    with pytest.raises(P.ShareError, match="portal"):
        acknowledge_in_portal(s, "beta", w.recipients[0].id, by="x")
