"""Check-and-report requests: a lead company (or the provider for a group) asks the group's
members to check for a threat and report by a deadline; answers are tracked, the silent
are chased, and the answers are combined into one picture.

Only consenting members are asked. Each member gets one personal answer token (the link
in its mail, ``/api/v1/share/check/<token>``); members that are tenants can answer in
their portal as well. The request's TLP is checked for a community audience.
"""

from __future__ import annotations

import hashlib
import secrets
import smtplib
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mimamori.db.models_share import CheckRequest, CheckResponse, TrustGroupMember
from mimamori.db.repo import audit
from mimamori.share.partner_warnings import SmtpConfig, _smtp
from mimamori.share.partners import ShareError, get_group, member_contacts, member_name
from mimamori.share.tlp import TLP, Audience, Reach, enforce

STATUSES = ("clean", "found", "unable")


def _now() -> datetime:
    return datetime.now(UTC)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_request(
    session: Session,
    group: str,
    *,
    title: str,
    instructions: str,
    deadline: datetime,
    requested_by: str,
    requester_tenant_id: str | None = None,
    indicators: list[str] | None = None,
    tlp: TLP = TLP.AMBER,
    now: datetime | None = None,
) -> CheckRequest:
    """A request to every consenting member (but the requester). The requester is the
    group's lead company, or ``None`` for the provider acting for the group."""
    g = get_group(session, group)
    now = now or _now()
    if deadline <= now:
        raise ShareError("the deadline must be in the future")
    if requester_tenant_id is not None:
        lead = [m for m in g.members if m.tenant_id == requester_tenant_id and m.role == "lead" and m.consent]
        if not lead:
            raise ShareError(f"only the lead company of {g.slug!r} (or the provider) may ask its members")
    enforce(tlp, Audience(Reach.COMMUNITY, f"group:{g.slug}"), first_hand=True)
    req = CheckRequest(
        group_id=g.id,
        requester_tenant_id=requester_tenant_id,
        requested_by=requested_by,
        title=title,
        instructions=instructions,
        indicators=list(indicators or []),
        tlp=tlp.value,
        deadline=deadline,
        created_at=now,
    )
    session.add(req)
    session.flush()
    for m in g.members:
        if m.consent and not (requester_tenant_id is not None and m.tenant_id == requester_tenant_id):
            req.responses.append(CheckResponse(member_id=m.id))
    if not req.responses:
        raise ShareError(f"trust group {g.slug!r} has no consenting member to ask")
    audit(session, requested_by, "share.check.create", requester_tenant_id, request=req.id, group=g.slug)
    session.flush()
    return req


def _mail(
    req: CheckRequest, member: str, to: str, smtp: SmtpConfig, token: str, *, chase: bool
) -> EmailMessage:
    link = f"{smtp.ack_base_url.rstrip('/')}/api/v1/share/check/{token}"
    tlp = TLP.parse(req.tlp)
    again = "【再送】" if chase else ""
    inds = "\n".join(f"  - {i}" for i in req.indicators) or "  - （なし / none）"
    body = (
        f"{tlp.label}\n\n{member} ご担当者様 / To {member}\n\n"
        f"{req.title}\n\n{req.instructions}\n\n"
        f"■ 確認する指標 / Indicators to check\n{inds}\n\n"
        f"■ 回答期限 / Deadline: {req.deadline:%Y-%m-%d %H:%M} UTC\n"
        f"■ 回答 / Answer: {link}\n"
    )
    msg = EmailMessage()
    msg["Subject"] = f"[{tlp.label}] {again}確認と報告のお願い / Please check and report: {req.title}"
    msg["From"] = formataddr((smtp.sender_name, smtp.sender))
    msg["To"] = to
    msg["Message-ID"] = make_msgid(domain=smtp.sender.rpartition("@")[2] or None)
    msg["X-TLP"] = tlp.label
    msg.set_content(body)
    return msg


def _send(
    session: Session, req: CheckRequest, responses: list[CheckResponse], smtp: SmtpConfig, chase: bool
) -> int:
    sent = 0
    with _smtp(smtp) as conn:
        for resp in responses:
            m = session.get(TrustGroupMember, resp.member_id)
            if m is None or not m.consent:
                continue
            token = secrets.token_urlsafe(24)
            delivered = False
            for _name, email, _kind in member_contacts(session, m):
                try:
                    conn.send_message(_mail(req, member_name(session, m), email, smtp, token, chase=chase))
                    delivered = True
                except (smtplib.SMTPException, OSError):
                    continue
            if delivered or m.tenant_id is not None:  # tenants can answer in the portal too
                resp.token_hash = _hash(token)
                resp.last_chased_at = _now() if chase else resp.last_chased_at
                resp.chase_count += 1 if chase else 0
                sent += 1
    session.flush()
    return sent


