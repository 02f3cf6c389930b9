"""A TAXII 2.1 server as a FastAPI ``APIRouter``: one API root, a collection per trust group.

Endpoints (OASIS TAXII 2.1 §4-5): discovery ``/taxii2/``, the API root ``/taxii2/share/``,
status, collections, a collection, its manifest, objects (GET/POST), an object (GET/DELETE)
and its versions. Every response is ``application/taxii+json;version=2.1``; a request
whose ``Accept`` does not allow it gets 406, a POST of another content type 415, a body
over ``max_content_length`` 413, malformed content 422, no or a bad token 401, a member
without consent or without write right 403, an unknown collection or object 404.

Authentication: ``Authorization: Bearer <token>`` or HTTP Basic with the token as the
password (``ShareApiKey``). A group key sees its own group's collection; a key without a
group is a provider analyst key and sees all. TLP 2.0 is enforced both ways: TLP:RED
objects are refused (a collection is not a list of named people), and a member whose role
is ``provider`` (another security provider) receives AMBER / AMBER+STRICT objects only
with the originator's recorded permission.

Paging: ``limit`` (capped at ``MAX_PAGE``), ``next`` (an opaque cursor) and ``more``;
``X-TAXII-Date-Added-First/Last`` headers so clients can also page with ``added_after``.
Each object version gets a distinct ``date_added`` within its collection.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from mimamori.db.models_share import (
    ShareApiKey,
    TaxiiObject,
    TaxiiStatus,
    TrustGroup,
    TrustGroupMember,
)
from mimamori.db.repo import hash_token
from mimamori.share.partners import has_provider_permission, member_name
from mimamori.share.tlp import TLP, Audience, Reach, decide, tlp_of_markings

TAXII = "application/taxii+json;version=2.1"
STIX = "application/stix+json;version=2.1"
ROOT = "share"
MAX_PAGE = 100
MAX_CONTENT = 10 * 1024 * 1024


class TaxiiError(Exception):
    def __init__(self, status: int, title: str, description: str = "") -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.description = description


def error_response(exc: TaxiiError) -> JSONResponse:
    body = {"title": exc.title, "description": exc.description, "http_status": str(exc.status)}
    headers = {"WWW-Authenticate": 'Bearer realm="taxii"'} if exc.status == 401 else None
    return JSONResponse(body, status_code=exc.status, media_type=TAXII, headers=headers)


def taxii_json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False), status_code=status, media_type=TAXII, headers=headers
    )


def ts(d: datetime) -> str:
    return d.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text: str) -> datetime:
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    d = datetime.fromisoformat(t)
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return d.astimezone(UTC)


# ------------------------------------------------------------------------------ request checks


def _media_ok(value: str) -> bool:
    """``application/taxii+json`` with version 2.1 or no version parameter."""
    parts = [p.strip().lower() for p in value.split(";")]
    if parts[0] != "application/taxii+json":
        return False
    params = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    return params.get("version", "2.1").strip() == "2.1"


def check_accept(request: Request) -> None:
    accept = request.headers.get("accept", "")
    if not any(_media_ok(a.split(",")[0]) for a in accept.split(",")):
        raise TaxiiError(406, "Not Acceptable", f"Accept must allow {TAXII}; got {accept!r}")


@dataclass
class Caller:
    key: ShareApiKey
    member: TrustGroupMember | None

    def may_read(self, group: TrustGroup) -> bool:
        if self.key.group_id is None:
            return True
        return self.key.group_id == group.id and (self.member is None or self.member.consent)

    def may_write(self, group: TrustGroup) -> bool:
        return self.may_read(group) and self.key.can_write

    @property
    def origin(self) -> str:
        """Who the objects this caller adds come from (the originator for TLP purposes)."""
        if self.member is not None and self.member.tenant_id is not None:
            return f"tenant:{self.member.tenant_id}"
        if self.member is not None:
            return f"partner:{self.member.partner_id}"
        return "provider"


def _db(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as s:
        yield s


def authenticate(request: Request, session: Session) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, cred = header.partition(" ")
    token = ""
    if scheme.lower() == "bearer":
        token = cred.strip()
    elif scheme.lower() == "basic":
        try:
            token = base64.b64decode(cred.strip()).decode().partition(":")[2]
        except ValueError:
            token = ""
    if not token:
        raise TaxiiError(401, "Unauthorized", "send Authorization: Bearer <token>")
    key = session.scalar(
        select(ShareApiKey).where(ShareApiKey.token_hash == hash_token(token), ShareApiKey.revoked.is_(False))
    )
    if key is None:
        raise TaxiiError(401, "Unauthorized", "unknown or revoked token")
    member = session.get(TrustGroupMember, key.member_id) if key.member_id is not None else None
    return Caller(key, member)


Db = Annotated[Session, Depends(_db)]


# ------------------------------------------------------------------------------ helpers


def _version_of(obj: dict[str, Any], added: datetime) -> str:
    for key in ("modified", "created"):
        v = obj.get(key)
        if isinstance(v, str):
            try:
                return ts(parse_ts(v))
            except ValueError:
                break
    return ts(added)


def _collection(g: TrustGroup, caller: Caller) -> dict[str, Any]:
    return {
        "id": g.collection_id,
        "title": g.name,
        "description": f"Trust group {g.slug} ({g.kind})",
        "alias": g.slug,
        "can_read": caller.may_read(g),
        "can_write": caller.may_write(g),
        "media_types": [STIX],
    }


def _group(session: Session, caller: Caller, collection_id: str, *, write: bool = False) -> TrustGroup:
    g = session.scalar(select(TrustGroup).where(TrustGroup.collection_id == collection_id))
    if g is None or (caller.key.group_id is not None and caller.key.group_id != g.id):
        raise TaxiiError(404, "Collection not found", collection_id)
    if not caller.may_read(g):
        raise TaxiiError(403, "Forbidden", "the member has not consented to this trust group's sharing")
    if write and not caller.may_write(g):
        raise TaxiiError(403, "Forbidden", "this token may not write to the collection")
    return g


def _visible(session: Session, caller: Caller, row: TaxiiObject) -> bool:
    """TLP on the way out: another provider gets AMBER only with the originator's permission."""
    if caller.member is None or caller.member.role != "provider" or row.tlp is None:
        return True
    tlp = TLP.parse(row.tlp)
    origin = row.added_by or ""
    permission = origin.startswith("tenant:") and has_provider_permission(
        session, origin.removeprefix("tenant:"), member_name(session, caller.member), tlp
    )
    aud = Audience(Reach.PROVIDER, f"provider:{caller.member.id}")
    return decide(tlp, aud, first_hand=False, provider_permission=permission).allowed


