"""`make bench`: the Sigma scan against baselines measured in the same run.

Over the EVTX of the corpus (``../shared/data``, or ``$MIMAMORI_CORPUS``) and every Windows
rule of its SigmaHQ ``rules/`` folder, times:

(a) EVTX parse only: the corpus read into wide frames (``read_evtx``) — the baseline;
(b) the Sigma scan: the corpus events repeated to ``--events`` (default 200,000), in batches
    of 50,000, through the compiled rule set (``SigmaEngine.evaluate``);
(c) end to end on the corpus once, ours (load + compile rules, parse, scan) against the
    pySigma-sqlite approach (load rules, convert every rule, load a SQLite table, run every
    query); ``--no-sqlite`` skips it.

Prints events/s per core (events divided by this process's CPU seconds, so the figure does
not depend on how many threads Polars used), the ratio of (b) to (a), the end-to-end ratio of
(c) and the peak memory. No targets are asserted here; the closing note of issue 6 has them.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
# this file's folder is first on sys.path and its name would shadow the `sigma` package (pySigma)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT / "src"))

from mimamori.sigma.engine import SigmaEngine  # noqa: E402
from mimamori.sigma.rules import load_rules  # noqa: E402
from mimamori.sources.evtx import read_evtx  # noqa: E402


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--corpus", type=Path, default=Path(os.environ.get("MIMAMORI_CORPUS") or ROOT.parent / "shared/data")
    )
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=50_000)
    ap.add_argument("--no-sqlite", action="store_true")
    args = ap.parse_args()
    rules_dir = args.corpus / "sigma" / "rules"
    files = sorted(args.corpus.rglob("*.evtx"))
    if not files or not rules_dir.is_dir():
        sys.exit(f"corpus not found under {args.corpus} (set MIMAMORI_CORPUS)")

    ruleset, w_load, c_load = timed(lambda: load_rules([rules_dir]))
    s = ruleset.summary()
    print(f"rules: {s['rules']} Windows rules compiled ({s['variants']} variants), {s['failed']} failed, "
          f"{s['skipped']} skipped; load {w_load:.1f}s wall, {c_load:.1f}s CPU")  # fmt: skip

    frames, w_parse, c_parse = timed(lambda: [b.wide for f in files for b in read_evtx(f)])
    n_corpus = sum(f.height for f in frames)
    parse_rate = n_corpus / c_parse
    print(f"(a) EVTX parse only: {len(files)} files, {n_corpus:,} events in {w_parse:.2f}s wall, "
          f"{c_parse:.2f}s CPU -> {parse_rate:,.0f} events/s per core")  # fmt: skip

    corpus = pl.concat(frames, how="diagonal_relaxed").rechunk()
    reps = -(-args.events // corpus.height)
    big = pl.concat([corpus] * reps).head(args.events).rechunk()
    batches = [big.slice(i, args.batch).rechunk() for i in range(0, big.height, args.batch)]
    engine = SigmaEngine(ruleset)
    engine.evaluate(corpus.head(1000))  # plans per (channel, event id) are cached: warm them once

    def scan() -> int:
        return sum(engine.evaluate(b).height for b in batches)

    hits, w_scan, c_scan = timed(scan)
    scan_rate = big.height / c_scan
    print(f"(b) Sigma scan: {big.height:,} events (corpus x{reps}) in {w_scan:.2f}s wall, {c_scan:.2f}s CPU")
    print(
        f"    -> {scan_rate:,.0f} events/s per core, {big.height / w_scan:,.0f} events/s wall; "
        f"{hits:,} detections"
    )
    print(f"    ratio scan/parse (events/s per core): {scan_rate / parse_rate:.2f}")

    if not args.no_sqlite:
        from mimamori.sigma.reference import run_reference

        def ours() -> int:
            rs = load_rules([rules_dir])
            eng = SigmaEngine(rs)
            wide = pl.concat([b.wide for f in files for b in read_evtx(f)], how="diagonal_relaxed").rechunk()
            return eng.evaluate(wide).height

        def theirs() -> int:
            rs = load_rules([rules_dir])  # the same rule model; the SQLite side converts each rule again
            return len(run_reference(rs, [b.wide for f in files for b in read_evtx(f)]).matches)

        n_ours, w_ours, _ = timed(ours)
        n_ref, w_ref, _ = timed(theirs)
        print(f"(c) end to end on the corpus ({n_corpus:,} events): ours {w_ours:.1f}s ({n_ours} matches),")
        print(f"    pySigma-sqlite {w_ref:.1f}s ({n_ref} matches); ours is {w_ref / w_ours:.1f}x faster")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory: {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
