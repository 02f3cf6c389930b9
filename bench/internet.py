"""Web access-log throughput: the Apache parser and the internet-facing detectors.

Repeats the real 10,000-line elastic/examples Apache log (``../shared/data`` or
$MIMAMORI_CORPUS) ``--copies`` times (default 100: 1,000,000 lines), parses it batch by
batch with ``ApacheAccessParser`` and runs each internet-facing detector once over all
events; prints seconds and events per second for each step.

    .venv/bin/python bench/internet.py [--copies N]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import polars as pl

from mimamori.detect.base import DetectContext
from mimamori.detect.internet import CloudSigninDetector, CredentialStuffingDetector, WebAttackDetector
from mimamori.sources import read_batches
from mimamori.sources.weblog import ApacheAccessParser


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=100)
    args = ap.parse_args()
    root = Path(
        os.environ.get("MIMAMORI_CORPUS") or Path(__file__).resolve().parents[1].parent / "shared" / "data"
    )
    data = (root / "web-access-logs/elastic-examples/apache_logs").read_bytes() * args.copies
    parser, ctx, frames = ApacheAccessParser(), {}, []
    t = time.perf_counter()
    batches = list(read_batches(data, "bench"))
    lines = sum(b.lines.height for b in batches)  # the shared reader: decode and split lines
    secs = time.perf_counter() - t
    print(f"{'read (shared reader)':<20} {secs:7.2f} s {lines / secs:>12,.0f} lines/s")
    t = time.perf_counter()
    for batch in batches:
        frames.append(parser.parse(batch, ctx).events)
    events = pl.concat(frames)
    secs = time.perf_counter() - t
    print(
        f"{'apache parse':<20} {secs:7.2f} s {events.height / secs:>12,.0f} events/s "
        f"({events.height:,} events)"
    )
    for det in (WebAttackDetector(), CredentialStuffingDetector(), CloudSigninDetector()):
        t = time.perf_counter()
        alerts = det.detect(events, DetectContext(tenant="bench", batch_id="b"))
        secs = time.perf_counter() - t
        print(f"{det.name:<20} {secs:7.2f} s {events.height / secs:>12,.0f} events/s  alerts={len(alerts)}")


if __name__ == "__main__":
    main()
