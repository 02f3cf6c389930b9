"""Helpers for the collect tests: a tenant with a sensor, counting what the archive holds."""

from __future__ import annotations

import socket
from pathlib import Path

import polars as pl

from mimamori.archive import Archive
from mimamori.config import Settings
from mimamori.db.models import Tenant
from mimamori.db.models_collect import CollectSender
from mimamori.db.repo import add_sensor, add_tenant
from mimamori.db.session import init_db, make_engine, session_scope


def make_tenant(settings: Settings, tenant: str = "acme", *, address: str | None = None) -> tuple[int, str]:
    """A tenant and one sensor; returns (sensor id, token). ``address``: its syslog network."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    try:
        init_db(engine)
        with session_scope(engine) as s:
            if s.get(Tenant, tenant) is None:
                add_tenant(s, tenant, tenant.title(), networks=["10.0.0.0/8"])
            sensor, token = add_sensor(s, tenant, f"{tenant}-sensor-{address or 'http'}", "auto")
            if address:
                s.add(CollectSender(sensor_id=sensor.id, network=address))
            return sensor.id, token
    finally:
        engine.dispose()


def archived(archive_dir: Path, tenant: str) -> pl.DataFrame:
    """Every archived event of ``tenant``."""
    return Archive(archive_dir).scan_events(tenant).collect()


def quarantined(archive_dir: Path, tenant: str) -> pl.DataFrame:
    return Archive(archive_dir).scan_quarantine(tenant).collect()


def seq_counts(events: pl.DataFrame) -> tuple[int, int]:
    """(rows, distinct sequence numbers) of events whose message holds ``seq=N``."""
    seqs = events.select(pl.col("message").str.extract(r"seq=(\d+)").cast(pl.Int64).alias("s")).drop_nulls()
    return seqs.height, seqs["s"].n_unique()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
