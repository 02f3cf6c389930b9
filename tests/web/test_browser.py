"""The main flows in a real browser: Debian's Chromium driven by Playwright against a live
server on 127.0.0.1. Without chromium these tests skip locally and fail under CI=true."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from mimamori.config import Settings
from mimamori.db.models import Incident
from mimamori.db.session import make_engine, session_scope
from mimamori.web import WebSettings, create_app
from tests.conftest import IN_CI
from tests.web.conftest import PASSWORD, World, code_for, seed

CHROMIUM = os.environ.get("MIMAMORI_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if not path:
        msg = f"chromium not found at {CHROMIUM} (scripts/sysdeps.sh installs it as root)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, World]]:
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'm.db'}")
    app = create_app(settings, WebSettings(cookie_secure=False, sensor_check_seconds=0))
    engine = make_engine(settings.database_url)
    world = World(app=app, engine=engine, settings=settings)
    seed(engine, world)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", world
    finally:
        server.should_exit = True
        thread.join(10)
        engine.dispose()
        app.state.engine.dispose()


@pytest.fixture
def page(live):
    from playwright.sync_api import sync_playwright

    exe = _chromium()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=ARGS)
        context = browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 900})
        pg = context.new_page()
        pg.set_default_timeout(15_000)
        try:
            yield pg
        finally:
            context.close()
            browser.close()


def _sign_in(page, base: str, username: str, totp: str | None = None) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("ユーザー名").fill(username)
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="サインイン").click()
    if totp:
        page.wait_for_url(f"{base}/login/totp")
        page.get_by_label("コード").fill(code_for(totp))
        page.get_by_role("button", name="確認").click()


def test_analyst_signs_in_with_totp_triages_and_escalates(live, page) -> None:
    base, world = live
    page.goto(f"{base}/console")
    assert page.url == f"{base}/login"  # not signed in
    _sign_in(page, base, "ana", world.totp["ana"])
    page.wait_for_url(f"{base}/console")
    assert page.get_by_role("heading", name="Incident queue").is_visible()
    inc = world.incidents["acme"]
    page.get_by_role("link", name="Dyre on 10.0.0.5 (acme)").click()
    page.wait_for_url(f"{base}/console/incidents/{inc}")
    page.get_by_label("new state").select_option("triage")
    page.get_by_role("button", name="Move").click()
    page.wait_for_load_state()
    assert page.locator("#state").inner_text() == "triage"
    page.get_by_role("button", name="done: Identify every device that may be infected").click()
    page.wait_for_load_state()
    assert page.locator("li.done").count() == 1
    page.get_by_label("engineer").fill("田中")
    page.get_by_label("when (UTC)").fill("2030-04-01T09:30")
    page.get_by_role("button", name="Escalate on site").click()
    page.wait_for_load_state()
    assert page.locator("#state").inner_text() == "onsite"
    page.get_by_label("findings").fill("USBメモリからの感染")
    page.get_by_role("button", name="Record findings").click()
    page.wait_for_load_state()
    assert "USBメモリからの感染" in page.locator(".findings").inner_text()
    with session_scope(world.engine) as s:
        assert s.get_one(Incident, inc).state == "onsite"


def test_sme_owner_reads_status_in_japanese_and_switches_to_english(live, page) -> None:
    base, _world = live
    _sign_in(page, base, "owner-acme")
    page.wait_for_url(f"{base}/portal")
    assert page.locator("html").get_attribute("lang") == "ja"
    assert "対応が必要な問題があります" in page.locator(".status .headline").inner_text()
    assert page.get_by_role("heading", name="今すること").is_visible()
    assert "ネットバンキングを使わないでください" in page.locator("section.todo").inner_text()
    page.get_by_label("気づいたこと").fill("パソコンの動きが急に遅くなった")
    page.get_by_role("button", name="送信する").click()
    page.wait_for_url(f"{base}/portal?sent=1")
    assert "ご連絡ありがとうございます" in page.content()
    page.get_by_role("link", name="English").click()
    page.wait_for_load_state()
    assert "Something needs your attention" in page.locator(".status .headline").inner_text()


def test_wrong_totp_keeps_the_console_closed(live, page) -> None:
    base, _world = live
    page.goto(f"{base}/login")
    page.get_by_label("ユーザー名").fill("ana")
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="サインイン").click()
    page.wait_for_url(f"{base}/login/totp")
    page.get_by_label("コード").fill("000000")
    page.get_by_role("button", name="確認").click()
    assert "サインインできませんでした" in page.locator(".error").inner_text()
    page.goto(f"{base}/console")
    assert page.url.endswith("/login")
