"""Embedded mode, crash at any point: ``mimamori serve`` killed with SIGKILL and restarted.

An agent posts numbered batches with an ``Idempotency-Key`` and retries whatever was not
answered (as a real agent does); the serve process is killed mid-stream and started
again on the same data. Afterwards every flow id is in the archive exactly once: nothing
acknowledged was lost (the spool is replayed from its cursor), nothing was stored twice
(the batch ids are idempotent through the archive and ``collect_batch``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import polars as pl
from typer.testing import CliRunner

from mimamori.cli import app
from tests.collect.helpers import archived, free_port
from tests.collect.servers import kill_group, need, wait_port

MIMAMORI = str(Path(sys.executable).with_name("mimamori"))
EVE = (
    '{"timestamp":"2025-04-15T10:00:00.000000+0000","event_type":"flow","src_ip":"10.0.0.5",'
    '"src_port":5000,"dest_ip":"198.51.100.7","dest_port":443,"proto":"TCP","flow_id":%d}'
)
BATCHES, PER_BATCH = 20, 2000


def cli(home: Path, *args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--data-dir", str(home)])
    assert result.exit_code == 0, result.output
    return result.stdout


def serve(home: Path, port: int, log: Path, syslog_port: int) -> subprocess.Popen[bytes]:
    with open(log, "ab") as f:
        proc = subprocess.Popen(
            [MIMAMORI, "serve", "--data-dir", str(home), "--port", str(port),
             "--syslog-tcp", str(syslog_port)],
            stdout=f, stderr=f, start_new_session=True,
        )  # fmt: skip
    wait_port(port, 60)
    return proc


def test_kill_9_of_serve_loses_nothing_acknowledged_and_duplicates_nothing(tmp_path):
    home = tmp_path / "home"
    cli(home, "tenants", "add", "acme", "--name", "Acme", "--networks", "10.0.0.0/8")
    sensor = json.loads(
        cli(home, "collect", "sensor", "add", "acme", "agent-1", "--source", "suricata", "--json")
    )
    assert sensor["token"].startswith("mms_")
    again = json.loads(cli(home, "collect", "sensor", "add", "acme", "agent-1", "--json"))
    assert again["token"] is None and again["sensor_id"] == sensor["sensor_id"]  # kept, not replaced
    utm = json.loads(
        cli(home, "collect", "sensor", "add", "acme", "utm-1", "--address", "127.0.0.1", "--json")
    )
    assert utm["addresses"] == ["127.0.0.1/32"]
    port, syslog_port = free_port(), free_port()
    proc = serve(home, port, tmp_path / "serve.log", syslog_port)
    acked: dict[int, dict[str, object]] = {}
    headers = {"Authorization": f"Bearer {sensor['token']}"}

    def agent() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for i in range(BATCHES):
                body = "\n".join(EVE % (i * PER_BATCH + j) for j in range(PER_BATCH)) + "\n"
                deadline = time.monotonic() + 120
                while i not in acked:  # retry until answered, same key
                    assert time.monotonic() < deadline
                    try:
                        r = client.post(
                            "/api/v1/ingest/suricata",
                            content=body,
                            headers={**headers, "Idempotency-Key": f"b{i}"},
                        )
                    except httpx.TransportError:
                        time.sleep(0.2)
                        continue
                    if r.status_code in (200, 202):
                        acked[i] = r.json()
                    else:
                        time.sleep(0.2)

    sender = threading.Thread(target=agent)
    sender.start()
    try:
        while len(acked) < 5:
            assert sender.is_alive()
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # mid-stream: requests in flight, batches in the spool
        proc.wait(10)
        killed_at = len(acked)
        time.sleep(1.0)
        proc = serve(home, port, tmp_path / "serve.log", syslog_port)
        wait_port(syslog_port, 30)
        subprocess.run(
            [need("logger", "bsdutils"), "-n", "127.0.0.1", "-P", str(syslog_port), "-T", "--octet-count",
             "-t", "app", "via serve"],
            check=True, timeout=30,
        )  # fmt: skip
        sender.join(300)
        assert not sender.is_alive() and len(acked) == BATCHES and killed_at < BATCHES
        deadline = time.monotonic() + 120
        while archived(home / "archive", "acme").height < BATCHES * PER_BATCH + 1:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        kill_group(proc)
    events = archived(home / "archive", "acme")
    syslog = events.filter(pl.col("event.module") == "syslog")
    assert syslog["message"].to_list() == ["via serve"]  # the serve command's syslog receiver
    flows = events.filter(pl.col("event.module") == "suricata")
    assert flows.height == BATCHES * PER_BATCH  # no duplicates ...
    assert flows.select(pl.col("event.id").n_unique()).item() == BATCHES * PER_BATCH  # ... none lost
    status = json.loads(cli(home, "collect", "status", "--json"))
    assert status["mode"] == "embedded"
