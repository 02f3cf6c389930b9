"""Bad input gets a clear 4xx, never a 500: oversized and malformed bodies, wrong content
types, out-of-range ids, unknown fields, garbage cookies and tokens."""

from __future__ import annotations

import pytest

from tests.web.conftest import World, csrf_header, sign_in


@pytest.fixture
def analyst(world: World):
    c = sign_in(world, "ana")
    return c, csrf_header(c)


def test_oversized_body_is_413(world: World, analyst) -> None:
    c, h = analyst
    inc = world.incidents["acme"]
    big = "x" * (1_048_576 + 10)
    r = c.post(
        f"/api/v1/incidents/{inc}/notes", content=big, headers={**h, "Content-Type": "application/json"}
    )
    assert r.status_code == 413

    def chunks():  # no Content-Length: counted while streaming
        for _ in range(20):
            yield b"x" * 100_000

    r = c.post(
        f"/api/v1/incidents/{inc}/notes", content=chunks(), headers={**h, "Content-Type": "application/json"}
    )
    assert r.status_code in (400, 413)


def test_malformed_json_and_wrong_types_are_4xx(world: World, analyst) -> None:
    c, h = analyst
    inc = world.incidents["acme"]
    url = f"/api/v1/incidents/{inc}/notes"
    assert (
        c.post(url, content=b"{not json", headers={**h, "Content-Type": "application/json"}).status_code
        == 422
    )
    assert c.post(url, content=b"text=x", headers={**h, "Content-Type": "text/plain"}).status_code == 415
    assert c.post(url, json={"text": "x", "extra": 1}, headers=h).status_code == 422
    assert c.post(url, json={"text": ""}, headers=h).status_code == 422
    assert c.post(url, json=["x"], headers=h).status_code == 422
    assert (
        c.post(
            url,
            content="\udcff".encode("utf-8", "surrogatepass"),
            headers={**h, "Content-Type": "application/json"},
        ).status_code
        == 422
    )
    r = c.post(f"/api/v1/incidents/{inc}/transitions", json={"to_state": "exploded"}, headers=h)
    assert r.status_code == 422
    r = c.post(f"/api/v1/incidents/{inc}/onsite", json={"engineer": "x", "planned_at": "tomorrow"}, headers=h)
    assert r.status_code == 422


def test_ids_out_of_range_or_unknown(world: World, analyst) -> None:
    c, _h = analyst
    assert c.get("/api/v1/incidents/abc").status_code == 422
    assert c.get("/api/v1/incidents/0").status_code == 422
    assert c.get(f"/api/v1/incidents/{2**40}").status_code == 422
    assert c.get("/api/v1/incidents/999999").status_code == 404
    assert c.get("/api/v1/tenants/" + "a" * 100).status_code == 422
    assert c.get("/api/v1/tenants/NoSuch").status_code == 404
    assert c.get("/console/incidents/999999").status_code == 404
    assert c.get("/console/tenants/%00/helpdesk").status_code == 404


def test_bad_form_values_are_4xx(world: World, analyst) -> None:
    c, h = analyst
    inc = world.incidents["acme"]
    r = c.post(
        f"/console/incidents/{inc}/onsite",
        data={"engineer": "x", "planned_at": "not a date", "csrf_token": h["X-CSRF-Token"]},
    )
    assert r.status_code == 422
    r = c.post(
        f"/console/incidents/{inc}/transition", data={"to_state": "nowhere", "csrf_token": h["X-CSRF-Token"]}
    )
    assert r.status_code == 422
    r = c.post("/console/helpdesk/1/triage", data={"action": "dance", "csrf_token": h["X-CSRF-Token"]})
    assert r.status_code in (404, 422)
    r = c.post("/login", data={"username": "x" * 5000, "password": "y", "csrf_token": "z"})
    assert r.status_code in (403, 422)


def test_nul_characters_are_4xx_on_every_backend(world: World, analyst) -> None:
    c, h = analyst
    inc = world.incidents["acme"]
    assert c.get("/api/v1/tenants/%00").status_code == 404
    assert c.get("/api/v1/incidents", params={"tenant": "a\x00"}).status_code == 404
    r = c.post(f"/api/v1/incidents/{inc}/notes", json={"text": "a\u0000b"}, headers=h)
    assert r.status_code in (201, 422)
    r = c.post("/api/v1/tenants/acme/helpdesk", json={"reporter": "\u0000", "text": "x"}, headers=h)
    assert r.status_code in (201, 422)
    assert c.get("/api/v1/me").status_code == 200  # the session survives a refused write


def test_garbage_cookies_and_tokens(world: World) -> None:
    c = world.client()
    c.cookies.set("mm_session", "garbage" * 50)
    assert c.get("/api/v1/me").status_code == 401
    assert c.get("/console").status_code == 303
    assert c.get("/api/v1/me", headers={"Authorization": "Bearer " + "x" * 5000}).status_code == 401
    assert c.get("/api/v1/me", headers={"Authorization": "Bearer"}).status_code == 401
