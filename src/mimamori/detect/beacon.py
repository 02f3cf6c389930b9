"""Beaconing: regular outbound connections scored over a sliding 24-hour window, RITA v5 style.

Every (internal source, external destination) pair is scored from the connections seen in
the last 24 hours of data time. The destination is the server name (TLS SNI, HTTP Host or
CONNECT host) when one is known, else the destination IP; proxied requests are attributed
to the host they ask for, not to the proxy.

The score follows the method RITA v5 documents (our own implementation):

* timestamp score: intervals between distinct connection seconds; Bowley skew
  ``(Q1 + Q3 - 2·Q2) / (Q3 - Q1)`` (taken as 0 when ``Q3 - Q1 < 10`` or the median equals
  a quartile) gives ``1 - |skew|``; the median absolute deviation gives
  ``(median - MAD) / median`` (floored at 0); the score is their mean.
* data-size score: the same two measures over bytes per connection (a median under one
  byte scores MAD 0). Pairs seen only in HTTP/TLS logs have no sizes; their size weight is
  shared out over the other three parts.
* histogram score: the window cut into 24 equal bins; ``max(1 - CV, bimodal fit)`` where CV
  is the coefficient of variation of the 24 bin counts and the bimodal fit is the share of
  non-empty bins whose heights fall in the two most common height buckets (bucket width
  ``ceil(max height · mode sensitivity)``), after dropping outlier bins; only with enough
  non-empty bins.
* duration score: with at least ``duration_min_hours`` non-empty bins, ``max(coverage,
  consistency)``: coverage is (last - first) over the window span, consistency the longest
  run of consecutive non-empty bins (wrapping around) over ``duration_ideal_hours``.
* score: the weighted sum (weights sum to 1). An alert also needs a timestamp score of at
  least ``min_ts_score`` (random, Poisson-like traffic scores about 0.55 there but can
  reach 0.75 overall on coverage and size alone). Pairs with fewer than ``min_connections``
  distinct timestamps are not scored; pairs with ``strobe_connections`` or more
  connections are strobes and score 1.

Alerting: score at least ``alert_score`` (medium; ``high_score`` and above: high), at
least ``alert_min_connections`` connections, a timestamp score of at least
``min_ts_score`` and a median interval of at least ``min_median_interval`` seconds (or a
strobe). One alert per pair per 24 hours of data time; its dedup key is (tenant, source,
destination, UTC date of the last connection scored). NTP (udp/123) and ICMP are left out
by default (``ignore_ports``, ``ignore_transports``): periodic by design. Touched pairs are
rescored at most every ``rescore_seconds`` of data time unless their count grew by
``rescore_growth``; pairs with fewer connections than an alert needs are not scored, and
only pairs whose timing passes the alert gates get the size and histogram parts computed.

A second rule catches fast-polling command and control that a 24-hour score misses:
hundreds of small, regular connections within ``fast_window_seconds`` from one host to
an external destination no host of the tenant had contacted before in the window.

State (``ctx.state``, persisted as Polars frames): ``rows`` (pair id, timestamp, bytes,
record key; one row per connection, deduplicated by event id per pair, kept sorted by
pair id and timestamp), ``pairs`` (pair id, source, destination, alert and scoring
bookkeeping) and ``meta`` (newest timestamp and counters). Because every pair's rows are
one contiguous run, per-pair counts, first and last times, the fast-poll tail and the
interval quartiles and MAD come from positions in sorted Int64 keys (pair id · width +
value) rather than from group-bys over the state; each batch is sorted and merged into
the state by position. Bounds: rows older than 24 hours before the newest timestamp are
dropped; a pair keeps at most ``max_rows_per_pair`` newest rows; the whole state keeps at
most ``max_rows`` newest rows; pairs without rows and without a live alert are dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any, ClassVar

import numpy as np
import polars as pl

from mimamori.detect.base import AlertDraft, DetectContext, Detector
from mimamori.events.net import in_networks

US = 1_000_000
DAY_US = 86_400 * US
BINS = 24

#: Datasets whose records are one connection each (or one request naming the server).
CONNECTION_DATASETS = frozenset(
    {
        "zeek.conn",
        "zeek.http",
        "zeek.ssl",
        "suricata.flow",
        "suricata.http",
        "suricata.tls",
        "fortigate.traffic",
        "panos.traffic",
        "pfsense.filterlog",
    }
)

#: Destinations that are never "outside": multicast, broadcast, loopback, link-local.
_NOT_EXTERNAL = (
    "0.0.0.0/8",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "255.255.255.255/32",
    "::1/128",
    "ff00::/8",
)
_INTERNAL_NAME = r"(^[^.]+$)|\.(local|lan|internal|intranet|corp|home|localdomain|home\.arpa|in-addr\.arpa)$"

_ROWS_SCHEMA: dict[str, pl.DataType] = {
    "pid": pl.Int64(),
    "ts": pl.Int64(),  # microseconds since the epoch, UTC
    "bytes": pl.Int64(),
    "key": pl.UInt64(),
}
_PAIRS_SCHEMA: dict[str, pl.DataType] = {
    "pid": pl.Int64(),
    "src": pl.String(),
    "dst": pl.String(),
    "alerted_until": pl.Int64(),  # no new beacon alert for the pair before this time
    "fast_alerted_until": pl.Int64(),
    "scored_at": pl.Int64(),  # newest timestamp when the pair was last scored
    "scored_n": pl.Int64(),  # its connection count then
}
_META_SCHEMA: dict[str, pl.DataType] = {
    "newest": pl.Int64(),
    "next_pid": pl.Int64(),
    "duplicates": pl.Int64(),
    "future": pl.Int64(),
    "stale": pl.Int64(),
    "clock_outliers": pl.Int64(),
    "capped": pl.Int64(),
}


@dataclass(frozen=True)
class BeaconThresholds:
    """Scoring and alerting parameters (RITA v5 defaults where RITA has one)."""

    alert_score: float = 0.7  # alert at or above this score (severity medium)
    high_score: float = 0.8  # severity high at or above this score
    min_connections: int = 4  # distinct connection timestamps needed to score a pair (RITA)
    alert_min_connections: int = 24  # ... and to alert on it
    min_ts_score: float = 0.85  # ... whose timing is this regular (random: ~0.55, small samples ~0.8)
    min_median_interval: float = 5.0  # seconds; a faster "beacon" is a stream (or a strobe)
    strobe_connections: int = 86_400  # this many connections in 24 h: a strobe (RITA)
    ts_weight: float = 0.25
    ds_weight: float = 0.25
    dur_weight: float = 0.25
    hist_weight: float = 0.25
    duration_min_hours: int = 6
    duration_ideal_hours: int = 12
    hist_mode_sensitivity: float = 0.05
    hist_bimodal_outlier_removal: int = 1
    hist_bimodal_min_hours: int = 11
    window_seconds: int = 86_400
    rescore_seconds: int = 900  # rescore a touched pair at most this often (data time) ...
    rescore_growth: float = 1.25  # ... unless its connection count grew by this factor
    fast_window_seconds: int = 600
    fast_min_connections: int = 200
    fast_max_median_bytes: int = 10_000
    fast_max_mad_ratio: float = 0.2  # interval MAD / median interval
    max_rows_per_pair: int = 86_400
    max_rows: int = 20_000_000
    future_seconds: int = 86_400  # timestamps beyond wall clock + this are ignored
    proxy_ports: tuple[int, ...] = (3128, 3129, 8080, 8118, 8888)
    # Periodic by design, never C2 worth an SME alert: time sync, and ICMP (errors, pings).
    ignore_ports: tuple[int, ...] = (123,)
    ignore_transports: tuple[str, ...] = ("icmp", "ipv6-icmp", "icmp6")

    def __post_init__(self) -> None:
        weights = (self.ts_weight, self.ds_weight, self.dur_weight, self.hist_weight)
        if any(w < 0 for w in weights) or not math.isclose(sum(weights), 1.0):
            raise ValueError(f"beacon score weights must be >= 0 and sum to 1, got {weights}")
        if not 0 < self.alert_score <= self.high_score <= 1:
            raise ValueError("need 0 < alert_score <= high_score <= 1")
        if self.min_connections < 4:
            raise ValueError("min_connections must be at least 4 (three intervals)")


class BeaconDetector(Detector):
    name: ClassVar[str] = "beacon"
    description: ClassVar[str] = (
        "regular outbound connections (RITA-style 24 h beacon score) and fast C2 polling"
    )

    def __init__(self, thresholds: BeaconThresholds | None = None, **overrides: Any) -> None:
        base = thresholds or BeaconThresholds()
        known = {f.name for f in fields(BeaconThresholds)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown beacon threshold(s): {', '.join(unknown)}")
        self.t = replace(base, **overrides)

    # ------------------------------------------------------------------ entry point

    def detect(self, events: pl.DataFrame, ctx: DetectContext) -> list[AlertDraft]:
        st = _State.load(ctx.state)
        conns = self._connections(events, ctx)
        if conns.height == 0:
            return []
        conns = self._admit(conns, st)
        if conns.height == 0:
            st.save(ctx.state)
            return []
        conns = self._assign_pairs(conns, st)
        touched = self._merge(conns, st)
        runs = self._prune(st)
        touched_runs = runs.filter(pl.col("pid").is_in(touched["pid"].implode()))
        alerts = self._fast_poll(touched_runs, runs, st, ctx) + self._beacons(touched_runs, st, ctx)
        st.save(ctx.state)
        return alerts

    def scores(self, ctx: DetectContext) -> pl.DataFrame:
        """Current scores of every pair in the state (for analysts, tests and tuning)."""
        st = _State.load(ctx.state)
        if st.rows.height == 0:
            return pl.DataFrame()
        scored, _ = _score(st.rows, st.window(self.t), self.t)
        return scored.join(st.pairs.select("pid", "src", "dst"), on="pid").sort("score", descending=True)

    # ------------------------------------------------------------------ extraction

    def _connections(self, events: pl.DataFrame, ctx: DetectContext) -> pl.DataFrame:
        """(src, dst, ts, bytes, key) of outbound connections in a batch."""
        if events.height == 0 or "@timestamp" not in events.columns:
            return pl.DataFrame()

        def col(name: str, dtype: pl.DataType) -> pl.Expr:
            return pl.col(name) if name in events.columns else pl.lit(None, dtype=dtype)

        s = pl.String()
        dataset, etype = col("event.dataset", s), col("event.type", s)
        df = events.filter(
            (dataset.is_in(list(CONNECTION_DATASETS)) | (etype == "connection")).fill_null(False)
            & col("source.ip", s).is_not_null()
            & pl.col("@timestamp").is_not_null()
            & ~col("destination.port", pl.Int32()).is_in(list(self.t.ignore_ports)).fill_null(False)
            & ~col("network.transport", s)
            .str.to_lowercase()
            .is_in(list(self.t.ignore_transports))
            .fill_null(False)
        )
        if df.height == 0:
            return pl.DataFrame()
        name = (
            pl.coalesce(col("tls.client.server_name", s), col("url.domain", s), col("destination.domain", s))
            .str.strip_chars()
            .str.strip_chars_end(".")
            .str.to_lowercase()
        )
        name = pl.when(name.str.len_bytes() > 0).then(name)
        dip = col("destination.ip", s)
        proxied = (
            (col("http.request.method", s).str.to_uppercase() == "CONNECT").fill_null(False)
            | col("url.path", s).str.contains(r"^[A-Za-z][A-Za-z0-9+.-]*://").fill_null(False)
            | col("destination.port", pl.Int32()).is_in(list(self.t.proxy_ports)).fill_null(False)
        )
        src_b, dst_b = col("source.bytes", pl.Int64()), col("destination.bytes", pl.Int64())
        size = pl.coalesce(
            col("network.bytes", pl.Int64()),
            pl.when(src_b.is_not_null() | dst_b.is_not_null()).then(src_b.fill_null(0) + dst_b.fill_null(0)),
        )
        ts = pl.col("@timestamp").dt.epoch("us")
        event_id = col("event.id", s)
        fallback = pl.struct(ts, size, col("source.port", pl.Int32()), col("event.dataset", s)).hash(7)
        df = df.select(
            col("source.ip", s).alias("src"),
            name.alias("name"),
            dip.alias("dip"),
            proxied.alias("proxied"),
            ts.alias("ts"),
            size.alias("bytes"),
            # (the fallback hash is only worked out when some record lacks an event id)
            (
                event_id.hash(7)
                if "event.id" in df.columns and df["event.id"].null_count() == 0
                else pl.when(event_id.is_not_null()).then(event_id.hash(7)).otherwise(fallback)
            ).alias("key"),
        )
        # Address tests run on distinct values (a few thousand), not on every row.
        internal_dip = _matching(df["dip"], lambda v: in_networks(v, ctx.networks))
        use_name = pl.col("name").is_not_null() & (
            pl.col("dip").is_null() | ~pl.col("dip").is_in(internal_dip) | pl.col("proxied")
        )
        df = df.select(
            "src",
            pl.when(use_name).then(pl.col("name")).otherwise(pl.col("dip")).alias("dst"),
            "ts",
            "bytes",
            "key",
        )
        internal_src = _matching(df["src"], lambda v: in_networks(v, ctx.networks))
        external_dst = _matching(
            df["dst"],
            lambda v: (
                ~in_networks(v, ctx.networks)
                & ~in_networks(v, _NOT_EXTERNAL)
                & ~v.str.contains(_INTERNAL_NAME).fill_null(False)
            ),
        )
        return df.filter(pl.col("src").is_in(internal_src) & pl.col("dst").is_in(external_dst))

    def _admit(self, conns: pl.DataFrame, st: _State) -> pl.DataFrame:
        """Drop (and count) timestamps from the future, clock outliers and ones already out of the window."""
        now = int(datetime.now(UTC).timestamp() * US)
        future = pl.col("ts") > now + self.t.future_seconds * US
        n_future = conns.select(future.sum()).item()
        conns = conns.filter(~future)
        if conns.height == 0:
            st.count("future", n_future)
            return conns
        # A lone record from a jumped clock must not drag the window forward and empty it.
        median = int(conns.select(pl.col("ts").median()).item())
        outlier = pl.col("ts") > median + self.t.window_seconds * US
        n_out = conns.select(outlier.sum()).item()
        conns = conns.filter(~outlier)
        newest = max(st.newest or 0, conns.select(pl.col("ts").max()).item())
        stale = pl.col("ts") < newest - self.t.window_seconds * US
        n_stale = conns.select(stale.sum()).item()
        st.newest = newest
        st.count("future", n_future)
        st.count("clock_outliers", n_out)
        st.count("stale", n_stale)
        return conns.filter(~stale)

    def _assign_pairs(self, conns: pl.DataFrame, st: _State) -> pl.DataFrame:
        # the pair's distinct (src, dst) strings are matched against the state once; every
        # connection then finds its pair by a 64-bit hash of them (joins on two string
        # columns cost a row encoding per connection)
        conns = conns.with_columns(pl.struct("src", "dst").hash(seed=0x6D6D).alias("__pair"))
        keys = conns.unique("__pair", keep="first").select("src", "dst", "__pair")
        known = keys.join(st.pairs.select("src", "dst", "pid"), on=["src", "dst"], how="left")
        new = known.filter(pl.col("pid").is_null())
        if new.height:
            new = new.with_columns(
                pl.int_range(st.next_pid, st.next_pid + new.height, dtype=pl.Int64).alias("pid")
            )
            st.next_pid += new.height
            st.pairs = pl.concat([st.pairs, _conform(new, _PAIRS_SCHEMA)], how="vertical_relaxed")
        mapping = pl.concat(
            [known.filter(pl.col("pid").is_not_null()).select("__pair", "pid"), new.select("__pair", "pid")]
        )
        # strings stay behind: only the integer columns travel through the join
        rows = conns.select("__pair", "ts", "bytes", "key").join(mapping, on="__pair")
        return rows.select(list(_ROWS_SCHEMA))

    def _merge(self, conns: pl.DataFrame, st: _State) -> pl.DataFrame:
        """Add new connections to the state, once each; return the pair ids touched."""
        # exact de-duplication only among rows whose (pair, key) hash repeats: a unique
        # over two columns costs several times the hash test on half a million rows
        repeated = conns.select(pl.struct("pid", "key").hash(seed=0x6D6D).is_duplicated()).to_series()
        fresh = conns
        if repeated.any():
            twins = conns.filter(repeated).unique(["pid", "key"], keep="first", maintain_order=True)
            fresh = pl.concat([conns.filter(~repeated), twins])
        lo, hi = fresh["ts"].min(), fresh["ts"].max()
        if st.rows.height:
            # a duplicate record carries the same timestamp, so only that time range can hold it
            near = st.rows.filter(pl.col("ts").is_between(lo, hi)).select("pid", "key")
            fresh = fresh.join(near, on=["pid", "key"], how="anti")
        st.count("duplicates", conns.height - fresh.height)
        # rows stay sorted by (pair, time): each pair is then one run of rows, and its
        # counts, first and last times and intervals need no grouping
        st.rows = _merge_rows(st.rows, fresh)
        return fresh.select("pid").unique()

    def _prune(self, st: _State) -> pl.DataFrame:
        """Drop rows out of the window and over the caps; return the pairs' runs of rows."""
        assert st.newest is not None
        cutoff = st.newest - self.t.window_seconds * US
        rows = st.rows
        before = rows.height
        if rows.height and rows["ts"].min() < cutoff:  # type: ignore[operator]
            rows = rows.filter(pl.col("ts") >= cutoff)
        runs = _pair_runs(rows)
        cap = self.t.max_rows_per_pair
        if runs.height and runs["n"].max() > cap:  # type: ignore[operator]
            # the newest rows of a pair are the end of its run
            rid = rows["pid"].rle_id()
            end = (runs["start"] + runs["n"]).gather(rid)
            keep = pl.int_range(rows.height, dtype=pl.Int64, eager=True) >= end - cap
            kept = rows.filter(keep)
            st.count("capped", rows.height - kept.height)
            rows = kept
        if rows.height > self.t.max_rows:
            kept = _sort_rows(rows.top_k(self.t.max_rows, by="ts"))
            st.count("capped", rows.height - kept.height)
            rows = kept
        if rows.height != before:
            runs = _pair_runs(rows)
        st.rows = rows
        if st.rows.height == before and st.pairs.height < 2 * max(before, 1):
            return runs  # nothing left the window: every pair is still live
        st.pairs = st.pairs.filter(
            pl.col("pid").is_in(runs["pid"].implode())
            | (pl.col("alerted_until") > st.newest).fill_null(False)
            | (pl.col("fast_alerted_until") > st.newest).fill_null(False)
        )
        return runs

    # ------------------------------------------------------------------ beacon score

    def _beacons(self, touched: pl.DataFrame, st: _State, ctx: DetectContext) -> list[AlertDraft]:
        """Score the touched pairs (their runs: pid, start, n) that are due; alert on hits."""
        assert st.newest is not None
        t = self.t
        due = (
            touched.select("pid", "n")
            .join(st.pairs, on="pid")
            .filter(
                (pl.col("n") >= t.min_connections)
                & (pl.col("alerted_until").fill_null(0) <= st.newest)
                & (
                    pl.col("scored_at").is_null()
                    | (pl.col("scored_at") <= st.newest - t.rescore_seconds * US)
                    | (pl.col("n") >= pl.col("scored_n") * t.rescore_growth)
                    | (pl.col("n") >= t.strobe_connections)
                )
            )
            .select("pid", "n")
        )
        if due.height == 0:
            return []
        st.pairs = st.pairs.update(
            due.select("pid", pl.lit(st.newest).alias("scored_at"), pl.col("n").alias("scored_n")), on="pid"
        )
        # a pair with fewer connections than an alert needs cannot alert: it is not scored
        can_alert = pl.col("n") >= min(t.alert_min_connections, t.strobe_connections)
        due = due.filter(can_alert)
        if due.height == 0:
            return []
        scored, hist = _score(st.rows, st.window(t), t, gate=True, presorted=True, only=due["pid"])
        hits = scored.filter((pl.col("score") >= t.alert_score) & _alertable(t)).join(
            st.pairs.select("pid", "src", "dst"), on="pid"
        )
        if hits.height == 0:
            return []
        histos = _histograms(hist.filter(pl.col("pid").is_in(hits["pid"].implode())))
        meta = st.counters()
        alerts = []
        for h in hits.sort("score", descending=True).iter_rows(named=True):
            first = _dt(h["first_ts"])
            severity = "high" if h["score"] >= t.high_score else "medium"
            evidence = {
                "mode": "strobe" if h["strobe"] else "beacon",
                "score": h["score"],
                "ts_score": h["ts_score"],
                "ds_score": h["ds_score"],
                "duration_score": h["dur_score"],
                "histogram_score": h["hist_score"],
                "connections": h["connections"],
                "distinct_timestamps": h["distinct_ts"],
                "median_interval_s": h["iv_q2"],
                "interval_q1_s": h["iv_q1"],
                "interval_q3_s": h["iv_q3"],
                "interval_mad_s": h["iv_mad"],
                "interval_skew": h["iv_skew"],
                "median_bytes": h["ds_q2"],
                "bytes_mad": h["ds_mad"],
                "bytes_skew": h["ds_skew"],
                "min_bytes": h["ds_min"],
                "max_bytes": h["ds_max"],
                "total_bytes": h["ds_total"],
                "hourly_histogram": histos.get(h["pid"], [0] * BINS),
                "hours_seen": h["bars"],
                "longest_run_hours": h["run"],
                "first_seen": first.isoformat(),
                "last_seen": _dt(h["last_ts"]).isoformat(),
                "window_hours": t.window_seconds // 3600,
                **{f"ignored_{k}": v for k, v in meta.items()},
            }
            alerts.append(
                AlertDraft(
                    detector=self.name,
                    kind="beaconing",
                    severity=severity,
                    title=(
                        f"{h['src']} beacons to {h['dst']} every ~{h['iv_q2']:.0f}s (score {h['score']:.2f})"
                    ),
                    first_seen=first,
                    last_seen=_dt(h["last_ts"]),
                    keys=[f"host:{h['src']}", f"indicator:{h['dst']}"],
                    host=h["src"],
                    indicator=h["dst"],
                    event_count=h["connections"],
                    evidence=evidence,
                ).with_dedup(ctx.tenant, h["src"], h["dst"], _dt(h["last_ts"]).date().isoformat())
            )
        # one alert per pair per 24 h of data time, counted from the alert
        until = hits.select("pid", pl.lit(st.newest + t.window_seconds * US).alias("alerted_until"))
        st.pairs = st.pairs.update(until, on="pid")
        return alerts

    # ------------------------------------------------------------------ fast polling

    def _fast_poll(
        self, touched: pl.DataFrame, runs: pl.DataFrame, st: _State, ctx: DetectContext
    ) -> list[AlertDraft]:
        """Fast polling among the touched pairs' runs; ``runs`` are all pairs' (for the rows)."""
        assert st.newest is not None
        t = self.t
        win = t.fast_window_seconds * US
        cand = touched.filter(pl.col("n") >= t.fast_min_connections).join(
            st.pairs.filter(pl.col("fast_alerted_until").fill_null(0) <= st.newest).select("pid"), on="pid"
        )
        if cand.height == 0:
            return []
        # a pair's last fast window is the tail of its run of rows
        rid = st.rows["pid"].rle_id()
        wanted = runs["pid"].is_in(cand["pid"].implode()).gather(rid)
        since = (runs["last_ts"] - win).gather(rid)
        burst = st.rows.filter(wanted & (st.rows["ts"] > since))
        big = _runs(burst["pid"]).filter(pl.col("n") >= t.fast_min_connections)
        if big.height == 0:
            return []
        burst = burst.filter(pl.col("pid").is_in(big["pid"].implode())).with_columns(
            pl.when(pl.col("pid") == pl.col("pid").shift(1))
            .then((pl.col("ts") - pl.col("ts").shift(1)) / US)
            .alias("iv")
        )
        stats = burst.group_by("pid").agg(
            pl.len().alias("n"),
            pl.col("ts").min().alias("first"),
            pl.col("ts").max().alias("last"),
            pl.col("iv").median().alias("iv_med"),
            pl.col("bytes").median().alias("bytes_med"),
            pl.col("iv").drop_nulls().alias("ivs"),
        )
        stats = stats.with_columns(
            (
                pl.col("ivs").list.eval((pl.element() - pl.element().median()).abs().median()).list.first()
            ).alias("iv_mad")
        ).filter(
            (pl.col("n") >= t.fast_min_connections)
            & (pl.col("iv_med") > 0)
            & (pl.col("iv_mad") <= pl.col("iv_med") * t.fast_max_mad_ratio)
            & (pl.col("bytes_med").is_null() | (pl.col("bytes_med") <= t.fast_max_median_bytes))
        )
        if stats.height == 0:
            return []
        stats = stats.join(st.pairs.select("pid", "src", "dst"), on="pid")
        # "New" destination: no host of the tenant reached it before this burst, in the window.
        dst_pids = st.pairs.filter(pl.col("dst").is_in(stats["dst"].implode())).select("pid", "dst")
        earliest = (
            runs.join(dst_pids, on="pid").group_by("dst").agg(pl.col("first_ts").min().alias("dst_first"))
        )
        stats = stats.join(earliest, on="dst").filter(pl.col("dst_first") >= pl.col("first"))
        alerts = []
        for h in stats.iter_rows(named=True):
            first, lastdt = _dt(h["first"]), _dt(h["last"])
            alerts.append(
                AlertDraft(
                    detector=self.name,
                    kind="beaconing",
                    severity="high",
                    title=(
                        f"{h['src']} polls new host {h['dst']} every ~{h['iv_med']:.1f}s "
                        f"({h['n']} connections)"
                    ),
                    first_seen=first,
                    last_seen=lastdt,
                    keys=[f"host:{h['src']}", f"indicator:{h['dst']}"],
                    host=h["src"],
                    indicator=h["dst"],
                    event_count=h["n"],
                    evidence={
                        "mode": "fast_poll",
                        "connections": h["n"],
                        "window_seconds": t.fast_window_seconds,
                        "median_interval_s": h["iv_med"],
                        "interval_mad_s": h["iv_mad"],
                        "median_bytes": h["bytes_med"],
                        "new_destination": True,
                        "first_seen": first.isoformat(),
                        "last_seen": lastdt.isoformat(),
                    },
                ).with_dedup(ctx.tenant, "fast", h["src"], h["dst"], first.date().isoformat())
            )
        until = stats.select("pid", (pl.col("last") + t.window_seconds * US).alias("fast_alerted_until"))
        st.pairs = st.pairs.update(until, on="pid")
        return alerts


