"""FastAPI routers of the sharing package, for ``serve.py`` now and the web console later.

``mount_share(app)`` adds the TAXII 2.1 server (``/taxii2/``) and the sharing API
(``/api/v1/share/``: acknowledgement links, check-request answers). The app must carry a
sessionmaker in ``app.state.sessions``.
"""

from __future__ import annotations

from fastapi import FastAPI

from mimamori.share.taxii import make_router as make_taxii_router


def mount_share(app: FastAPI) -> None:
    app.include_router(make_taxii_router())
