"""Partners, trust groups with consent, and recorded provider permissions."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from mimamori.share import partners as P
from mimamori.share.tlp import TLP
from tests.share.conftest import make_incident


def test_partners_are_tenant_scoped(tenants: Session) -> None:
    s = tenants
    p = P.add_partner(s, "acme", "ベータ部品", domains=["Beta-Parts.jp."], partner_tenant_id="beta")
    P.add_contact(s, "acme", p.id, "鈴木 花子", "suzuki@beta-parts.jp", role="情報システム")
    q = P.add_partner(s, "acme", "ガンマ運輸", relation="logistics", domains=["gamma-unyu.co.jp"])
    P.add_contact(s, "acme", "ガンマ運輸", "SOC desk", "soc@mssp.example", kind="provider")
    d = P.partner_dict(p)
    assert d["domains"] == ["beta-parts.jp"] and d["is_customer"] and d["contacts"][0]["email"]
    assert not P.partner_dict(q)["is_customer"]
    assert [x.name for x in P.list_partners(s, "acme")] == ["ベータ部品", "ガンマ運輸"]
    assert P.list_partners(s, "beta") == []
    with pytest.raises(P.ShareError, match="no partner"):
        P.get_partner(s, "beta", p.id)  # another tenant's partner is invisible
    with pytest.raises(P.ShareError, match="already has"):
        P.add_partner(s, "acme", "ベータ部品")
    with pytest.raises(P.ShareError, match="not a mail address"):
        P.add_contact(s, "acme", p.id, "x", "not-an-address")
    with pytest.raises(P.ShareError, match="not a domain"):
        P.add_partner(s, "acme", "X", domains=["bad domain"])


def test_group_membership_roles_and_consent(tenants: Session) -> None:
    s = tenants
    P.add_partner(s, "acme", "ガンマ運輸", domains=["gamma-unyu.co.jp"])
    g = P.add_group(s, "acme-chain", "アクメ・サプライチェーン", lead_tenant_id="acme")
    m_beta = P.add_member(s, "acme-chain", tenant_id="beta", role="supplier")
    m_gamma = P.add_member(s, "acme-chain", partner_of="acme", partner="ガンマ運輸", role="supplier")
    assert [m.id for m in P.consenting_members(g)] == [g.members[0].id]  # only the lead so far
    P.set_consent(s, "acme-chain", m_beta.id, True, by="鈴木 花子")
    d = P.group_dict(s, g)
    assert [(m["name"], m["role"], m["consent"]) for m in d["members"]] == [
        ("アクメ精機株式会社", "lead", True),
        ("ベータ部品", "supplier", True),
        ("ガンマ運輸", "supplier", False),
    ]
    assert m_gamma.consent_at is None
    assert [x.slug for x in P.list_groups(s, "beta")] == ["acme-chain"]
    with pytest.raises(P.ShareError, match="already a member"):
        P.add_member(s, "acme-chain", tenant_id="beta")
    with pytest.raises(P.ShareError, match="unknown role"):
        P.add_member(s, "acme-chain", partner_of="acme", partner="ガンマ運輸", role="boss")


def test_provider_permission_is_recorded_scoped_and_revocable(tenants: Session) -> None:
    s = tenants
    inc = make_incident(s)
    assert not P.has_provider_permission(s, "acme", "soc-x", TLP.AMBER)
    perm = P.grant_provider_permission(
        s,
        "acme",
        "soc-x",
        granted_by="佐藤 太郎",
        max_tlp=TLP.AMBER,
        incident_id=inc.id,
        evidence="mail 11/20",
    )
    assert P.has_provider_permission(s, "acme", "soc-x", TLP.AMBER, inc.id)
    assert not P.has_provider_permission(s, "acme", "soc-x", TLP.AMBER_STRICT, inc.id)  # above max
    assert not P.has_provider_permission(s, "acme", "soc-x", TLP.AMBER, None)  # other incidents
    assert not P.has_provider_permission(s, "beta", "soc-x", TLP.AMBER, inc.id)  # other originator
    P.revoke_provider_permission(s, "acme", perm.id)
    assert not P.has_provider_permission(s, "acme", "soc-x", TLP.AMBER, inc.id)
    with pytest.raises(P.ShareError, match="never passed"):
        P.grant_provider_permission(s, "acme", "soc-x", granted_by="x", max_tlp=TLP.RED)
    with pytest.raises(P.ShareError, match="no incident"):
        P.grant_provider_permission(s, "beta", "soc-x", granted_by="x", incident_id=inc.id)
