"""Scale-out mode with real servers: NATS JetStream, PostgreSQL, ``mimamori worker`` processes.

Each fault test feeds numbered messages (``seq=N``) through the receiver's intake (the
spool, forwarded to JetStream), breaks something, and then proves by counting that every
acknowledged message is in the archive exactly once and every batch has one
``collect_batch`` row.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from mimamori.collect import QuotaExceeded
from mimamori.collect.config import CollectConfig
from mimamori.collect.http import mount_ingest
from mimamori.collect.service import Collector, SensorRef
from mimamori.config import Settings
from mimamori.db.models_collect import CollectBatch
from mimamori.db.session import make_engine, session_scope
from tests.collect.helpers import archived, make_tenant, seq_counts
from tests.collect.servers import NatsServer, kill_group
from tests.pg import PostgresServer

MIMAMORI = str(Path(sys.executable).with_name("mimamori"))


def lines(start: int, n: int) -> bytes:
    return b"".join(b"<13>Apr 15 10:00:00 dev app: event seq=%d\n" % i for i in range(start, start + n))


class Cluster:
    def __init__(self, root: Path, pg_url: str, nats: NatsServer, **spool: int) -> None:
        self.root = root
        self.nats = nats
        self.settings = Settings.load(root / "home", database_url=pg_url)
        _, self.token = make_tenant(self.settings, "acme")
        cfg = CollectConfig.load(
            self.settings, nats_url=nats.url, spool_dir=root / "spool", chunk_bytes=1 << 20, **spool
        )
        self.collector = Collector(self.settings, cfg)
        self.collector.start()
        ref = self.collector.authenticate(self.token)
        assert ref is not None
        self.ref: SensorRef = ref
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.accepted = 0
        self.batches = 0

    def worker(self, name: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "MIMAMORI_HOME": str(self.settings.data_dir),
            "MIMAMORI_DATABASE_URL": self.settings.database_url,
            "MIMAMORI_NATS_URL": self.nats.url,
        }
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            [MIMAMORI, "worker", "--name", name, "--ack-wait", "3"],
            env=env, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        log.close()
        self.workers[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def feed(self, start: int, n: int, per_batch: int) -> None:
        """Submit ``n`` messages in batches; count only what the spool acknowledged."""
        for s in range(start, start + n, per_batch):
            k = min(per_batch, start + n - s)
            while True:
                try:
                    self.collector.submit(self.ref, "syslog-raw", lines(s, k), transport="test")
                    break
                except QuotaExceeded:
                    time.sleep(0.2)
            self.accepted += k
            self.batches += 1

    def wait_stored(self, expected: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if seq_counts(archived(self.settings.archive_dir, "acme"))[1] >= expected:
                time.sleep(1.0)  # anything still in flight would show up as a duplicate
                return
            time.sleep(0.3)
        logs = "\n".join(self.log(n)[-2000:] for n in self.workers)
        raise AssertionError(f"not all stored in {timeout} s\n{logs}")

    def assert_exactly_once(self) -> None:
        rows, distinct = seq_counts(archived(self.settings.archive_dir, "acme"))
        assert (rows, distinct) == (self.accepted, self.accepted)
        engine = make_engine(self.settings.database_url)
        try:
            with session_scope(engine) as s:
                n_batches = s.scalar(select(func.count()).select_from(CollectBatch))
                stored = s.scalar(select(func.sum(CollectBatch.stored)))
        finally:
            engine.dispose()
        assert (n_batches, stored) == (self.batches, self.accepted)

    def close(self) -> None:
        for proc in self.workers.values():
            kill_group(proc)
        self.collector.close()


@pytest.fixture
def nats_server(tmp_path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def cluster(tmp_path, pg_url, nats_server) -> Iterator[Cluster]:
    c = Cluster(tmp_path, pg_url, nats_server)
    yield c
    c.close()


def test_two_workers_share_the_load_and_a_killed_one_loses_nothing(cluster):
    a = cluster.worker("w1")
    cluster.worker("w2")
    cluster.feed(0, 100_000, 10_000)
    # kill -9 w1 while it holds a batch it has not acknowledged
    deadline = time.monotonic() + 60
    while "processing" not in cluster.log("w1"):
        assert time.monotonic() < deadline, cluster.log("w1")
        time.sleep(0.02)
    os.killpg(a.pid, signal.SIGKILL)
    a.wait(10)
    held = [
        ln.split(" processing ")[1].split()[0]
        for ln in cluster.log("w1").splitlines()
        if " processing " in ln
    ]
    done = {ln.split(" stored ")[1].split()[0] for ln in cluster.log("w1").splitlines() if " stored " in ln}
    interrupted = [b for b in held if b not in done]
    assert interrupted, "w1 was not in the middle of a batch"
    cluster.feed(100_000, 20_000, 10_000)
    cluster.wait_stored(cluster.accepted)
    cluster.assert_exactly_once()
    w2 = cluster.log("w2")
    for b in interrupted:  # redelivered to the other worker, which stored it
        assert f"processing {b} (delivery 2)" in w2 and f"stored {b} " in w2
    assert " stored " in w2


def test_nats_restart_while_data_keeps_arriving(cluster):
    cluster.worker("w1")
    cluster.worker("w2")
    feeder = threading.Thread(target=cluster.feed, args=(0, 60_000, 2_000))
    feeder.start()
    time.sleep(1.0)
    cluster.nats.stop()
    time.sleep(2.0)
    cluster.nats.start()
    feeder.join()
    cluster.wait_stored(cluster.accepted)
    cluster.assert_exactly_once()


def test_postgres_down_for_30_seconds_while_data_keeps_arriving(cluster, pg_server: PostgresServer):
    cluster.worker("w1")
    cluster.worker("w2")
    cluster.feed(0, 10_000, 1_000)
    cluster.wait_stored(10_000)
    pg_server._pg_ctl("stop", "-w", "-t", "30", "-m", "fast")
    try:
        t_end = time.monotonic() + 30
        start = 10_000
        while time.monotonic() < t_end:  # data keeps arriving: the receiver needs no database
            cluster.feed(start, 1_000, 1_000)
            start += 1_000
            time.sleep(0.5)
        assert seq_counts(archived(cluster.settings.archive_dir, "acme"))[1] <= 10_000 + 2_000
    finally:
        pg_server._pg_ctl(
            "start", "-w", "-t", "60", "-l", str(pg_server.log_file), "-o", f"-p {pg_server.port}"
        )
    cluster.wait_stored(cluster.accepted)
    cluster.assert_exactly_once()
    assert "not stored" in cluster.log("w1") + cluster.log("w2")


def test_disk_quota_refuses_then_drains(tmp_path, pg_url, nats_server):
    cluster = Cluster(tmp_path, pg_url, nats_server, max_spool_bytes=400_000, tenant_max_bytes=10 << 20)
    try:
        nats_server.stop()  # nothing leaves the spool: it fills up
        app = FastAPI()
        mount_ingest(app, cluster.collector)
        auth = {"Authorization": f"Bearer {cluster.token}"}
        codes = []
        with TestClient(app) as client:
            for i in range(20):
                r = client.post("/api/v1/ingest/syslog", content=lines(i * 1000, 1000), headers=auth)
                codes.append(r.status_code)
                if r.status_code == 202:
                    cluster.accepted += r.json()["accepted"]
                    cluster.batches += 1
                else:
                    assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0
        assert 503 in codes and cluster.accepted > 0
        nats_server.start()
        cluster.worker("w1")
        cluster.wait_stored(cluster.accepted)
        cluster.assert_exactly_once()
    finally:
        cluster.close()
