"""Block lists for UTMs: approval of partner entries, expiry, and a curl poller with ETag
against a real uvicorn server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy.orm import Session

from mimamori.config import Settings
from mimamori.db import repo
from mimamori.db.session import make_engine, session_scope
from mimamori.serve import create_app
from mimamori.share import blocklist as B
from mimamori.share import partners as P
from mimamori.share.tlp import TLP
from tests.conftest import IN_CI
from tests.share.conftest import make_incident


def test_entries_rules(tenants: Session) -> None:
    s = tenants
    e = B.add_entry(s, "acme", "ip", "198.51.100.7", by="analyst")
    assert e.state == "active"
    with pytest.raises(P.ShareError, match="internal"):
        B.add_entry(s, "acme", "ip", "10.10.3.3", by="analyst")
    with pytest.raises(P.ShareError, match="internal"):
        B.add_entry(s, "acme", "ip", "192.168.1.1", by="analyst")
    with pytest.raises(P.ShareError, match="not a valid"):
        B.add_entry(s, "acme", "domain", "not a domain", by="analyst")
    with pytest.raises(P.ShareError, match="unknown list"):
        B.add_entry(s, "acme", "mac", "x", by="analyst")
    B.add_entry(s, "acme", "url", "hxxp://evil.example/a.exe", by="analyst")
    assert B.render(s, "acme", "url").splitlines()[1:] == ["evil.example/a.exe"]
    assert B.render(s, "beta", "ip").splitlines()[1:] == []  # tenant-scoped


def test_partner_incident_entries_wait_for_approval(tenants: Session) -> None:
    s = tenants
    inc = make_incident(s, tenant="acme")
    with pytest.raises(P.ShareError, match="not a partner"):
        B.propose_from_partner_incident(s, "beta", "acme", inc.id, by="analyst")
    P.add_partner(s, "beta", "アクメ精機", partner_tenant_id="acme")
    with pytest.raises(P.ShareError, match="TLP:RED"):
        B.propose_from_partner_incident(s, "beta", "acme", inc.id, by="analyst", tlp=TLP.RED)
    entries = B.propose_from_partner_incident(s, "beta", "acme", inc.id, by="analyst")
    assert sorted((e.type, e.value, e.state) for e in entries) == [
        ("domain", "evil-invoice.example", "pending"),
        ("ip", "203.0.113.45", "pending"),
    ]
    assert B.render(s, "beta", "ip").splitlines()[1:] == []
    B.decide_entry(s, "beta", entries[0].id, approve=True, by="analyst-2")
    B.decide_entry(s, "beta", entries[1].id, approve=False, by="analyst-2")
    lists = B.render(s, "beta", "ip") + B.render(s, "beta", "domain")
    assert ("203.0.113.45" in lists) != ("evil-invoice.example" in lists)
    with pytest.raises(P.ShareError, match="no block entry"):
        B.decide_entry(s, "acme", entries[0].id, approve=True, by="x")


def test_stale_entries_expire(tenants: Session) -> None:
    s = tenants
    now = datetime.now(UTC)
    B.add_entry(
        s, "acme", "domain", "old.example", by="a", ttl=timedelta(days=1), now=now - timedelta(days=2)
    )
    B.add_entry(s, "acme", "domain", "new.example", by="a", now=now)
    assert B.render(s, "acme", "domain", now=now).splitlines()[1:] == ["new.example"]
    assert B.expire(s, now=now) == 1
    assert [e.state for e in B.list_entries(s, "acme")] == ["expired", "active"]


def _curl(*args: str) -> tuple[int, dict[str, str], str]:
    out = subprocess.run(["curl", "-s", "-i", *args], capture_output=True, text=True, timeout=30, check=True)
    head, _, body = out.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.splitlines()
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return status, headers, body


def test_curl_poller_with_etag(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        if IN_CI:
            pytest.fail("curl is needed (scripts/sysdeps.sh installs it)")
        pytest.skip("curl not installed")
    settings = Settings.load(tmp_path / "home")
    settings.data_dir.mkdir(parents=True)
    app = create_app(settings)
    engine = make_engine(settings.database_url)
    with session_scope(engine) as s:
        repo.add_tenant(s, "acme", "アクメ", networks=["10.10.0.0/16"])
        repo.add_tenant(s, "beta", "ベータ")
        token = B.add_feed_token(s, "acme", "fortigate-1")
        other = B.add_feed_token(s, "beta", "pfsense")
        B.add_entry(s, "acme", "ip", "198.51.100.7", by="analyst")
        B.add_entry(s, "acme", "ip", "203.0.113.0/24", by="analyst")
        pend = B.add_entry(s, "acme", "ip", "192.0.2.99", by="analyst", pending=True).id
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}/feeds/acme/ip.txt"
    env_proxy = {k: os.environ.pop(k) for k in ("http_proxy", "HTTP_PROXY") if k in os.environ}
    try:
        status, headers, body = _curl("-H", f"Authorization: Bearer {token}", url)
        assert status == 200 and headers["content-type"].startswith("text/plain")
        assert body.splitlines() == [
            "# mimamori block list: tenant acme, ip, 2 entries",
            "198.51.100.7",
            "203.0.113.0/24",
        ]
        etag = headers["etag"]
        status, _, body = _curl("-H", f"Authorization: Bearer {token}", "-H", f"If-None-Match: {etag}", url)
        assert status == 304 and body == ""
        # FortiGate/PAN-OS use basic auth, pfSense a token in the URL
        assert _curl("-u", f"fgt:{token}", url)[0] == 200
        assert _curl(f"{url}?token={token}")[0] == 200
        assert _curl(url)[0] == 401
        assert _curl("-H", f"Authorization: Bearer {other}", url)[0] == 401  # beta's token
        assert _curl("-H", f"Authorization: Bearer {token}", url.replace("ip.txt", "mac.txt"))[0] == 404
        with session_scope(engine) as s:
            B.decide_entry(s, "acme", pend, approve=True, by="analyst-2")
        status, headers, body = _curl(
            "-H", f"Authorization: Bearer {token}", "-H", f"If-None-Match: {etag}", url
        )
        assert status == 200 and headers["etag"] != etag and "192.0.2.99" in body.splitlines()
    finally:
        os.environ.update(env_proxy)
        server.should_exit = True
        thread.join(10)
        engine.dispose()
