"""STIX 2.1 export of an incident: validates (strict), TLP 2.0 marked, nothing internal leaks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from mimamori.db.models import Asset
from mimamori.intel.stix import StixBundleReader
from mimamori.share.stix_export import audience_of, export_incident, validate_bundle
from mimamori.share.tlp import MARKING_IDS, TLP, TlpViolation
from tests.share.conftest import make_incident


@pytest.mark.parametrize("tlp", list(TLP))
def test_bundle_validates_and_is_marked(tenants: Session, tlp: TLP) -> None:
    s = tenants
    s.add(Asset(tenant_id="acme", ip="10.10.1.23", hostname="pc-sato-01"))
    inc = make_incident(s)
    aud = audience_of("person:soc@partner.example") if tlp is TLP.RED else audience_of("group:acme-chain")
    bundle = export_incident(s, "acme", inc.id, tlp=tlp, audience=aud)
    assert validate_bundle(bundle) == []
    objs = bundle["objects"]
    md = [o for o in objs if o["type"] == "marking-definition"]
    assert [m["id"] for m in md] == [MARKING_IDS[tlp]]
    for o in objs:
        if o["type"] != "marking-definition":
            assert o["object_marking_refs"] == [MARKING_IDS[tlp]], o["id"]
    types = sorted({o["type"] for o in objs})
    assert types == [
        "identity",
        "indicator",
        "malware",
        "marking-definition",
        "relationship",
        "report",
        "sighting",
    ]
    patterns = sorted(o["pattern"] for o in objs if o["type"] == "indicator")
    assert patterns == [
        "[domain-name:value = 'evil-invoice.example']",
        "[file:hashes.MD5 = '44d88612fea8a8f36de82e1278abb02f']",
        "[ipv4-addr:value = '203.0.113.45']",
    ]
    text = json.dumps(bundle, ensure_ascii=False)
    for leak in ("10.10.1.23", "pc-sato-01", "sato@acme.co.jp", "acme", "アクメ"):
        assert leak not in text
    sightings = [o for o in objs if o["type"] == "sighting"]
    assert {x["count"] for x in sightings} == {3}


def test_export_obeys_tlp(tenants: Session) -> None:
    s = tenants
    inc = make_incident(s)
    with pytest.raises(TlpViolation):
        export_incident(s, "acme", inc.id, tlp=TLP.GREEN, audience=audience_of("public"))
    with pytest.raises(TlpViolation, match="permission"):
        export_incident(s, "acme", inc.id, tlp=TLP.AMBER, audience=audience_of("provider:soc-x"))
    b = export_incident(
        s, "acme", inc.id, tlp=TLP.AMBER, audience=audience_of("provider:soc-x"), provider_permission=True
    )
    assert validate_bundle(b) == []
    with pytest.raises(TlpViolation):
        export_incident(s, "acme", inc.id, tlp=TLP.RED, audience=audience_of("group:acme-chain"))
    assert (
        validate_bundle(export_incident(s, "acme", inc.id, tlp=TLP.CLEAR, audience=audience_of("public")))
        == []
    )


def test_export_reads_back_with_the_intel_reader(tenants: Session, tmp_path: Path) -> None:
    s = tenants
    inc = make_incident(s)
    b = export_incident(s, "acme", inc.id, tlp=TLP.GREEN, audience=audience_of("group:g"))
    f = tmp_path / "b.json"
    f.write_text(json.dumps(b))
    res = StixBundleReader().read(f)
    assert sorted(res.indicators["value"].to_list()) == [
        "203.0.113.45",
        "44d88612fea8a8f36de82e1278abb02f",
        "evil-invoice.example",
    ]
    assert set(res.indicators["threat"].to_list()) == {"Emotet"}
    assert not res.issues


def test_validator_catches_a_broken_bundle(tenants: Session) -> None:
    s = tenants
    inc = make_incident(s)
    b = export_incident(s, "acme", inc.id, tlp=TLP.GREEN, audience=audience_of("group:g"))
    ind = next(o for o in b["objects"] if o["type"] == "indicator")
    del ind["pattern_type"]
    assert validate_bundle(b)
