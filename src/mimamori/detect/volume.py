"""Data-volume spikes: an office device sending far more data out in an hour than it usually does.

Per internal host, outbound bytes (``source.bytes`` of connections to outside addresses)
are summed per hour. Recent connections are kept for ``late`` hours so duplicates and late
records are counted once; older hours are frozen as totals, kept ``history`` long, and form
the host's baseline (median and MAD of the hours in which it sent anything).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl

from mimamori.detect.base import AlertDraft, DetectContext, Detector
from mimamori.detect.outbound import ROW_KEY, TS, not_yet_alerted, remember, row_key

HOUR = "1h"
#: the columns read: row_key's and the byte count
_COLUMNS = (
    "event.dataset",
    "event.id",
    "@timestamp",
    "source.ip",
    "destination.ip",
    "destination.port",
    "source.bytes",
)


class VolumeSpikeDetector(Detector):
    """Outbound bytes per host and hour against the host's own median and MAD."""

    name = "volume_spike"
    description = "an office device sending far more data outside than it usually does"

    def __init__(
        self,
        factor: float = 10.0,
        mad_k: float = 6.0,
        min_bytes: int = 200_000_000,
        min_history_hours: int = 24,
        history: timedelta = timedelta(days=14),
        late: timedelta = timedelta(hours=3),
        max_rows: int = 300_000,
        max_hours: int = 200_000,
    ) -> None:
        self.factor = factor
        self.mad_k = mad_k
        self.min_bytes = min_bytes
        self.min_history_hours = min_history_hours
        self.history = history
        self.late = late
        self.max_rows = max_rows
        self.max_hours = max_hours

    def detect(self, events: pl.DataFrame, ctx: DetectContext) -> list[AlertDraft]:
        rows = (
            events.select(_COLUMNS)  # project first: filter gathers every column
            .filter((pl.col("source.bytes").fill_null(0) > 0) & pl.col("destination.ip").is_not_null())
            .filter(ctx.internal("source.ip") & ~ctx.internal("destination.ip"))
            .select(
                row_key().alias(ROW_KEY),
                pl.col("@timestamp").alias(TS),
                pl.col("source.ip").alias("src"),
                pl.col("destination.ip").alias("dst"),
                pl.col("source.bytes").alias("bytes"),
            )
        )
        recent, new = remember(ctx.state, "recent", rows, self.late, self.max_rows)
        if new.height == 0:
            return []
        hour = pl.col(TS).dt.truncate(HOUR).alias("hour")
        current = (
            recent.with_columns(hour)
            .group_by("src", "hour")
            .agg(pl.col("bytes").sum(), pl.col(TS).min().alias("first"), pl.col(TS).max().alias("last"))
        )
        hourly = self._hourly(ctx.state, current)
        touched = new.select("src", hour).unique()
        candidates = current.join(touched, on=["src", "hour"], how="semi").filter(
            pl.col("bytes") >= self.min_bytes
        )
        if candidates.height == 0:
            return []
        # the baseline of an hour: the host's frozen or current totals of earlier hours
        past = candidates.select("src", pl.col("hour").alias("at")).join(hourly, on="src", how="inner")
        past = past.filter(
            (pl.col("hour") < pl.col("at")) & (pl.col("hour") >= pl.col("at") - pl.lit(self.history))
        )
        baseline = (
            past.group_by("src", "at")
            .agg(
                pl.len().alias("hours"),
                pl.col("bytes").median().alias("median"),
                (pl.col("bytes") - pl.col("bytes").median()).abs().median().alias("mad"),
                pl.col("bytes").max().alias("max"),
            )
            .rename({"at": "hour"})
        )
        spikes = (
            candidates.join(baseline, on=["src", "hour"], how="inner")
            .filter(pl.col("hours") >= self.min_history_hours)
            .filter(
                (pl.col("bytes") > self.factor * pl.col("median").clip(lower_bound=1))
                & (pl.col("bytes") > pl.col("median") + self.mad_k * 1.4826 * pl.col("mad"))
            )
            .with_columns(pl.col("hour").alias("bucket"), pl.lit("volume").alias("what"))
        )
        spikes = not_yet_alerted(ctx.state, spikes, ["src", "bucket", "what"], self.history)
        if spikes.height == 0:
            return []
        top = (
            recent.with_columns(hour)
            .join(spikes.select("src", "hour"), on=["src", "hour"], how="semi")
            .group_by("src", "hour", "dst")
            .agg(pl.col("bytes").sum())
            .sort("bytes", descending=True)
            .group_by("src", "hour")
            .agg(pl.struct(pl.col("dst").alias("ip"), "bytes").head(5).alias("top"))
        )
        spikes = spikes.join(top, on=["src", "hour"], how="left")
        alerts = []
        for g in spikes.sort("src", "hour").iter_rows(named=True):
            alerts.append(
                AlertDraft(
                    detector=self.name,
                    kind="data_volume_spike",
                    severity="medium",
                    title=(
                        f"{g['src']} sent {_mb(g['bytes'])} outside in one hour (usually {_mb(g['median'])})"
                    ),
                    first_seen=g["first"],
                    last_seen=g["last"],
                    keys=[f"host:{g['src']}"],
                    host=g["src"],
                    event_count=1,
                    evidence={
                        "hour": g["hour"].isoformat(),
                        "bytes": g["bytes"],
                        "baseline_median": g["median"],
                        "baseline_mad": g["mad"],
                        "baseline_max": g["max"],
                        "baseline_hours": g["hours"],
                        "factor": round(g["bytes"] / max(g["median"], 1), 1),
                        "top_destinations": g["top"] or [],
                    },
                ).with_dedup(ctx.tenant, g["src"], g["hour"].isoformat())
            )
        return alerts

    def _hourly(self, state: dict[str, Any], current: pl.DataFrame) -> pl.DataFrame:
        """Hourly totals per host. An hour's total only grows (rows are counted once), so the
        larger of the stored and the recomputed total is right even for an hour whose first
        rows have already left the recent window."""
        fresh = current.select("src", "hour", "bytes")
        old = state.get("hourly")
        if isinstance(old, pl.DataFrame) and old.height:
            fresh = (
                pl.concat([old, fresh], how="vertical_relaxed")
                .group_by("src", "hour")
                .agg(pl.col("bytes").max())
            )
        newest = fresh["hour"].max()
        assert isinstance(newest, datetime)
        fresh = fresh.filter(pl.col("hour") >= newest - self.history).sort("hour").tail(self.max_hours)
        state["hourly"] = fresh
        return fresh


def _mb(n: float | None) -> str:
    return f"{(n or 0) / 1e6:,.1f} MB"
