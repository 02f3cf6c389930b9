"""Sigma rules on Windows events (EVTX, Sysmon, winlogbeat) as alerts.

Rules: the built-in set (``mimamori/sigma/builtin``, written for mimamori), the release
``mimamori sigma update`` installed in ``<data dir>/sigma-rules`` if any, and the folders
named in ``MIMAMORI_SIGMA_RULES`` (``os.pathsep``-separated, e.g. a SigmaHQ ``rules/``
folder). They are loaded once,
on the first batch with Windows events. One alert per (rule, computer) and batch, with the
matching records as evidence; the incident kind comes from ``sigma_kinds.yaml``.
"""

from __future__ import annotations

import os
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from mimamori import yamlio
from mimamori.detect.base import AlertDraft, DetectContext, Detector
from mimamori.sigma.cache import rules_cache_dir
from mimamori.sigma.correlate import correlate
from mimamori.sigma.engine import SigmaEngine, describe
from mimamori.sigma.rules import RuleMeta, RuleSet, level_rank, load_rules
from mimamori.sigma.update import rules_dir as sigma_rules_dir
from mimamori.sources.winlog import from_events

if TYPE_CHECKING:
    from mimamori.config import Settings

_SEVERITY = {"informational": "low", "low": "low", "medium": "medium", "high": "high", "critical": "critical"}


def builtin_rules_dir() -> Path:
    return Path(str(resources.files("mimamori.sigma").joinpath("builtin")))


@cache
def _kinds() -> dict[str, Any]:
    text = resources.files("mimamori.detect").joinpath("sigma_kinds.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = yamlio.safe_load(text)
    return data


def kind_of(rule: RuleMeta) -> str:
    k = _kinds()
    if rule.id in (k.get("by_rule") or {}):
        return str(k["by_rule"][rule.id])
    for tag, kind in (k.get("by_tag") or {}).items():
        if tag in rule.tags:
            return str(kind)
    return str(k.get("default", "endpoint_threat"))


def configured_rule_dirs(installed: Path | None = None) -> list[Path]:
    """The built-in rules, the release ``mimamori sigma update`` installed (``installed``,
    ``<data dir>/sigma-rules``) when there is one, and the folders in ``MIMAMORI_SIGMA_RULES``."""
    extra = os.environ.get("MIMAMORI_SIGMA_RULES", "")
    dirs = [builtin_rules_dir()]
    if installed is not None and installed.is_dir():
        dirs.append(installed)
    return [*dirs, *(Path(p) for p in extra.split(os.pathsep) if p)]


class SigmaDetector(Detector):
    name = "sigma"
    description = "Sigma rules on Windows endpoint events (built-in, installed, MIMAMORI_SIGMA_RULES)"

    def __init__(self, rule_dirs: list[Path] | None = None, min_level: str | None = None) -> None:
        self._dirs = rule_dirs
        #: where ``mimamori sigma update`` puts a release (set by ``configure``)
        self.installed: Path | None = None
        #: where compiled rule sets are kept between runs (set by ``configure``; None: not kept)
        self.cache_dir: Path | None = None
        self._ruleset: RuleSet | None = None
        self._engine: SigmaEngine | None = None
        self.min_level = min_level or str(_kinds().get("min_level", "medium"))

    def configure(self, settings: Settings) -> None:
        """The release ``mimamori sigma update`` installed, and the compiled-rule cache."""
        self.installed = sigma_rules_dir(settings)
        self.cache_dir = rules_cache_dir(settings)

    @property
    def ruleset(self) -> RuleSet:
        if self._ruleset is None:
            dirs = self._dirs if self._dirs is not None else configured_rule_dirs(self.installed)
            self._ruleset = load_rules(dirs, cache_dir=self.cache_dir)
            self._engine = SigmaEngine(self._ruleset)
        return self._ruleset

    def detect(self, events: pl.DataFrame, ctx: DetectContext) -> list[AlertDraft]:
        if "winlog.event_data" not in events.columns:
            return []
        win = events.filter(pl.col("winlog.event_data").is_not_null())
        if win.height == 0:
            return []
        rs = self.ruleset
        assert self._engine is not None
        wide = from_events(win)
        found = self._engine.evaluate(wide)
        parts = [describe(rs, found.drop("__row"))] if found.height else []
        if rs.correlations and found.height:
            fields = sorted({f for c in rs.correlations for f in c.fields} & set(wide.columns))
            base = found.join(wide.with_row_index("__row").select("__row", *fields), on="__row", how="left")
            corr = correlate(rs, base.drop("__row"))
            if corr.height:
                parts.append(corr.drop("correlation.group"))
        if not parts:
            return []
        hits = pl.concat(parts, how="diagonal_relaxed")
        floor = level_rank(self.min_level)
        by_index = {r.index: r for r in rs.rules}
        grouped = hits.group_by("rule", "Computer", maintain_order=True).agg(
            pl.len().alias("n"),
            pl.col("@timestamp").min().alias("first"),
            pl.col("@timestamp").max().alias("last"),
            pl.col("winlog.record_id").drop_nulls().head(20).alias("records"),
            pl.col("log.file.path").drop_nulls().first().alias("file"),
        )
        alerts: list[AlertDraft] = []
        for g in grouped.iter_rows(named=True):
            rule = by_index[int(g["rule"])]
            if level_rank(rule.level) < floor or g["first"] is None:
                continue
            host = g["Computer"] or "unknown"
            kind = kind_of(rule)
            alerts.append(
                AlertDraft(
                    detector=self.name,
                    kind=kind,
                    severity=_SEVERITY.get(rule.level, "medium"),
                    title=f"Sigma: {rule.title} ({host})",
                    first_seen=g["first"],
                    last_seen=g["last"],
                    keys=[f"host:{host}", f"sigma:{rule.id}"],
                    host=host,
                    event_count=int(g["n"]),
                    evidence={
                        "rule_id": rule.id,
                        "rule": rule.title,
                        "level": rule.level,
                        "attack": [t for t in rule.tags if t.startswith("attack.")],
                        "file": g["file"],
                        "records": [int(r) for r in g["records"]],
                        "description": rule.description,
                    },
                ).with_dedup(ctx.batch_id, rule.id, host, g["first"])
            )
        return alerts
