"""Deduplication across sources and the default expiry policy."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from mimamori.intel import INDICATOR_SCHEMA, ExpiryPolicy, ReadResult, deduplicate

from .conftest import NOW


def frame(*rows: dict[str, object]) -> pl.DataFrame:
    base = {k: None for k in INDICATOR_SCHEMA} | {"tags": []}
    return pl.DataFrame([base | r for r in rows], schema=INDICATOR_SCHEMA)


def t(day: int) -> datetime:
    return datetime(2024, 3, day, tzinfo=UTC)


def test_same_value_from_two_sources() -> None:
    df = frame(
        {
            "type": "ip",
            "value": "192.0.2.1",
            "source": "A",
            "threat": "Emotet",
            "confidence": 60,
            "first_seen": t(3),
            "last_seen": t(10),
            "tags": ["c2", "port:443"],
            "reference": "a-1",
        },
        {
            "type": "ip",
            "value": "192.0.2.1",
            "source": "B",
            "threat": "QakBot",
            "confidence": 90,
            "first_seen": t(5),
            "last_seen": t(20),
            "tags": ["botnet_cc", "c2"],
            "reference": "b-1",
        },
        {
            "type": "ip",
            "value": "192.0.2.1",
            "source": "A",
            "threat": None,
            "confidence": 40,
            "first_seen": t(1),
            "last_seen": t(2),
            "tags": ["port:8080"],
        },
        {"type": "domain", "value": "evil.example", "source": "A", "confidence": 50},
    )
    d = deduplicate(df, now=NOW)
    assert d.indicators.schema == INDICATOR_SCHEMA
    assert d.indicators.height == 2
    ip = d.indicators.filter(pl.col("type") == "ip").row(0, named=True)
    assert ip == {
        "type": "ip",
        "value": "192.0.2.1",
        "threat": "QakBot",  # from the most confident report
        "source": "A, B",
        "reference": "b-1",
        "confidence": 90,
        "first_seen": t(1),
        "last_seen": t(20),
        "expires_at": t(20) + timedelta(days=30),
        "tags": ["botnet_cc", "c2", "port:443", "port:8080"],
    }
    # One sighting per (indicator, source), merged within the source.
    assert d.sightings.filter(pl.col("type") == "ip").select(
        "source", "threat", "confidence", "first_seen", "last_seen", "reference"
    ).rows() == [
        ("A", "Emotet", 60, t(1), t(10), "a-1"),
        ("B", "QakBot", 90, t(5), t(20), "b-1"),
    ]
    # No dates at all: expiry counts from the import time.
    dom = d.indicators.filter(pl.col("type") == "domain").row(0, named=True)
    assert dom["expires_at"] == NOW + timedelta(days=90)


@pytest.mark.parametrize(
    ("kind", "value", "days"),
    [
        ("ip", "192.0.2.1", 30),
        ("cidr", "192.0.2.0/24", 30),
        ("domain", "evil.example", 90),
        ("url", "http://evil.example/", 90),
        ("md5", "a" * 32, None),
        ("sha1", "a" * 40, None),
        ("sha256", "a" * 64, None),
    ],
)
def test_default_expiry(kind: str, value: str, days: int | None) -> None:
    d = deduplicate(frame({"type": kind, "value": value, "source": "A", "last_seen": t(1)}), now=NOW)
    expected = None if days is None else t(1) + timedelta(days=days)
    assert d.indicators["expires_at"].item() == expected


def test_configurable_expiry_and_source_expiry_wins() -> None:
    policy = ExpiryPolicy().with_ttl(ip=7, md5=365)
    df = frame(
        {"type": "ip", "value": "192.0.2.1", "source": "A", "last_seen": t(1)},
        {"type": "md5", "value": "a" * 32, "source": "A", "last_seen": t(1)},
        {"type": "ip", "value": "192.0.2.2", "source": "A", "last_seen": t(1), "expires_at": t(30)},
    )
    d = deduplicate(df, policy, now=NOW)
    assert d.indicators.select("value", "expires_at").rows() == [
        ("192.0.2.1", t(8)),
        ("192.0.2.2", t(30)),  # valid_until from the feed
        ("a" * 32, t(1) + timedelta(days=365)),
    ]


def test_never_expiring_report_wins() -> None:
    df = frame(
        {"type": "ip", "value": "192.0.2.1", "source": "A", "last_seen": t(1)},
        {"type": "ip", "value": "192.0.2.1", "source": "B", "last_seen": t(1)},
    )
    policy = ExpiryPolicy({"ip": None})
    assert deduplicate(df, policy, now=NOW).indicators["expires_at"].item() is None


@pytest.mark.corpus
def test_feodo_csv_and_json_overlap(read_feed: Callable[[str, str], ReadResult]) -> None:
    # The JSON snapshot (2023) lists 203 IPs in 222 rows (one row per port); it shares one C2
    # with the CSV (2024): 192.9.135.73.
    csv = read_feed("feodo_csv", "abusech/feodotracker/ipblocklist.csv").indicators
    js = read_feed("feodo_json", "abusech/feodotracker/ipblocklist_recommended.json").indicators
    d = deduplicate(pl.concat([csv, js.with_columns(source=pl.lit("feodo snapshot 2023"))]), now=NOW)
    assert (d.indicators.height, d.sightings.height) == (28 + 203 - 1, 28 + 203)
    ports = d.indicators.filter(pl.col("value") == "12.172.173.82")["tags"].item().to_list()
    assert ports == ["botnet_cc"] + [
        f"port:{p}" for p in sorted(["465", "21", "22", "2087", "993", "995", "50001", "20", "32101"])
    ]
    row = d.indicators.filter(pl.col("value") == "192.9.135.73").row(0, named=True)
    assert row["source"] == "abuse.ch Feodo Tracker, feodo snapshot 2023"
    assert row["last_seen"] == datetime(2024, 4, 1, tzinfo=UTC)
    assert row["first_seen"] == datetime(2023, 5, 23, 17, 51, 44, tzinfo=UTC)


def test_empty() -> None:
    d = deduplicate(frame().clear())
    assert d.indicators.height == d.sightings.height == 0
