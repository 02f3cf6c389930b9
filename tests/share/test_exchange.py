"""Publishing into a trust group, the group's MISP feed, and importing outside bundles."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from mimamori.db.models import Indicator
from mimamori.intel.misp import MispFeedReader
from mimamori.share import partners as P
from mimamori.share.exchange import import_bundle, publish_incident, write_misp_feed
from mimamori.share.taxii import add_objects
from mimamori.share.tlp import TLP, TlpViolation
from tests.share.conftest import make_incident

EXAMPLES = Path("threat-intel/stix21/oasis-cti-documentation/examples/example_json")


@pytest.fixture
def group(tenants: Session) -> Session:
    P.add_group(tenants, "acme-chain", "アクメ・サプライチェーン", lead_tenant_id="acme")
    P.add_member(tenants, "acme-chain", tenant_id="beta", role="supplier")
    return tenants


def test_publish_and_misp_feed_round_trip(group: Session, tmp_path: Path) -> None:
    s = group
    inc = make_incident(s)
    st = publish_incident(s, "acme", inc.id, "acme-chain", tlp=TLP.AMBER)
    assert st.failure_count == 0 and st.success_count > 5
    with pytest.raises(P.ShareError, match="not consented"):
        publish_incident(s, "beta", inc.id, "acme-chain", tlp=TLP.GREEN)
    out = tmp_path / "feed"
    res = write_misp_feed(s, "acme-chain", out)
    assert (res.events, res.attributes, res.withheld) == (1, 3, [])
    manifest = json.loads((out / "manifest.json").read_text())
    (uuid,) = manifest
    event = json.loads((out / f"{uuid}.json").read_text())["Event"]
    assert manifest[uuid]["Tag"] == event["Tag"] and {"name": "tlp:amber"} in event["Tag"]
    assert event["threat_level_id"] == "1" and event["distribution"] == "0"
    assert "10.10.1.23" not in json.dumps(event)
    rows = list(csv.reader((out / "hashes.csv").read_text().splitlines()))
    assert sorted(r[0] for r in rows) == sorted(
        hashlib.md5(a["value"].encode()).hexdigest() for a in event["Attribute"]
    )
    assert {r[1] for r in rows} == {uuid}
    # the intel package's MISP feed reader reads our feed back
    read = MispFeedReader().read(out)
    assert not read.issues
    assert sorted(read.indicators["value"].to_list()) == [
        "203.0.113.45",
        "44d88612fea8a8f36de82e1278abb02f",
        "evil-invoice.example",
    ]
    # a public feed only carries TLP:CLEAR events
    pub = write_misp_feed(s, "acme-chain", tmp_path / "public", public=True)
    assert pub.events == 0 and "only TLP:CLEAR" in pub.withheld[0]


@pytest.mark.corpus
def test_import_bundle_keeps_its_tlp(group: Session, corpus: Path) -> None:
    s = group
    amber = corpus / EXAMPLES / "using-marking-definitions.json"  # TLP 1.0 AMBER marking
    res = import_bundle(s, amber)
    assert res.tlp is TLP.AMBER and res.shared is None
    assert res.intel.files[0].indicators == 1 and res.intel.dropped.height == 1  # 10.0.0.0/8 example
    with pytest.raises(TlpViolation, match="beyond the recipient"):
        import_bundle(s, amber, share_to="acme-chain")  # an onward share of AMBER
    unmarked = corpus / EXAMPLES / "indicator-for-malicious-url.json"
    with pytest.raises(TlpViolation):
        import_bundle(s, unmarked, share_to="acme-chain")  # unmarked is taken as AMBER
    ok = import_bundle(s, unmarked, share_to="acme-chain", assume=TLP.GREEN)
    assert ok.shared is not None and ok.shared.failure_count == 0
    assert s.query(Indicator).filter(Indicator.type == "url").count() == 1


def test_import_rejects_garbage(group: Session, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(P.ShareError, match=r"bad\.json"):
        import_bundle(group, bad)


def test_collection_refuses_red_and_malformed_objects(group: Session) -> None:
    g = P.get_group(group, "acme-chain")
    st = add_objects(
        group,
        g,
        [
            {"type": "indicator", "id": "indicator--1", "object_marking_refs": [TLP.RED.marking_id]},
            {"type": "indicator"},
            {"type": "malware", "id": "indicator--x"},
            "text",
        ],
        origin="tenant:acme",
    )
    assert st.success_count == 0 and st.failure_count == 4
