"""FastAPI routers of the sharing package, for ``serve.py`` now and the web console later.

``mount_share(app)`` adds the TAXII 2.1 server (``/taxii2/``), the UTM block-list feeds
(``/feeds/<tenant>/<ip|domain|url>.txt``) and ``share_router``
(``/api/v1/share/``): the acknowledgement link of a warning and the answer link of a check
request. Both links carry a personal token; a GET shows a small bilingual page with a form
(mail scanners that follow links must not acknowledge on the reader's behalf), a POST
records the answer (form or JSON). The app must carry ``app.state.sessions``.
"""

from __future__ import annotations

import html
import urllib.parse
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy.orm import Session

from mimamori.share.blocklist import feed_router
from mimamori.share.partners import ShareError
from mimamori.share.taxii import make_router as make_taxii_router


def _db(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as s:
        yield s


Db = Annotated[Session, Depends(_db)]

_PAGE = """<!doctype html><html lang="ja"><meta charset="utf-8"><title>{title}</title>
<body style="font-family:sans-serif;max-width:40em;margin:2em auto">{body}</body></html>"""


async def _fields(request: Request) -> dict[str, Any]:
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        data = await request.json()
        return data if isinstance(data, dict) else {}
    # application/x-www-form-urlencoded, parsed here (no multipart dependency for two fields)
    raw = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in urllib.parse.parse_qs(raw, keep_blank_values=True).items()}


def share_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1/share", tags=["share"])

    @router.get("/ack/{token}", response_class=HTMLResponse)
    def ack_form(token: str) -> HTMLResponse:
        t = html.escape(token)
        body = (
            "<h1>警告メールの受領確認 / Acknowledge the warning</h1>"
            f'<form method="post" action="{t}">'
            '<p><label>お名前 / Your name <input name="by" required></label></p>'
            '<p><label>コメント / Note <textarea name="note"></textarea></label></p>'
            '<p><button type="submit">受領しました / Received</button></p></form>'
        )
        return HTMLResponse(_PAGE.format(title="受領確認", body=body))

    @router.post("/ack/{token}")
    async def ack(token: str, request: Request, s: Db) -> JSONResponse:
        from mimamori.share.partner_warnings import acknowledge

        data = await _fields(request)
        by = str(data.get("by") or "").strip() or "recipient"
        try:
            r = acknowledge(s, token, by=by, note=str(data["note"]) if data.get("note") else None)
            s.commit()
        except ShareError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        assert r.acknowledged_at is not None
        return JSONResponse({"acknowledged_at": r.acknowledged_at.isoformat(), "by": r.ack_by})

    @router.get("/check/{token}", response_class=HTMLResponse)
    def check_form(token: str, s: Db) -> HTMLResponse:
        from mimamori.share.checks import response_by_token

        try:
            req, _resp = response_by_token(s, token)
        except ShareError as exc:
            return HTMLResponse(_PAGE.format(title="404", body=html.escape(str(exc))), status_code=404)
        t = html.escape(token)
        body = (
            f"<h1>{html.escape(req.title)}</h1><pre>{html.escape(req.instructions)}</pre>"
            f"<p>期限 / Deadline: {req.deadline:%Y-%m-%d %H:%M} UTC</p>"
            f'<form method="post" action="{t}">'
            '<p><select name="status"><option value="clean">該当なし / Not found</option>'
            '<option value="found">該当あり / Found</option>'
            '<option value="unable">確認できない / Unable to check</option></select></p>'
            '<p><label>お名前 / Your name <input name="by" required></label></p>'
            '<p><label>見つかった指標 / Indicators found (one a line) <textarea name="findings"></textarea>'
            '</label></p><p><label>コメント / Note <textarea name="answer"></textarea></label></p>'
            '<p><button type="submit">回答 / Answer</button></p></form>'
        )
        return HTMLResponse(_PAGE.format(title="確認依頼", body=body))

    @router.post("/check/{token}")
    async def check_answer(token: str, request: Request, s: Db) -> JSONResponse:
        from mimamori.share.checks import answer_by_token

        data = await _fields(request)
        findings = data.get("findings") or []
        if isinstance(findings, str):
            findings = [x.strip() for x in findings.splitlines() if x.strip()]
        try:
            resp = answer_by_token(
                s,
                token,
                status=str(data.get("status") or ""),
                by=str(data.get("by") or "member"),
                answer=str(data["answer"]) if data.get("answer") else None,
                findings=[str(f) for f in findings],
            )
            s.commit()
        except ShareError as exc:
            return JSONResponse({"error": str(exc)}, status_code=422 if "status" in str(exc) else 404)
        return JSONResponse(
            {"status": resp.status, "answered_at": resp.answered_at.isoformat() if resp.answered_at else None}
        )

    return router


def mount_share(app: FastAPI) -> None:
    app.include_router(make_taxii_router())
    app.include_router(share_router())
    app.include_router(feed_router())
