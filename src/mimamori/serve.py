"""A read-only JSON API over the control plane (the web console replaces it later)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from sqlalchemy.orm import Session, sessionmaker

from mimamori.collect.config import CollectConfig
from mimamori.collect.http import mount_ingest
from mimamori.config import Settings
from mimamori.db import repo
from mimamori.db.session import init_db, make_engine
from mimamori.incidents.engine import NotFoundError
from mimamori.share.api import mount_share


def get_db(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as s:
        yield s


Db = Annotated[Session, Depends(get_db)]


def create_app(settings: Settings) -> FastAPI:
    engine = make_engine(settings.database_url)
    init_db(engine)
    app = FastAPI(title="mimamori", version="0.1.0", description="Read-only API (demo).")
    app.state.sessions = sessionmaker(engine, expire_on_commit=False)
    mount_share(app)  # TAXII 2.1 server and the sharing API (mimamori.share)
    mount_ingest(app)  # POST /api/v1/ingest/{source}; serve() sets app.state.collector

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/v1/tenants")
    def tenants(s: Db) -> list[dict[str, Any]]:
        return [repo.tenant_dict(t) for t in repo.list_tenants(s)]

    @app.get("/api/v1/incidents")
    def incidents(
        s: Db, tenant: Annotated[str | None, Query(max_length=64)] = None, open_only: bool = False
    ) -> list[dict[str, Any]]:
        return [repo.incident_summary(i) for i in repo.list_incidents(s, tenant, open_only=open_only)]

    @app.get("/api/v1/incidents/{incident_id}")
    def incident(s: Db, incident_id: int) -> dict[str, Any]:
        try:
            return repo.incident_detail(s, None, incident_id)
        except NotFoundError as exc:
            raise HTTPException(404, str(exc)) from exc

    @app.get("/api/v1/alerts")
    def alerts(
        s: Db,
        tenant: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        return [repo.alert_dict(a) for a in repo.list_alerts(s, tenant, limit)]

    return app


def serve(
    settings: Settings, host: str = "127.0.0.1", port: int = 8765, collect: CollectConfig | None = None
) -> None:
    import uvicorn

    from mimamori.collect.service import Collector

    app = create_app(settings)
    collector = Collector(settings, collect or CollectConfig.load(settings, host=host))
    app.state.collector = collector
    collector.start()
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        collector.close()
