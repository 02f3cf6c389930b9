"""Merge indicators reported by several sources (or several times) into one per value.

One ``(type, value)`` becomes one indicator: the highest confidence, the earliest
first_seen, the latest last_seen, the union of tags, and the threat name of its most
confident report. Each source keeps one *sighting* of it (merged the same way within the
source). Expiry comes from the source when it gives one (STIX ``valid_until``), else from
an ``ExpiryPolicy`` applied to last_seen (or to the import time when a feed has no dates).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import polars as pl

from mimamori.events.schema import TS
from mimamori.intel.base import INDICATOR_SCHEMA, empty_indicators
from mimamori.intel.normalize import CIDR, DOMAIN, IP, MD5, SHA1, SHA256, URL

#: column -> dtype of the per-source sightings that ``deduplicate`` returns.
SIGHTING_SCHEMA: dict[str, pl.DataType] = {
    "type": pl.String(),
    "value": pl.String(),
    "source": pl.String(),
    "reference": pl.String(),
    "threat": pl.String(),
    "confidence": pl.Int32(),
    "first_seen": TS,
    "last_seen": TS,
}

DEFAULT_TTL: dict[str, timedelta | None] = {
    IP: timedelta(days=30),
    CIDR: timedelta(days=30),
    DOMAIN: timedelta(days=90),
    URL: timedelta(days=90),
    MD5: None,  # a file hash stays bad
    SHA1: None,
    SHA256: None,
}


@dataclass(frozen=True)
class ExpiryPolicy:
    """How long an indicator lives after it was last seen, per type; ``None`` is forever."""

    ttl: Mapping[str, timedelta | None] = field(default_factory=lambda: dict(DEFAULT_TTL))

    def with_ttl(self, **days: int | None) -> ExpiryPolicy:
        """A copy with some types changed, in days: ``policy.with_ttl(ip=7, md5=None)``."""
        ttl = dict(self.ttl)
        for kind, d in days.items():
            ttl[kind] = None if d is None else timedelta(days=d)
        return ExpiryPolicy(ttl)

    def expr(self, now: datetime) -> pl.Expr:
        """The computed expiry of each row of an indicator frame (before source overrides)."""
        base = pl.coalesce(pl.col("last_seen"), pl.col("first_seen"), pl.lit(now, dtype=TS))
        out: pl.Expr = pl.lit(None, dtype=TS)
        for kind, ttl in self.ttl.items():
            if ttl is not None:
                out = pl.when(pl.col("type") == kind).then(base + pl.lit(ttl)).otherwise(out)
        return out


DEFAULT_EXPIRY = ExpiryPolicy()


@dataclass
class Deduplicated:
    """One row per ``(type, value)`` (``INDICATOR_SCHEMA``; ``source`` lists every source,
    comma-separated) and one sighting per ``(type, value, source)`` (``SIGHTING_SCHEMA``)."""

    indicators: pl.DataFrame
    sightings: pl.DataFrame


def _never_if_any_null(col: str) -> pl.Expr:
    # A null expiry means "never"; if any report says never, the merged indicator never expires.
    return pl.when(pl.col(col).null_count() > 0).then(pl.lit(None, dtype=TS)).otherwise(pl.col(col).max())


def deduplicate(
    frame: pl.DataFrame,
    expiry: ExpiryPolicy = DEFAULT_EXPIRY,
    *,
    now: datetime | None = None,
) -> Deduplicated:
    """Merge an indicator frame (any number of sources and files) by ``(type, value)``."""
    if frame.height == 0:
        return Deduplicated(empty_indicators(), pl.DataFrame(schema=SIGHTING_SCHEMA))
    now = now or datetime.now(UTC)
    df = frame.select(list(INDICATOR_SCHEMA)).with_columns(
        pl.coalesce(pl.col("expires_at"), expiry.expr(now)).alias("expires_at"),
        pl.col("confidence").fill_null(50),
        pl.col("source").fill_null("unknown"),
    )
    # Most confident first, so first() picks the best threat name / reference.
    df = df.sort(["confidence", "last_seen"], descending=True, nulls_last=True, maintain_order=True)
    keys = ["type", "value"]
    sightings = (
        df.group_by([*keys, "source"], maintain_order=True)
        .agg(
            pl.col("reference").drop_nulls().first(),
            pl.col("threat").drop_nulls().first(),
            pl.col("confidence").max(),
            pl.col("first_seen").min(),
            pl.col("last_seen").max(),
        )
        .select(list(SIGHTING_SCHEMA))
        .cast(SIGHTING_SCHEMA)  # type: ignore[arg-type]
    )
    indicators = (
        df.group_by(keys, maintain_order=True)
        .agg(
            pl.col("threat").drop_nulls().first(),
            pl.col("source").unique().sort().str.join(", "),
            pl.col("reference").drop_nulls().first(),
            pl.col("confidence").max(),
            pl.col("first_seen").min(),
            pl.col("last_seen").max(),
            _never_if_any_null("expires_at").alias("expires_at"),
            pl.col("tags")
            .list.explode(keep_nulls=False, empty_as_null=False)
            .unique(maintain_order=True)
            .sort(),
        )
        .select(list(INDICATOR_SCHEMA))
        .cast(INDICATOR_SCHEMA)  # type: ignore[arg-type]
        .sort(keys)
    )
    return Deduplicated(indicators, sightings.sort([*keys, "source"]))
