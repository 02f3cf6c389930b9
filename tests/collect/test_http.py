"""HTTP ingest: token auth, NDJSON (and gzip), counts, idempotent retries, quotas."""

from __future__ import annotations

import gzip
import time

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from mimamori.collect.config import CollectConfig
from mimamori.collect.http import mount_ingest
from mimamori.collect.service import Collector
from mimamori.config import Settings
from mimamori.serve import create_app
from tests.collect.helpers import archived, make_tenant, quarantined

EVE = (
    '{"timestamp":"2025-04-15T10:00:%02d.000000+0000","event_type":"flow","src_ip":"10.0.0.5",'
    '"src_port":5000,"dest_ip":"198.51.100.7","dest_port":443,"proto":"TCP","flow_id":%d}'
)


def body(n: int, start: int = 0) -> bytes:
    return "\n".join(EVE % (i % 60, start + i) for i in range(n)).encode() + b"\n"


@pytest.fixture
def settings(tmp_path):
    return Settings.load(tmp_path)


@pytest.fixture
def collector(settings):
    c = Collector(settings, CollectConfig.load(settings))
    c.start()
    yield c
    c.close()


def test_ndjson_is_stored_and_counted(settings, collector):
    _, token = make_tenant(settings)
    app = create_app(settings)  # today's serve app mounts the router
    app.state.collector = collector
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(app) as client:
        bad = body(3) + b'{"timestamp": "not a time", "event_type": "flow"}\n' + b"{broken json\n"
        r = client.post("/api/v1/ingest/suricata", content=bad, headers=auth)
        assert r.status_code == 200, r.text
        out = r.json()
        assert (out["status"], out["accepted"], out["stored"], out["quarantined"]) == ("stored", 5, 3, 2)
        gz = client.post(
            "/api/v1/ingest/suricata",
            content=gzip.compress(body(100, 1000)),
            headers={**auth, "Content-Encoding": "gzip"},
        )
        assert gz.json()["stored"] == 100
    assert archived(settings.archive_dir, "acme").height == 103
    assert quarantined(settings.archive_dir, "acme").height == 2


def test_a_retry_with_the_same_idempotency_key_is_stored_once(settings, collector):
    _, token = make_tenant(settings)
    app = FastAPI()  # any app: the console mounts the same router
    mount_ingest(app, collector)
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "agent-7-batch-42"}
    with TestClient(app) as client:
        for _ in range(3):
            assert (
                client.post("/api/v1/ingest/suricata", content=body(50), headers=headers).json()["stored"]
                == 50
            )
        # the same content without a key is a new batch (two identical batches are two batches)
        plain = {"Authorization": headers["Authorization"]}
        assert client.post("/api/v1/ingest/suricata", content=body(50), headers=plain).status_code == 200
    events = archived(settings.archive_dir, "acme")
    assert events.height == 100


def test_tokens_are_checked(settings, collector):
    make_tenant(settings)
    app = FastAPI()
    mount_ingest(app, collector)
    with TestClient(app) as client:
        assert client.post("/api/v1/ingest/suricata", content=body(1)).status_code == 401
        r = client.post(
            "/api/v1/ingest/suricata", content=body(1), headers={"Authorization": "Bearer mms_nope"}
        )
        assert r.status_code == 401
        _, token = make_tenant(settings, "other")
        r = client.post(
            "/api/v1/ingest/nosuch", content=body(1), headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 404
    assert archived(settings.archive_dir, "acme").height == 0


def test_over_quota_answers_429_and_503_with_retry_after(settings):
    # no consumer: what is accepted stays in the spool, so the quotas fill up
    cfg = CollectConfig.load(settings, max_spool_bytes=60_000, tenant_max_bytes=25_000, wait_seconds=0)
    collector = Collector(settings, cfg)
    _, tok_a = make_tenant(settings, "acme")
    _, tok_b = make_tenant(settings, "beta")
    _, tok_c = make_tenant(settings, "gamma")
    app = FastAPI()
    mount_ingest(app, collector)
    accepted = 0
    codes = []
    with TestClient(app) as client:
        for tok in (tok_a, tok_b, tok_c):
            for _ in range(4):
                r = client.post(
                    "/api/v1/ingest/suricata", content=body(40), headers={"Authorization": f"Bearer {tok}"}
                )
                codes.append(r.status_code)
                if r.status_code == 202:
                    accepted += r.json()["accepted"]
                else:
                    assert int(r.headers["Retry-After"]) > 0
    assert 429 in codes and 503 in codes
    # then the consumer drains: exactly what was accepted is stored
    collector.start()
    deadline = time.monotonic() + 60
    while collector.spool.pending_records and time.monotonic() < deadline:
        time.sleep(0.1)
    collector.close()
    total = sum(archived(settings.archive_dir, t).height for t in ("acme", "beta", "gamma"))
    assert accepted > 0 and total == accepted
