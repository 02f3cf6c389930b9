"""Shared fixtures: the real-data corpus, no network, pinned time."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def corpus_dir() -> Path:
    return Path(os.environ.get("MIMAMORI_CORPUS") or ROOT.parent / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def corpus() -> Path:
    """../shared/data (or $MIMAMORI_CORPUS). Absent: skip locally, fail under CI=true."""
    path = corpus_dir()
    if not path.is_dir():
        if IN_CI:
            pytest.fail(f"real-data corpus not found at {path} (set MIMAMORI_CORPUS)")
        pytest.skip(f"real-data corpus not found at {path}")
    return path


_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: object) -> object:
    host = address[0] if isinstance(address, tuple) else address
    inet = self.family in (socket.AF_INET, socket.AF_INET6)
    if inet and isinstance(host, str) and not (host.startswith("127.") or host in {"::1", "localhost"}):
        raise RuntimeError(f"tests must not reach the network (tried {address!r})")
    return _real_connect(self, address)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


# Database fixtures (tests/pg.py): db_url / db_engine (migrated, SQLite + PostgreSQL),
# empty_db_url (unmigrated, both backends), pg_url / pg_server (PostgreSQL only).
pytest_plugins = ["tests.pg"]
