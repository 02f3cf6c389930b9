"""Known-bad destinations: events that touch an indicator from threat intelligence."""

from __future__ import annotations

import polars as pl

from mimamori.detect.base import AlertDraft, DetectContext, Detector, classify_threat

# Event columns whose match means "this internal host talked to / asked for the indicator".
_DEST_FIELDS = {
    "destination.ip",
    "destination.domain",
    "dns.question.name",
    "url.domain",
    "url.full",
    "tls.client.server_name",
}


class IntelMatchDetector(Detector):
    name = "intel"
    description = "events matching threat-intelligence indicators (IP, CIDR, domain, URL, hash)"

    def detect(self, events: pl.DataFrame, ctx: DetectContext) -> list[AlertDraft]:
        if ctx.indicators is None or events.height == 0:
            return []
        hits = ctx.indicators.match(events)
        if hits.height == 0:
            return []
        # the matched rows picked out by position (a join would carry the whole batch along)
        picked = events.drop(hits.columns, strict=False)[hits["row"]]
        rows = pl.concat([hits, picked], how="horizontal")
        # The internal party: the inside end of the connection, else the source.
        host = ctx.internal_host()
        rows = rows.with_columns(host.alias("__host"))
        grouped = rows.group_by("__host", "indicator.value", maintain_order=True).agg(
            pl.len().alias("n"),
            pl.col("@timestamp").min().alias("first"),
            pl.col("@timestamp").max().alias("last"),
            pl.col("indicator.type").first(),
            pl.col("field").unique().sort().alias("fields"),
            pl.col("threat").drop_nulls().first(),
            pl.col("confidence").max(),
            pl.col("source").unique().sort().alias("sources"),
            pl.col("event.dataset").unique().sort().alias("datasets"),
            pl.col("destination.port").drop_nulls().unique().sort().head(10).alias("ports"),
            pl.col("log.file.path").first().alias("file"),
            pl.col("log.file.line").head(5).alias("lines"),
        )
        alerts = []
        for g in grouped.iter_rows(named=True):
            kind, family = classify_threat(g["threat"])
            outbound = bool(set(g["fields"]) & _DEST_FIELDS)
            if kind is None:
                kind = "malicious_destination" if outbound else "malicious_source"
            severity = "high" if outbound or kind != "malicious_source" else "medium"
            if kind in {"ransomware", "banking_malware", "emotet"}:
                severity = "critical" if kind == "ransomware" else "high"
            keys = [f"host:{g['__host']}", f"indicator:{g['indicator.value']}"]
            if family:
                keys.append(f"family:{family}")
            threat = g["threat"] or "known-bad"
            alerts.append(
                AlertDraft(
                    detector=self.name,
                    kind=kind,
                    severity=severity,
                    title=f"{g['__host']} contacted {g['indicator.value']} ({threat})",
                    first_seen=g["first"],
                    last_seen=g["last"],
                    keys=keys,
                    host=g["__host"],
                    indicator=g["indicator.value"],
                    event_count=g["n"],
                    evidence={
                        "indicator_type": g["indicator.type"],
                        "matched_fields": g["fields"],
                        "threat": g["threat"],
                        "family": family,
                        "confidence": g["confidence"],
                        "intel_sources": g["sources"],
                        "datasets": g["datasets"],
                        "ports": g["ports"],
                        "file": g["file"],
                        "lines": g["lines"],
                    },
                ).with_dedup(ctx.tenant, ctx.batch_id, g["__host"], g["indicator.value"])
            )
        return alerts