def _select(
    session: Session,
    caller: Caller,
    g: TrustGroup,
    params: Any,
    *,
    object_id: str | None = None,
) -> list[TaxiiObject]:
    """Rows of a collection after match[id|type|version|spec_version] and added_after."""
    stmt = select(TaxiiObject).where(TaxiiObject.group_id == g.id)
    ids = [object_id] if object_id else _list(params.get("match[id]"))
    if ids:
        stmt = stmt.where(TaxiiObject.object_id.in_(ids))
    types = _list(params.get("match[type]"))
    if types:
        stmt = stmt.where(TaxiiObject.type.in_(types))
    specs = _list(params.get("match[spec_version]"))
    if specs:
        stmt = stmt.where(TaxiiObject.spec_version.in_(specs))
    rows = [r for r in session.scalars(stmt.order_by(TaxiiObject.id)) if _visible(session, caller, r)]
    versions = _list(params.get("match[version]")) or ["last"]
    by_obj: dict[str, list[TaxiiObject]] = {}
    for r in rows:
        by_obj.setdefault(r.object_id, []).append(r)
    keep: set[int] = set()
    wanted_ts: set[datetime] = set()
    for v in versions:
        if v not in ("first", "last", "all"):
            try:
                wanted_ts.add(parse_ts(v))
            except ValueError as exc:
                raise TaxiiError(
                    400, "Bad match[version]", f"{v!r}: first, last, all or a timestamp"
                ) from exc
    for group_rows in by_obj.values():
        ordered = sorted(group_rows, key=lambda r: parse_ts(r.version))
        if "all" in versions:
            keep.update(r.id for r in ordered)
            continue
        if "first" in versions:
            keep.add(ordered[0].id)
        if "last" in versions:
            keep.add(ordered[-1].id)
        keep.update(r.id for r in ordered if parse_ts(r.version) in wanted_ts)
    out = [r for r in rows if r.id in keep]
    added_after = params.get("added_after")
    if added_after:
        try:
            after = parse_ts(added_after)
        except ValueError as exc:
            raise TaxiiError(400, "Bad added_after", added_after) from exc
        out = [r for r in out if r.date_added > after]
    return out


