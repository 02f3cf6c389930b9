"""Per-tenant block lists that UTMs pull: FortiGate external threat feeds, Palo Alto
external dynamic lists, pfSense/OPNsense URL table aliases.

Plain text, one entry a line, ``#`` comments, served over HTTP(S) with a per-tenant token
and a strong ETag (``If-None-Match`` -> 304) so devices can poll cheaply. Entries:

- added by an analyst for the tenant's own incident: live at once;
- taken from a *partner's* incident: ``pending`` until an analyst approves — blocking a
  partner's mail server can cut off business mail — and checked against TLP (the partner
  is the originator; a TLP:RED incident never feeds a list);
- never internal (tenant CIDRs, RFC 1918) or on the intel warning list (resolvers, big
  CDNs): such a value is refused with the reason;
- expire (default 30 days); ``expire`` marks them, and the feed never serves a stale one.

A list is capped at ``LIMITS`` (the smallest documented per-list limit of the supported
devices by default); the newest approvals are kept when over.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from mimamori.db.models_share import BlockEntry, BlockFeedToken, Partner
from mimamori.db.repo import audit, hash_token
from mimamori.incidents.engine import get_incident
from mimamori.intel.normalize import DOMAIN, IP, URL, NormalizeError, normalize
from mimamori.intel.warninglist import WarningList
from mimamori.share.partners import ShareError
from mimamori.share.sanitize import Sanitizer
from mimamori.share.stix_export import incident_indicators
from mimamori.share.tlp import TLP, Audience, Reach, decide

KINDS = {"ip": IP, "domain": DOMAIN, "url": URL}
#: entries per list; PAN-OS EDLs hold 50,000 URLs/domains on small models, FortiGate
#: threat feeds 131,072 lines: 50,000 fits both
LIMITS = {"ip": 50_000, "domain": 50_000, "url": 50_000}
DEFAULT_TTL = timedelta(days=30)


def _now() -> datetime:
    return datetime.now(UTC)


def _check_value(session: Session, tenant_id: str, kind: str, value: str) -> str:
    if kind not in KINDS:
        raise ShareError(f"unknown list {kind!r} (ip, domain, url)")
    try:
        typ, norm = normalize(KINDS[kind], value)
    except NormalizeError as exc:
        raise ShareError(f"{value!r} is not a valid {kind}: {exc}") from exc
    if typ not in (KINDS[kind], "cidr" if kind == "ip" else KINDS[kind]):
        raise ShareError(f"{value!r} is a {typ}, not a {kind}")
    if Sanitizer.for_tenant(session, tenant_id).is_internal(norm):
        raise ShareError(f"{norm} is internal to the tenant; it is never blocked")
    why = WarningList.default().check(typ, norm)
    if why:
        raise ShareError(f"{norm} is on the warning list ({why}); blocking it would break things")
    return norm


def add_entry(
    session: Session,
    tenant_id: str,
    kind: str,
    value: str,
    *,
    by: str,
    reason: str | None = None,
    source: str = "analyst",
    pending: bool = False,
    ttl: timedelta = DEFAULT_TTL,
    now: datetime | None = None,
) -> BlockEntry:
    """Add (or refresh) an entry; an existing one keeps its state unless it had expired."""
    now = now or _now()
    norm = _check_value(session, tenant_id, kind, value)
    e = session.scalar(
        select(BlockEntry).where(
            BlockEntry.tenant_id == tenant_id, BlockEntry.type == kind, BlockEntry.value == norm
        )
    )
    if e is None:
        e = BlockEntry(
            tenant_id=tenant_id,
            type=kind,
            value=norm,
            source=source,
            reason=reason,
            requested_by=by,
            state="pending" if pending else "active",
            expires_at=now + ttl,
            created_at=now,
        )
        if not pending:
            e.decided_by, e.decided_at = by, now
        session.add(e)
    else:
        e.expires_at = max(e.expires_at, now + ttl)
        if e.state == "expired":
            e.state = "pending" if pending else "active"
    session.flush()
    audit(session, by, "share.block.add", tenant_id, entry=e.id, value=norm, state=e.state)
    return e


def propose_from_partner_incident(
    session: Session,
    target_tenant: str,
    source_tenant: str,
    incident_id: int,
    *,
    by: str,
    tlp: TLP = TLP.AMBER,
    ttl: timedelta = DEFAULT_TTL,
) -> list[BlockEntry]:
    """Pending entries on ``target_tenant``'s lists from a partner's incident."""
    partner = session.scalar(
        select(Partner).where(Partner.tenant_id == target_tenant, Partner.partner_tenant_id == source_tenant)
    )
    if partner is None:
        raise ShareError(f"{source_tenant!r} is not a partner of {target_tenant!r}")
    d = decide(tlp, Audience(Reach.ORGANISATION, f"tenant:{target_tenant}"), first_hand=True)
    if not d.allowed:
        raise ShareError(f"{tlp.label}: {d.reason}")
    inc = get_incident(session, source_tenant, incident_id)
    san = Sanitizer.for_tenant(session, source_tenant)
    out = []
    for row in incident_indicators(session, inc, san):
        kind = {IP: "ip", DOMAIN: "domain", URL: "url"}.get(row["type"])
        if kind is None:
            continue
        try:
            out.append(
                add_entry(
                    session,
                    target_tenant,
                    kind,
                    row["value"],
                    by=by,
                    pending=True,
                    ttl=ttl,
                    source=f"incident:{source_tenant}:{inc.id}",
                    reason=f"{partner.name}: {inc.kind}",
                )
            )
        except ShareError:
            continue  # internal to the target, or warning-listed: not a block candidate
    return out


def decide_entry(session: Session, tenant_id: str, entry_id: int, *, approve: bool, by: str) -> BlockEntry:
    e = session.scalar(select(BlockEntry).where(BlockEntry.id == entry_id, BlockEntry.tenant_id == tenant_id))
    if e is None:
        raise ShareError(f"tenant {tenant_id!r} has no block entry {entry_id}")
    e.state = "active" if approve else "rejected"
    e.decided_by, e.decided_at = by, _now()
    audit(session, by, "share.block.approve" if approve else "share.block.reject", tenant_id, entry=e.id)
    session.flush()
    return e


def expire(session: Session, now: datetime | None = None) -> int:
    now = now or _now()
    n = 0
    for e in session.scalars(select(BlockEntry).where(BlockEntry.state.in_(("active", "pending")))):
        if e.expires_at <= now:
            e.state = "expired"
            n += 1
    session.flush()
    return n


def list_entries(session: Session, tenant_id: str, state: str | None = None) -> list[BlockEntry]:
    stmt = select(BlockEntry).where(BlockEntry.tenant_id == tenant_id)
    if state:
        stmt = stmt.where(BlockEntry.state == state)
    return list(session.scalars(stmt.order_by(BlockEntry.id)))


def entry_dict(e: BlockEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "type": e.type,
        "value": e.value,
        "state": e.state,
        "source": e.source,
        "reason": e.reason,
        "requested_by": e.requested_by,
        "decided_by": e.decided_by,
        "expires_at": e.expires_at.isoformat(),
    }


def render(session: Session, tenant_id: str, kind: str, now: datetime | None = None) -> str:
    """The list as served: ``#`` header, then one live entry a line (URLs without scheme)."""
    if kind not in KINDS:
        raise ShareError(f"unknown list {kind!r} (ip, domain, url)")
    now = now or _now()
    rows = [
        e
        for e in session.scalars(
            select(BlockEntry).where(
                BlockEntry.tenant_id == tenant_id, BlockEntry.type == kind, BlockEntry.state == "active"
            )
        )
        if e.expires_at > now
    ]
    rows.sort(key=lambda e: e.decided_at or e.created_at, reverse=True)
    rows = rows[: LIMITS[kind]]
    values = sorted(
        {e.value.split("://", 1)[1] if kind == "url" and "://" in e.value else e.value for e in rows}
    )
    head = f"# mimamori block list: tenant {tenant_id}, {kind}, {len(values)} entries\n"
    return head + "".join(v + "\n" for v in values)


