"""The read-only JSON API the demo serves until the web console lands."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from mimamori.config import Settings
from mimamori.db.models import Tenant
from mimamori.db.repo import add_tenant
from mimamori.db.session import make_engine, session_scope
from mimamori.detect.base import AlertDraft
from mimamori.incidents.engine import ingest_alerts
from mimamori.serve import create_app


def test_api_lists_and_shows_incidents(tmp_path):
    settings = Settings.load(tmp_path)
    app = create_app(settings)
    engine = make_engine(settings.database_url)
    at = datetime(2025, 4, 15, tzinfo=UTC)
    with session_scope(engine) as s:
        add_tenant(s, "acme", "Acme")
        draft = AlertDraft("test", "banking_malware", "high", "Dyre on 10.0.0.5", at, at, ["host:10.0.0.5"])
        inc_id = ingest_alerts(s, s.get_one(Tenant, "acme"), [draft.with_dedup("x")]).incidents_opened[0]
    engine.dispose()
    with TestClient(app) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert [t["id"] for t in client.get("/api/v1/tenants").json()] == ["acme"]
        incidents = client.get("/api/v1/incidents", params={"tenant": "acme"}).json()
        assert [(i["id"], i["kind"]) for i in incidents] == [(inc_id, "banking_malware")]
        detail = client.get(f"/api/v1/incidents/{inc_id}").json()
        assert detail["alert_list"][0]["title"] == "Dyre on 10.0.0.5" and detail["tasks"]
        assert client.get("/api/v1/incidents/9999").status_code == 404
        assert client.get("/api/v1/incidents/abc").status_code == 422
        assert client.get("/api/v1/alerts", params={"limit": 0}).status_code == 422
        assert client.get("/api/v1/incidents", params={"tenant": "other"}).json() == []
