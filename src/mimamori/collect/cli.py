"""``mimamori collect ...``: sensors (tokens, syslog sender addresses) and the spool's state."""

from __future__ import annotations

import ipaddress
import json
import sys
from typing import Annotated

import typer

from mimamori.cliutil import DataDir, JsonOut, console, err, session
from mimamori.cliutil import fail as _fail
from mimamori.config import Settings

collect_app = typer.Typer(no_args_is_help=True, help="Collection: sensor tokens, syslog senders, spool.")
sensor_app = typer.Typer(no_args_is_help=True, help="Sensors: HTTP ingest tokens and syslog addresses.")
collect_app.add_typer(sensor_app, name="sensor")


@sensor_app.command("add")
def sensor_add(
    tenant: Annotated[str, typer.Argument(help="tenant id")],
    name: Annotated[str, typer.Argument(help="sensor name, unique per tenant")],
    source: Annotated[str, typer.Option("--source", help="parser name (or auto / syslog)")] = "auto",
    address: Annotated[
        list[str] | None, typer.Option("--address", help="syslog sender address or CIDR (repeatable)")
    ] = None,
    data_dir: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Create a sensor and print its token (shown once; only its hash is stored).

    An existing sensor of that name keeps its token unless it has none; ``--address`` adds
    syslog sender networks to it either way.
    """
    from sqlalchemy import select

    from mimamori.db import repo
    from mimamori.db.models import Sensor, Tenant
    from mimamori.db.models_collect import CollectSender

    nets: list[str] = []
    for a in address or []:
        try:
            nets.append(str(ipaddress.ip_network(a, strict=False)))
        except ValueError:
            _fail(f"not an address or network: {a!r}")
    with session(data_dir) as s:
        if s.get(Tenant, tenant) is None:
            _fail(f"unknown tenant {tenant!r} (see `mimamori tenants list`)")
        sensor = s.scalar(select(Sensor).where(Sensor.tenant_id == tenant, Sensor.name == name))
        token: str | None = None
        created = sensor is None
        if sensor is None:
            sensor, token = repo.add_sensor(s, tenant, name, source)
        elif sensor.token_hash is None:
            import secrets

            token = "mms_" + secrets.token_urlsafe(32)
            sensor.token_hash = repo.hash_token(token)
        for net in nets:
            taken = s.scalar(select(CollectSender).where(CollectSender.network == net))
            if taken is not None and taken.sensor_id != sensor.id:
                _fail(f"{net} already belongs to sensor {taken.sensor_id}")
            if taken is None:
                s.add(CollectSender(sensor_id=sensor.id, network=net))
        s.flush()
        out = {
            "sensor_id": sensor.id,
            "tenant": tenant,
            "name": name,
            "source": sensor.source,
            "created": created,
            "token": token,
            "addresses": nets,
        }
    if as_json:
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
        return
    console.print(f"sensor {out['sensor_id']} ({tenant}/{name}){' created' if created else ''}")
    if token:
        console.print(f"token (shown once): {token}")
    else:
        console.print("token unchanged (already set)")
    for net in nets:
        console.print(f"syslog sender {net}")


@collect_app.command("status")
def status(data_dir: DataDir = None, as_json: JsonOut = False) -> None:
    """The local spool: bytes on disk and records not yet stored or forwarded."""
    from mimamori.collect.config import CollectConfig
    from mimamori.collect.spool import SEGMENT_SUFFIX

    cfg = CollectConfig.load(Settings.load(data_dir))
    # read-only: a running receiver owns the spool
    segs = sorted(cfg.spool_dir.glob(f"*{SEGMENT_SUFFIX}")) if cfg.spool_dir.is_dir() else []
    cursor = cfg.spool_dir / "cursor.json"
    out = {
        "spool_dir": str(cfg.spool_dir),
        "bytes": sum(p.stat().st_size for p in segs),
        "segments": len(segs),
        "cursor": json.loads(cursor.read_text()) if cursor.exists() else None,
        "mode": "nats" if cfg.nats_url else "embedded",
    }
    if as_json:
        sys.stdout.write(json.dumps(out) + "\n")
    else:
        for k, v in out.items():
            console.print(f"{k}: {v}")


def run_worker_cli(settings: Settings, nats_url: str | None, *, ack_wait: float, name: str) -> None:
    """Run one worker until SIGTERM/SIGINT (finishes the batch in hand first)."""
    import asyncio
    import logging
    import signal
    import threading

    from mimamori.collect.config import CollectConfig
    from mimamori.collect.nats import run_worker

    cfg = CollectConfig.load(settings, nats_url=nats_url)
    if not cfg.nats_url:
        _fail("a worker needs --nats or MIMAMORI_NATS_URL")
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {name} %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    n = asyncio.run(run_worker(settings, cfg, stop, ack_wait=ack_wait, name=name))
    err.print(f"{name}: stored {n} batches")
