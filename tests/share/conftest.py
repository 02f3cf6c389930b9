"""Fixtures of the sharing tests: a migrated SQLite control plane with two tenants."""

from __future__ import annotations

import email
import email.message
import email.policy
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mimamori.db import repo
from mimamori.db.models import Alert, Incident, IncidentKey
from mimamori.db.session import make_engine


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated control plane on SQLite and on PostgreSQL (tests/pg.py)."""
    e = make_engine(db_url)
    yield e
    e.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with sessionmaker(engine, expire_on_commit=False)() as s:
        yield s


def make_incident(s: Session, tenant: str = "acme") -> Incident:
    """An Emotet-like incident of ``tenant``: an internal host talking to a C2, and a mail."""
    t0 = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
    inc = Incident(
        tenant_id=tenant,
        kind="malware_c2",
        severity="high",
        title="Emotet C2 from pc-sato-01 (10.10.1.23)",
        summary="Host pc-sato-01.acme.local 10.10.1.23 talked to 203.0.113.45; user sato@acme.co.jp",
        first_seen=t0,
        last_seen=t0,
    )
    s.add(inc)
    s.flush()
    s.add(IncidentKey(incident_id=inc.id, tenant_id=tenant, kind="host", key="host:10.10.1.23"))
    for ind, host, ev in (
        ("203.0.113.45", "10.10.1.23", {"dst_port": 8080, "threat": "Emotet"}),
        ("evil-invoice.example", "10.10.1.23", {"threat": "Emotet", "sender": "sato@acme.co.jp"}),
        ("44d88612fea8a8f36de82e1278abb02f", "10.10.1.23", {"threat": "Emotet"}),
    ):
        s.add(
            Alert(
                tenant_id=tenant,
                incident_id=inc.id,
                detector="intel",
                kind="malware_c2",
                severity="high",
                title=f"Emotet indicator {ind} seen from {host}",
                host=host,
                indicator=ind,
                evidence=ev,
                event_count=3,
                first_seen=t0,
                last_seen=t0,
                dedup_key=f"intel:{ind}",
            )
        )
    s.flush()
    return inc


@pytest.fixture
def tenants(session: Session) -> Session:
    repo.add_tenant(
        session,
        "acme",
        "アクメ精機株式会社",
        networks=["10.10.0.0/16"],
        contact_name="佐藤 太郎",
        contact_email="sato@acme.co.jp",
        contact_phone="03-1234-5678",
    )
    repo.add_tenant(
        session,
        "beta",
        "ベータ部品",
        networks=["192.168.50.0/24"],
        contact_name="鈴木 花子",
        contact_email="suzuki@beta-parts.jp",
    )
    session.flush()
    return session


class Sink:
    """An aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []
        self.rcpts: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        self.rcpts.extend(envelope.rcpt_tos)
        return "250 OK"


@pytest.fixture
def smtp_sink() -> Iterator[tuple[Sink, int]]:
    """A real SMTP server on 127.0.0.1 (aiosmtpd), started and stopped by the test."""
    from aiosmtpd.controller import Controller

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    sink = Sink()
    ctl = Controller(sink, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        yield sink, port
    finally:
        ctl.stop()


def body_of(msg: email.message.Message) -> str:
    part = msg.get_body(preferencelist=("plain",)) if hasattr(msg, "get_body") else msg
    assert part is not None
    return str(part.get_content())
