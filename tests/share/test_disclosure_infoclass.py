"""Information classes -> authority reports; the disclosure aid and the public statement."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from mimamori.db.models import Asset
from mimamori.db.models_internet import DataScope
from mimamori.share import partners as P
from mimamori.share.disclosure import assess, attacker_help, draft_statement
from mimamori.share.infoclass import HOLDING_SOURCES, Holding, reports_for_incident, tag
from mimamori.share.tlp import TLP, TlpViolation
from tests.share.conftest import make_incident


def test_incident_lists_the_reports_that_may_apply(tenants: Session) -> None:
    s = tenants
    pc = Asset(tenant_id="acme", ip="10.10.1.23", hostname="pc-sato-01")
    db = Asset(tenant_id="acme", ip="10.10.2.5", hostname="db01")
    s.add_all([pc, db])
    s.flush()
    inc = make_incident(s)
    assert reports_for_incident(s, "acme", inc.id)["reports"] == []
    tag(s, "acme", "export_controlled", host="10.10.1.0/24", note="設計図面")
    tag(s, "acme", "card_data", asset_id=db.id, records=1200)
    tag(s, "acme", "personal_data", store="顧客管理SaaS", records=5000)
    res = reports_for_incident(s, "acme", inc.id)
    assert res["reached"] == ["export_controlled"]
    assert res["held_elsewhere"] == ["card_data", "personal_data"]
    assert [(r["key"], r["obligation"]) for r in res["reports"]] == [("meti", "requested")]
    tag(s, "acme", "personal_data", asset_id=pc.id, records=300)
    res = reports_for_incident(s, "acme", inc.id)
    assert [(r["key"], r["obligation"]) for r in res["reports"]] == [
        ("ppc", "mandatory"),
        ("meti", "requested"),
    ]
    assert "個人情報保護委員会" in res["reports"][0]["authority_ja"]
    with pytest.raises(P.ShareError, match="unknown information class"):
        tag(s, "acme", "secret_sauce", host="10.0.0.1")
    with pytest.raises(P.ShareError, match="no asset"):
        tag(s, "beta", "card_data", asset_id=db.id)  # another tenant's asset


def test_other_holding_sources_merge(tenants: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    s = tenants
    inc = make_incident(s)

    def web_systems(session: Session, incident: object) -> list[Holding]:
        return [Holding("card_data", "web shop", 10, True, source="web")]

    monkeypatch.setattr("mimamori.share.infoclass.HOLDING_SOURCES", [*HOLDING_SOURCES, web_systems])
    res = reports_for_incident(s, "acme", inc.id)
    assert [r["key"] for r in res["reports"]] == ["card_acquirer", "ppc"]


def test_data_scopes_count_as_holdings(tenants: Session) -> None:
    """A system tagged with ``mimamori datascope`` (issue 7's web-shop tagging) is a holding too:
    an incident naming it brings the PPC and card-acquirer reports."""
    s = tenants
    inc = make_incident(s)
    s.add(DataScope(tenant_id="acme", system="shop.acme.example", card_data=True, persons=15_000))
    s.add(DataScope(tenant_id="beta", system="10.10.1.23", sensitive_data=True))  # another tenant's
    s.flush()
    res = reports_for_incident(s, "acme", inc.id)
    assert (res["reached"], res["held_elsewhere"]) == ([], ["card_data", "personal_data"])
    s.add(DataScope(tenant_id="acme", system="10.10.1.23", name="会員DB", persons=300))
    s.flush()
    res = reports_for_incident(s, "acme", inc.id)
    assert res["reached"] == ["personal_data"]
    assert [r["key"] for r in res["reports"]] == ["ppc"]


def test_disclosure_aid_and_statement(tenants: Session) -> None:
    s = tenants
    s.add(Asset(tenant_id="acme", ip="10.10.1.23", hostname="pc-sato-01"))
    inc = make_incident(s)
    a = assess(s, "acme", inc.id)
    assert a.recommendation == "not_yet" and not any(a.factors.values())
    a = assess(s, "acme", inc.id, answers={"severe_damage": True})
    assert a.recommendation == "consider" and "(analyst's answer)" in a.evidence["severe_damage"]
    a = assess(s, "acme", inc.id, answers={"severe_damage": True, "scope_unknown": True})
    assert a.recommendation == "disclose" and a.reasons_ja[:2] == [
        "被害が重大です",
        "被害の範囲がまだ分かりません",
    ]
    tag(s, "acme", "personal_data", host="10.10.1.23", records=5000)
    inc.kind = "emotet"
    a = assess(s, "acme", inc.id)
    assert a.factors["scope_unknown"] and a.recommendation == "disclose"

    st = draft_statement(s, "acme", inc.id, contact="お客様窓口 0120-000-000 (平日 9-17時)")
    assert st["tlp"] == "CLEAR" and st["attacker_help"] == []
    for text in (st["body_ja"], st["body_en"]):
        for leak in ("10.10.1.23", "pc-sato-01", "203.0.113.45", "evil-invoice", "sato@", "佐藤"):
            assert leak not in text
    assert "0120-000-000" in st["body_ja"] and "個人情報" in st["body_ja"]
    assert st["reports"][0]["key"] == "ppc"
    with pytest.raises(TlpViolation):
        draft_statement(s, "acme", inc.id, contact="x", tlp=TLP.GREEN)
    assert attacker_help("FortiGate 6.0 の脆弱性 CVE-2018-13379 を突かれ 192.0.2.1 から侵入") == [
        "IP address: 192.0.2.1",
        "vulnerability id: CVE-2018-13379",
        "product or control: FortiGate",
        "weakness: 脆弱性",
    ]
