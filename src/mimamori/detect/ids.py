"""IDS/IPS alerts passed through: Suricata, FortiGate IPS, PAN-OS threat, Zeek notices."""

from __future__ import annotations

import polars as pl

from mimamori.detect.base import AlertDraft, DetectContext, Detector, classify_threat

# event.severity as IDS engines write it: 1 is the most severe.
_SEVERITY = {1: "high", 2: "medium", 3: "low", 4: "low", 5: "low"}

#: Signatures that record what was seen rather than an attack (ET POLICY/INFO rules and
#: Suricata's not-suspicious classtypes): low, whatever priority the sensor gave them.
#: Operators often raise a policy rule's priority to see it; that is no reason to open an
#: incident for an SME.
_INFORMATIONAL_NAME = r"(?i)^(?:ET|ETPRO|GPL)\s+(?:POLICY|INFO)\b"
_INFORMATIONAL_CATEGORIES = ("not suspicious traffic", "potential corporate privacy violation")


class IdsAlertDetector(Detector):
    name = "ids"
    description = "intrusion-detection alerts from IDS/UTM sensors, grouped per host and signature"

    def __init__(self, min_severity: str = "medium") -> None:
        self.min_severity = min_severity

    def detect(self, events: pl.DataFrame, ctx: DetectContext) -> list[AlertDraft]:
        ids = events.filter(
            (pl.col("event.kind") == "alert")
            & (pl.col("event.category").fill_null("") != "malware")
            & pl.col("rule.name").is_not_null()
        )
        if ids.height == 0:
            return []
        host = ctx.internal_host()
        grouped = (
            ids.with_columns(
                host.alias("__host"),
                pl.when(
                    pl.col("rule.name").str.contains(_INFORMATIONAL_NAME)
                    | pl.col("rule.category")
                    .str.to_lowercase()
                    .is_in(_INFORMATIONAL_CATEGORIES)
                    .fill_null(False)
                )
                .then(pl.lit(3, dtype=pl.Int64))
                .otherwise(pl.col("event.severity").fill_null(3).cast(pl.Int64))
                .alias("__sev"),
            )
            .group_by("__host", "rule.name", maintain_order=True)
            .agg(
                pl.len().alias("n"),
                pl.col("@timestamp").min().alias("first"),
                pl.col("@timestamp").max().alias("last"),
                pl.col("__sev").min().alias("sev"),
                pl.col("rule.id").first(),
                pl.col("rule.category").first(),
                pl.col("event.dataset").first().alias("dataset"),
                pl.col("event.action").drop_nulls().unique().sort().alias("actions"),
                pl.col("source.ip").drop_nulls().unique().sort().head(10).alias("sources"),
                pl.col("destination.ip").drop_nulls().unique().sort().head(10).alias("destinations"),
                pl.col("destination.port").drop_nulls().unique().sort().head(10).alias("ports"),
                pl.col("log.file.path").first().alias("file"),
                pl.col("log.file.line").head(5).alias("lines"),
            )
        )
        floor = ("low", "medium", "high").index(self.min_severity)
        alerts = []
        for g in grouped.iter_rows(named=True):
            kind, family = classify_threat(g["rule.name"])
            severity = _SEVERITY.get(int(g["sev"]), "low")
            if kind is not None:
                severity = "critical" if kind == "ransomware" else "high"
            elif ("low", "medium", "high").index(severity) < floor:
                continue
            keys = [f"host:{g['__host']}", f"signature:{g['rule.name']}"]
            if family:
                keys.append(f"family:{family}")
            alerts.append(
                AlertDraft(
                    detector=self.name,
                    kind=kind or "ids_alert",
                    severity=severity,
                    title=f"{g['rule.name']} ({g['__host']})",
                    first_seen=g["first"],
                    last_seen=g["last"],
                    keys=keys,
                    host=g["__host"],
                    event_count=g["n"],
                    evidence={
                        "signature": g["rule.name"],
                        "signature_id": g["rule.id"],
                        "category": g["rule.category"],
                        "family": family,
                        "dataset": g["dataset"],
                        "actions": g["actions"],
                        "sources": g["sources"],
                        "destinations": g["destinations"],
                        "ports": g["ports"],
                        "file": g["file"],
                        "lines": g["lines"],
                    },
                ).with_dedup(ctx.tenant, ctx.batch_id, g["__host"], g["rule.name"])
            )
        return alerts
