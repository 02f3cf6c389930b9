"""Check-and-report requests: asked by the lead, answered by link and portal, chased, combined."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mimamori.db import repo
from mimamori.db.models_share import TrustGroupMember
from mimamori.share import partners as P
from mimamori.share.api import share_router
from mimamori.share.checks import (
    answer_in_portal,
    chase_requests,
    close_request,
    create_request,
    send_request,
    summary,
)
from mimamori.share.partner_warnings import SmtpConfig
from mimamori.share.tlp import TLP, TlpViolation
from tests.share.conftest import Sink, body_of


def test_check_request_round(tenants: Session, engine: Engine, smtp_sink: tuple[Sink, int]) -> None:
    s = tenants
    sink, port = smtp_sink
    repo.add_tenant(s, "gamma", "ガンマ樹脂", contact_email="it@gamma-jushi.jp")
    P.add_partner(s, "acme", "タイ工場", relation="site", domains=["acme-th.example"], language="en")
    P.add_contact(s, "acme", "タイ工場", "Somchai", "it@acme-th.example")
    P.add_group(s, "acme-chain", "アクメ・サプライチェーン", lead_tenant_id="acme")
    b = P.add_member(s, "acme-chain", tenant_id="beta", role="supplier", consent=True)
    P.add_member(s, "acme-chain", tenant_id="gamma", role="supplier", consent=True)
    P.add_member(s, "acme-chain", partner_of="acme", partner="タイ工場", role="site", consent=True)
    now = datetime.now(UTC)
    with pytest.raises(P.ShareError, match="only the lead"):
        create_request(s, "acme-chain", title="x", instructions="y", deadline=now + timedelta(days=1),
                       requested_by="鈴木", requester_tenant_id="beta")  # fmt: skip
    with pytest.raises(TlpViolation):
        create_request(s, "acme-chain", title="x", instructions="y", deadline=now + timedelta(days=1),
                       requested_by="x", tlp=TLP.RED)  # fmt: skip
    req = create_request(
        s,
        "acme-chain",
        title="Emotet 通信先の確認",
        instructions="下記の通信先へのアクセスがないか、プロキシとUTMのログを確認してください。",
        indicators=["203.0.113.45", "evil-invoice.example"],
        deadline=now + timedelta(days=2),
        requested_by="佐藤 太郎",
        requester_tenant_id="acme",
    )
    assert len(req.responses) == 3  # the lead is not asked
    smtp = SmtpConfig(port=port, ack_base_url="https://soc.example")
    assert send_request(s, req.id, smtp) == 3
    assert sorted(sink.rcpts) == ["it@acme-th.example", "it@gamma-jushi.jp", "suzuki@beta-parts.jp"]
    links = {
        str(m["To"]): re.search(r"https://soc\.example(/api/v1/share/check/\S+)", body_of(m))
        for m in sink.messages
    }
    s.commit()
    app = FastAPI()
    app.state.sessions = sessionmaker(engine, expire_on_commit=False)
    app.include_router(share_router())
    with TestClient(app) as client:
        th = links["it@acme-th.example"]
        assert th is not None
        assert "Emotet 通信先の確認" in client.get(th.group(1)).text
        r = client.post(th.group(1), data={"status": "found", "by": "Somchai", "findings": "203.0.113.45\n"})
        assert r.status_code == 200 and r.json()["status"] == "found"
        assert client.post(th.group(1), json={"status": "maybe", "by": "x"}).status_code == 422
    s.expire_all()
    answer_in_portal(s, "beta", req.id, status="clean", by="鈴木 花子", answer="ログに該当なし")
    with pytest.raises(P.ShareError, match="was not asked"):
        answer_in_portal(s, "acme", req.id, status="clean", by="x")

    # chase the silent one only, after the interval
    assert chase_requests(s, smtp, every=timedelta(hours=12), now=now + timedelta(hours=1)) == []
    chased = chase_requests(s, smtp, every=timedelta(hours=12), now=now + timedelta(hours=13))
    assert [P.member_name(s, s.get_one(TrustGroupMember, r.member_id)) for r in chased] == ["ガンマ樹脂"]
    assert "【再送】" in str(sink.messages[-1]["Subject"])

    res = summary(s, req.id, now=now + timedelta(days=3))
    assert res["counts"] == {"pending": 1, "clean": 1, "found": 1, "unable": 0}
    assert res["overdue"] is True and res["found_at"] == {"203.0.113.45": ["タイ工場"]}
    assert {m["member"]: m["status"] for m in res["members"]} == {
        "ベータ部品": "clean",
        "ガンマ樹脂": "pending",
        "タイ工場": "found",
    }
    close_request(s, req.id)
    with pytest.raises(P.ShareError, match="closed"):
        answer_in_portal(s, "gamma", req.id, status="clean", by="x")
    assert b.consent
