"""The web console's app factory: pages, the REST API, sharing routers, security middleware.

``create_app(settings)`` migrates the database, then wires: security headers and a request
size limit (outermost), one exception handler per domain error, the API routers
(``web.api``), the pages (``web.pages``), the sharing routers (``share.api.mount_share``) and
any ``extra_routers`` (the place where the sensor ingest router is mounted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from sqlalchemy.exc import DataError
from sqlalchemy.orm import sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mimamori.config import Settings
from mimamori.db.repo import RepoError
from mimamori.db.session import init_db, make_engine, session_scope
from mimamori.incidents.engine import IncidentError, NotFoundError, TransitionError
from mimamori.share.api import mount_share
from mimamori.web.accounts import AccountError, SignInGuard
from mimamori.web.api import api_routers
from mimamori.web.deps import NotSignedIn
from mimamori.web.pages import page_router
from mimamori.web.settings import WebSettings

HERE = Path(__file__).resolve().parent
log = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


class SecurityHeaders:
    """CSP, frame-ancestors, nosniff, referrer policy, no caching; HSTS when served over https."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                have = {k.lower() for k, _ in headers}
                extra = [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                ]
                if not scope["path"].startswith("/static/"):
                    extra.append((b"cache-control", b"no-store"))
                if https:
                    extra.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
                headers += [(k, v) for k, v in extra if k not in have]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Refuse request bodies over the limit with 413, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, settings: WebSettings) -> None:
        self.app = app
        self.settings = settings

    def _limit(self, path: str) -> int:
        if path.startswith(self.settings.large_body_prefixes):
            return self.settings.max_large_body
        return self.settings.max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope["path"])
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    too_big = int(v) > limit
                except ValueError:
                    too_big = True
                if too_big:
                    await JSONResponse({"detail": "request body too large"}, status_code=413)(
                        scope, receive, send
                    )
                    return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await JSONResponse({"detail": "request body too large"}, status_code=413)(
                    scope, receive, send
                )


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error(request: Request, status: int, detail: str) -> Response:
    if _is_api(request):
        return JSONResponse({"detail": detail}, status_code=status)
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(
        request,
        "error.html",
        {"status": status, "detail": detail, "principal": None, "lang": "ja"},
        status_code=status,
    )


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        if _is_api(request):
            return JSONResponse(
                {"detail": "not signed in"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: NotFoundError) -> Response:
        return _error(request, 404, "not found")

    @app.exception_handler(TransitionError)
    async def bad_transition(request: Request, exc: TransitionError) -> Response:
        return _error(request, 409, str(exc))

    @app.exception_handler(IncidentError)
    async def incident_error(request: Request, exc: IncidentError) -> Response:
        return _error(request, 422, str(exc))

    @app.exception_handler(AccountError)
    async def account_error(request: Request, exc: AccountError) -> Response:
        return _error(request, 422, str(exc))

    @app.exception_handler(RepoError)
    async def repo_error(request: Request, exc: RepoError) -> Response:
        return _error(request, 422, str(exc))

    @app.exception_handler(DataError)
    async def data_error(request: Request, exc: DataError) -> Response:
        # a value the database refuses (PostgreSQL: a NUL character in text)
        return _error(request, 422, "the request contains characters or values that cannot be stored")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _is_api(request) or exc.status_code < 400:
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        return _error(request, exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        if _is_api(request):
            errors = [{"loc": e.get("loc"), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()]
            return JSONResponse({"detail": errors}, status_code=422)
        return _error(request, 422, "the form was not filled in correctly")


@pass_context
def _pick_language(ctx: Any, ja: str, en: str) -> str:
    """``{{ t("日本語", "English") }}`` in templates: the page's language, Japanese by default."""
    return en if ctx.get("lang") == "en" else ja


def _fmt_time(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


async def _sensor_checks(app: FastAPI) -> None:
    from mimamori.incidents.sensor_health import check_silent_sensors

    settings: WebSettings = app.state.web_settings
    while True:
        await asyncio.sleep(settings.sensor_check_seconds)
        try:
            with session_scope(app.state.engine) as s:
                check_silent_sensors(s, silence=settings.sensor_silence)
        except Exception:  # keep the loop alive; the next round tries again
            log.exception("silent-sensor check failed")


def create_app(
    settings: Settings, web: WebSettings | None = None, *, extra_routers: Iterable[APIRouter] = ()
) -> FastAPI:
    web = web or WebSettings()
    if settings.database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    init_db(engine)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_sensor_checks(app)) if web.sensor_check_seconds > 0 else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(
        title="mimamori",
        version="0.1.0",
        description="Security monitoring and first response for small businesses: console and REST API.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.sessions = sessionmaker(engine, expire_on_commit=False)
    app.state.web_settings = web
    app.state.archive_root = settings.archive_dir
    app.state.guard = SignInGuard(web)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals["t"] = _pick_language
    templates.env.globals["fmt_time"] = _fmt_time
    templates.env.globals["inf"] = float("inf")
    templates.env.filters["parse_dt"] = datetime.fromisoformat
    app.state.templates = templates

    _install_handlers(app)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    for router in api_routers():
        app.include_router(router)
    app.include_router(page_router())
    mount_share(app)  # TAXII 2.1, block-list feeds, acknowledgement links (mimamori.share)
    # Routers of other packages are mounted here: the sensor ingest API (mimamori.collect,
    # ``POST /api/v1/ingest/{source}``) is passed in as ``extra_routers``.
    for router in extra_routers:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    app.add_middleware(BodyLimit, settings=web)
    app.add_middleware(SecurityHeaders)
    return app


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8765, **kw: Any) -> None:
    """Run the console with uvicorn. Plain http is allowed only on a loopback address."""
    import ipaddress

    import uvicorn

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    web = WebSettings(cookie_secure=not loopback)
    uvicorn.run(create_app(settings, web, **kw), host=host, port=port, log_level="warning")
