"""End to end through the platform: parse, archive, detect, group; nothing lost, nothing doubled."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from mimamori.config import Settings
from mimamori.db.models import Alert, Incident, IngestRun
from mimamori.db.repo import add_tenant
from mimamori.db.session import session_scope
from mimamori.intel import import_paths
from mimamori.pipeline import Platform, UnknownTenantError

BAD_IP = "198.51.100.77"


def conn_line(ts: float, src: str, dst: str, port: int = 443) -> str:
    return json.dumps(
        {
            "ts": ts,
            "uid": f"C{int(ts * 1000)}",
            "id.orig_h": src,
            "id.orig_p": 50000,
            "id.resp_h": dst,
            "id.resp_p": port,
            "proto": "tcp",
            "conn_state": "SF",
        }
    )


@pytest.fixture
def platform(tmp_path, db_url):
    with Platform(Settings.load(tmp_path / "home", db_url)) as p:
        with session_scope(p.engine) as s:
            add_tenant(s, "acme", "Acme", networks=["192.168.1.0/24"])
            add_tenant(s, "beta", "Beta", networks=["192.168.1.0/24"])
        yield p


def import_list(p: Platform, tmp_path: Path, values: list[str]) -> pl.DataFrame:
    f = tmp_path / "bad.txt"
    f.write_text("# demo list\n" + "\n".join(values) + "\n")
    with session_scope(p.engine) as s:
        report = import_paths(s, [f], source_name="test-list")
    p.refresh_indicators()
    return report.new_indicators


def test_known_bad_destination_opens_one_incident_in_the_right_tenant(platform, tmp_path):
    import_list(platform, tmp_path, [BAD_IP])
    lines = [conn_line(1744700000 + i, "192.168.1.20", BAD_IP) for i in range(5)]
    lines += [conn_line(1744700100 + i, "192.168.1.21", "93.184.216.34") for i in range(50)]
    f = tmp_path / "conn.log"
    f.write_text("\n".join(lines) + "\n")
    r = platform.ingest("acme", "zeek", f)
    assert (r.lines_read, r.stored, r.quarantined) == (55, 55, 0)
    assert r.alerts == 1 and len(r.incidents_opened) == 1
    with session_scope(platform.engine) as s:
        inc = s.scalars(select(Incident)).one()
        assert (inc.tenant_id, inc.kind, inc.alert_count) == ("acme", "malicious_destination", 1)
        alert = s.scalars(select(Alert)).one()
        assert alert.host == "192.168.1.20" and alert.indicator == BAD_IP and alert.event_count == 5
        assert alert.evidence["lines"] == [1, 2, 3, 4, 5]
    # the same file again: archive replaced, alert recognised, nothing doubled
    r2 = platform.ingest("acme", "zeek", f)
    assert (r2.alerts, r2.duplicate_alerts, r2.incidents_opened) == (0, 1, [])
    assert platform.archive.query("acme", "SELECT count(*) FROM events").item() == 55
    assert platform.archive.query("beta", "SELECT count(*) FROM events").item() == 0


def test_bad_lines_are_quarantined_with_file_line_and_reason(platform, tmp_path):
    good = conn_line(1744700000, "192.168.1.20", "93.184.216.34")
    data = "\n".join([good, "{not json", good.replace('"ts": 1744700000', '"ts": "yesterday"'), "", good])
    data_bytes = data.encode() + b"\n" + b"\xff\xfe\xfa broken\n" + ("x" * (1 << 20 + 1)).encode() + b"\n"
    r = platform.ingest("acme", "zeek", data_bytes, name="upload.log")
    assert r.lines_read == 7
    assert r.stored + r.quarantined + r.skipped == r.lines_read
    assert (r.stored, r.quarantined, r.skipped) == (2, 4, 1)
    q = platform.archive.query(
        "acme", 'SELECT "log.file.path" AS f, "log.file.line" AS line, reason FROM quarantine ORDER BY line'
    )
    assert q["f"].unique().to_list() == ["upload.log"]
    assert q["line"].to_list() == [2, 3, 6, 7]
    reasons = q["reason"].to_list()
    assert (
        "JSON" in reasons[0] and "ts" in reasons[1] and "undecodable" in reasons[2] and "longer" in reasons[3]
    )
    with session_scope(platform.engine) as s:
        run = s.scalars(select(IngestRun)).one()
        assert (run.lines_read, run.stored, run.quarantined, run.skipped) == (7, 2, 4, 1)


def test_a_parser_crash_quarantines_the_batch_instead_of_losing_it(platform, tmp_path, monkeypatch):
    from mimamori.sources.zeek import ZeekParser

    def boom(self, batch, ctx):
        raise ValueError("synthetic failure")

    monkeypatch.setattr(ZeekParser, "parse", boom)
    r = platform.ingest("acme", "zeek", (conn_line(1744700000, "192.168.1.2", "1.1.1.1") + "\n").encode())
    assert (r.stored, r.quarantined) == (0, 1)
    reason = platform.archive.query("acme", "SELECT reason FROM quarantine").item()
    assert "synthetic failure" in reason


def test_a_file_and_its_bytes_archive_alike(platform, tmp_path, monkeypatch):
    """A file on disk is parsed through DuckDB's stream, the same bytes sent over the API
    through Polars: the archive holds the same events either way."""
    from mimamori.sources import ndjson_stream, reader

    taken = []
    original = ndjson_stream.NdjsonStream.take
    monkeypatch.setattr(
        ndjson_stream.NdjsonStream, "take", lambda self, n: taken.append(n) or original(self, n)
    )
    monkeypatch.setattr(reader, "BLOCK_BYTES", 1500)  # several batches
    lines = [conn_line(1744700000 + i, "192.168.1.20", f"93.184.216.{i % 200}", 443 + i) for i in range(40)]
    f = tmp_path / "conn.log"
    f.write_text("\n".join(lines) + "\n")
    by_file = platform.ingest("acme", "zeek", f)
    by_bytes = platform.ingest("beta", "zeek", f.read_bytes(), name=str(f))
    assert sum(taken) == by_file.stored == by_bytes.stored == 40
    assert len(taken) > 3
    query = 'SELECT * EXCLUDE ("tenant.id") FROM events ORDER BY "log.file.line"'
    assert platform.archive.query("acme", query).equals(platform.archive.query("beta", query))


def test_a_failed_archive_write_fails_the_ingest(platform, tmp_path, monkeypatch):
    """Archive files are written on a second thread; its error still stops the ingest before
    anything is committed."""
    from mimamori.archive import Archive

    def full(self, events, tenant, batch_id):
        raise OSError("No space left on device")

    monkeypatch.setattr(Archive, "write_events", full)
    f = tmp_path / "conn.log"
    f.write_text(conn_line(1744700000, "192.168.1.20", BAD_IP) + "\n")
    with pytest.raises(OSError, match="No space left"):
        platform.ingest("acme", "zeek", f)
    with session_scope(platform.engine) as s:
        assert s.scalar(select(func.count()).select_from(IngestRun)) == 0


def test_new_indicators_are_retro_hunted_over_the_archive(platform, tmp_path):
    from datetime import UTC, datetime

    now = datetime.now(UTC).timestamp()
    f = tmp_path / "conn.log"
    f.write_text("\n".join(conn_line(now - 3600 + i, "192.168.1.30", BAD_IP) for i in range(3)) + "\n")
    assert platform.ingest("beta", "zeek", f).alerts == 0
    new = import_list(platform, tmp_path, [BAD_IP])
    results = platform.retro_hunt(new, days=30)
    assert list(results) == ["beta"]
    with session_scope(platform.engine) as s:
        alert = s.scalars(select(Alert)).one()
        assert alert.tenant_id == "beta" and alert.evidence["retro_hunt"] is True


def test_unknown_tenant_is_an_error(platform):
    with pytest.raises(UnknownTenantError):
        platform.ingest("nobody", "zeek", b"{}\n")


@pytest.fixture(scope="module")
def fuzz_platform(tmp_path_factory):
    with Platform(Settings.load(tmp_path_factory.mktemp("fuzz"))) as p:
        with session_scope(p.engine) as s:
            add_tenant(s, "fuzz", "Fuzz")
        yield p


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.binary(max_size=2000),
    source=st.sampled_from(["zeek", "suricata", "fortigate", "panos", "filterlog"]),
)
def test_any_bytes_no_crash_and_every_line_accounted_for(fuzz_platform, data, source):
    r = fuzz_platform.ingest("fuzz", source, data, name="fuzz.bin")
    assert r.stored + r.quarantined + r.skipped == r.lines_read
    with session_scope(fuzz_platform.engine) as s:
        assert s.scalar(select(func.count()).select_from(IngestRun)) >= 1
