"""One process for ``mimamori serve`` and the demo: the web console and REST API
(``mimamori.web``), the sensor ingest API and the syslog receivers (``mimamori.collect``).

Sits on top of both packages, which do not know each other: the console takes the ingest
router as one of its ``extra_routers``, and the collector is handed to it as
``app.state.collector``.
"""

from __future__ import annotations

import ipaddress

from fastapi import FastAPI

from mimamori.collect.config import CollectConfig
from mimamori.collect.http import router as ingest_router
from mimamori.config import Settings
from mimamori.web.app import create_app as create_console
from mimamori.web.settings import WebSettings

__all__ = ["create_app", "serve"]


def create_app(settings: Settings, web: WebSettings | None = None) -> FastAPI:
    """The console with the ingest API mounted (ingest answers 503 until a collector is set)."""
    return create_console(settings, web, extra_routers=[ingest_router])


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    settings: Settings, host: str = "127.0.0.1", port: int = 8765, collect: CollectConfig | None = None
) -> None:
    """Run everything with uvicorn. Plain http keeps session cookies usable only on loopback."""
    import uvicorn

    from mimamori.collect.service import Collector

    app = create_app(settings, WebSettings(cookie_secure=not _loopback(host)))
    collector = Collector(settings, collect or CollectConfig.load(settings, host=host))
    app.state.collector = collector
    collector.start()
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        collector.close()
