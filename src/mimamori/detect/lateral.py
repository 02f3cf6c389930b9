"""Lateral movement: one office device reaching many others over admin protocols, out of habit.

A peer is an internal host this source reached over SMB, RDP, WinRM or RPC (by port, or by
Zeek's smb_mapping / smb_files / dce_rpc / rdp / ntlm logs). Each source's known peers are
kept for weeks; a window counts the peers that are new for that source. While the tenant's
history is shorter than ``learn`` every peer is new, so a higher threshold applies then.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from mimamori.detect.base import AlertDraft, DetectContext, Detector
from mimamori.detect.outbound import ROW_KEY, TS, not_yet_alerted, remember, row_key

#: destination port -> service
SERVICE_PORTS = {445: "smb", 139: "smb", 3389: "rdp", 5985: "winrm", 5986: "winrm", 135: "rpc"}

#: Zeek log -> service; these logs exist only when the protocol was really spoken.
SERVICE_LOGS = {
    "zeek.smb_mapping": "smb",
    "zeek.smb_files": "smb",
    "zeek.smb_cmd": "smb",
    "zeek.dce_rpc": "rpc",
    "zeek.rdp": "rdp",
    "zeek.ntlm": "ntlm",
}

#: Share names and RPC operations of remote administration and remote execution.
ADMIN_SHARE = r"(?i)\\(ADMIN|[A-Z]|IPC)\$"
_EXEC_OPS = ("CreateService[AW]?", "StartService[AW]?", "SchRpcRegisterTask", "SchRpcRun", "NetrJobAdd")
REMOTE_EXEC = rf"(?i)^({'|'.join(_EXEC_OPS)}|RemoteCreateInstance)$"
#: Named pipes of the service control manager and task scheduler, opened over SMB (PsExec & co.).
EXEC_PIPE = r"(?i)^\\?(svcctl|atsvc)$"


class LateralMovementDetector(Detector):
    """Internal host reaching many new internal peers over SMB/RDP/WinRM/RPC in a window."""

    name = "lateral"
    description = "one office device reaching many others over admin protocols, out of its pattern"

    def __init__(
        self,
        window: timedelta = timedelta(hours=1),
        min_new_peers: int = 5,
        cold_min_peers: int = 10,
        learn: timedelta = timedelta(hours=24),
        history: timedelta = timedelta(days=14),
        max_rows: int = 200_000,
        max_peers: int = 100_000,
    ) -> None:
        self.window = window
        self.min_new_peers = min_new_peers
        self.cold_min_peers = cold_min_peers
        self.learn = learn
        self.history = history
        self.max_rows = max_rows
        self.max_peers = max_peers

    def detect(self, events: pl.DataFrame, ctx: DetectContext) -> list[AlertDraft]:
        dataset = pl.col("event.dataset").fill_null("")
        service = pl.coalesce(
            dataset.replace_strict(SERVICE_LOGS, default=None, return_dtype=pl.String),
            pl.col("destination.port").replace_strict(SERVICE_PORTS, default=None, return_dtype=pl.String),
        )
        share_text = pl.concat_str(
            [pl.col(c).fill_null("") for c in ("url.path", "file.name", "message")], separator=" "
        )
        rows = (
            events.filter(service.is_not_null() & (pl.col("source.ip") != pl.col("destination.ip")))
            .filter(ctx.internal("source.ip") & ctx.internal("destination.ip"))
            .select(
                row_key().alias(ROW_KEY),
                pl.col("@timestamp").alias(TS),
                pl.col("source.ip").alias("src"),
                pl.col("destination.ip").alias("dst"),
                service.alias("service"),
                dataset.alias("dataset"),
                (pl.col("event.outcome") == "failure").fill_null(False).alias("failed"),
                share_text.str.extract(ADMIN_SHARE, 0).str.to_uppercase().alias("share"),
                pl.when(pl.col("event.action").fill_null("").str.contains(REMOTE_EXEC))
                .then(pl.col("event.action"))
                .when(pl.col("file.name").fill_null("").str.contains(EXEC_PIPE))
                .then(pl.concat_str(pl.lit("pipe "), pl.col("file.name")))
                .alias("operation"),
            )
        )
        kept, new = remember(ctx.state, "conns", rows, self.window, self.max_rows)
        peers = self._peers(ctx, new)
        if new.height == 0:
            return []
        start = peers["first"].min()
        assert isinstance(start, datetime)
        origin = self._origin(ctx, start)
        every = f"{int(self.window.total_seconds())}s"
        bucket = pl.col(TS).dt.truncate(every).alias("bucket")
        touched = new.select("src", bucket).unique()
        # a peer is new in a window when the source had not reached it before that window
        first = peers.select("src", "dst", pl.col("first").dt.truncate(every).alias("first_bucket"))
        window_rows = (
            kept.with_columns(bucket)
            .join(touched, on=["src", "bucket"], how="semi")
            .join(first, on=["src", "dst"], how="left")
            .with_columns((pl.col("first_bucket") >= pl.col("bucket")).fill_null(True).alias("new"))
        )
        stats = (
            window_rows.group_by("src", "bucket")
            .agg(
                pl.col("dst").n_unique().alias("peers"),
                pl.col("dst").filter(pl.col("new")).n_unique().alias("new_peers"),
                pl.len().alias("n"),
                pl.col("failed").sum().alias("failures"),
                pl.col(TS).min().alias("first"),
                pl.col(TS).max().alias("last"),
                pl.col("dst").filter(pl.col("new")).unique().sort().head(20).alias("sample_new"),
                pl.col("service").drop_nulls().unique().sort().alias("services"),
                pl.col("dataset").filter(pl.col("dataset") != "").unique().sort().alias("datasets"),
                pl.col("share").drop_nulls().unique().sort().alias("shares"),
                pl.col("operation").drop_nulls().unique().sort().alias("operations"),
                pl.col("dst").filter(pl.col("operation").is_not_null()).n_unique().alias("exec_peers"),
            )
            .with_columns((pl.col("bucket") - pl.lit(origin) >= pl.lit(self.learn)).alias("warm"))
            .filter(
                pl.when(pl.col("warm"))
                .then((pl.col("new_peers") >= self.min_new_peers) | (pl.col("exec_peers") >= 2))
                .otherwise((pl.col("new_peers") >= self.cold_min_peers) | (pl.col("exec_peers") >= 3))
            )
            .with_columns(pl.lit("lateral").alias("what"))
        )
        stats = not_yet_alerted(ctx.state, stats, ["src", "bucket", "what"], self.history)
        alerts = []
        for g in stats.sort("src", "bucket").iter_rows(named=True):
            alerts.append(
                AlertDraft(
                    detector=self.name,
                    kind="lateral_movement",
                    severity="high",
                    title=(
                        f"{g['src']} reached {g['new_peers']} new internal hosts over "
                        f"{'/'.join(s.upper() for s in g['services'])} in {_human(self.window)}"
                    ),
                    first_seen=g["first"],
                    last_seen=g["last"],
                    keys=[f"host:{g['src']}"],
                    host=g["src"],
                    event_count=g["n"],
                    evidence={
                        "window": _human(self.window),
                        "window_start": g["bucket"].isoformat(),
                        "peers": g["peers"],
                        "new_peers": g["new_peers"],
                        "sample_new_peers": g["sample_new"],
                        "services": g["services"],
                        "datasets": g["datasets"],
                        "admin_shares": g["shares"],
                        "remote_exec_operations": g["operations"],
                        "remote_exec_peers": g["exec_peers"],
                        "failures": g["failures"],
                        "baseline": "learned" if g["warm"] else f"learning (history < {_human(self.learn)})",
                    },
                ).with_dedup(ctx.tenant, g["src"], every, g["bucket"].isoformat())
            )
        return alerts

    def _peers(self, ctx: DetectContext, new: pl.DataFrame) -> pl.DataFrame:
        """Per (source, peer): first and last time seen, kept ``history`` after last seen."""
        seen = new.group_by("src", "dst").agg(pl.col(TS).min().alias("first"), pl.col(TS).max().alias("last"))
        old = ctx.state.get("peers")
        if isinstance(old, pl.DataFrame) and old.height:
            seen = (
                pl.concat([old, seen], how="vertical_relaxed")
                .group_by("src", "dst")
                .agg(pl.col("first").min(), pl.col("last").max())
            )
        if seen.height:
            newest = seen["last"].max()
            assert isinstance(newest, datetime)
            seen = seen.filter(pl.col("last") >= newest - self.history).sort("last").tail(self.max_peers)
        ctx.state["peers"] = seen
        return seen

    @staticmethod
    def _origin(ctx: DetectContext, start: datetime) -> datetime:
        """When this tenant's lateral history begins (the earliest event ever seen)."""
        old = ctx.state.get("origin")
        if isinstance(old, pl.DataFrame) and old.height:
            first = old["origin"][0]
            if isinstance(first, datetime) and first <= start:
                return first
        ctx.state["origin"] = pl.DataFrame({"origin": [start]}, schema={"origin": pl.Datetime("us", "UTC")})
        return start


def _human(window: timedelta) -> str:
    secs = int(window.total_seconds())
    return f"{secs // 3600}h" if secs % 3600 == 0 else f"{secs // 60}min"