def add_feed_token(session: Session, tenant_id: str, label: str) -> str:
    token = "mmb_" + secrets.token_urlsafe(32)
    session.add(BlockFeedToken(tenant_id=tenant_id, token_hash=hash_token(token), label=label))
    session.flush()
    return token


def _db(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as s:
        yield s


def feed_router(prefix: str = "/feeds") -> APIRouter:
    """``GET {prefix}/{tenant}/{ip|domain|url}.txt`` with a token: Bearer, Basic (password)
    or ``?token=`` (pfSense/OPNsense URL tables can only carry it in the URL)."""
    router = APIRouter(prefix=prefix, tags=["blocklists"])

    @router.get("/{tenant}/{name}")
    def feed(tenant: str, name: str, request: Request, s: Annotated[Session, Depends(_db)]) -> Response:
        import base64

        kind = name.removesuffix(".txt")
        auth = request.headers.get("authorization", "")
        scheme, _, cred = auth.partition(" ")
        token = request.query_params.get("token", "")
        if scheme.lower() == "bearer":
            token = cred.strip()
        elif scheme.lower() == "basic":
            try:
                token = base64.b64decode(cred.strip()).decode().partition(":")[2]
            except ValueError:
                token = ""
        row = (
            s.scalar(
                select(BlockFeedToken).where(
                    BlockFeedToken.token_hash == hash_token(token), BlockFeedToken.revoked.is_(False)
                )
            )
            if token
            else None
        )
        if row is None or row.tenant_id != tenant:
            return Response(
                "unauthorised\n",
                status_code=401,
                media_type="text/plain",
                headers={"WWW-Authenticate": 'Basic realm="mimamori block lists"'},
            )
        if kind not in KINDS:
            return Response(
                "no such list (ip.txt, domain.txt, url.txt)\n", status_code=404, media_type="text/plain"
            )
        body = render(s, tenant, kind)
        etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        inm = request.headers.get("if-none-match", "")
        if etag in [t.strip() for t in inm.split(",")]:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="text/plain; charset=utf-8", headers=headers)

    return router
