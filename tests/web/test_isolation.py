"""Tenant isolation: every endpoint, called by tenant A's principals with tenant B's ids,
answers 404; list endpoints never carry B's data. Routes are enumerated from the app, so a
new route is covered (or fails here) without anyone remembering to add it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.web.conftest import World, csrf_header, sign_in

# Routes that authenticate by their own capability tokens (sharing links, TAXII, UTM feeds)
# and the sign-in pages themselves; they are covered by tests/share and test_auth.
NOT_TENANT_ROUTES = re.compile(
    r"^/(taxii2/|feeds/|api/v1/share/|login|logout|lang/|static|healthz|api/v1/openapi)"
)

BODIES: dict[str, Any] = {
    "transitions": {"to_state": "triage"},
    "notes": {"text": "x"},
    "onsite": {"engineer": "x", "planned_at": "2030-01-01T10:00:00Z"},
    "tasks": {"done": True},
    "visits": {"findings": "x"},
    "helpdesk": {"reporter": "x", "text": "x"},
    "triage": {"action": "not_security"},
    "report": None,
}


def routes(app: Any) -> list[tuple[str, str]]:
    out = []
    for r in app.routes:
        contexts = getattr(r, "effective_route_contexts", None)
        items = list(contexts()) if callable(contexts) else [r]
        for c in items:
            path = getattr(c, "path", None)
            for m in sorted(getattr(c, "methods", None) or []):
                if path and m not in ("HEAD", "OPTIONS"):
                    out.append((m, path))
    return sorted(set(out))


def _beta_ids(world: World) -> dict[str, str]:
    from sqlalchemy import select

    from mimamori.db.models_share import ShareWarning, WarningRecipient
    from mimamori.db.models_web import HelpdeskEntry, OnsiteVisit
    from mimamori.db.session import session_scope

    with session_scope(world.engine) as s:
        h = HelpdeskEntry(tenant_id="beta", channel="phone", reporter="b", text="beta secret", created_by="t")
        v = OnsiteVisit(
            tenant_id="beta",
            incident_id=world.incidents["beta"],
            engineer="b",
            planned_at=__import__("datetime").datetime.now(__import__("datetime").UTC),
            created_by="t",
        )
        w = ShareWarning(
            tenant_id="beta",
            incident_id=world.incidents["beta"],
            tlp="GREEN",
            subject_ja="beta secret",
            body_ja="beta secret",
            subject_en="beta secret",
            body_en="beta secret",
            state="sent",
            created_by="t",
        )
        s.add_all([h, v, w])
        s.flush()
        # delivered to beta's own portal (as if beta were its own partner): not acme's to see
        r = WarningRecipient(
            warning_id=w.id,
            tenant_id="beta",
            partner_id=world.partners["beta"],
            email="x@beta.example",
            portal_tenant_id="beta",
            delivered_at=v.planned_at,
        )
        s.add(r)
        s.flush()
        entry, visit, warning, recipient = h.id, v.id, w.id, r.id
        assert s.scalar(select(HelpdeskEntry.tenant_id).where(HelpdeskEntry.id == entry)) == "beta"
    return {
        "tenant_id": "beta",
        "incident_id": str(world.incidents["beta"]),
        "task_id": str(world.tasks["beta"]),
        "entry_id": str(entry),
        "visit_id": str(visit),
        "warning_id": str(warning),
        "recipient_id": str(recipient),
    }


def _fill(path: str, ids: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in ids:
            raise AssertionError(f"isolation test does not know path parameter {name!r} of {path}: add it")
        return ids[name]

    return re.sub(r"\{(\w+)\}", sub, path)


def _body(path: str) -> Any:
    last = [p for p in path.split("/") if p and not p.startswith("{")][-1]
    return BODIES.get(last, {})


def _principals(world: World) -> dict[str, tuple[TestClient, dict[str, str]]]:
    owner = sign_in(world, "owner-acme")
    viewer = sign_in(world, "viewer-acme")
    tok = world.client()
    return {
        "owner-session": (owner, csrf_header(owner)),
        "viewer-session": (viewer, csrf_header(viewer)),
        "analyst-token": (tok, {"Authorization": f"Bearer {world.tokens['analyst-acme']}"}),
    }


def test_every_route_is_known(world: World) -> None:
    """The enumeration itself works: it finds the tenant routes we know exist."""
    found = {p for _, p in routes(world.app)}
    assert "/api/v1/incidents/{incident_id}/onsite" in found
    assert "/console/incidents/{incident_id}" in found
    assert "/portal/incidents/{incident_id}" in found


def test_other_tenants_ids_are_404_on_every_endpoint(world: World) -> None:
    ids = _beta_ids(world)
    checked = 0
    for who, (client, headers) in _principals(world).items():
        for method, path in routes(world.app):
            if NOT_TENANT_ROUTES.match(path) or "{" not in path:
                continue
            url = _fill(path, ids)
            if path.startswith("/api/"):
                r = client.request(
                    method, url, json=_body(path) if method != "GET" else None, headers=headers
                )
            else:
                data = {
                    "csrf_token": headers.get("X-CSRF-Token", ""),
                    "text": "x",
                    "reporter": "x",
                    "to_state": "triage",
                    "engineer": "x",
                    "planned_at": "2030-01-01T10:00",
                    "findings": "x",
                    "action": "not_security",
                }
                r = client.request(method, url, data=data if method != "GET" else None, headers=headers)
            # 404, or 403 where the role may not use the route at all (decided before any lookup)
            assert r.status_code in (403, 404), (who, method, path, r.status_code, r.text[:300])
            if r.status_code == 403:
                assert who != "analyst-token" or path.startswith(
                    ("/console", "/manager", "/portal", "/partner")
                ), (who, method, path)
            assert "beta" not in r.text.lower().replace("/beta", ""), (who, method, path, r.text[:300])
            checked += 1
    assert checked > 40


@pytest.mark.parametrize("who", ["owner-session", "analyst-token"])
def test_lists_carry_only_own_tenant(world: World, who: str) -> None:
    _beta_ids(world)
    client, headers = _principals(world)[who]
    for method, path in routes(world.app):
        if method != "GET" or "{" in path or NOT_TENANT_ROUTES.match(path):
            continue
        r = client.get(path, headers=headers)
        assert r.status_code in (200, 303, 403), (path, r.status_code, r.text[:300])
        assert "beta" not in r.text.lower(), (who, path, r.text[:500])
    r = client.get("/api/v1/incidents", headers=headers)
    assert [i["tenant"] for i in r.json()] == ["acme"]
    r = client.get("/api/v1/incidents", params={"tenant": "beta"}, headers=headers)
    assert r.status_code == 404


def test_provider_analyst_sees_both(world: World) -> None:
    c = sign_in(world, "ana")
    assert sorted(i["tenant"] for i in c.get("/api/v1/incidents").json()) == ["acme", "beta"]
    assert c.get(f"/api/v1/incidents/{world.incidents['beta']}").status_code == 200