def _list(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def _page(rows: list[TaxiiObject], params: Any) -> tuple[list[TaxiiObject], bool, str | None]:
    try:
        limit = int(params.get("limit") or MAX_PAGE)
    except ValueError as exc:
        raise TaxiiError(400, "Bad limit", str(params.get("limit"))) from exc
    limit = max(1, min(limit, MAX_PAGE))
    cursor = params.get("next")
    if cursor:
        try:
            last_id = int(base64.urlsafe_b64decode(cursor.encode()).decode())
        except ValueError as exc:
            raise TaxiiError(400, "Bad next", cursor) from exc
        rows = [r for r in rows if r.id > last_id]
    page = rows[:limit]
    more = len(rows) > limit
    nxt = base64.urlsafe_b64encode(str(page[-1].id).encode()).decode() if more and page else None
    return page, more, nxt


def _range_headers(page: list[TaxiiObject]) -> dict[str, str]:
    if not page:
        return {}
    return {
        "X-TAXII-Date-Added-First": ts(min(r.date_added for r in page)),
        "X-TAXII-Date-Added-Last": ts(max(r.date_added for r in page)),
    }


def add_objects(
    session: Session, g: TrustGroup, objects: list[Any], *, origin: str, now: datetime | None = None
) -> TaxiiStatus:
    """Store objects in a group's collection; each success or failure is in the status."""
    now = now or datetime.now(UTC)
    last = session.scalar(select(func.max(TaxiiObject.date_added)).where(TaxiiObject.group_id == g.id))
    added = now if last is None or now > last else last + timedelta(microseconds=1)
    successes: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    for i, obj in enumerate(objects):
        if (
            not isinstance(obj, dict)
            or not isinstance(obj.get("id"), str)
            or not isinstance(obj.get("type"), str)
        ):
            failures.append({"id": f"objects[{i}]", "message": "not a STIX object (needs id and type)"})
            continue
        oid, otype = obj["id"], obj["type"]
        if not oid.startswith(otype + "--"):
            failures.append({"id": oid, "message": f"id does not start with its type {otype!r}"})
            continue
        tlp = tlp_of_markings(obj.get("object_marking_refs"))
        if tlp is not None:
            d = decide(tlp, Audience(Reach.COMMUNITY, f"group:{g.slug}"), first_hand=True)
            if not d.allowed:
                failures.append({"id": oid, "message": d.reason})
                continue
        version = _version_of(obj, added)
        exists = session.scalar(
            select(TaxiiObject.id).where(
                TaxiiObject.group_id == g.id, TaxiiObject.object_id == oid, TaxiiObject.version == version
            )
        )
        if exists is not None:
            successes.append({"id": oid, "version": version, "message": "already present"})
            continue
        session.add(
            TaxiiObject(
                group_id=g.id,
                object_id=oid,
                type=otype,
                version=version,
                spec_version=str(obj.get("spec_version") or "2.1"),
                date_added=added,
                tlp=tlp.value if tlp else None,
                added_by=origin,
                body=obj,
            )
        )
        successes.append({"id": oid, "version": version})
        added += timedelta(microseconds=1)
    status = TaxiiStatus(
        id=str(uuid.uuid4()),
        group_id=g.id,
        status="complete",
        request_timestamp=now,
        total_count=len(objects),
        success_count=len(successes),
        failure_count=len(failures),
        pending_count=0,
        successes=successes,
        failures=failures,
    )
    session.add(status)
    session.flush()
    return status


def status_dict(st: TaxiiStatus) -> dict[str, Any]:
    return {
        "id": st.id,
        "status": st.status,
        "request_timestamp": ts(st.request_timestamp),
        "total_count": st.total_count,
        "success_count": st.success_count,
        "successes": st.successes,
        "failure_count": st.failure_count,
        "failures": st.failures,
        "pending_count": st.pending_count,
        "pendings": [],
    }


# ------------------------------------------------------------------------------ the router


def make_router(prefix: str = "/taxii2", title: str = "mimamori TAXII 2.1") -> APIRouter:
    """The TAXII 2.1 endpoints; the app must set ``app.state.sessions`` (a sessionmaker)."""
    router = APIRouter(prefix=prefix, tags=["taxii"])

    def run(request: Request, session: Session, fn: Any) -> Response:
        try:
            check_accept(request)
            caller = authenticate(request, session)
            resp: Response = fn(caller)
            session.commit()
            return resp
        except TaxiiError as exc:
            session.rollback()
            return error_response(exc)

    @router.get("/")
    def discovery(request: Request, s: Db) -> Response:
        base = str(request.base_url).rstrip("/") + prefix
        return run(
            request,
            s,
            lambda c: taxii_json(
                {
                    "title": title,
                    "description": "Supply-chain sharing: one collection per trust group",
                    "default": f"{base}/{ROOT}/",
                    "api_roots": [f"{base}/{ROOT}/"],
                }
            ),
        )

    @router.get(f"/{ROOT}/")
    def api_root(request: Request, s: Db) -> Response:
        return run(
            request,
            s,
            lambda c: taxii_json(
                {
                    "title": "Trust groups",
                    "description": "Collections of the trust groups this token belongs to",
                    "versions": [TAXII],
                    "max_content_length": MAX_CONTENT,
                }
            ),
        )

    @router.get(f"/{ROOT}/status/{{status_id}}/")
    def status(request: Request, s: Db, status_id: str) -> Response:
        def fn(c: Caller) -> Response:
            st = s.get(TaxiiStatus, status_id)
            if st is None or (c.key.group_id is not None and st.group_id != c.key.group_id):
                raise TaxiiError(404, "Status not found", status_id)
            return taxii_json(status_dict(st))

        return run(request, s, fn)

    @router.get(f"/{ROOT}/collections/")
    def collections(request: Request, s: Db) -> Response:
        def fn(c: Caller) -> Response:
            stmt = select(TrustGroup).order_by(TrustGroup.id)
            if c.key.group_id is not None:
                stmt = stmt.where(TrustGroup.id == c.key.group_id)
            cols = [_collection(g, c) for g in s.scalars(stmt)]
            return taxii_json({"collections": cols} if cols else {})

        return run(request, s, fn)

    @router.get(f"/{ROOT}/collections/{{cid}}/")
    def collection(request: Request, s: Db, cid: str) -> Response:
        return run(request, s, lambda c: taxii_json(_collection(_group(s, c, cid), c)))

    @router.get(f"/{ROOT}/collections/{{cid}}/manifest/")
    def manifest(request: Request, s: Db, cid: str) -> Response:
        def fn(c: Caller) -> Response:
            g = _group(s, c, cid)
            page, more, nxt = _page(_select(s, c, g, request.query_params), request.query_params)
            body: dict[str, Any] = {"more": more}
            if nxt:
                body["next"] = nxt
            if page:
                body["objects"] = [
                    {
                        "id": r.object_id,
                        "date_added": ts(r.date_added),
                        "version": r.version,
                        "media_type": STIX,
                    }
                    for r in page
                ]
            return taxii_json(body, headers=_range_headers(page))

        return run(request, s, fn)

    @router.get(f"/{ROOT}/collections/{{cid}}/objects/")
    def get_objects(request: Request, s: Db, cid: str) -> Response:
        def fn(c: Caller) -> Response:
            g = _group(s, c, cid)
            page, more, nxt = _page(_select(s, c, g, request.query_params), request.query_params)
            body: dict[str, Any] = {"more": more}
            if nxt:
                body["next"] = nxt
            if page:
                body["objects"] = [r.body for r in page]
            return taxii_json(body, headers=_range_headers(page))

        return run(request, s, fn)

    @router.post(f"/{ROOT}/collections/{{cid}}/objects/")
    async def post_objects(request: Request, s: Db, cid: str) -> Response:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_CONTENT:
            raw = b""  # refused below without reading a body over the limit into memory
        else:
            raw = await request.body()
        too_big = (declared.isdigit() and int(declared) > MAX_CONTENT) or len(raw) > MAX_CONTENT

        def fn(c: Caller) -> Response:
            g = _group(s, c, cid, write=True)
            ctype = request.headers.get("content-type", "")
            if not _media_ok(ctype):
                raise TaxiiError(
                    415, "Unsupported Media Type", f"Content-Type must be {TAXII}; got {ctype!r}"
                )
            if too_big:
                raise TaxiiError(413, "Payload Too Large", f"over {MAX_CONTENT} bytes")
            try:
                env = json.loads(raw)
            except ValueError as exc:
                raise TaxiiError(422, "Unprocessable Entity", f"invalid JSON: {exc}") from exc
            if not isinstance(env, dict) or not isinstance(env.get("objects"), list):
                raise TaxiiError(422, "Unprocessable Entity", "an envelope with an objects list is required")
            st = add_objects(s, g, env["objects"], origin=c.origin)
            return taxii_json(status_dict(st), status=202)

        return run(request, s, fn)

    @router.get(f"/{ROOT}/collections/{{cid}}/objects/{{oid}}/")
    def get_object(request: Request, s: Db, cid: str, oid: str) -> Response:
        def fn(c: Caller) -> Response:
            g = _group(s, c, cid)
            rows = _select(s, c, g, request.query_params, object_id=oid)
            if not rows:
                raise TaxiiError(404, "Object not found", oid)
            page, more, nxt = _page(rows, request.query_params)
            body: dict[str, Any] = {"more": more, "objects": [r.body for r in page]}
            if nxt:
                body["next"] = nxt
            return taxii_json(body, headers=_range_headers(page))

        return run(request, s, fn)

    @router.delete(f"/{ROOT}/collections/{{cid}}/objects/{{oid}}/")
    def delete_object(request: Request, s: Db, cid: str, oid: str) -> Response:
        def fn(c: Caller) -> Response:
            g = _group(s, c, cid, write=True)
            params = dict(request.query_params)
            params.setdefault("match[version]", "all")
            rows = _select(s, c, g, params, object_id=oid)
            if not rows:
                raise TaxiiError(404, "Object not found", oid)
            s.execute(delete(TaxiiObject).where(TaxiiObject.id.in_([r.id for r in rows])))
            return taxii_json({})

        return run(request, s, fn)

    @router.get(f"/{ROOT}/collections/{{cid}}/objects/{{oid}}/versions/")
    def versions(request: Request, s: Db, cid: str, oid: str) -> Response:
        def fn(c: Caller) -> Response:
            g = _group(s, c, cid)
            params = {k: v for k, v in request.query_params.items() if k != "match[version]"}
            params["match[version]"] = "all"
            rows = _select(s, c, g, params, object_id=oid)
            if not rows:
                raise TaxiiError(404, "Object not found", oid)
            page, more, nxt = _page(rows, request.query_params)
            body: dict[str, Any] = {"more": more, "versions": sorted({r.version for r in page})}
            if nxt:
                body["next"] = nxt
            return taxii_json(body, headers=_range_headers(page))

        return run(request, s, fn)

    return router
