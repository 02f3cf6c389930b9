"""`make bench`: ingest throughput against a baseline measured in the same run.

Generates N Zeek conn JSON lines (default 1,000,000) and 100,000 indicators, then times
(a) parse only: ``polars.read_ndjson`` on the file;
(b) the foundation path: read -> parse -> normalise -> match indicators (intel, IDS and
    anti-virus pass-through detectors) -> archive -> alerts and incidents;
(c) the whole platform: (b) plus every behaviour detector (beacons, scans, lateral
    movement, volume, internet-facing) and the passive device inventory.
Prints events/s per core (events divided by CPU seconds of this process, so the figure
does not depend on how many threads Polars used) and the ratios of (b) and (c) to (a).
(a) and (b) are run ``--repeat`` times, taking turns, and the best run of each (least CPU)
is reported, as ``timeit`` does: on a shared machine the other runs measure the neighbours.
Every run's figures are in the ``--json`` output.
Targets from the foundation issue for (b): >= 250,000 events/s per core, <= 2x parse-only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl


def gen_conn(path: Path, n: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    start = datetime(2025, 4, 15, tzinfo=UTC).timestamp()
    internal = [f"192.168.{a}.{b}" for a in range(1, 5) for b in range(2, 252)]
    external = [f"{a}.{b}.{c}.{d}" for a, b, c, d in rng.integers(1, 223, size=(20000, 4))]
    df = pl.DataFrame(
        {
            "ts": start + np.sort(rng.uniform(0, 86400, n)),
            "uid": [f"C{x:016x}" for x in rng.integers(0, 2**62, n)],
            "id.orig_h": np.array(internal)[rng.integers(0, len(internal), n)],
            "id.orig_p": rng.integers(1024, 65535, n),
            "id.resp_h": np.array(external)[rng.integers(0, len(external), n)],
            "id.resp_p": rng.choice([80, 443, 53, 123, 8080, 993], n),
            "proto": rng.choice(["tcp", "udp"], n, p=[0.8, 0.2]),
            "service": pl.Series(rng.choice(["ssl", "http", "dns", None], n).tolist(), dtype=pl.String),
            "duration": rng.exponential(3.0, n),
            "orig_bytes": rng.integers(0, 20000, n),
            "resp_bytes": rng.integers(0, 200000, n),
            "conn_state": rng.choice(["SF", "S0", "REJ", "RSTO"], n, p=[0.85, 0.07, 0.05, 0.03]),
            "local_orig": True,
            "local_resp": False,
            "missed_bytes": 0,
            "history": rng.choice(["ShADadFf", "S", "ShR"], n),
            "orig_pkts": rng.integers(1, 50, n),
            "orig_ip_bytes": rng.integers(40, 30000, n),
            "resp_pkts": rng.integers(0, 200, n),
            "resp_ip_bytes": rng.integers(0, 300000, n),
        }
    )
    df.write_ndjson(path)


def gen_indicators(n: int, hit_ips: list[str], seed: int = 2) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    ips = [f"{a}.{b}.{c}.{d}" for a, b, c, d in rng.integers(1, 223, size=(n - len(hit_ips), 4))]
    values = ips + hit_ips
    now = datetime.now(UTC)
    return pl.DataFrame(
        {
            "type": ["ip"] * len(values),
            "value": values,
            "threat": ["BenchBot"] * len(values),
            "source": ["bench"] * len(values),
            "reference": [None] * len(values),
            "confidence": [80] * len(values),
            "first_seen": [now] * len(values),
            "last_seen": [now] * len(values),
            "expires_at": [None] * len(values),
            "tags": [[]] * len(values),
        },
        schema_overrides={
            "reference": pl.String,
            "expires_at": pl.Datetime("us", "UTC"),
            "tags": pl.List(pl.String),
        },
    )


def measure(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w0, time.process_time() - c0, out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--indicators", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of (a) and (b); the best is reported")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from mimamori.config import Settings
    from mimamori.db.repo import add_tenant
    from mimamori.db.session import session_scope
    from mimamori.detect.ids import IdsAlertDetector
    from mimamori.detect.intel import IntelMatchDetector
    from mimamori.detect.malware import MalwareVerdictDetector
    from mimamori.intel import IndicatorSet
    from mimamori.pipeline import Platform

    FOUNDATION = (IntelMatchDetector, IdsAlertDetector, MalwareVerdictDetector)

    work = Path(tempfile.mkdtemp(prefix="mimamori-bench-"))
    try:
        conn = work / "conn.log"
        print(f"generating {args.events:,} Zeek conn JSON lines ...", file=sys.stderr)
        gen_conn(conn, args.events)
        sample = (
            pl.read_ndjson(conn, n_rows=50_000)["id.resp_h"].unique(maintain_order=True).head(5).to_list()
        )
        indicators = IndicatorSet(gen_indicators(args.indicators, sample))

        def platform(name: str, foundation_only: bool) -> Platform:
            detectors = [cls() for cls in FOUNDATION] if foundation_only else None
            plat = Platform(Settings.load(work / name), detectors=detectors)
            if foundation_only:
                plat.observers = []
            plat.set_indicators(indicators)
            with session_scope(plat.engine) as s:
                add_tenant(s, "bench", "Bench Co", networks=["192.168.0.0/16"])
            return plat

        pl.read_ndjson(conn)  # warm the page cache and Polars once
        n = pl.scan_ndjson(conn).select(pl.len()).collect().item()
        runs: dict[str, list[dict[str, Any]]] = {"parse_only": [], "foundation_path": []}

        def ingest(key: str, foundation_only: bool) -> dict[str, Any]:
            print(f"ingesting through the {key.replace('_', ' ')} ...", file=sys.stderr)
            name = f"{key}-{len(runs.get(key, []))}"
            with platform(name, foundation_only) as plat:
                wall, cpu, report = measure(partial(plat.ingest, "bench", "zeek", conn))
            shutil.rmtree(work / name, ignore_errors=True)
            assert report.stored == n, (report.stored, n)
            return {
                "wall_s": round(wall, 3),
                "cpu_s": round(cpu, 3),
                "events_per_s_per_core": round(n / cpu),
                "alerts": report.alerts,
                "quarantined": report.quarantined,
            }

        for _ in range(max(args.repeat, 1)):
            parse_wall, parse_cpu, df = measure(lambda: pl.read_ndjson(conn))
            assert df.height == n
            del df
            runs["parse_only"].append(
                {
                    "wall_s": round(parse_wall, 3),
                    "cpu_s": round(parse_cpu, 3),
                    "events_per_s_per_core": round(n / parse_cpu),
                }
            )
            runs["foundation_path"].append(ingest("foundation_path", True))
        best = {key: min(rs, key=lambda r: r["cpu_s"]) for key, rs in runs.items()}
        parse = best["parse_only"]
        paths: dict[str, dict[str, Any]] = {
            "foundation_path": dict(best["foundation_path"]),
            "whole_platform": ingest("whole_platform", False),
        }
        for figures in paths.values():
            figures["ratio_to_parse_wall"] = round(figures["wall_s"] / parse["wall_s"], 2)
            figures["ratio_to_parse_cpu"] = round(figures["cpu_s"] / parse["cpu_s"], 2)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result = {
            "machine": (
                f"{os.cpu_count()} cores, {sys.platform}, "
                f"Python {sys.version.split()[0]}, polars {pl.__version__}"
            ),
            "events": n,
            "indicators": args.indicators,
            "repeat": max(args.repeat, 1),
            "parse_only": parse,
            **paths,
            "runs": runs,
            "peak_rss_mb": round(peak_mb),
            "targets": {"foundation_events_per_s_per_core": 250_000, "max_ratio": 2.0},
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"machine: {result['machine']}")
        print(
            f"events: {n:,}   indicators: {args.indicators:,}   "
            f"best of {result['repeat']} runs of (a) and (b), one of (c)"
        )
        p = result["parse_only"]
        print(
            f"(a) parse only (polars.read_ndjson): {p['wall_s']:.2f} s wall, {p['cpu_s']:.2f} s CPU, "
            f"{p['events_per_s_per_core']:,} events/s per core"
        )
        for label, key in (
            (
                "(b) foundation path (parse, normalise, intel/IDS/AV match, archive, alerts)",
                "foundation_path",
            ),
            ("(c) whole platform (b + behaviour detectors + device inventory)", "whole_platform"),
        ):
            f = result[key]
            print(
                f"{label}: {f['wall_s']:.2f} s wall, {f['cpu_s']:.2f} s CPU, "
                f"{f['events_per_s_per_core']:,} events/s per core, {f['alerts']} alerts; "
                f"{f['ratio_to_parse_wall']}x parse-only wall, {f['ratio_to_parse_cpu']}x CPU"
            )
        print("targets for (b): >= 250,000 events/s per core and <= 2x parse-only")
        print(f"peak RSS: {result['peak_rss_mb']} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
