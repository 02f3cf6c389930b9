"""Upserts into Indicator / IndicatorSighting / IntelSource on SQLite, and loading active ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mimamori.db.models import Indicator, IndicatorSighting, IntelSource
from mimamori.intel import INDICATOR_SCHEMA, SourceMeta, deduplicate, load_active, store

from .conftest import NOW


def frame(*rows: dict[str, object]) -> pl.DataFrame:
    base = {k: None for k in INDICATOR_SCHEMA} | {"tags": [], "confidence": 70, "last_seen": NOW}
    return pl.DataFrame([base | r for r in rows], schema=INDICATOR_SCHEMA)


BATCH = frame(
    {
        "type": "ip",
        "value": "203.0.113.5",
        "source": "A",
        "threat": "Emotet",
        "tags": ["c2"],
        "reference": "r1",
    },
    {"type": "domain", "value": "evil.example", "source": "A", "threat": "Phish"},
    {"type": "domain", "value": "evil.example", "source": "B", "confidence": 90},
    {"type": "md5", "value": "a" * 32, "source": "B", "last_seen": None},
)


def count(session: Session, model: type) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_upsert_is_idempotent(session: Session) -> None:
    first = store(
        session, deduplicate(BATCH, now=NOW), now=NOW, sources={"A": SourceMeta("feodo_csv", "https://a")}
    )
    session.commit()
    assert (first.new, first.updated, first.unchanged) == (3, 0, 0)
    assert (first.new_sightings, first.updated_sightings) == (4, 0)
    assert sorted(first.new_indicators["value"].to_list()) == ["203.0.113.5", "a" * 32, "evil.example"]
    assert (count(session, Indicator), count(session, IndicatorSighting), count(session, IntelSource)) == (
        3,
        4,
        2,
    )

    again = store(session, deduplicate(BATCH, now=NOW), now=NOW)
    session.commit()
    assert (again.new, again.updated, again.unchanged) == (0, 0, 3)
    assert (again.new_sightings, again.updated_sightings) == (0, 0)
    assert again.new_indicators.height == 0
    assert (count(session, Indicator), count(session, IndicatorSighting), count(session, IntelSource)) == (
        3,
        4,
        2,
    )

    dom = session.scalars(select(Indicator).where(Indicator.value == "evil.example")).one()
    assert (dom.type, dom.threat, dom.confidence, dom.expires_at) == (
        "domain",
        "Phish",
        90,
        NOW + timedelta(days=90),
    )
    src = session.scalars(select(IntelSource).where(IntelSource.name == "A")).one()
    assert (src.kind, src.url, src.last_imported_at) == ("feodo_csv", "https://a", NOW)


def test_update_merges(session: Session) -> None:
    store(session, deduplicate(BATCH, now=NOW), now=NOW)
    later = NOW + timedelta(days=3)
    newer = frame(
        {
            "type": "ip",
            "value": "203.0.113.5",
            "source": "A",
            "confidence": 95,
            "threat": "QakBot",
            "first_seen": NOW - timedelta(days=9),
            "last_seen": later,
            "tags": ["port:443"],
        },
        {"type": "ip", "value": "203.0.113.5", "source": "C", "confidence": 20, "last_seen": NOW},
        {"type": "url", "value": "http://evil.example/x", "source": "C"},
    )
    result = store(session, deduplicate(newer, now=later), now=later)
    session.commit()
    assert (result.new, result.updated, result.unchanged) == (1, 1, 0)
    assert result.new_indicators.select("type", "value").rows() == [("url", "http://evil.example/x")]
    assert (result.new_sightings, result.updated_sightings) == (2, 1)  # C/ip, C/url new; A/ip updated
    ip = session.scalars(select(Indicator).where(Indicator.value == "203.0.113.5")).one()
    assert (ip.threat, ip.confidence, ip.tags) == ("QakBot", 95, ["c2", "port:443"])
    assert (ip.first_seen, ip.last_seen) == (NOW - timedelta(days=9), later)
    assert ip.expires_at == later + timedelta(days=30)
    sightings = session.execute(
        select(IntelSource.name, IndicatorSighting.confidence, IndicatorSighting.reference)
        .join(IntelSource, IntelSource.id == IndicatorSighting.source_id)
        .where(IndicatorSighting.indicator_id == ip.id)
        .order_by(IntelSource.name)
    ).all()
    assert [tuple(s) for s in sightings] == [("A", 95, "r1"), ("C", 20, None)]


def test_load_active(session: Session) -> None:
    old = NOW - timedelta(days=60)
    df = frame(
        {"type": "ip", "value": "203.0.113.5", "source": "A", "last_seen": old},  # expired after 30 days
        {"type": "ip", "value": "203.0.113.6", "source": "A"},
        {"type": "ip", "value": "10.9.9.9", "source": "A"},  # stored for an opted-in tenant
        {"type": "domain", "value": "evil.example", "source": "A", "last_seen": old},  # 90 days
        {"type": "sha256", "value": "b" * 64, "source": "B", "last_seen": old},  # never expires
        {"type": "sha256", "value": "b" * 64, "source": "A", "last_seen": old},
    )
    store(session, deduplicate(df, now=NOW), now=NOW)
    session.commit()
    active = load_active(session, NOW)
    assert sorted(active.frame.select("type", "value", "source").rows()) == [
        ("domain", "evil.example", "A"),
        ("ip", "203.0.113.6", "A"),
        ("sha256", "b" * 64, "A, B"),
    ]
    opted_in = load_active(session, NOW, allow_private=True)
    assert ("ip", "10.9.9.9") in opted_in.frame.select("type", "value").rows()
    soon = load_active(session, NOW + timedelta(days=29))
    assert sorted(soon.frame["value"].to_list()) == ["203.0.113.6", "b" * 64, "evil.example"]
    later = load_active(session, NOW + timedelta(days=31))
    assert later.frame["value"].to_list() == ["b" * 64]
    hits = active.match(pl.DataFrame({"dns.question.name": ["www.evil.example"]}))
    assert hits.select("indicator.value", "source").rows() == [("evil.example", "A")]


def test_times_round_trip_exactly(session: Session) -> None:
    t = datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=UTC)
    row = {"type": "ip", "value": "203.0.113.9", "source": "A", "first_seen": t, "last_seen": t}
    store(session, deduplicate(frame(row), now=NOW), now=NOW)
    session.commit()
    ind = session.scalars(select(Indicator)).one()
    assert (ind.first_seen, ind.last_seen, ind.tags) == (t, t, [])
    # A second store reads the stored text back through Polars: nothing looks changed.
    again = store(session, deduplicate(frame(row), now=NOW), now=NOW)
    assert (again.updated, again.unchanged) == (0, 1)


def test_bulk_100k(session: Session) -> None:
    values = [f"10{i // 65536 % 10}.{i // 256 % 256}.{i % 256}.1" for i in range(100_000)]
    df = frame(*({"type": "ip", "value": v, "source": "bulk"} for v in values))
    batch = deduplicate(df, now=NOW)
    first = store(session, batch, now=NOW)
    session.commit()
    assert (first.new, count(session, Indicator), count(session, IndicatorSighting)) == (
        100_000,
        100_000,
        100_000,
    )
    second = store(session, batch, now=NOW)
    assert (second.new, second.updated, second.unchanged) == (0, 0, 100_000)
