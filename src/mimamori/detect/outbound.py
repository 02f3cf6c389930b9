"""Outbound attack behaviour: an office device scanning or attacking outside hosts, or sending spam.

Two detectors share the same bookkeeping (``remember``): each batch's relevant events are
reduced to a few columns with a stable row key, merged into a time-bounded frame kept in
``ctx.state``, and only the time buckets the batch really added to are evaluated. A batch
seen twice adds nothing, so it cannot raise an alert twice; events that arrive late or out
of order land in their own bucket; an ``alerted`` frame remembers what was reported.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl

from mimamori.detect.base import AlertDraft, DetectContext, Detector

#: Zeek conn states of a connection that was refused, unanswered or cut short.
FAILED_CONN_STATES = ("S0", "REJ", "RSTO", "RSTOS0", "SH", "OTH")

#: Destination ports of the services seed case ④ names: web, FTP, SSH, SMB (and RDP/Telnet).
ATTACKED_PORTS = (21, 22, 23, 80, 139, 443, 445, 3389, 8000, 8080, 8443, 8888)

#: IDS rules that are not attacks by the source (policy, inventory, or malware's own C2,
#: which the IDS and intel detectors report).
NOT_AN_ATTACK = r"(?i)\b(policy|info|not suspicious|misc activity|trojan|cnc|c2|malware|user[- ]agent)\b"

#: Zeek notices that name the source as the attacker; others (certificate problems,
#: software versions) are not attacks.
ZEEK_ATTACK_NOTICES = r"(?i)(^Scan::|Password_Guessing|Brute|SQL_Injection_Attacker|Attack)"

SMTP_PORTS = (25, 465, 587)

#: event.type of a connection record (Zeek conn, firewall session logs).
CONNECTION_TYPES = ("connection", "denied", "allowed", "start", "end")

#: Columns of the compact rows kept in state by every detector of this family.
ROW_KEY = "key"
TS = "ts"

#: How far ahead of the bulk of its batch a row may be before its clock is not trusted.
SKEW = timedelta(days=1)


def row_key(*cols: str) -> pl.Expr:
    """A stable 64-bit key of an event (dataset, id, time, endpoints): duplicates collapse."""
    base = ["event.dataset", "event.id", "@timestamp", "source.ip", "destination.ip", "destination.port"]
    return pl.struct([pl.col(c) for c in (*base, *cols)]).hash(seed=0x6D696D61)


def remember(
    state: dict[str, Any], name: str, rows: pl.DataFrame, horizon: timedelta, cap: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Merge ``rows`` (with ``key`` and ``ts``) into ``state[name]``; return (all kept, new only).

    Kept rows are those within ``horizon`` of the newest event seen (and the whole of this
    batch, until the next one), at most ``cap`` of them (the newest); rows already kept are
    not new. Rows more than ``horizon`` (at least ``SKEW``) ahead of their batch's 95th
    percentile are dropped.
    """
    old = state.get(name)
    rows = rows.filter(pl.col(TS).is_not_null()).unique(ROW_KEY, keep="first", maintain_order=True)
    # a few rows far ahead of the rest of their batch (a device with a wrong clock) would
    # push "newest" forward and prune everything else: leave them out
    rows = rows.filter(pl.col(TS) <= pl.col(TS).quantile(0.95, "higher") + max(horizon, SKEW))
    if isinstance(old, pl.DataFrame) and old.height:
        rows = rows.join(old.select(ROW_KEY), on=ROW_KEY, how="anti")
        both = pl.concat([old, rows.select(old.columns)], how="vertical_relaxed")
    else:
        both = rows
    if both.height == 0:
        state[name] = both
        return both, rows
    newest = both[TS].max()
    assert isinstance(newest, datetime)
    floor = newest - horizon
    oldest_new = rows[TS].min()
    if isinstance(oldest_new, datetime) and oldest_new < floor:
        floor = oldest_new  # a batch longer than the horizon is evaluated whole, pruned next time
    both = both.filter(pl.col(TS) >= floor)
    if both.height > cap:
        both = both.sort(TS).tail(cap)
    state[name] = both
    return both, rows


