"""The store on the migrated schema, on SQLite and on a real PostgreSQL (``db_engine``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from mimamori.db.models import Indicator, IndicatorSighting
from mimamori.intel import INDICATOR_SCHEMA, deduplicate, load_active, store

from .conftest import NOW


def frame(*rows: dict[str, object]) -> pl.DataFrame:
    base = {k: None for k in INDICATOR_SCHEMA} | {"tags": [], "confidence": 70, "last_seen": NOW}
    return pl.DataFrame([base | r for r in rows], schema=INDICATOR_SCHEMA)


def test_upsert_round_trip(db_engine: Engine) -> None:
    t = datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=UTC)
    batch = frame(
        {"type": "ip", "value": "203.0.113.5", "source": "A", "tags": ['misp-galaxy:x="Y"', "c2"]},
        {"type": "domain", "value": "evil.example", "source": "A", "first_seen": t},
        {"type": "domain", "value": "evil.example", "source": "B", "confidence": 90},
        {"type": "sha256", "value": "c" * 64, "source": "B", "last_seen": None},
    )
    with Session(db_engine) as s:
        first = store(s, deduplicate(batch, now=NOW), now=NOW)
        s.commit()
        again = store(s, deduplicate(batch, now=NOW), now=NOW)
        s.commit()
        assert (first.new, again.new, again.updated, again.unchanged) == (3, 0, 0, 3)
        assert s.scalar(select(func.count()).select_from(IndicatorSighting)) == 4
        ip = s.scalars(select(Indicator).where(Indicator.value == "203.0.113.5")).one()
        assert ip.tags == ["c2", 'misp-galaxy:x="Y"']  # deduplicate sorts tags
        dom = s.scalars(select(Indicator).where(Indicator.value == "evil.example")).one()
        assert (dom.first_seen, dom.confidence) == (t, 90)

        later = NOW + timedelta(days=1)
        more = frame(
            {"type": "ip", "value": "203.0.113.5", "source": "B", "tags": ["port:443"], "last_seen": later}
        )
        result = store(s, deduplicate(more, now=later), now=later)
        s.commit()
        assert (result.new, result.updated, result.new_sightings) == (0, 1, 1)
        s.expire_all()
        ip = s.scalars(select(Indicator).where(Indicator.value == "203.0.113.5")).one()
        assert (ip.tags, ip.last_seen) == (["c2", 'misp-galaxy:x="Y"', "port:443"], later)

        active = load_active(s, NOW)
        assert sorted(active.frame.select("value", "source").rows()) == [
            ("203.0.113.5", "A, B"),
            ("c" * 64, "B"),
            ("evil.example", "A, B"),
        ]


def test_awkward_text_round_trips(db_engine: Engine) -> None:
    odd = 'a,b {c} "d" \\e\\ NULL ü 日本'
    batch = frame(
        {
            "type": "url",
            "value": "http://x.example/p?q=a,b&r={1}",
            "source": 'S,{"}',
            "threat": odd,
            "tags": [odd, "NULL"],
        },
        {"type": "domain", "value": "null.example", "source": 'S,{"}', "threat": None, "reference": "NULL"},
    )
    with Session(db_engine) as s:
        store(s, deduplicate(batch, now=NOW), now=NOW)
        s.commit()
        url = s.scalars(select(Indicator).where(Indicator.type == "url")).one()
        assert (url.value, url.threat, url.tags) == ("http://x.example/p?q=a,b&r={1}", odd, ["NULL", odd])
        dom = s.scalars(select(Indicator).where(Indicator.type == "domain")).one()
        assert dom.threat is None
        sighting = s.scalars(select(IndicatorSighting).where(IndicatorSighting.indicator_id == dom.id)).one()
        assert sighting.reference == "NULL"
        assert store(s, deduplicate(batch, now=NOW), now=NOW).unchanged == 2
