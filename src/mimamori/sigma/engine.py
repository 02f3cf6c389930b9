"""Evaluate a compiled rule set over wide Windows event frames, batch by batch.

The batch is split by (Channel, EventID); each part meets only the rule variants indexed to
it, all evaluated in one Polars ``select`` (one boolean column per variant, run in parallel
by Polars). Lower-cased copies of the fields those rules read are made once per part.
The result is a detections frame: one row per (rule, event), whichever variant matched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from mimamori.sigma.compiler import ALL, LC, Needs
from mimamori.sigma.rules import CompiledVariant, RuleSet
from mimamori.sources.winlog import sigma_columns

#: the event columns copied into each detection
EVENT_COLUMNS = (
    "@timestamp",
    "log.file.path",
    "log.file.line",
    "winlog.record_id",
    "Computer",
    "EventID",
    "Channel",
)

DETECTION_SCHEMA: dict[str, pl.DataType] = {
    "rule": pl.Int32(),
    "@timestamp": pl.Datetime("us", "UTC"),
    "log.file.path": pl.String(),
    "log.file.line": pl.Int64(),
    "winlog.record_id": pl.Int64(),
    "Computer": pl.String(),
    "EventID": pl.String(),
    "Channel": pl.String(),
    "__row": pl.UInt32(),
}


#: the expressions are already minimal; planning them again for a handful of rows costs more
_NO_OPT = pl.QueryOptFlags.none()


def empty_detections() -> pl.DataFrame:
    return pl.DataFrame(schema=DETECTION_SCHEMA)


@dataclass
class _Plan:
    variants: list[CompiledVariant]
    needs: Needs


@dataclass
class SigmaEngine:
    ruleset: RuleSet
    _plans: dict[tuple[str, str], _Plan] = field(default_factory=dict)

    def _plan(self, channel: str, event_id: str) -> _Plan:
        key = (channel, event_id)
        plan = self._plans.get(key)
        if plan is None:
            chosen = [
                v
                for v in self.ruleset.variants
                if (v.channels is None or channel in v.channels)
                and (v.event_ids is None or event_id in v.event_ids)
            ]
            needs = Needs()
            for v in chosen:
                needs.update(v.needs)
                needs.lower |= {f for f, _lit in v.literals or ()}
            plan = self._plans[key] = _Plan(chosen, needs)
        return plan

    def evaluate(self, wide: pl.DataFrame) -> pl.DataFrame:
        """Detections of one wide batch; ``__row`` is the event's row in ``wide``."""
        if wide.height == 0 or not self.ruleset.variants:
            return empty_detections()
        frame = wide.with_row_index("__row")
        for c in ("Channel", "EventID"):
            if c not in frame.columns:
                frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(c))
        frame = frame.with_columns(
            pl.col("Channel").str.to_lowercase().fill_null("").alias("__ch"),
            pl.col("EventID").fill_null("").alias("__eid"),
        )
        out: list[pl.DataFrame] = []
        for (ch, eid), part in frame.partition_by(["__ch", "__eid"], as_dict=True).items():
            plan = self._plan(str(ch), str(eid))
            if not plan.variants:
                continue
            out.append(self._run(part, plan))
        if not out:
            return empty_detections()
        return pl.concat(out).unique(["rule", "__row"], keep="first", maintain_order=True)

    def _run(self, part: pl.DataFrame, plan: _Plan) -> pl.DataFrame:
        needs = plan.needs
        have = set(part.columns)
        missing = sorted((needs.raw | needs.lower) - have)
        prep: list[pl.Expr] = [pl.lit(None, dtype=pl.String).alias(m) for m in missing]
        if prep:
            part = part.with_columns(prep)
        lower = [pl.col(f).str.to_lowercase().alias(LC + f) for f in sorted(needs.lower)]
        if needs.keywords:
            cols = sigma_columns(wide_only(part))
            lower.append(
                pl.concat_str([pl.col(c).fill_null("") for c in cols], separator="\x00")
                .str.to_lowercase()
                .alias(ALL)
            )
        if lower:
            part = part.with_columns(lower)
        frames: list[pl.DataFrame] = []
        keep = [c for c in EVENT_COLUMNS if c in part.columns]
        by_literal = [i for i, v in enumerate(plan.variants) if v.literals]
        if by_literal:
            frames.extend(self._by_literals(part, plan, by_literal, keep))
        rest = [i for i, v in enumerate(plan.variants) if not v.literals]
        if rest:
            frames.extend(self._by_prefilters(part, plan, rest, keep))
        if not frames:
            return empty_detections()
        return pl.concat(frames, how="diagonal_relaxed").select(
            [
                pl.col(c).cast(t) if c in frames[0].columns else pl.lit(None, dtype=t).alias(c)
                for c, t in DETECTION_SCHEMA.items()
            ]
        )

    def _by_literals(
        self, part: pl.DataFrame, plan: _Plan, chosen: list[int], keep: list[str]
    ) -> list[pl.DataFrame]:
        """Candidate events per rule from one Aho-Corasick pass per field, then each rule's
        expression on its candidates only."""
        fields: dict[str, set[str]] = {}
        owner: dict[tuple[str, str], list[int]] = {}
        for i in chosen:
            for f, lit in plan.variants[i].literals or ():
                fields.setdefault(f, set()).add(lit)
                owner.setdefault((f, lit), []).append(i)
        part = part.with_row_index("__pos")
        pairs: list[pl.DataFrame] = []
        for f, lits in fields.items():
            pats = sorted(lits)
            found = (
                part.select(
                    pl.col("__pos"),
                    pl.col(LC + f).str.extract_many(pats, overlapping=True).alias("__lit"),
                )
                .explode("__lit")
                .drop_nulls("__lit")
                .unique()
            )
            if found.height == 0:
                continue
            m = pl.DataFrame(
                {"__lit": [lit for lit in pats for _ in owner[(f, lit)]],
                 "__v": [i for lit in pats for i in owner[(f, lit)]]},
                schema={"__lit": pl.String, "__v": pl.Int64},
            )  # fmt: skip
            pairs.append(found.join(m, on="__lit").select("__v", "__pos"))
        if not pairs:
            return []
        cand = pl.concat(pairs).unique().group_by("__v").agg(pl.col("__pos").sort())
        # only the columns the rules read: a gather of a few rows of a narrow frame is cheap
        needs = plan.needs
        cols = sorted({"__row", *keep, *needs.raw, *(LC + f for f in needs.lower)} & set(part.columns))
        narrow = part.select(cols)
        out: list[pl.DataFrame] = []
        for vi, pos in cand.iter_rows():
            v = plan.variants[int(vi)]
            hit = narrow[pos].lazy().filter(v.expr).collect(optimizations=_NO_OPT)
            if hit.height:
                out.append(
                    hit.select("__row", *keep).with_columns(pl.lit(v.rule, dtype=pl.Int32).alias("rule"))
                )
        return out

    def _by_prefilters(
        self, part: pl.DataFrame, plan: _Plan, among: list[int], keep: list[str]
    ) -> list[pl.DataFrame]:
        variants = [plan.variants[i] for i in among]
        # 1. the cheap prefilters (deduplicated) on every event of the part
        keys: dict[str, int] = {}
        pre_exprs: list[pl.Expr] = []
        slot: list[int | None] = []
        for v in variants:
            if v.prefilter is None:
                slot.append(None)
                continue
            k = keys.get(v.prefilter_key)
            if k is None:
                k = keys[v.prefilter_key] = len(pre_exprs)
                pre_exprs.append(v.prefilter.alias(f"__p{k}"))
            slot.append(k)
        if pre_exprs:
            pre = part.select(pre_exprs)
            pre_any = pre.select(pl.all().any()).row(0)
        else:
            pre, pre_any = part.select(pl.lit(True).alias("__p")), ()
        chosen = [i for i, k in enumerate(slot) if k is None or pre_any[k]]
        if not chosen:
            return []
        # 2. the full expressions, only on events some chosen prefilter let through
        if all(slot[i] is not None for i in chosen):
            cols = sorted({f"__p{slot[i]}" for i in chosen})
            mask = pre.select(pl.any_horizontal(cols)).to_series()
            part = part.filter(mask)
            pre = pre.filter(mask)
        exprs = []
        for i in chosen:
            e = variants[i].expr
            if slot[i] is not None:
                e = pl.lit(pre[f"__p{slot[i]}"]) & e
            exprs.append(e.alias(f"__v{i}"))
        hits = part.select(pl.col("__row"), *exprs)
        any_hit = hits.select(pl.all().exclude("__row").any()).row(0)
        frames = []
        for i, flag in zip(chosen, any_hit, strict=True):
            if not flag:
                continue
            rows = hits.filter(pl.col(f"__v{i}"))["__row"]
            ev = part.filter(pl.col("__row").is_in(rows.implode())).select("__row", *keep)
            frames.append(ev.with_columns(pl.lit(variants[i].rule, dtype=pl.Int32).alias("rule")))
        return frames


def wide_only(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame without the engine's helper columns."""
    return frame.select([c for c in frame.columns if not c.startswith("__")])


def describe(ruleset: RuleSet, detections: pl.DataFrame) -> pl.DataFrame:
    """Detections with the rule's id, title, level and tags."""
    meta = pl.DataFrame(
        {
            "rule": [r.index for r in ruleset.rules],
            "rule.id": [r.id for r in ruleset.rules],
            "rule.name": [r.title for r in ruleset.rules],
            "rule.level": [r.level for r in ruleset.rules],
            "rule.tags": [list(r.tags) for r in ruleset.rules],
        },
        schema={
            "rule": pl.Int32(),
            "rule.id": pl.String(),
            "rule.name": pl.String(),
            "rule.level": pl.String(),
            "rule.tags": pl.List(pl.String()),
        },
    )
    return detections.join(meta, on="rule", how="left")