def not_yet_alerted(
    state: dict[str, Any], found: pl.DataFrame, on: list[str], horizon: timedelta, cap: int = 10_000
) -> pl.DataFrame:
    """Rows of ``found`` not reported before (by ``on``), which are then marked as reported.

    ``found`` has a ``bucket`` datetime column; marks are kept for ``horizon`` after it.
    """
    done = state.get("alerted")
    if isinstance(done, pl.DataFrame) and done.height:
        found = found.join(done, on=on, how="anti")
    if found.height == 0:
        return found
    marks = found.select(on)
    if isinstance(done, pl.DataFrame) and done.height:
        marks = pl.concat([done, marks], how="vertical_relaxed")
    newest = marks["bucket"].max()
    assert isinstance(newest, datetime)
    marks = marks.filter(pl.col("bucket") >= newest - horizon).sort("bucket").tail(cap)
    state["alerted"] = marks
    return found


#: The columns the scan and IDS-attack checks read.
_OUTWARD_COLUMNS = (
    "event.dataset", "event.id", "@timestamp", "source.ip", "destination.ip", "destination.port",
    "event.kind", "event.category", "event.type", "event.action", "event.severity",
    "network.transport", "rule.name", "rule.category",
)  # fmt: skip


def _external(ctx: DetectContext, col: str) -> pl.Expr:
    return pl.col(col).is_not_null() & ~ctx.internal(col)


