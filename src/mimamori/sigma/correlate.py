"""Sigma correlation rules (event_count, value_count, temporal, temporal_ordered).

Correlation rules are read with pySigma's ``SigmaCorrelationRule`` model; the rules they
refer to (by ``name`` or ``id``) must be in the same load. They run over the base detections
of a scan (or of a detector's window), grouped by the ``group-by`` fields:

- ``event_count``: the number of matching events in a sliding window of ``timespan``;
- ``value_count``: the number of distinct values of ``condition.field`` in that window;
- ``temporal``: every referenced rule matched within ``timespan``, in any order;
- ``temporal_ordered``: they matched in the order listed, the last within ``timespan`` of
  the first.

One detection is emitted per group, at the first window where the condition holds. Other
correlation types (value_sum, extended conditions, aliases) are listed as issues.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import polars as pl
from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
)
from sigma.exceptions import SigmaError

from mimamori.sigma.errors import RuleIssue

if TYPE_CHECKING:
    from mimamori.sigma.rules import RuleSet

SUPPORTED = {
    SigmaCorrelationType.EVENT_COUNT,
    SigmaCorrelationType.VALUE_COUNT,
    SigmaCorrelationType.TEMPORAL,
    SigmaCorrelationType.TEMPORAL_ORDERED,
}

_OPS = {
    SigmaCorrelationConditionOperator.LT: lambda e, n: e < n,
    SigmaCorrelationConditionOperator.LTE: lambda e, n: e <= n,
    SigmaCorrelationConditionOperator.GT: lambda e, n: e > n,
    SigmaCorrelationConditionOperator.GTE: lambda e, n: e >= n,
    SigmaCorrelationConditionOperator.EQ: lambda e, n: e == n,
    SigmaCorrelationConditionOperator.NEQ: lambda e, n: e != n,
}


@dataclass(frozen=True)
class CompiledCorrelation:
    rule: int  # its RuleMeta.index
    type: SigmaCorrelationType
    refs: tuple[int, ...]  # RuleMeta.index of the referenced rules, in order
    group_by: tuple[str, ...]
    seconds: int
    op: SigmaCorrelationConditionOperator | None
    count: int | None
    value_field: str | None

    @property
    def fields(self) -> tuple[str, ...]:
        return self.group_by + ((self.value_field,) if self.value_field else ())


def compile_correlations(out: RuleSet, docs: list[tuple[str, dict[str, Any]]], floor: int) -> None:
    from mimamori.sigma.rules import RuleMeta, level_rank

    by_ref: dict[str, int] = {}
    for r in out.rules:
        by_ref[r.id] = r.index
        if r.name:
            by_ref[r.name] = r.index
    for path, doc in docs:
        rid, title = str(doc.get("id") or "") or None, doc.get("title")
        try:
            rule = SigmaCorrelationRule.from_dict(doc)
        except SigmaError as exc:
            out.issues.append(RuleIssue(path, str(exc), rid, title))
            continue
        reason = _unsupported(rule)
        refs = [by_ref.get(r.reference) for r in rule.rules or []]
        if reason is None and any(r is None for r in refs):
            missing = [r.reference for r, i in zip(rule.rules or [], refs, strict=True) if i is None]
            reason = f"refers to rules not loaded: {', '.join(missing)}"
        if reason is not None:
            out.issues.append(RuleIssue(path, reason, rid, title))
            continue
        level = rule.level.name.lower() if rule.level else "informational"
        if level_rank(level) < floor:
            out.skipped += 1
            continue  # a correlation below --min-level does not run at all
        index = len(out.rules)
        cond = rule.condition
        assert isinstance(cond, SigmaCorrelationCondition) or rule.type in (
            SigmaCorrelationType.TEMPORAL,
            SigmaCorrelationType.TEMPORAL_ORDERED,
        )
        out.rules.append(
            RuleMeta(
                index=index,
                id=str(rule.id) if rule.id else (rid or ""),
                title=rule.title,
                level=level,
                tags=tuple(str(t) for t in rule.tags),
                path=path,
                logsource="correlation",
                name=rule.name,
                description=(rule.description or "").strip(),
            )
        )
        out.documents.append(doc)
        fieldref = getattr(cond, "fieldref", None) if cond is not None else None
        out.correlations.append(
            CompiledCorrelation(
                rule=index,
                type=rule.type,
                refs=tuple(int(r) for r in refs if r is not None),
                group_by=tuple(rule.group_by or ()),
                seconds=int(rule.timespan.seconds),
                op=getattr(cond, "op", None),
                count=getattr(cond, "count", None),
                value_field=fieldref if isinstance(fieldref, str) else None,
            )
        )


def _unsupported(rule: SigmaCorrelationRule) -> str | None:
    if rule.type not in SUPPORTED:
        return f"correlation type {rule.type.name.lower()} is not supported"
    if rule.aliases and rule.aliases.aliases:
        return "correlation field aliases are not supported"
    cond = rule.condition
    if rule.type in (SigmaCorrelationType.EVENT_COUNT, SigmaCorrelationType.VALUE_COUNT) and not isinstance(
        cond, SigmaCorrelationCondition
    ):
        return "extended correlation conditions are not supported"
    if rule.type is SigmaCorrelationType.VALUE_COUNT and not isinstance(getattr(cond, "fieldref", None), str):
        return "value_count needs one condition field"
    return None


def correlate(ruleset: RuleSet, base: pl.DataFrame) -> pl.DataFrame:
    """Detections of the correlation rules over base detections (``rule``, ``@timestamp``, fields)."""
    from mimamori.sigma.engine import DETECTION_SCHEMA, describe

    out: list[pl.DataFrame] = []
    for c in ruleset.correlations:
        ev = base.filter(pl.col("rule").is_in(list(c.refs)))
        for f in c.fields:
            if f not in ev.columns:
                ev = ev.with_columns(pl.lit(None, dtype=pl.String).alias(f))
        ev = ev.filter(pl.col("@timestamp").is_not_null())
        if c.group_by:
            ev = ev.filter(pl.all_horizontal([pl.col(g).is_not_null() for g in c.group_by]))
        if ev.height == 0:
            continue
        hits = _fire(c, ev.sort("@timestamp"))
        if hits.height:
            out.append(hits.with_columns(pl.lit(c.rule, dtype=pl.Int32).alias("rule")))
    if not out:
        return describe(ruleset, pl.DataFrame(schema=DETECTION_SCHEMA).drop("__row"))
    frame = pl.concat(out, how="diagonal_relaxed")
    cols = [c for c in DETECTION_SCHEMA if c != "__row"]
    frame = frame.select(
        [
            pl.col(c).cast(t) if c in frame.columns else pl.lit(None, dtype=t).alias(c)
            for c, t in DETECTION_SCHEMA.items()
            if c in cols
        ]
        + [pl.col("correlation.group")]
    )
    return describe(ruleset, frame)


def _group_key(c: CompiledCorrelation) -> pl.Expr:
    if not c.group_by:
        return pl.lit("")
    return pl.concat_str([pl.col(g).cast(pl.String) for g in c.group_by], separator="|")


def _fire(c: CompiledCorrelation, ev: pl.DataFrame) -> pl.DataFrame:
    ev = ev.with_columns(_group_key(c).alias("correlation.group"))
    period = f"{max(c.seconds, 1)}s"
    if c.type in (SigmaCorrelationType.EVENT_COUNT, SigmaCorrelationType.VALUE_COUNT):
        agg = (
            pl.len() if c.type is SigmaCorrelationType.EVENT_COUNT else pl.col(str(c.value_field)).n_unique()
        )
        win = ev.rolling("@timestamp", period=period, group_by="correlation.group").agg(
            agg.alias("__n"), pl.col("log.file.path").last(), pl.col("winlog.record_id").last(),
            pl.col("Computer").last(),
        )  # fmt: skip
        assert c.op is not None and c.count is not None
        win = win.filter(_OPS[c.op](pl.col("__n"), c.count))
        return win.group_by("correlation.group", maintain_order=True).first().drop("__n")
    if c.type is SigmaCorrelationType.TEMPORAL:
        ev = ev.with_columns(pl.col("rule").alias("__ref"))
        win = ev.rolling("@timestamp", period=period, group_by="correlation.group").agg(
            pl.col("__ref").n_unique().alias("__n"), pl.col("log.file.path").last(),
            pl.col("winlog.record_id").last(), pl.col("Computer").last(),
        )  # fmt: skip
        need = len(set(c.refs))
        win = win.filter(pl.col("__n") >= need)
        return win.group_by("correlation.group", maintain_order=True).first().drop("__n")
    # temporal_ordered: the referenced rules in order, last within timespan of the first
    rows: list[dict[str, Any]] = []
    span = timedelta(seconds=c.seconds)
    for (group,), part in ev.group_by(["correlation.group"], maintain_order=True):
        seq = part.select("rule", "@timestamp", "log.file.path", "winlog.record_id", "Computer").rows()
        hit = _ordered(seq, c.refs, span)
        if hit is not None:
            rows.append({"correlation.group": group, "@timestamp": hit[1], "log.file.path": hit[2],
                         "winlog.record_id": hit[3], "Computer": hit[4]})  # fmt: skip
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def _ordered(seq: list[tuple[Any, ...]], refs: tuple[int, ...], span: timedelta) -> tuple[Any, ...] | None:
    """The event completing ``refs`` in order within ``span`` of its first, or None."""
    for i, first in enumerate(seq):
        if first[0] != refs[0]:
            continue
        want = 1
        if want == len(refs):
            return first
        for ev in seq[i + 1 :]:
            if ev[1] - first[1] > span:
                break
            if ev[0] == refs[want]:
                want += 1
                if want == len(refs):
                    return ev
    return None
