"""Beacon detector throughput: 24 hours of connections from 1,000 hosts, a few planted beacons.

Generates N connection rows (default 10,000,000) as an ECS frame: 1,000 internal hosts each
browsing ~40 of 5,000 external servers at random (Poisson) moments with random sizes, plus
planted beacons (regular intervals with jitter, near-constant sizes) and one fast-polling
session. Feeds them in time order to ``BeaconDetector`` in batches (default 500,000) with
one persistent state, and prints wall seconds, CPU seconds, peak RSS and the planted beacons
found. Targets from the issue: under 60 s and under 4 GB on a 2-core machine.

    .venv/bin/python bench/beacon.py [--records N] [--batch N]
    .venv/bin/python bench/beacon.py --quick          # 1,000,000 records
"""

from __future__ import annotations

import argparse
import resource
import time
from datetime import UTC, datetime

import numpy as np
import polars as pl

from mimamori.detect.base import DetectContext
from mimamori.detect.beacon import BeaconDetector
from mimamori.events.schema import conform

START = datetime(2025, 4, 15, tzinfo=UTC)
HOSTS = [f"10.1.{i // 250}.{i % 250 + 2}" for i in range(1000)]
BEACONS = [  # (host index, destination, period s, jitter s)
    (7, "203.0.113.10", 60, 5),
    (123, "203.0.113.11", 300, 30),
    (456, "c2.example.net", 900, 60),
    (789, "203.0.113.13", 30, 2),
    (999, "203.0.113.14", 3600, 120),
]
FAST = (321, "203.0.113.99")  # 400 connections, one a second, in the 20th hour


def generate(n: int, seed: int = 1) -> pl.DataFrame:
    """The base columns (not yet conformed), sorted by time."""
    rng = np.random.default_rng(seed)
    servers = np.array([f"{a}.{b}.{c}.{d}" for a, b, c, d in rng.integers(1, 223, size=(5000, 4))])
    planted: list[pl.DataFrame] = []
    for host, dst, period, jitter in BEACONS:
        k = 86_400 // period
        ts = np.arange(k) * period + rng.uniform(-jitter, jitter, k) + period
        planted.append(_frame(ts, [HOSTS[host]] * k, [dst] * k, rng.integers(600, 640, k)))
    fast_ts = 19 * 3600 + np.arange(400) * 1.0 + rng.uniform(0, 0.05, 400)
    planted.append(_frame(fast_ts, [HOSTS[FAST[0]]] * 400, [FAST[1]] * 400, np.full(400, 350)))
    m = n - sum(p.height for p in planted)
    host = rng.integers(0, len(HOSTS), m)
    # each host talks to ~40 servers of its own, skewed towards a few favourites
    slot = np.minimum(rng.zipf(1.6, m), 40) - 1
    dst = servers[(host * 97 + slot * 131) % len(servers)]
    base = _frame(
        np.sort(rng.uniform(0, 86_400, m)),
        np.array(HOSTS)[host],
        dst,
        rng.lognormal(8, 1.5, m).astype(np.int64),
    )
    return (
        pl.concat([base, *planted])
        .sort("@timestamp")
        .with_columns(pl.concat_str(pl.lit("C"), pl.int_range(pl.len()).cast(pl.String)).alias("event.id"))
    )


def _frame(ts: np.ndarray, src: object, dst: object, size: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "@timestamp": pl.Series((START.timestamp() + ts) * 1e6)
            .cast(pl.Int64)
            .cast(pl.Datetime("us", "UTC")),
            "source.ip": pl.Series(src, dtype=pl.String),
            "destination.ip": pl.Series(dst, dtype=pl.String),
            "network.bytes": pl.Series(size, dtype=pl.Int64),
        }
    ).with_columns(
        pl.lit("zeek.conn").alias("event.dataset"),
        pl.lit("connection").alias("event.type"),
        pl.lit(443, dtype=pl.Int32).alias("destination.port"),
        pl.lit("tcp").alias("network.transport"),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--batch", type=int, default=500_000)
    ap.add_argument("--quick", action="store_true", help="1,000,000 records")
    args = ap.parse_args()
    n = 1_000_000 if args.quick else args.records

    t0 = time.perf_counter()
    data = generate(n)
    print(f"generated {data.height:,} rows in {time.perf_counter() - t0:.1f} s")

    det = BeaconDetector()
    ctx = DetectContext(tenant="bench", batch_id="b", networks=("10.0.0.0/8",))
    alerts = []
    wall = cpu = 0.0
    for off in range(0, data.height, args.batch):
        batch = conform(data.slice(off, args.batch))  # the ECS shape parsers hand over
        w, c = time.perf_counter(), time.process_time()
        alerts += det.detect(batch, ctx)
        wall += time.perf_counter() - w
        cpu += time.process_time() - c
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    planted = {(HOSTS[h], d) for h, d, _, _ in BEACONS}
    found = {(a.host, a.indicator) for a in alerts if a.evidence.get("mode") != "fast_poll"}
    fast = {(a.host, a.indicator) for a in alerts if a.evidence.get("mode") == "fast_poll"}
    print(f"records={data.height:,} batch={args.batch:,} batches={-(-data.height // args.batch)}")
    print(f"detector wall={wall:.1f} s cpu={cpu:.1f} s peak_rss={rss_gb:.2f} GB (whole process)")
    print(f"state rows={ctx.state['rows'].height:,} pairs={ctx.state['pairs'].height:,}")
    print(
        f"planted beacons found: {len(planted & found)}/{len(planted)}; "
        f"other beacon alerts: {len(found - planted)}"
    )
    print(
        f"fast-poll found: {(HOSTS[FAST[0]], FAST[1]) in fast}; "
        f"other fast-poll alerts: {len(fast - {(HOSTS[FAST[0]], FAST[1])})}"
    )


if __name__ == "__main__":
    main()