class OutboundScanDetector(Detector):
    """Internal hosts scanning outside (many failed connections) or attacking outside services."""

    name = "outbound_scan"
    description = "an office device scanning or attacking outside hosts (stepping stone)"

    def __init__(
        self,
        short_window: timedelta = timedelta(minutes=10),
        short_min_targets: int = 40,
        long_window: timedelta = timedelta(hours=24),
        long_min_targets: int = 300,
        min_failure_ratio: float = 0.5,
        ids_window: timedelta = timedelta(hours=24),
        ids_min_alerts: int = 3,
        ids_max_severity: int = 3,
        ids_ports: tuple[int, ...] = ATTACKED_PORTS,
        max_rows: int = 500_000,
    ) -> None:
        self.short_window = short_window
        self.short_min_targets = short_min_targets
        self.long_window = long_window
        self.long_min_targets = long_min_targets
        self.min_failure_ratio = min_failure_ratio
        self.ids_window = ids_window
        self.ids_min_alerts = ids_min_alerts
        self.ids_max_severity = ids_max_severity
        self.ids_ports = ids_ports
        self.max_rows = max_rows

    def detect(self, events: pl.DataFrame, ctx: DetectContext) -> list[AlertDraft]:
        # cheap column tests first: address matching is the costly part
        relevant = (pl.col("event.kind") == "alert") | (
            (pl.col("event.category") == "network") & pl.col("event.type").is_in(CONNECTION_TYPES)
        )
        outward = (
            events.select(_OUTWARD_COLUMNS)
            .filter(  # project first: filter gathers every column
                relevant.fill_null(False)
                & pl.col("@timestamp").is_not_null()
                & pl.col("source.ip").is_not_null()
                & pl.col("destination.ip").is_not_null()
            )
            .filter(ctx.internal("source.ip") & ~ctx.internal("destination.ip"))
        )
        alerts = self._scans(outward, ctx)
        alerts += self._ids_attacks(outward, ctx)
        return alerts

    # ------------------------------------------------------------------------ scanning

    def _scans(self, outward: pl.DataFrame, ctx: DetectContext) -> list[AlertDraft]:
        zeek_conn = pl.col("event.dataset").fill_null("").str.starts_with("zeek.conn") | pl.col(
            "event.dataset"
        ).fill_null("").str.starts_with("zeek.open_conn")
        failed = (
            pl.when(zeek_conn)
            .then(pl.col("event.action").is_in(FAILED_CONN_STATES))
            .otherwise(pl.col("event.type") == "denied")
            .fill_null(False)
        )
        conns = outward.filter(
            (pl.col("event.category") == "network")
            & (pl.col("event.type").is_in(CONNECTION_TYPES))
            & ~pl.col("network.transport").fill_null("").str.to_lowercase().str.starts_with("icmp")
        ).select(
            row_key().alias(ROW_KEY),
            pl.col("@timestamp").alias(TS),
            pl.col("source.ip").alias("src"),
            pl.col("destination.ip").alias("dst"),
            pl.col("destination.port").alias("port"),
            failed.alias("failed"),
        )
        kept, new = remember(ctx.state, "conns", conns, self.long_window + self.short_window, self.max_rows)
        if new.height == 0:
            return []
        alerts: list[AlertDraft] = []
        # short window: fixed buckets; long window: the window ending at each source's newest
        # event of this batch (a day-long slow scan must not be cut in two at midnight)
        short = f"{int(self.short_window.total_seconds())}s"
        touched = new.select("src", pl.col(TS).dt.truncate(short).alias("bucket")).unique()
        ends = new.group_by("src").agg(pl.col(TS).max().alias("bucket"))
        windows = (
            (
                self.short_window,
                self.short_min_targets,
                kept.with_columns(pl.col(TS).dt.truncate(short).alias("bucket")).join(
                    touched, on=["src", "bucket"], how="semi"
                ),
            ),
            (
                self.long_window,
                self.long_min_targets,
                kept.join(ends, on="src").filter(
                    (pl.col(TS) > pl.col("bucket") - self.long_window) & (pl.col(TS) <= pl.col("bucket"))
                ),
            ),
        )
        for sliding, (window, minimum, rows) in enumerate(windows):
            every = f"{int(window.total_seconds())}s"
            # distinct failed targets never exceed failures: count first (cheap), and build
            # target strings only for the groups that can still qualify
            counts = rows.group_by("src", "bucket").agg(
                pl.len().alias("attempts"), pl.col("failed").sum().alias("failures")
            )
            candidates = counts.filter(
                (pl.col("failures") >= minimum)
                & (pl.col("failures") >= pl.col("attempts") * self.min_failure_ratio)
            ).select("src", "bucket")
            if candidates.height == 0:
                continue
            rows = rows.join(candidates, on=["src", "bucket"], how="semi")
            target = pl.concat_str(
                pl.col("dst"), pl.col("port").cast(pl.String).fill_null("-"), separator=":"
            )
            stats = (
                rows.group_by("src", "bucket")
                .agg(
                    pl.len().alias("attempts"),
                    pl.col("failed").sum().alias("failures"),
                    target.filter(pl.col("failed")).n_unique().alias("targets"),
                    pl.col("dst").filter(pl.col("failed")).n_unique().alias("hosts"),
                    pl.col("port").filter(pl.col("failed")).n_unique().alias("ports"),
                    pl.col(TS).min().alias("first"),
                    pl.col(TS).max().alias("last"),
                    target.filter(pl.col("failed")).unique().sort().head(10).alias("sample"),
                    pl.col("port")
                    .filter(pl.col("failed"))
                    .value_counts(sort=True)
                    .head(5)
                    .struct.field("port")
                    .alias("top_ports"),
                )
                .with_columns((pl.col("failures") / pl.col("attempts")).alias("ratio"))
                .filter((pl.col("targets") >= minimum) & (pl.col("ratio") >= self.min_failure_ratio))
                .with_columns(pl.lit(every).alias("what"))
            )
            if sliding:
                stats = self._not_within(ctx, stats, every, window)
            stats = not_yet_alerted(ctx.state, stats, ["src", "bucket", "what"], self.long_window * 2)
            for g in stats.sort("src", "bucket").iter_rows(named=True):
                start = g["first"] if sliding else g["bucket"]
                alerts.append(
                    AlertDraft(
                        detector=self.name,
                        kind="outbound_attack",
                        severity="high",
                        title=(
                            f"{g['src']} scanning outside: {g['targets']} failed targets in {_human(window)}"
                        ),
                        first_seen=g["first"],
                        last_seen=g["last"],
                        keys=[f"host:{g['src']}"],
                        host=g["src"],
                        event_count=g["attempts"],
                        evidence={
                            "behaviour": "scan",
                            "window": _human(window),
                            "window_start": start.isoformat(),
                            "distinct_targets": g["targets"],
                            "distinct_hosts": g["hosts"],
                            "distinct_ports": g["ports"],
                            "attempts": g["attempts"],
                            "failures": g["failures"],
                            "failure_ratio": round(g["ratio"], 3),
                            "top_ports": g["top_ports"],
                            "sample_targets": g["sample"],
                        },
                    ).with_dedup(
                        ctx.tenant, g["src"], every, start.replace(minute=0, second=0, microsecond=0)
                    )
                )
        return alerts

    @staticmethod
    def _not_within(ctx: DetectContext, stats: pl.DataFrame, what: str, window: timedelta) -> pl.DataFrame:
        """Drop sliding-window findings for a source already reported within the window."""
        done = ctx.state.get("alerted")
        if not isinstance(done, pl.DataFrame) or done.height == 0 or stats.height == 0:
            return stats
        marks = done.filter(pl.col("what") == what).select("src", pl.col("bucket").alias("mark"))
        recent = (
            stats.join(marks, on="src")
            .filter(
                (pl.col("mark") > pl.col("bucket") - window) & (pl.col("mark") <= pl.col("bucket") + window)
            )
            .select("src", "bucket")
        )
        return stats.join(recent, on=["src", "bucket"], how="anti")

    # ----------------------------------------------------------------- IDS, outward

    def _ids_attacks(self, outward: pl.DataFrame, ctx: DetectContext) -> list[AlertDraft]:
        text = pl.concat_str(
            pl.col("rule.name").fill_null(""), pl.col("rule.category").fill_null(""), separator=" "
        )
        ids = outward.filter(
            (pl.col("event.kind") == "alert")
            & (pl.col("event.category").fill_null("") != "malware")
            & pl.col("rule.name").is_not_null()
            & pl.col("destination.port").is_in(self.ids_ports)
            & (pl.col("event.severity").fill_null(self.ids_max_severity) <= self.ids_max_severity)
            & ~text.str.contains(NOT_AN_ATTACK)
            & (
                (pl.col("event.dataset").fill_null("") != "zeek.notice")
                | pl.col("rule.name").str.contains(ZEEK_ATTACK_NOTICES)
            )
        ).select(
            row_key("rule.name").alias(ROW_KEY),
            pl.col("@timestamp").alias(TS),
            pl.col("source.ip").alias("src"),
            pl.col("destination.ip").alias("dst"),
            pl.col("destination.port").alias("port"),
            pl.col("rule.name").alias("signature"),
            pl.col("event.action").alias("action"),
        )
        kept, new = remember(ctx.state, "ids", ids, self.ids_window, self.max_rows // 10)
        if new.height == 0:
            return []
        every = f"{int(self.ids_window.total_seconds())}s"
        touched = new.select("src", pl.col(TS).dt.truncate(every).alias("bucket")).unique()
        stats = (
            kept.with_columns(pl.col(TS).dt.truncate(every).alias("bucket"))
            .join(touched, on=["src", "bucket"], how="semi")
            .group_by("src", "bucket")
            .agg(
                pl.len().alias("n"),
                pl.col("dst").n_unique().alias("hosts"),
                pl.col(TS).min().alias("first"),
                pl.col(TS).max().alias("last"),
                pl.col("dst").unique().sort().head(10).alias("targets"),
                pl.col("port").unique().sort().head(10).alias("ports"),
                pl.col("signature")
                .value_counts(sort=True)
                .head(5)
                .struct.field("signature")
                .alias("signatures"),
                pl.col("action").drop_nulls().unique().sort().alias("actions"),
            )
            .filter(pl.col("n") >= self.ids_min_alerts)
            .with_columns(pl.lit("ids").alias("what"))
        )
        stats = not_yet_alerted(ctx.state, stats, ["src", "bucket", "what"], self.long_window * 2)
        alerts = []
        for g in stats.sort("src", "bucket").iter_rows(named=True):
            alerts.append(
                AlertDraft(
                    detector=self.name,
                    kind="outbound_attack",
                    severity="high",
                    title=f"{g['src']} attacking outside services: {g['n']} IDS alerts, {g['hosts']} targets",
                    first_seen=g["first"],
                    last_seen=g["last"],
                    keys=[f"host:{g['src']}"],
                    host=g["src"],
                    event_count=g["n"],
                    evidence={
                        "behaviour": "ids_outbound",
                        "window": _human(self.ids_window),
                        "window_start": g["bucket"].isoformat(),
                        "ids_alerts": g["n"],
                        "distinct_targets": g["hosts"],
                        "sample_targets": g["targets"],
                        "ports": g["ports"],
                        "signatures": g["signatures"],
                        "actions": g["actions"],
                    },
                ).with_dedup(ctx.tenant, g["src"], "ids", g["bucket"].isoformat())
            )
        return alerts


class OutboundSmtpDetector(Detector):
    """Mail sent straight to outside mail servers by a device that is not a mail server."""

    name = "outbound_smtp"
    description = "SMTP from an office device that is not a mail server (spam module, e.g. Emotet)"

    def __init__(
        self,
        mail_servers: list[str] | None = None,
        window: timedelta = timedelta(hours=1),
        min_servers: int = 5,
        min_connections: int = 50,
        min_recipients: int = 30,
        learn_days: int = 7,
        history: timedelta = timedelta(days=30),
        max_rows: int = 200_000,
    ) -> None:
        self.mail_servers = list(mail_servers or [])
        self.window = window
        self.min_servers = min_servers
        self.min_connections = min_connections
        self.min_recipients = min_recipients
        self.learn_days = learn_days
        self.history = history
        self.max_rows = max_rows

    def detect(self, events: pl.DataFrame, ctx: DetectContext) -> list[AlertDraft]:
        smtp = (
            events.filter(
                pl.col("destination.port").is_in(SMTP_PORTS)
                | (pl.col("network.protocol").fill_null("").str.to_lowercase() == "smtp")
            )
            .filter(ctx.internal("source.ip") & _external(ctx, "destination.ip"))
            .select(
                row_key("email.to.address").alias(ROW_KEY),
                pl.col("@timestamp").alias(TS),
                pl.col("source.ip").alias("src"),
                pl.col("destination.ip").alias("dst"),
                pl.col("destination.port").alias("port"),
                # one connection, whether seen in conn, smtp or a firewall log
                pl.coalesce(pl.col("event.id"), row_key().cast(pl.String)).alias("conn"),
                pl.col("email.to.address").alias("rcpt"),
                (pl.col("event.outcome") == "failure").fill_null(False).alias("failed"),
            )
        )
        kept, new = remember(ctx.state, "smtp", smtp, self.window, self.max_rows)
        days = self._learn(ctx, new)
        if new.height == 0:
            return []
        learned = (
            days.group_by("src")
            .agg(pl.col("day").n_unique().alias("days"))
            .filter(pl.col("days") >= self.learn_days)
            .select("src")
        )
        every = f"{int(self.window.total_seconds())}s"
        touched = new.select("src", pl.col(TS).dt.truncate(every).alias("bucket")).unique()
        rcpts = (
            pl.col("rcpt")
            .str.split(",")
            .list.explode(keep_nulls=False, empty_as_null=False)
            .str.strip_chars()
            .str.to_lowercase()
        )
        stats = (
            kept.with_columns(pl.col(TS).dt.truncate(every).alias("bucket"))
            .join(touched, on=["src", "bucket"], how="semi")
            .filter(~pl.col("src").is_in(self.mail_servers))
            .join(learned, on="src", how="anti")
            .group_by("src", "bucket")
            .agg(
                pl.col("conn").n_unique().alias("connections"),
                pl.col("dst").n_unique().alias("servers"),
                rcpts.n_unique().alias("recipients"),
                pl.col("failed").sum().alias("failed_rows"),
                pl.col(TS).min().alias("first"),
                pl.col(TS).max().alias("last"),
                pl.col("dst").value_counts(sort=True).head(10).struct.field("dst").alias("mtas"),
                pl.col("port").unique().sort().alias("ports"),
                rcpts.unique().sort().head(10).alias("sample_recipients"),
            )
            .filter(
                (pl.col("servers") >= self.min_servers)
                | (pl.col("connections") >= self.min_connections)
                | (pl.col("recipients") >= self.min_recipients)
            )
            .with_columns(pl.lit("smtp").alias("what"))
        )
        stats = not_yet_alerted(ctx.state, stats, ["src", "bucket", "what"], self.history)
        alerts = []
        for g in stats.sort("src", "bucket").iter_rows(named=True):
            alerts.append(
                AlertDraft(
                    detector=self.name,
                    kind="outbound_spam",
                    severity="high",
                    title=f"{g['src']} sending mail directly to {g['servers']} outside mail servers",
                    first_seen=g["first"],
                    last_seen=g["last"],
                    keys=[f"host:{g['src']}"],
                    host=g["src"],
                    event_count=g["connections"],
                    evidence={
                        "window": _human(self.window),
                        "window_start": g["bucket"].isoformat(),
                        "connections": g["connections"],
                        "external_mtas": g["servers"],
                        "mtas": g["mtas"],
                        "ports": g["ports"],
                        "recipients": g["recipients"],
                        "sample_recipients": g["sample_recipients"],
                        "failed_rows": g["failed_rows"],
                        "known_mail_servers": sorted(self.mail_servers),
                    },
                ).with_dedup(ctx.tenant, g["src"], every, g["bucket"].isoformat())
            )
        return alerts

    def _learn(self, ctx: DetectContext, new: pl.DataFrame) -> pl.DataFrame:
        """Days on which each host sent SMTP (history kept ``history``): steady senders are servers."""
        days = new.select("src", pl.col(TS).dt.date().alias("day")).unique()
        old = ctx.state.get("senders")
        if isinstance(old, pl.DataFrame) and old.height:
            days = pl.concat([old, days], how="vertical_relaxed").unique()
        if days.height:
            newest = days["day"].max()
            assert newest is not None
            days = days.filter(pl.col("day") >= pl.lit(newest) - self.history).sort("day").tail(self.max_rows)
        ctx.state["senders"] = days
        return days


def _human(window: timedelta) -> str:
    secs = int(window.total_seconds())
    if secs % 3600 == 0:
        return f"{secs // 3600}h"
    if secs % 60 == 0:
        return f"{secs // 60}min"
    return f"{secs}s"
