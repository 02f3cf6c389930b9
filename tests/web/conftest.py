"""Fixtures of the web tests: an app on a migrated database (SQLite and PostgreSQL), two
tenants with an incident each, users of every role, and signed-in clients."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from mimamori.config import Settings
from mimamori.db.models import Asset, Tenant
from mimamori.db.repo import add_tenant
from mimamori.db.session import session_scope
from mimamori.detect.base import AlertDraft
from mimamori.incidents.engine import ingest_alerts
from mimamori.share.partners import add_partner
from mimamori.web import WebSettings, create_app
from mimamori.web.accounts import create_token, create_user

PASSWORD = "correct horse battery"
BASE = "https://testserver"


@dataclass
class World:
    app: FastAPI
    engine: Engine
    settings: Settings
    incidents: dict[str, int] = field(default_factory=dict)  # tenant -> incident id
    tasks: dict[str, int] = field(default_factory=dict)
    assets: dict[str, int] = field(default_factory=dict)
    partners: dict[str, int] = field(default_factory=dict)
    totp: dict[str, str] = field(default_factory=dict)  # username -> secret
    tokens: dict[str, str] = field(default_factory=dict)  # name -> token

    def client(self) -> TestClient:
        return TestClient(self.app, base_url=BASE, follow_redirects=False)


def seed(engine: Engine, world: World) -> None:
    at = datetime.now(UTC) - timedelta(hours=1)
    with session_scope(engine) as s:
        for tid, name in (("acme", "Acme 株式会社"), ("beta", "Beta 商店")):
            add_tenant(s, tid, name, networks=["10.0.0.0/24"])
            s.flush()
            tenant = s.get_one(Tenant, tid)
            draft = AlertDraft(
                "test",
                "banking_malware",
                "high",
                f"Dyre on 10.0.0.5 ({tid})",
                at,
                at,
                ["host:10.0.0.5"],
                host="10.0.0.5",
            )
            inc_id = ingest_alerts(s, tenant, [draft.with_dedup(tid)]).incidents_opened[0]
            world.incidents[tid] = inc_id
            s.flush()
            from mimamori.db.models import Incident

            world.tasks[tid] = s.get_one(Incident, inc_id).tasks[0].id
            a = Asset(
                tenant_id=tid, ip="10.0.0.5", hostname=f"pc-{tid}", os_name="Windows XP", end_of_life=True
            )
            s.add(a)
            s.flush()
            world.assets[tid] = a.id
            p = add_partner(s, tid, f"partner of {tid}", domains=[f"{tid}-partner.example"], actor="test")
            world.partners[tid] = p.id
        for username, role, tenant, partner in (
            ("admin", "provider_admin", None, None),
            ("ana", "analyst", None, None),
            ("owner-acme", "tenant_owner", "acme", None),
            ("viewer-acme", "tenant_viewer", "acme", None),
            ("owner-beta", "tenant_owner", "beta", None),
            ("partner-acme", "partner_viewer", "acme", world.partners["acme"]),
        ):
            u = create_user(s, username, PASSWORD, role, tenant_id=tenant, partner_id=partner, actor="test")
            if u.totp_secret:
                world.totp[username] = u.totp_secret
        for tid in ("acme", "beta"):
            _row, tok = create_token(s, tid, f"script-{tid}", role="analyst", actor="test")
            world.tokens[f"analyst-{tid}"] = tok
            _row, tok = create_token(s, tid, f"viewer-{tid}", role="tenant_viewer", actor="test")
            world.tokens[f"viewer-{tid}"] = tok


@pytest.fixture(autouse=True, scope="session")
def _cheap_argon2() -> Iterator[None]:
    """argon2id with a small cost so the suite runs on two cores; the algorithm is the same."""
    from argon2 import PasswordHasher, Type

    from mimamori.web import security

    saved = security._HASHER
    security.use_hasher(PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1, type=Type.ID))
    yield
    security.use_hasher(saved)


@pytest.fixture
def world(db_url: str, db_engine: Engine, tmp_path: Path) -> Iterator[World]:
    settings = Settings(data_dir=tmp_path, database_url=db_url)
    app = create_app(settings, WebSettings(sensor_check_seconds=0))
    w = World(app=app, engine=db_engine, settings=settings)
    seed(db_engine, w)
    yield w
    app.state.engine.dispose()


def csrf_of(html: str) -> str:
    marker = 'name="csrf_token" value="'
    i = html.index(marker) + len(marker)
    return html[i : html.index('"', i)]


def code_for(secret: str, offset_steps: int = 0) -> str:
    import time

    return pyotp.TOTP(secret).at(int(time.time()) + 30 * offset_steps)


def sign_in(
    world: World, username: str, client: TestClient | None = None, *, code: str | None = None
) -> TestClient:
    """A client signed in as ``username`` (with TOTP when the user has it)."""
    c = client or world.client()
    page = c.get("/login")
    r = c.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": csrf_of(page.text)})
    assert r.status_code == 303, r.text
    if r.headers["location"] == "/login/totp":
        page = c.get("/login/totp")
        r = c.post(
            "/login/totp",
            data={"code": code or code_for(world.totp[username]), "csrf_token": csrf_of(page.text)},
        )
        assert r.status_code == 303, r.text
    return c


def csrf_header(client: TestClient) -> dict[str, Any]:
    page = client.get("/account")
    return {"X-CSRF-Token": csrf_of(page.text)}
