"""The archive: partitioned by tenant and date, idempotent writes, queries confined to a tenant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from mimamori.archive import Archive, ArchiveError, QueryError
from mimamori.events.schema import EVENT_SCHEMA, conform


def frame(n: int, day: datetime, ip: str) -> pl.DataFrame:
    return conform(
        pl.DataFrame({"@timestamp": [day + timedelta(minutes=i) for i in range(n)], "source.ip": [ip] * n})
    )


D1 = datetime(2025, 4, 14, 23, 0, tzinfo=UTC)


def test_partitions_by_tenant_and_date_and_rewrites_are_idempotent(tmp_path):
    a = Archive(tmp_path)
    assert a.write_events(frame(120, D1, "10.0.0.1"), "acme", "b1") == 120  # spans midnight
    a.write_events(frame(120, D1, "10.0.0.1"), "acme", "b1")  # the same batch again
    days = sorted(p.name for p in (tmp_path / "events" / "tenant=acme").iterdir())
    assert days == ["date=2025-04-14", "date=2025-04-15"]
    assert a.scan_events("acme").select(pl.len()).collect().item() == 120
    df = a.scan_events("acme").collect()
    assert df.schema == pl.Schema(EVENT_SCHEMA)
    assert df["tenant.id"].unique().to_list() == ["acme"]


def test_empty_columns_are_left_out_of_files_and_read_back_as_null(tmp_path):
    import pyarrow.parquet as pq

    a = Archive(tmp_path)
    a.write_events(frame(3, D1, "10.0.0.1"), "acme", "b1")
    dns = frame(2, D1, "10.0.0.2").with_columns(pl.lit("example.jp").alias("dns.question.name"))
    a.write_events(dns, "acme", "b2")
    (f1,) = (tmp_path / "events" / "tenant=acme").rglob("b1.parquet")
    stored = pq.read_schema(f1).names
    assert "source.ip" in stored and "dns.question.name" not in stored and "log.file.line" in stored
    df = a.scan_events("acme").collect()
    assert df.schema == pl.Schema(EVENT_SCHEMA)
    names = df["dns.question.name"]
    assert names.null_count() == 3 and names.drop_nulls().to_list() == ["example.jp"] * 2
    out = a.query("acme", 'SELECT count("dns.question.name") AS n, count("url.full") AS u FROM events')
    assert out.to_dicts() == [{"n": 2, "u": 0}]


def test_query_sees_only_its_tenant(tmp_path):
    a = Archive(tmp_path)
    a.write_events(frame(3, D1, "10.0.0.1"), "acme", "b1")
    a.write_events(frame(5, D1, "10.9.9.9"), "beta", "b1")
    out = a.query("acme", 'SELECT "source.ip" AS ip, count(*) AS n FROM events GROUP BY 1')
    assert out.to_dicts() == [{"ip": "10.0.0.1", "n": 3}]
    assert a.query("gamma", "SELECT count(*) AS n FROM events").item() == 0
    beta_files = tmp_path / "events" / "tenant=beta"
    for sql in (
        f"SELECT * FROM read_parquet('{beta_files}/**/*.parquet')",
        f"SELECT * FROM '{beta_files}/date=2025-04-14/b1.parquet'",
        "SET enable_external_access = true",
        f"COPY events TO '{tmp_path}/leak.csv'",
        f"ATTACH '{tmp_path}/x.duckdb' AS x",
    ):
        with pytest.raises(QueryError):
            a.query("acme", sql)
    assert not (tmp_path / "leak.csv").exists()


def test_bad_tenant_ids_are_refused(tmp_path):
    a = Archive(tmp_path)
    for bad in ("../beta", "ACME", "a/b", "", "x" * 80):
        with pytest.raises(ArchiveError):
            a.write_events(frame(1, D1, "1.1.1.1"), bad, "b")
        with pytest.raises(ArchiveError):
            a.query(bad, "SELECT 1")


def test_retention_removes_old_days_only(tmp_path):
    a = Archive(tmp_path)
    old = datetime(2024, 1, 1, tzinfo=UTC)
    a.write_events(frame(2, old, "10.0.0.1"), "acme", "old")
    a.write_events(frame(2, D1, "10.0.0.1"), "acme", "new")
    removed = a.apply_retention("acme", 396, now=datetime(2025, 4, 20, tzinfo=UTC))
    assert removed == 1
    assert a.scan_events("acme").select(pl.len()).collect().item() == 2


def test_quarantine_is_archived_and_queryable(tmp_path):
    from mimamori.sources.reader import quarantine_rows

    a = Archive(tmp_path)
    a.write_quarantine(quarantine_rows("x.log", [7], ["field ts: missing or invalid"], ["{}"]), "acme", "b1")
    out = a.query("acme", 'SELECT "log.file.line" AS line, reason FROM quarantine')
    assert out.to_dicts() == [{"line": 7, "reason": "field ts: missing or invalid"}]
