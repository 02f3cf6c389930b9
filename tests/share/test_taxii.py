"""TAXII 2.1 end to end: taxii2-client against a real uvicorn server started here."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import uvicorn
from taxii2client.exceptions import TAXIIServiceException
from taxii2client.v21 import ApiRoot, Collection, Server, as_pages

from mimamori.config import Settings
from mimamori.db import repo
from mimamori.db.session import make_engine, session_scope
from mimamori.serve import create_app
from mimamori.share import partners as P
from mimamori.share.stix_export import audience_of, export_incident
from mimamori.share.taxii import TAXII
from mimamori.share.tlp import MARKING_IDS, TLP
from tests.share.conftest import make_incident


class Bearer(requests.auth.AuthBase):
    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, r: Any) -> Any:
        r.headers["Authorization"] = f"Bearer {self.token}"
        return r


@dataclass
class Live:
    url: str
    tokens: dict[str, str]
    collection: str
    other_collection: str
    bundle: dict[str, Any]
    db_url: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    settings = Settings.load(tmp_path / "home")
    settings.data_dir.mkdir(parents=True)
    app = create_app(settings)  # migrates the database
    engine = make_engine(settings.database_url)
    tokens: dict[str, str] = {}
    with session_scope(engine) as s:
        repo.add_tenant(s, "acme", "アクメ精機", networks=["10.10.0.0/16"], contact_name="佐藤 太郎")
        repo.add_tenant(s, "beta", "ベータ部品")
        repo.add_tenant(s, "zeta", "ゼータ")
        P.add_partner(s, "acme", "外部SOC株式会社", relation="other")
        g = P.add_group(s, "acme-chain", "アクメ・サプライチェーン", lead_tenant_id="acme")
        other = P.add_group(s, "zeta-isac", "ゼータ業界", kind="industry", lead_tenant_id="zeta")
        lead = g.members[0]
        beta = P.add_member(s, "acme-chain", tenant_id="beta", role="supplier", consent=True)
        nocons = P.add_member(s, "acme-chain", partner_of="acme", partner="外部SOC株式会社", role="supplier")
        soc = P.add_member(s, "acme-chain", tenant_id="zeta", role="provider", consent=True)
        tokens["lead"] = P.add_api_key(s, "acme", group="acme-chain", member_id=lead.id, can_write=True)[1]
        tokens["beta"] = P.add_api_key(s, "beta", group="acme-chain", member_id=beta.id)[1]
        tokens["nocons"] = P.add_api_key(s, "x", group="acme-chain", member_id=nocons.id, can_write=True)[1]
        tokens["soc"] = P.add_api_key(s, "soc", group="acme-chain", member_id=soc.id)[1]
        tokens["provider"] = P.add_api_key(s, "analyst", can_write=True)[1]
        inc = make_incident(s)
        bundle = export_incident(s, "acme", inc.id, tlp=TLP.AMBER, audience=audience_of("group:acme-chain"))
        cid, other_cid = g.collection_id, other.collection_id
    engine.dispose()
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield Live(f"http://127.0.0.1:{port}", tokens, cid, other_cid, bundle, settings.database_url)
    finally:
        server.should_exit = True
        thread.join(10)


def test_taxii2_client_reads_and_writes(live: Live) -> None:
    server = Server(f"{live.url}/taxii2/", auth=Bearer(live.tokens["lead"]))
    assert server.title == "mimamori TAXII 2.1"
    root: ApiRoot = server.default
    assert root.versions == [TAXII]
    cols = root.collections
    assert [c.id for c in cols] == [live.collection]  # a group key sees its own group only
    col: Collection = cols[0]
    assert col.can_read and col.can_write

    status = col.add_objects({"objects": live.bundle["objects"]})
    n = len(live.bundle["objects"])
    assert (status.status, status.total_count, status.success_count, status.failure_count) == (
        "complete",
        n,
        n,
        0,
    )

    # a supplier reads them, page by page with next/more
    beta = Collection(
        f"{live.url}/taxii2/share/collections/{live.collection}/", auth=Bearer(live.tokens["beta"])
    )
    assert beta.can_read and not beta.can_write
    pages = list(as_pages(beta.get_objects, per_request=3))
    got = [o["id"] for p in pages for o in p.get("objects", [])]
    assert len(pages) == -(-n // 3) and sorted(got) == sorted(o["id"] for o in live.bundle["objects"])
    assert all(p["more"] for p in pages[:-1]) and not pages[-1]["more"]

    indicators = beta.get_objects(type="indicator")["objects"]
    assert {o["type"] for o in indicators} == {"indicator"} and len(indicators) == 3
    one = indicators[0]["id"]
    assert beta.get_objects(id=one)["objects"][0]["id"] == one
    assert beta.get_object(one)["objects"][0]["id"] == one
    assert beta.get_objects(spec_version="2.0").get("objects") is None

    # a new version of the indicator: last by default, all on request, first on request
    newer = dict(indicators[0], modified="2030-01-01T00:00:00.000Z", description="updated")
    assert col.add_objects({"objects": [newer]}).success_count == 1
    assert beta.get_object(one)["objects"][0]["description"] == "updated"
    assert len(beta.get_object(one, version="all")["objects"]) == 2
    assert beta.get_object(one, version="first")["objects"][0]["modified"] != "2030-01-01T00:00:00.000Z"
    vers = beta.object_versions(one)["versions"]
    assert len(vers) == 2 and vers[-1] == "2030-01-01T00:00:00.000000Z"
    by_ts = beta.get_object(one, version="2030-01-01T00:00:00.000Z")["objects"]
    assert [o["description"] for o in by_ts] == ["updated"]

    # manifest and added_after paging
    man = beta.get_manifest()
    assert len(man["objects"]) == n and {m["media_type"] for m in man["objects"]} == {
        "application/stix+json;version=2.1"
    }
    first_page = beta.get_manifest(limit=2)
    assert first_page["more"] is True and len(first_page["objects"]) == 2
    rest = beta.get_manifest(added_after=first_page["objects"][-1]["date_added"])
    assert len(rest["objects"]) == n - 2

    # status resource
    st = root.get_status(status.id)
    assert st.status == "complete" and st.success_count == n

    # delete
    col.delete_object(one)
    with pytest.raises(requests.exceptions.HTTPError) as e:
        beta.get_object(one)
    assert e.value.response.status_code == 404


def test_tlp_enforced_in_collections(live: Live) -> None:
    col = Collection(
        f"{live.url}/taxii2/share/collections/{live.collection}/", auth=Bearer(live.tokens["lead"])
    )
    red = dict(next(o for o in live.bundle["objects"] if o["type"] == "indicator"))
    red["id"] = "indicator--6b4e1b9e-2d8c-4d2c-8f3c-2f3e4b5a6c7d"
    red["object_marking_refs"] = [MARKING_IDS[TLP.RED]]
    st = col.add_objects({"objects": [*live.bundle["objects"], red]})
    assert st.failure_count == 1 and st.failures[0]["id"] == red["id"]
    assert "named individual recipients" in st.failures[0]["message"]

    # another provider in the group gets no AMBER without the originator's permission
    soc = Collection(
        f"{live.url}/taxii2/share/collections/{live.collection}/", auth=Bearer(live.tokens["soc"])
    )
    visible = soc.get_objects().get("objects", [])
    assert visible and all(o["type"] == "marking-definition" for o in visible)
    engine = make_engine(live.db_url)
    try:
        with session_scope(engine) as s:
            P.grant_provider_permission(s, "acme", "ゼータ", granted_by="佐藤 太郎", max_tlp=TLP.AMBER)
    finally:
        engine.dispose()
    assert len(soc.get_objects()["objects"]) == len(live.bundle["objects"])


def test_taxii_errors(live: Live) -> None:
    base = f"{live.url}/taxii2/share/collections/{live.collection}/objects/"
    auth = {"Authorization": f"Bearer {live.tokens['lead']}"}
    with httpx.Client() as c:
        r = c.get(f"{live.url}/taxii2/", headers={"Accept": TAXII})
        assert r.status_code == 401 and r.headers["content-type"] == TAXII
        assert r.json()["http_status"] == "401"
        r = c.get(f"{live.url}/taxii2/", headers={"Accept": TAXII, "Authorization": "Bearer nope"})
        assert r.status_code == 401
        assert c.get(f"{live.url}/taxii2/", headers={**auth, "Accept": "application/json"}).status_code == 406
        assert (
            c.get(base, headers={**auth, "Accept": "application/taxii+json;version=2.0"}).status_code == 406
        )
        h = {**auth, "Accept": TAXII}
        assert c.get(f"{live.url}/taxii2/", headers=h).status_code == 200
        r = c.post(base, headers={**h, "Content-Type": "application/json"}, content=b'{"objects": []}')
        assert r.status_code == 415
        r = c.post(base, headers={**h, "Content-Type": TAXII}, content=b"{not json")
        assert r.status_code == 422
        r = c.post(base, headers={**h, "Content-Type": TAXII}, content=b'{"objects": 5}')
        assert r.status_code == 422
        big = b'{"objects": [], "pad": "' + b"x" * (10 * 1024 * 1024) + b'"}'
        assert c.post(base, headers={**h, "Content-Type": TAXII}, content=big).status_code == 413
        r = c.post(base, headers={**h, "Content-Type": TAXII}, content=b'{"objects": []}')
        assert r.status_code == 202 and r.json()["status"] == "complete"
        # another group's collection does not exist for this key; unknown ids are 404
        other = f"{live.url}/taxii2/share/collections/{live.other_collection}/"
        assert c.get(other, headers=h).status_code == 404
        assert c.get(f"{live.url}/taxii2/share/collections/nope/", headers=h).status_code == 404
        assert c.get(f"{live.url}/taxii2/share/status/nope/", headers=h).status_code == 404
        # read-only member may not write; a member without consent may not read
        hb = {"Authorization": f"Bearer {live.tokens['beta']}", "Accept": TAXII, "Content-Type": TAXII}
        assert c.post(base, headers=hb, content=b'{"objects": []}').status_code == 403
        hn = {"Authorization": f"Bearer {live.tokens['nocons']}", "Accept": TAXII}
        assert c.get(base, headers=hn).status_code == 403
        # the provider analyst key sees every group's collection
        hp = {"Authorization": f"Bearer {live.tokens['provider']}", "Accept": TAXII}
        cols = c.get(f"{live.url}/taxii2/share/collections/", headers=hp).json()["collections"]
        assert {x["id"] for x in cols} == {live.collection, live.other_collection}
        assert c.get(base, headers={**hp, "Accept": "application/taxii+json"}).status_code == 200
        assert c.get(base, params={"limit": "x"}, headers=hp).status_code == 400


def test_taxii2_client_raises_on_unauthorised(live: Live) -> None:
    server = Server(f"{live.url}/taxii2/", auth=Bearer("wrong"))
    with pytest.raises((requests.exceptions.HTTPError, TAXIIServiceException)):
        _ = server.title
