"""Internet-facing detectors through the platform: state survives a restart (Parquet state store)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from mimamori.config import Settings
from mimamori.db.models import Incident
from mimamori.db.repo import add_tenant
from mimamori.db.session import session_scope
from mimamori.pipeline import Platform


def signin(minute: int, user: str, code: int) -> str:
    return json.dumps(
        {
            "createdDateTime": f"2026-03-02T01:{minute:02d}:00Z",
            "userPrincipalName": user,
            "ipAddress": "198.51.100.9",
            "clientAppUsed": "Browser",
            "status": {"errorCode": code},
        }
    )


def test_stuffing_then_takeover_across_a_restart(tmp_path: Path) -> None:
    home = tmp_path / "home"
    burst = tmp_path / "burst.json"
    burst.write_text("\n".join(signin(i, f"u{i}@inn.example", 50126) for i in range(30)) + "\n")
    hit = tmp_path / "hit.json"
    hit.write_text(signin(45, "u3@inn.example", 0) + "\n")
    with Platform(Settings.load(home)) as p:
        with session_scope(p.engine) as s:
            add_tenant(s, "inn", "旅館")
        r = p.ingest("inn", "entra_signin", burst)
        assert (r.stored, r.alerts) == (30, 1)
    with Platform(Settings.load(home)) as p:  # a new process: detector state read back from disk
        r = p.ingest("inn", "auto", hit)
        assert (r.stored, r.alerts) == (1, 1)
        with session_scope(p.engine) as s:
            incidents = s.scalars(select(Incident)).all()
            assert [(i.kind, i.severity, i.alert_count) for i in incidents] == [
                ("account_takeover", "high", 2)
            ]
