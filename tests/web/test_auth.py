"""Sign-in: passwords, TOTP (required for provider roles, replay refused), lockout, per-source
limits, sessions (cookie flags, expiry), CSRF, API tokens, security headers, audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from mimamori.db.models import AuditLog
from mimamori.db.models_web import WebSession, WebUser
from mimamori.db.session import session_scope
from mimamori.web.accounts import revoke_token
from tests.web.conftest import PASSWORD, World, code_for, csrf_header, csrf_of, sign_in


def _login(c, username: str, password: str = PASSWORD):
    page = c.get("/login")
    return c.post(
        "/login", data={"username": username, "password": password, "csrf_token": csrf_of(page.text)}
    )


def _audit(world: World, action: str) -> list[AuditLog]:
    with session_scope(world.engine) as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.action == action)))


def test_provider_sign_in_needs_totp_and_sets_strict_cookie(world: World) -> None:
    c = world.client()
    r = _login(c, "ana")
    assert r.status_code == 303 and r.headers["location"] == "/login/totp"
    cookie = r.headers["set-cookie"]
    assert "mm_session=" in cookie and "HttpOnly" in cookie and "Secure" in cookie
    assert "samesite=strict" in cookie.lower()
    # half signed in: no console, no API
    assert c.get("/console").status_code == 303
    assert c.get("/api/v1/incidents").status_code == 401
    page = c.get("/login/totp")
    r = c.post("/login/totp", data={"code": code_for(world.totp["ana"]), "csrf_token": csrf_of(page.text)})
    assert r.status_code == 303 and r.headers["location"] == "/console"
    assert c.get("/console").status_code == 200
    assert [a.actor for a in _audit(world, "signin.ok")] == ["ana"]


def test_replayed_totp_code_is_refused(world: World) -> None:
    code = code_for(world.totp["ana"])
    sign_in(world, "ana", code=code)
    c = world.client()
    _login(c, "ana")
    page = c.get("/login/totp")
    r = c.post("/login/totp", data={"code": code, "csrf_token": csrf_of(page.text)})
    assert r.status_code == 401
    assert c.get("/api/v1/incidents").status_code == 401
    assert any(a.detail.get("reason") == "bad_totp" for a in _audit(world, "signin.failed"))


def test_tenant_user_without_totp_signs_in_with_password(world: World) -> None:
    c = world.client()
    r = _login(c, "owner-acme")
    assert r.status_code == 303 and r.headers["location"] == "/portal"
    assert c.get("/api/v1/me").json() == {
        "name": "owner-acme",
        "role": "tenant_owner",
        "tenant": "acme",
        "partner": None,
    }


def test_wrong_password_unknown_user_and_lockout(world: World) -> None:
    c = world.client()
    assert _login(c, "nobody", "whatever-it-is").status_code == 401
    for _ in range(5):
        r = _login(c, "owner-beta", "wrong password!")
        assert r.status_code == 401
        assert "サインインできませんでした" in r.text
    # locked now: even the right password is refused, answered like any failure (no enumeration)
    r = _login(c, "owner-beta")
    assert r.status_code == 401 and "サインインできませんでした" in r.text
    with session_scope(world.engine) as s:
        u = s.scalar(select(WebUser).where(WebUser.username == "owner-beta"))
        assert u is not None and u.locked_until is not None and u.locked_until > datetime.now(UTC)
    assert [a.detail.get("reason") for a in _audit(world, "signin.refused")] == ["locked"]
    reasons = [a.detail.get("reason") for a in _audit(world, "signin.failed")]
    assert (
        reasons.count("bad_password") == 4 and "bad_password_locked" in reasons and "unknown_user" in reasons
    )


def test_list_based_attack_from_one_source_is_rate_limited(world: World) -> None:
    c = world.client()
    for i in range(8):  # eight different accounts from one address
        assert _login(c, f"user{i}", "guess-password-1").status_code == 401
    # a real account with the right password is refused from that source now
    assert _login(c, "owner-acme").status_code == 429


def test_post_without_csrf_is_refused(world: World) -> None:
    c = world.client()
    r = c.post("/login", data={"username": "ana", "password": PASSWORD})
    assert r.status_code == 422 or r.status_code == 403
    r = c.post("/login", data={"username": "ana", "password": PASSWORD, "csrf_token": "forged"})
    assert r.status_code == 403
    c = sign_in(world, "ana")
    inc = world.incidents["acme"]
    assert c.post(f"/console/incidents/{inc}/note", data={"text": "x"}).status_code == 403
    r = c.post(f"/api/v1/incidents/{inc}/notes", json={"text": "x"})
    assert r.status_code == 403
    r = c.post(f"/api/v1/incidents/{inc}/notes", json={"text": "x"}, headers=csrf_header(c))
    assert r.status_code == 201


def test_expired_and_idle_sessions_end(world: World) -> None:
    c = sign_in(world, "owner-acme")
    assert c.get("/api/v1/me").status_code == 200
    with session_scope(world.engine) as s:
        s.execute(update(WebSession).values(last_seen_at=datetime.now(UTC) - timedelta(hours=1)))
    assert c.get("/api/v1/me").status_code == 401
    assert c.get("/portal").headers["location"] == "/login"
    c = sign_in(world, "owner-acme")
    with session_scope(world.engine) as s:
        s.execute(update(WebSession).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert c.get("/api/v1/me").status_code == 401


def test_logout_ends_the_session(world: World) -> None:
    c = sign_in(world, "owner-acme")
    r = c.post("/logout", headers=csrf_header(c))
    assert r.status_code == 303
    c.cookies.clear()
    assert c.get("/api/v1/me").status_code == 401
    assert _audit(world, "signout")


def test_api_token_scoped_and_revocable(world: World) -> None:
    c = world.client()
    h = {"Authorization": f"Bearer {world.tokens['viewer-acme']}"}
    assert [t["id"] for t in c.get("/api/v1/tenants", headers=h).json()] == ["acme"]
    # a viewer token may read but not change
    r = c.post(f"/api/v1/incidents/{world.incidents['acme']}/notes", json={"text": "x"}, headers=h)
    assert r.status_code == 403
    assert c.get("/api/v1/me", headers={"Authorization": "Bearer mmt_wrong"}).status_code == 401
    assert c.get("/api/v1/me", headers={"Authorization": "Basic eDp5"}).status_code == 401
    with session_scope(world.engine) as s:
        from mimamori.db.models_web import ApiToken

        tid = s.scalar(select(ApiToken.id).where(ApiToken.name == "viewer-acme"))
        assert tid is not None
        revoke_token(s, tid, actor="test")
    assert c.get("/api/v1/me", headers=h).status_code == 401


def test_security_headers(world: World) -> None:
    r = world.client().get("/login")
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"
    assert r.headers["strict-transport-security"].startswith("max-age=")
    from fastapi.testclient import TestClient

    plain = TestClient(world.app, base_url="http://testserver")
    assert "strict-transport-security" not in plain.get("/login").headers


def test_sme_user_can_enrol_totp_and_then_needs_it(world: World) -> None:
    import re

    c = sign_in(world, "viewer-acme")
    page = c.get("/account")
    secret = re.search(r'name="secret" value="([A-Z2-7]+)"', page.text)
    assert secret is not None
    r = c.post(
        "/account/totp", data={"secret": secret.group(1), "code": "000000", "csrf_token": csrf_of(page.text)}
    )
    assert r.status_code == 422
    r = c.post(
        "/account/totp",
        data={"secret": secret.group(1), "code": code_for(secret.group(1)), "csrf_token": csrf_of(page.text)},
    )
    assert r.status_code == 200 and "二段階認証を設定しました" in r.text
    c2 = world.client()
    assert _login(c2, "viewer-acme").headers["location"] == "/login/totp"