def send_request(session: Session, request_id: int, smtp: SmtpConfig) -> int:
    req = get_request(session, request_id)
    return _send(session, req, [r for r in req.responses if r.token_hash is None], smtp, chase=False)


def chase_requests(
    session: Session, smtp: SmtpConfig, *, every: timedelta, now: datetime | None = None
) -> list[CheckResponse]:
    """Re-send to members still pending ``every`` after the request (or the last chase),
    up to and after the deadline, until the request is closed."""
    now = now or _now()
    due: list[CheckResponse] = []
    for req in session.scalars(select(CheckRequest).where(CheckRequest.closed_at.is_(None))):
        for r in req.responses:
            if r.status == "pending" and (r.last_chased_at or req.created_at) + every <= now:
                due.append(r)
    by_req: dict[int, list[CheckResponse]] = {}
    for r in due:
        by_req.setdefault(r.request_id, []).append(r)
    for rid, rs in by_req.items():
        _send(session, get_request(session, rid), rs, smtp, chase=True)
    for r in due:
        r.last_chased_at = now
    session.flush()
    return due


def get_request(session: Session, request_id: int) -> CheckRequest:
    req = session.get(CheckRequest, request_id)
    if req is None:
        raise ShareError(f"no check request {request_id}")
    return req


def response_by_token(session: Session, token: str) -> tuple[CheckRequest, CheckResponse]:
    resp = session.scalar(select(CheckResponse).where(CheckResponse.token_hash == _hash(token)))
    if resp is None:
        raise ShareError("unknown answer token")
    return get_request(session, resp.request_id), resp


def answer_by_token(
    session: Session,
    token: str,
    *,
    status: str,
    by: str,
    answer: str | None = None,
    findings: list[str] | None = None,
    now: datetime | None = None,
) -> CheckResponse:
    req, resp = response_by_token(session, token)
    return _answer(session, req, resp, status=status, by=by, answer=answer, findings=findings, now=now)


def answer_in_portal(
    session: Session, tenant_id: str, request_id: int, *, status: str, by: str, answer: str | None = None,
    findings: list[str] | None = None,
) -> CheckResponse:  # fmt: skip
    req = get_request(session, request_id)
    for r in req.responses:
        m = session.get(TrustGroupMember, r.member_id)
        if m is not None and m.tenant_id == tenant_id:
            return _answer(session, req, r, status=status, by=by, answer=answer, findings=findings)
    raise ShareError(f"tenant {tenant_id!r} was not asked in check request {request_id}")


def _answer(
    session: Session,
    req: CheckRequest,
    resp: CheckResponse,
    *,
    status: str,
    by: str,
    answer: str | None,
    findings: list[str] | None,
    now: datetime | None = None,
) -> CheckResponse:
    if status not in STATUSES:
        raise ShareError(f"unknown status {status!r} ({', '.join(STATUSES)})")
    if req.closed_at is not None:
        raise ShareError(f"check request {req.id} is closed")
    resp.status = status
    resp.answered_by = by[:200]
    resp.answer = answer
    resp.findings = list(findings or [])
    resp.answered_at = now or _now()
    audit(session, by, "share.check.answer", None, request=req.id, member=resp.member_id, status=status)
    session.flush()
    return resp


def close_request(session: Session, request_id: int) -> CheckRequest:
    req = get_request(session, request_id)
    req.closed_at = _now()
    session.flush()
    return req


def summary(session: Session, request_id: int, now: datetime | None = None) -> dict[str, Any]:
    """The combined picture: who answered what, who is silent, what was found where."""
    req = get_request(session, request_id)
    now = now or _now()
    counts = {s: 0 for s in ("pending", *STATUSES)}
    members = []
    found: dict[str, list[str]] = {}
    for r in req.responses:
        m = session.get(TrustGroupMember, r.member_id)
        name = member_name(session, m) if m else str(r.member_id)
        counts[r.status] = counts.get(r.status, 0) + 1
        late = r.answered_at is not None and r.answered_at > req.deadline
        members.append(
            {
                "member": name,
                "role": m.role if m else None,
                "status": r.status,
                "answered_at": r.answered_at.isoformat() if r.answered_at else None,
                "late": late,
                "chases": r.chase_count,
                "findings": r.findings,
                "answer": r.answer,
            }
        )
        for f in r.findings or []:
            found.setdefault(str(f), []).append(name)
    return {
        "id": req.id,
        "title": req.title,
        "tlp": req.tlp,
        "deadline": req.deadline.isoformat(),
        "overdue": now > req.deadline and counts["pending"] > 0,
        "closed": req.closed_at is not None,
        "counts": counts,
        "answered": len(req.responses) - counts["pending"],
        "asked": len(req.responses),
        "found_at": found,
        "members": members,
    }
