"""`make bench`: sustained collection rate through the full pipeline, 1 worker vs 2.

Starts a throwaway PostgreSQL (tests/pg.py) and ``nats-server -js`` on loopback, a
receiver (spool -> JetStream; syslog TCP and the HTTP ingest API served by uvicorn) and
``mimamori worker`` processes. For each load -- syslog over TCP (octet-counted) and HTTP
NDJSON (Suricata EVE flows) -- and each worker count, a bounded local load generator
sends a fixed number of records (and stops at a time limit); the rate is records stored
(``collect_batch``) divided by the time from the first byte sent to the last record stored.
Also the embedded mode (no NATS, SQLite, in-process) for reference. Prints the rates and
the 2-worker / 1-worker scaling ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from mimamori.collect.config import CollectConfig  # noqa: E402
from mimamori.collect.http import mount_ingest  # noqa: E402
from mimamori.collect.service import Collector  # noqa: E402
from mimamori.config import Settings  # noqa: E402
from mimamori.db.models_collect import CollectBatch  # noqa: E402
from mimamori.db.session import make_engine, session_scope  # noqa: E402

MIMAMORI = str(Path(sys.executable).with_name("mimamori"))
EVE = (
    '{"timestamp":"2025-04-15T10:%02d:%02d.000000+0000","event_type":"flow","src_ip":"10.0.%d.%d",'
    '"src_port":%d,"dest_ip":"198.51.100.%d","dest_port":443,"proto":"TCP","flow_id":%d,'
    '"flow":{"pkts_toserver":3,"pkts_toclient":2,"bytes_toserver":300,"bytes_toclient":900}}'
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def syslog_frames(n: int) -> bytes:
    out = bytearray()
    for i in range(n):
        msg = (
            b"<134>1 2025-04-15T10:00:00Z fw1 app - - - date=2025-04-15 time=10:00:00 devid=FG100 "
            b"logid=0000000013 type=traffic subtype=forward srcip=10.0.%d.%d srcport=%d dstip=198.51.100.%d "
            b"dstport=443 proto=6 action=accept policyid=1 sentbyte=100 rcvdbyte=200 seq=%d"
        ) % (i % 250, i % 200 + 1, 1024 + i % 60000, i % 250, i)
        out += b"%d %s" % (len(msg), msg)
    return bytes(out)


def ndjson(start: int, n: int) -> bytes:
    return (
        "\n".join(
            EVE % (i % 60, i % 60, i % 250, i % 200 + 1, 1024 + i % 60000, i % 250, start + i)
            for i in range(n)
        )
        + "\n"
    ).encode()


def stored(engine, tenant: str) -> int:
    with session_scope(engine) as s:
        return int(
            s.scalar(
                select(func.coalesce(func.sum(CollectBatch.stored), 0)).where(
                    CollectBatch.tenant_id == tenant
                )
            )
        )


def make_tenant(settings: Settings, tenant: str) -> tuple[int, str]:
    from mimamori.db.repo import add_sensor, add_tenant
    from mimamori.db.session import init_db

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    init_db(engine)
    with session_scope(engine) as s:
        add_tenant(s, tenant, tenant, networks=["10.0.0.0/16"])
        sensor, token = add_sensor(s, tenant, "bench", "auto")
        sensor_id = sensor.id
    engine.dispose()
    return sensor_id, token


def send_syslog_as(collector: Collector, sensor_id: int) -> None:
    """Syslog from 127.0.0.1 belongs to this sensor from now on."""
    from mimamori.db.models_collect import CollectSender

    with session_scope(collector.engine) as s:
        row = s.scalar(select(CollectSender).where(CollectSender.network == "127.0.0.1/32"))
        if row is None:
            s.add(CollectSender(sensor_id=sensor_id, network="127.0.0.1/32"))
        else:
            row.sensor_id = sensor_id
    collector.reload_senders()


def run_load(kind: str, n: int, tcp_port: int, http_port: int, token: str, limit: float) -> float:
    """Send ``n`` records; returns the time the first byte was sent."""
    t0 = time.monotonic()
    if kind == "syslog":
        data = syslog_frames(n)
        with socket.create_connection(("127.0.0.1", tcp_port)) as s:
            view = memoryview(data)
            for off in range(0, len(data), 1 << 16):
                s.sendall(view[off : off + (1 << 16)])
                if time.monotonic() - t0 > limit:
                    break
    else:
        per = 5000
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=60) as c:
            for start in range(0, n, per):
                r = c.post(
                    "/api/v1/ingest/suricata",
                    content=ndjson(start, min(per, n - start)),
                    headers={"Authorization": f"Bearer {token}"},
                )
                r.raise_for_status()
                if time.monotonic() - t0 > limit:
                    break
    return t0


def serve_ingest(collector: Collector) -> tuple[Any, int]:
    """The HTTP ingest API of ``collector`` on a free loopback port, in a thread: (server, port)."""
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()
    mount_ingest(app, collector)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, port


def wait_stored(engine, tenant: str, n: int, limit: float) -> tuple[int, float]:
    deadline = time.monotonic() + limit
    got = 0
    while time.monotonic() < deadline:
        got = stored(engine, tenant)
        if got >= n:
            break
        time.sleep(0.1)
    return got, time.monotonic()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--syslog", type=int, default=150_000, help="syslog messages per run")
    ap.add_argument("--http", type=int, default=100_000, help="NDJSON lines per run")
    ap.add_argument("--limit", type=float, default=120.0, help="seconds a run may take at most")
    args = ap.parse_args()

    from tests.collect.servers import NatsServer
    from tests.pg import PostgresServer, find_pg_bin

    bin_dir = find_pg_bin()
    if bin_dir is None:
        print("PostgreSQL server binaries not found (make sysdeps)", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="mimamori-bench-collect-"))
    pg = PostgresServer(bin_dir)
    pg.start()
    nats = NatsServer(root)
    nats.start()
    results: dict[tuple[str, str], float] = {}
    try:
        # ---------------------------------------------------------------- scale-out
        settings = Settings.load(root / "home", database_url=pg.create_database("bench"))
        tenants = {(k, w): f"{k[:3]}-{w}w" for k in ("syslog", "http") for w in (1, 2)}
        sensors = {t: make_tenant(settings, t) for t in tenants.values()}
        cfg = CollectConfig.load(settings, nats_url=nats.url, syslog_tcp=0, spool_dir=root / "spool")
        collector = Collector(settings, cfg)
        collector.start()
        server, http_port = serve_ingest(collector)
        engine = make_engine(settings.database_url)
        env = {**os.environ, "MIMAMORI_HOME": str(settings.data_dir),
               "MIMAMORI_DATABASE_URL": settings.database_url, "MIMAMORI_NATS_URL": nats.url}  # fmt: skip
        try:
            for workers in (1, 2):
                procs = []
                for i in range(workers):
                    log = open(root / f"worker{workers}-{i}.log", "wb")  # noqa: SIM115
                    procs.append(
                        subprocess.Popen(
                            [MIMAMORI, "worker", "--name", f"w{i}"],
                            env=env,
                            stdout=log,
                            stderr=log,
                            start_new_session=True,
                        )
                    )
                    log.close()
                for i in range(workers):  # ready: subscribed to the stream
                    while "consuming" not in (root / f"worker{workers}-{i}.log").read_text(errors="replace"):
                        time.sleep(0.1)
                try:
                    for kind, n in (("syslog", args.syslog), ("http", args.http)):
                        tenant = tenants[(kind, workers)]
                        sensor_id, token = sensors[tenant]
                        send_syslog_as(collector, sensor_id)
                        before = collector.spool.appended_records
                        t0 = run_load(kind, n, collector.syslog.ports["tcp"], http_port, token, args.limit)
                        got, t1 = wait_stored(engine, tenant, n, args.limit)
                        spooled = collector.spool.appended_records - before
                        rate = got / (t1 - t0)
                        results[(kind, f"{workers}w")] = rate
                        print(
                            f"{kind:6s} {workers} worker(s): {got:>8,} records in {t1 - t0:6.1f} s"
                            f" = {rate:>9,.0f}/s ({spooled} spool records)",
                            flush=True,
                        )
                finally:
                    for p in procs:
                        os.killpg(p.pid, signal.SIGTERM)
                        p.wait(60)
        finally:
            engine.dispose()
            server.should_exit = True
            collector.close()

        # ---------------------------------------------------------------- embedded
        esettings = Settings.load(root / "embedded")
        esensor, etoken = make_tenant(esettings, "sys-emb")
        _, htoken = make_tenant(esettings, "htt-emb")
        ecollector = Collector(esettings, CollectConfig.load(esettings, syslog_tcp=0, wait_seconds=0))
        ecollector.start()
        send_syslog_as(ecollector, esensor)
        eserver, eport = serve_ingest(ecollector)
        eengine = make_engine(esettings.database_url)
        try:
            for kind, n, tenant, token in (
                ("syslog", args.syslog, "sys-emb", etoken),
                ("http", args.http, "htt-emb", htoken),
            ):
                t0 = run_load(kind, n, ecollector.syslog.ports["tcp"], eport, token, args.limit)
                got, t1 = wait_stored(eengine, tenant, n, args.limit)
                print(
                    f"{kind:6s} embedded (SQLite, in-process): {got:>8,} records in {t1 - t0:6.1f} s"
                    f" = {got / (t1 - t0):>9,.0f}/s",
                    flush=True,
                )
        finally:
            eengine.dispose()
            eserver.should_exit = True
            ecollector.close()
    finally:
        nats.stop()
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)
    for kind in ("syslog", "http"):
        one, two = results.get((kind, "1w")), results.get((kind, "2w"))
        if one and two:
            print(f"scaling ratio {kind}: 2 workers / 1 worker = {two / one:.2f}")
    load = os.getloadavg()[0]
    print(
        f"({os.cpu_count()} CPUs, load average {load:.1f}: a ratio near 1 means the CPUs were already busy)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
