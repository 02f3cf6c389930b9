"""Take the README's screenshots: run the demo into a temporary directory, serve the console on
127.0.0.1, and photograph the analyst queue and the SME portal with Debian's chromium.

    .venv/bin/python scripts/screenshots.py [docs/img]
"""

from __future__ import annotations

import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyotp
import uvicorn
from playwright.sync_api import sync_playwright

from mimamori.config import Settings
from mimamori.demo.run import run_demo
from mimamori.web import WebSettings, create_app

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.load(Path(tmp) / "demo")
        summary = run_demo(settings)
        users = {u["username"]: u for u in summary["users"]}
        app = create_app(settings, WebSettings(cookie_secure=False, sensor_check_seconds=0))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                for username, path, name in (("analyst", "/console", "analyst-queue.png"),
                                             ("owner", "/portal", "sme-portal.png")):
                    ctx = browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 860})
                    page = ctx.new_page()
                    page.goto(f"{base}/login")
                    page.fill("input[name=username]", username)
                    page.fill("input[name=password]", users[username]["password"])
                    page.click("button[type=submit]")
                    if users[username]["totp_secret"]:
                        page.wait_for_url(f"{base}/login/totp")
                        page.fill("input[name=code]", pyotp.TOTP(users[username]["totp_secret"]).now())
                        page.click("button[type=submit]")
                    page.goto(base + path)
                    page.screenshot(path=str(out / name), full_page=False)
                    ctx.close()
                browser.close()
        finally:
            server.should_exit = True
            time.sleep(0.5)
    print(f"screenshots written to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img"))