# ---------------------------------------------------------------------- scoring


def _alertable(t: BeaconThresholds) -> pl.Expr:
    """Timing conditions a pair must meet to be alerted on (before the full score)."""
    regular = (
        (pl.col("connections") >= t.alert_min_connections)
        & (pl.col("ts_score") >= t.min_ts_score)
        & (pl.col("iv_q2") >= t.min_median_interval)
    )
    return (regular | pl.col("strobe")).fill_null(False)


def _bowley(q1: pl.Expr, q2: pl.Expr, q3: pl.Expr) -> pl.Expr:
    den = q3 - q1
    ok = (den >= 10) & (q2 != q1) & (q2 != q3)
    return pl.when(ok).then((q1 + q3 - 2 * q2) / den).otherwise(0.0)


def _mad_score(median: pl.Expr, mad: pl.Expr, default: float) -> pl.Expr:
    return pl.when(median >= 1).then(((median - mad) / median).clip(lower_bound=0.0)).otherwise(default)


def _quartiles(value: str, prefix: str) -> list[pl.Expr]:
    return [
        pl.col(value).quantile(q, "linear").alias(f"{prefix}_q{i}")
        for i, q in ((1, 0.25), (2, 0.5), (3, 0.75))
    ]


def _score(
    rows: pl.DataFrame,
    window: tuple[int, int],
    t: BeaconThresholds,
    gate: bool = False,
    presorted: bool = False,
    only: pl.Series | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per pair id: the four part scores, the combined score and their statistics.

    Also returns the long hourly histogram (pid, bin, count). All Polars expressions; no
    Python work per connection. With ``gate``, only pairs that can still raise an alert
    (regular enough timing, enough connections, or strobes) get the size and histogram
    parts: the timing part alone rules out most ordinary traffic, cheaply. ``presorted``:
    the rows are in (pid, ts) order, as the detector keeps its state; ``only``: score just
    these pair ids (without copying the other pairs' rows out first).
    """
    dmin, dmax = window
    span = max(dmax - dmin, 1)
    timing = (
        _interval_stats(rows, presorted, only)
        .with_columns(
            (pl.col("n_iv").fill_null(0) + 1).alias("distinct_ts"),
            _bowley(pl.col("iv_q1"), pl.col("iv_q2"), pl.col("iv_q3")).alias("iv_skew"),
        )
        .filter(pl.col("distinct_ts") >= t.min_connections)
        .with_columns(
            ((1 - pl.col("iv_skew").abs() + _mad_score(pl.col("iv_q2"), pl.col("iv_mad"), 1.0)) / 2).alias(
                "ts_score"
            ),
            (pl.col("connections") >= t.strobe_connections).alias("strobe"),
        )
    )
    if gate:
        timing = timing.filter(_alertable(t))
        rows = rows.filter(pl.col("pid").is_in(timing["pid"].implode()))
    elif only is not None:
        rows = rows.filter(pl.col("pid").is_in(only.implode()))
    secs = rows.select("pid", "ts", "bytes")
    sizes = secs.select("pid", pl.col("bytes").cast(pl.Float64)).drop_nulls()
    ds_stats = sizes.group_by("pid").agg(
        pl.len().alias("n_ds"),
        *_quartiles("bytes", "ds"),
        pl.col("bytes").min().alias("ds_min"),
        pl.col("bytes").max().alias("ds_max"),
        pl.col("bytes").sum().alias("ds_total"),
    )
    ds_mad = (
        sizes.join(ds_stats.select("pid", "ds_q2"), on="pid")
        .group_by("pid")
        .agg((pl.col("bytes") - pl.col("ds_q2")).abs().median().alias("ds_mad"))
    )
    base = secs.group_by("pid").agg(
        pl.col("ts").min().alias("first_ts"),
        pl.col("ts").max().alias("last_ts"),
    )
    # hourly histogram over the window: 24 equal bins
    hist = (
        secs.select("pid", ((pl.col("ts") - dmin) * BINS // span).clip(0, BINS - 1).alias("bin"))
        .group_by("pid", "bin")
        .agg(pl.len().alias("count"))
    )
    bucket = (
        hist.group_by("pid")
        .agg(
            pl.len().alias("bars"),
            pl.col("count").max().alias("peak"),
            pl.col("count").sum().alias("total"),
            (pl.col("count").cast(pl.Float64) ** 2).sum().alias("sumsq"),
            pl.lit(2, dtype=pl.Int64).pow(pl.col("bin")).cast(pl.Int64).sum().alias("mask"),
        )
        .with_columns((pl.col("peak") * t.hist_mode_sensitivity).ceil().clip(lower_bound=1).alias("bucket"))
    )
    modes = (
        hist.join(bucket.select("pid", "bucket"), on="pid")
        .group_by("pid", (pl.col("count") // pl.col("bucket")).alias("height"))
        .len("bars_in")
        .group_by("pid")
        .agg(pl.col("bars_in").top_k(2).sum().alias("top2"))
    )
    mean = pl.col("total") / BINS
    sd = ((pl.col("sumsq") / BINS) - mean**2).clip(lower_bound=0.0).sqrt()
    cv_score = pl.when(sd / mean > 1).then(0.0).otherwise(1 - sd / mean)
    bimodal = pl.when(pl.col("bars") >= t.hist_bimodal_min_hours).then(
        (pl.col("top2") / (pl.col("bars") - t.hist_bimodal_outlier_removal).clip(lower_bound=1)).clip(
            upper_bound=1.0
        )
    )
    out = (
        timing.join(base, on="pid")
        .join(ds_stats, on="pid", how="left")
        .join(ds_mad, on="pid", how="left")
        .join(bucket, on="pid", how="left")
        .join(modes, on="pid", how="left")
        .pipe(_longest_circular_run)
        .with_columns(
            pl.max_horizontal(cv_score, bimodal.fill_null(0.0)).alias("hist_score"),
            _bowley(pl.col("ds_q1"), pl.col("ds_q2"), pl.col("ds_q3")).alias("ds_skew"),
        )
    )
    coverage = ((pl.col("last_ts") - pl.col("first_ts")) / span).clip(upper_bound=1.0)
    consistency = (pl.col("run") / t.duration_ideal_hours).clip(upper_bound=1.0)
    has_ds = pl.col("n_ds").fill_null(0) >= 3
    out = out.with_columns(
        ((1 - pl.col("iv_skew").abs() + _mad_score(pl.col("iv_q2"), pl.col("iv_mad"), 1.0)) / 2).alias(
            "ts_score"
        ),
        pl.when(has_ds)
        .then((1 - pl.col("ds_skew").abs() + _mad_score(pl.col("ds_q2"), pl.col("ds_mad"), 0.0)) / 2)
        .alias("ds_score"),
        pl.when(pl.col("bars") >= t.duration_min_hours)
        .then(pl.max_horizontal(coverage, consistency))
        .otherwise(0.0)
        .alias("dur_score"),
    )
    w_other = t.ts_weight + t.dur_weight + t.hist_weight
    weighted = (
        pl.col("ts_score") * t.ts_weight
        + pl.col("dur_score") * t.dur_weight
        + pl.col("hist_score") * t.hist_weight
    )
    # without sizes the size weight is shared out over the other parts
    combined = pl.when(has_ds).then(weighted + pl.col("ds_score") * t.ds_weight).otherwise(weighted / w_other)
    out = out.with_columns(
        pl.when(pl.col("strobe")).then(1.0).otherwise(combined).round(3).clip(0.0, 1.0).alias("score"),
        *(
            pl.col(c).round(3)
            for c in ("ts_score", "ds_score", "dur_score", "hist_score", "iv_skew", "ds_skew")
        ),
    )
    return out, hist


def _interval_stats(
    rows: pl.DataFrame, presorted: bool = False, only: pl.Series | None = None
) -> pl.DataFrame:
    """Per pair id (of ``only``, if given): ``connections`` and the intervals between its
    distinct seconds (``n_iv``, quartiles ``iv_q1..3``, median absolute deviation ``iv_mad``).

    The same numbers as grouped ``quantile(q, "linear")`` and ``median()`` calls, got
    from sorts of one Int64 key each (none for the rows when ``presorted``: already in
    (pid, ts) order) and positional look-ups: Polars sorts one integer column more than
    ten times faster than it sorts by two columns, and this runs over every touched
    pair's rows each batch.
    """
    empty = pl.DataFrame(
        schema={"pid": pl.Int64, "connections": pl.Int64, "n_iv": pl.Int64}
        | {c: pl.Float64 for c in ("iv_q1", "iv_q2", "iv_q3", "iv_mad")}
    )
    wanted = None
    if only is not None and presorted:
        wanted = rows["pid"].is_in(only.implode())  # a row mask: the rows stay where they are
    elif only is not None:
        rows = rows.filter(pl.col("pid").is_in(only.implode()))
    if rows.height == 0:
        return empty
    sec = rows["ts"] // US
    lo, hi = int(sec.min()), int(sec.max())  # type: ignore[arg-type]
    width = hi - lo + 1  # intervals and offsets are below this
    pids = rows["pid"]
    remap = int(pids.max()) >= (1 << 62) // (2 * width + 1)  # type: ignore[arg-type]
    if remap:
        pids = pids.rank("dense").cast(pl.Int64)  # keep the combined keys within Int64
    if presorted:
        pid, sec = pids, sec - lo
    else:
        key = (pids * width + (sec - lo)).sort(multithreaded=False)
        pid, sec = key // width, key % width
    runs = _runs(pid)
    if wanted is not None:
        runs = runs.filter(wanted.gather(runs["start"]))
    conns = runs.select("pid", pl.col("n").alias("connections"))
    iv = sec - sec.shift(1)
    valid = ((pid == pid.shift(1)) & (iv > 0)).fill_null(False)
    if wanted is not None:
        valid = valid & wanted
    iv, ivp = iv.filter(valid), pid.filter(valid)
    if iv.len() == 0:
        stats = empty.drop("connections")
    else:
        key = (ivp * width + iv).sort(multithreaded=False)
        ivp, iv = key // width, key % width
        runs = _runs(ivp)
        stats = runs.select(
            "pid",
            pl.col("n").alias("n_iv"),
            *(_at_quantile(iv, q).alias(f"iv_q{i}") for i, q in ((1, 0.25), (2, 0.5), (3, 0.75))),
        )
        mad = _run_mads(
            iv.to_numpy(), runs["start"].to_numpy(), runs["n"].to_numpy(), stats["iv_q2"].to_numpy()
        )
        stats = stats.with_columns(pl.Series("iv_mad", mad))
    out = conns.join(stats, on="pid", how="left")
    if remap:
        ranks = pl.DataFrame({"pid": pids, "orig": rows["pid"]}).unique("pid")
        out = out.join(ranks, on="pid").drop("pid").rename({"orig": "pid"}).select(empty.columns)
    return out


def _run_mads(values: np.ndarray, start: np.ndarray, n: np.ndarray, med: np.ndarray) -> np.ndarray:
    """Median absolute deviation from ``med`` of each run (``start``, ``n``) of sorted values.

    A sorted run's deviations form two sorted lists, ``med - v`` below the median (read
    backwards) and ``v - med`` above it; the middle deviations are picked from the two
    lists by binary searches run over all runs at once, instead of sorting deviations.
    """
    vals = values.astype(np.float64)

    def at(i: np.ndarray) -> np.ndarray:
        return vals.take(i, mode="clip")  # out-of-run indexes only where the result is unused

    # how many values of each run are <= its median
    below = _search(np.zeros_like(n), n, lambda r, mid: at(start[r] + mid) <= med[r])
    above = n - below

    def lower(r: np.ndarray, j: np.ndarray) -> np.ndarray:  # j-th smallest deviation under the median
        return med[r] - at(start[r] + below[r] - 1 - j)

    def upper(r: np.ndarray, j: np.ndarray) -> np.ndarray:  # j-th smallest deviation over it
        return at(start[r] + below[r] + j) - med[r]

    def kth(k: np.ndarray) -> np.ndarray:
        # a of the k + 1 smallest deviations come from below, k + 1 - a from above
        def more(r: np.ndarray, a: np.ndarray) -> np.ndarray:
            b = k[r] + 1 - a
            return (a < below[r]) & (b > 0) & (upper(r, b - 1) > lower(r, a))

        a = _search(np.maximum(0, k + 1 - above), np.minimum(k + 1, below), more)
        b = k + 1 - a
        r = np.arange(len(n))
        return np.maximum(
            np.where(a > 0, lower(r, a - 1), -np.inf), np.where(b > 0, upper(r, b - 1), -np.inf)
        )

    low, high = kth((n - 1) // 2), kth(n // 2)
    return low + (high - low) * 0.5


def _search(
    lo: np.ndarray, hi: np.ndarray, go_right: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> np.ndarray:
    """Per element, the smallest x in [lo, hi] where ``go_right(elements, x)`` is false
    (it must be true below some point and false from there on)."""
    lo, hi = lo.copy(), hi.copy()
    active = np.flatnonzero(lo < hi)
    while active.size:
        mid = (lo[active] + hi[active]) // 2
        right = go_right(active, mid)
        lo[active[right]] = mid[right] + 1
        hi[active[~right]] = mid[~right]
        active = active[lo[active] < hi[active]]
    return lo


def _sort_rows(rows: pl.DataFrame) -> pl.DataFrame:
    """State rows sorted by (pair id, timestamp), through one Int64 key when it fits."""
    if rows.height == 0:
        return rows
    lo, hi = rows["ts"].min(), rows["ts"].max()
    width = int(hi) - int(lo) + 1  # type: ignore[arg-type]
    if int(rows["pid"].max()) >= (1 << 62) // width:  # type: ignore[arg-type]
        return rows.sort("pid", "ts", multithreaded=False)
    return rows.sort(pl.col("pid") * width + (pl.col("ts") - lo), multithreaded=False)


def _merge_rows(rows: pl.DataFrame, fresh: pl.DataFrame) -> pl.DataFrame:
    """``rows`` and ``fresh`` as one frame sorted by (pair id, timestamp).

    The batch is sorted and merged into the state by position (linear) rather than the
    state sorted again; a state not in order (written by an older version) is sorted.
    """
    both = pl.concat([rows, fresh])
    if rows.height == 0 or fresh.height == 0:
        return _sort_rows(both)
    lo, hi = both["ts"].min(), both["ts"].max()
    width = int(hi) - int(lo) + 1  # type: ignore[arg-type]
    if int(both["pid"].max()) >= (1 << 62) // width:  # type: ignore[arg-type]
        return _sort_rows(both)
    key = pl.col("pid") * width + (pl.col("ts") - lo)
    old_keys = rows.select(key).to_series()
    if not old_keys.is_sorted():
        return _sort_rows(both)
    fresh = fresh.sort(key, multithreaded=False)
    new_keys = fresh.select(key).to_series().to_numpy()
    # where each fresh row lands in the merged frame
    at = np.searchsorted(old_keys.to_numpy(), new_keys, side="right") + np.arange(len(new_keys))
    is_new = np.zeros(both.height, dtype=bool)
    is_new[at] = True
    order = np.empty(both.height, dtype=np.int64)
    order[is_new] = np.arange(rows.height, both.height)
    order[~is_new] = np.arange(rows.height)
    return pl.concat([rows, fresh]).select(pl.all().gather(pl.Series(order)))


def _pair_runs(rows: pl.DataFrame) -> pl.DataFrame:
    """(pid, start, n, first_ts, last_ts) of each pair in rows sorted by (pid, ts)."""
    runs = _runs(rows["pid"])
    ts = rows["ts"]
    return runs.with_columns(
        ts.gather(runs["start"]).alias("first_ts"), ts.gather(runs["start"] + runs["n"] - 1).alias("last_ts")
    )


def _runs(sorted_ids: pl.Series) -> pl.DataFrame:
    """(pid, start, n) of each run of equal values in a sorted id column."""
    first = (sorted_ids != sorted_ids.shift(1)).fill_null(True)
    start = first.arg_true().cast(pl.Int64)
    n = pl.concat([start.slice(1), pl.Series([sorted_ids.len()], dtype=pl.Int64)]) - start
    return pl.DataFrame({"pid": sorted_ids.gather(start), "start": start, "n": n})


def _at_quantile(values: pl.Series, q: float) -> pl.Expr:
    """The linear-interpolated ``q`` quantile of each run (``start``, ``n``) of sorted values."""
    pos = (pl.col("n") - 1) * q
    i = pos.floor().cast(pl.Int64)
    j = (i + 1).clip(upper_bound=pl.col("n") - 1)
    low = pl.lit(values).gather(pl.col("start") + i).cast(pl.Float64)
    high = pl.lit(values).gather(pl.col("start") + j).cast(pl.Float64)
    return low + (high - low) * (pos - i)


def _longest_circular_run(df: pl.DataFrame) -> pl.DataFrame:
    """Add ``run``: the longest run of set bits of ``mask`` read as a circle (hours wrap).

    Each step keeps the bits whose left neighbour is also set; a run of k bits survives
    k steps. Materialised step by step (24 vectorised passes over the pairs).
    """
    full = 1 << BINS
    df = df.with_columns(pl.col("mask").fill_null(0).cast(pl.Int64).alias("__m"), pl.lit(0).alias("run"))
    for _ in range(BINS):
        m = pl.col("__m")
        rotated = ((m * 2) % full) + (m // (1 << (BINS - 1)))
        df = df.with_columns(
            (pl.col("run") + (m != 0).cast(pl.Int32)).alias("run"), m.and_(rotated).alias("__m")
        )
    return df.drop("__m").with_columns(pl.col("run").clip(upper_bound=BINS))


def _histograms(hist: pl.DataFrame) -> dict[int, list[int]]:
    """pid -> 24 bin counts, for the few pairs being reported."""
    out: dict[int, list[int]] = {}
    for pid, b, c in hist.iter_rows():
        out.setdefault(pid, [0] * BINS)[b] = c
    return out


def _matching(values: pl.Series, cond: Callable[[pl.Expr], pl.Expr]) -> pl.Series:
    """The distinct non-null values for which ``cond`` holds (for a cheap ``is_in``)."""
    uniq = values.drop_nulls().unique().to_frame("v")
    return uniq.filter(cond(pl.col("v")))["v"].implode()


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / US, tz=UTC)


def _conform(df: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return df.select(
        [pl.col(k).cast(v) if k in df.columns else pl.lit(None, dtype=v).alias(k) for k, v in schema.items()]
    )


class _State:
    """The detector's frames in ``ctx.state`` (only DataFrames survive a restart)."""

    def __init__(self, rows: pl.DataFrame, pairs: pl.DataFrame, meta: dict[str, int | None]) -> None:
        self.rows = rows
        self.pairs = pairs
        self.meta = meta

    @classmethod
    def load(cls, state: dict[str, Any]) -> _State:
        rows = state.get("rows")
        pairs = state.get("pairs")
        meta = state.get("meta")
        rows = (
            _conform(rows, _ROWS_SCHEMA)
            if isinstance(rows, pl.DataFrame)
            else pl.DataFrame(schema=_ROWS_SCHEMA)
        )
        pairs = (
            _conform(pairs, _PAIRS_SCHEMA)
            if isinstance(pairs, pl.DataFrame)
            else pl.DataFrame(schema=_PAIRS_SCHEMA)
        )
        values: dict[str, int | None] = dict.fromkeys(_META_SCHEMA, 0)
        values["newest"] = None
        if isinstance(meta, pl.DataFrame) and meta.height:
            row = _conform(meta, _META_SCHEMA).row(0, named=True)
            values.update({k: v for k, v in row.items() if v is not None})
        return cls(rows, pairs, values)

    def save(self, state: dict[str, Any]) -> None:
        state["rows"] = self.rows
        state["pairs"] = self.pairs
        state["meta"] = pl.DataFrame([self.meta], schema=_META_SCHEMA)

    @property
    def newest(self) -> int | None:
        return self.meta["newest"]

    @newest.setter
    def newest(self, value: int) -> None:
        self.meta["newest"] = value

    @property
    def next_pid(self) -> int:
        return self.meta["next_pid"] or 0

    @next_pid.setter
    def next_pid(self, value: int) -> None:
        self.meta["next_pid"] = value

    def count(self, key: str, n: int) -> None:
        self.meta[key] = (self.meta[key] or 0) + int(n)

    def counters(self) -> dict[str, int]:
        return {k: int(v or 0) for k, v in self.meta.items() if k not in {"newest", "next_pid"}}

    def window(self, t: BeaconThresholds) -> tuple[int, int]:
        """The histogram span: always the full 24 h before the newest timestamp, so the first
        hours of a tenant's data cannot look like a whole day's coverage."""
        newest = self.newest or 0
        return newest - t.window_seconds * US, newest
