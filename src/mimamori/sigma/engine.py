"""Evaluate a compiled rule set over wide Windows event frames, batch by batch.

The batch's rows are grouped by (Channel, EventID); each part gathers only the columns the
rule variants indexed to it read, lower-cased once per part. Of those variants, only the ones
whose necessary literals (``CompiledVariant.literals``) or prefilters occur in the part are
evaluated, on the rows where they occur: every distinct leaf of their trees once (one Polars
``select``, run in parallel; the substrings of all rules on a column in one Aho-Corasick
pass), then each variant's tree over the leaves' bit sets (Python ints, bit i = row i).
Polars' per-expression planning costs more than the kernels on parts this size, which is why
rules are not each one expression. The result is a detections frame: one row per (rule,
event), whichever variant matched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from mimamori.sigma.compiler import ALL, LC, Needs, Tree
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


def empty_detections() -> pl.DataFrame:
    return pl.DataFrame(schema=DETECTION_SCHEMA)


#: from this many substrings on one column, one Aho-Corasick pass beats separate searches
AHO_CORASICK_MIN = 24

#: a variant's tree over leaf ids: an id, or (op, children) with op one of these
_AND, _OR, _NOT = 1, 2, 3
_Program = int | tuple[Any, ...]


def _run_program(p: _Program, bits: dict[int, int], full: int) -> int:
    """The rows (bit set) where a tree holds, from the bit sets of its leaves."""
    if isinstance(p, int):
        return bits[p]
    op, arg = p
    if op == _NOT:
        return full ^ _run_program(arg, bits, full)
    if op == _AND:
        acc = full
        for c in arg:
            acc &= _run_program(c, bits, full)
            if not acc:
                break
        return acc
    acc = 0
    for c in arg:
        acc |= _run_program(c, bits, full)
        if acc == full:
            break
    return acc


def _bitsets(frame: pl.DataFrame, height: int) -> list[int]:
    """Each (null-free) boolean column as an int whose bit i is row i: Arrow's bitmap as is."""
    full = (1 << height) - 1
    return [_bitmap_int(col) & full for col in frame.to_arrow().columns]


def _bitmap_int(col: Any) -> int:
    arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    buf = arr.buffers()[1]
    return (int.from_bytes(buf.to_pybytes(), "little") >> arr.offset) if buf is not None else 0


def _found(frame: pl.DataFrame, texts: dict[str, list[str]]) -> pl.DataFrame:
    """(__pos, __col, __lit): each text of ``texts[column]`` that occurs in a row's ``column``.
    One Aho-Corasick pass per column, overlapping, so every text found is reported (not only
    the leftmost), and one select for all the columns."""
    lists = frame.select(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("__pos"),
        *(pl.col(c).str.extract_many(t, overlapping=True).alias(c) for c, t in texts.items()),
    )
    return (
        lists.unpivot(index="__pos", variable_name="__col", value_name="__lit")
        .explode("__lit")
        .drop_nulls("__lit")
        .unique()
    )


def _substring_bitsets(frame: pl.DataFrame, texts: dict[str, list[str]]) -> dict[tuple[str, str], int]:
    """Per (column, text), the rows (bit set) whose column contains the text."""
    found = _found(frame, texts)
    if found.height == 0:
        return {}
    keys = found.select("__col", "__lit").unique(maintain_order=True).with_row_index("__k")
    # every key's rows in one flat bitmap, each key's part byte-aligned: one scatter, no loop
    stride = (frame.height + 7) // 8 * 8
    at = found.join(keys, on=["__col", "__lit"]).select(
        pl.col("__k").cast(pl.UInt64) * stride + pl.col("__pos")
    )
    flat = pl.repeat(False, keys.height * stride, dtype=pl.Boolean, eager=True).scatter(at.to_series(), True)
    raw = _bitmap_int(flat.to_frame().to_arrow().column(0)).to_bytes(keys.height * stride // 8, "little")
    step = stride // 8
    return {(c, t): int.from_bytes(raw[k * step : (k + 1) * step], "little") for k, c, t in keys.iter_rows()}


def _positions(bits: int, n: int) -> list[int]:
    """The row numbers of the set bits."""
    out = []
    while bits:
        low = bits & -bits
        out.append(low.bit_length() - 1)
        bits ^= low
    return out


class _Leaves:
    """The distinct leaves of the rule trees (one id per distinct test) and each variant's
    tree over their ids, made once per engine."""

    def __init__(self) -> None:
        self.exprs: list[pl.Expr] = []
        self.substrings: dict[int, tuple[str, str]] = {}  # leaf id -> (column, text)
        self._ids: dict[bytes, int] = {}
        self._programs: dict[int, tuple[_Program, frozenset[int]]] = {}  # id(variant) ->

    def program(self, v: CompiledVariant) -> tuple[_Program, frozenset[int]]:
        """The variant's tree over leaf ids, and the ids it reads."""
        got = self._programs.get(id(v))
        if got is None:
            used: set[int] = set()
            got = self._programs[id(v)] = (self._program(v.tree, used), frozenset(used))
        return got

    def _program(self, t: Tree, used: set[int]) -> _Program:
        if t[0] == "leaf":
            i = self._ids.get(t[1])
            if i is None:
                i = self._ids[t[1]] = len(self.exprs)
                self.exprs.append(t[2].alias(f"__l{i}"))
                if t[3] is not None:
                    self.substrings[i] = t[3]
            used.add(i)
            return i
        if t[0] == "not":
            return (_NOT, self._program(t[1], used))
        return (_AND if t[0] == "and" else _OR, tuple(self._program(c, used) for c in t[1]))


@dataclass
class _Plan:
    """The variants one (Channel, EventID) meets, and what is shared among them per part."""

    variants: list[CompiledVariant]
    needs: Needs
    read: set[str] = field(default_factory=set)  # raw columns the variants read (+ event columns)
    by_literal: list[CompiledVariant] = field(default_factory=list)
    #: per lower-cased column its sorted literals, and per (column, literal) the ``by_literal``
    #: indices of the variants that need it
    literal_texts: dict[str, list[str]] = field(default_factory=dict)
    literal_owners: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    many_literals: dict[str, list[str]] = field(default_factory=dict)  # searched by Aho-Corasick
    few_literals: list[tuple[str, str]] = field(default_factory=list)  # searched one by one
    few_literal_exprs: list[pl.Expr] = field(default_factory=list)
    rest: list[CompiledVariant] = field(default_factory=list)
    pre_exprs: list[pl.Expr] = field(default_factory=list)
    slot: list[int | None] = field(default_factory=list)  # rest[i] -> its prefilter column
    #: the engine's table of distinct leaves (shared by all plans)
    table: _Leaves = field(default_factory=lambda: _Leaves())

    def __post_init__(self) -> None:
        self.read = {*self.needs.raw, *self.needs.lower}
        for v in self.variants:
            self.table.program(v)
        self.by_literal = [v for v in self.variants if v.literals]
        for i, v in enumerate(self.by_literal):
            for f, lit in v.literals or ():
                self.literal_owners.setdefault((LC + f, lit), []).append(i)
        for col, lit in sorted(self.literal_owners):
            self.literal_texts.setdefault(col, []).append(lit)
        for col, lits in self.literal_texts.items():
            if len(lits) >= AHO_CORASICK_MIN:
                self.many_literals[col] = lits
            else:
                self.few_literals.extend((col, lit) for lit in lits)
        self.few_literal_exprs = [
            pl.col(c).str.contains(t, literal=True).fill_null(False).alias(f"__f{k}")
            for k, (c, t) in enumerate(self.few_literals)
        ]
        self.rest = [v for v in self.variants if not v.literals]
        keys: dict[bytes, int] = {}
        for v in self.rest:
            if v.prefilter is None:
                self.slot.append(None)
                continue
            k = keys.get(v.prefilter_key)
            if k is None:
                k = keys[v.prefilter_key] = len(self.pre_exprs)
                self.pre_exprs.append(v.prefilter.alias(f"__p{k}"))
            self.slot.append(k)

    def columns(self, wide: pl.DataFrame) -> list[str]:
        """Keyword searches read every Windows field of the event."""
        return sorted(set(sigma_columns(wide)) | (self.read & set(wide.columns)))


@dataclass
class SigmaEngine:
    ruleset: RuleSet
    _plans: dict[tuple[str, str], _Plan] = field(default_factory=dict)
    _leaves: _Leaves = field(default_factory=_Leaves)

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
            plan = self._plans[key] = _Plan(chosen, needs, table=self._leaves)
        return plan

    def evaluate(self, wide: pl.DataFrame) -> pl.DataFrame:
        """Detections of one wide batch; ``__row`` is the event's row in ``wide``."""
        if wide.height == 0 or not self.ruleset.variants:
            return empty_detections()
        for c in ("Channel", "EventID"):
            if c not in wide.columns:
                wide = wide.with_columns(pl.lit(None, dtype=pl.String).alias(c))
        # one chunk per column (a no-op when so already): grouping and gathering the parts of a
        # frame concatenated from many files is otherwise 10-40 times slower
        wide = wide.rechunk()
        # the row numbers of each (channel, event id): only the two key columns are grouped;
        # each part then gathers just the columns its rules read, not the whole wide frame
        groups = (
            wide.select(
                pl.col("Channel").str.to_lowercase().fill_null("").alias("__ch"),
                pl.col("EventID").fill_null("").alias("__eid"),
            )
            .with_row_index("__row")
            .group_by("__ch", "__eid", maintain_order=True)
            .agg("__row")
        )
        have = set(wide.columns)
        found: list[pl.DataFrame] = []
        for ch, eid, rows in groups.iter_rows():
            plan = self._plan(str(ch), str(eid))
            if not plan.variants:
                continue
            cols = plan.columns(wide) if plan.needs.keywords else sorted(plan.read & have)
            idx = pl.Series("__row", rows, dtype=pl.UInt32)
            part = wide.select(cols)[idx].with_columns(idx)
            found.extend(self._run(part, plan))
        if not found:
            return empty_detections()
        hits = pl.concat(found).unique(maintain_order=True).sort("__row", "rule")
        keep = [c for c in EVENT_COLUMNS if c in have]
        ev = wide.select(keep)[hits["__row"]]
        return pl.concat([hits, ev], how="horizontal").select(
            [
                pl.col(c).cast(t) if c in hits.columns or c in keep else pl.lit(None, dtype=t).alias(c)
                for c, t in DETECTION_SCHEMA.items()
            ]
        )

    def _run(self, part: pl.DataFrame, plan: _Plan) -> list[pl.DataFrame]:
        """(rule, __row) frames of the variants of ``plan`` that match events of ``part``."""
        needs = plan.needs
        missing = sorted((needs.raw | needs.lower) - set(part.columns))
        if missing:
            part = part.with_columns([pl.lit(None, dtype=pl.String).alias(m) for m in missing])
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
        chosen: list[CompiledVariant] = []
        rows: list[pl.Series] = []
        every = False
        if plan.by_literal:
            every |= self._by_literals(part, plan, chosen, rows)
        if plan.rest:
            every |= self._by_prefilters(part, plan, chosen, rows)
        if not chosen:
            return []
        if not every:
            # a rule's tree is exact: evaluating it on events that are candidates only for
            # another rule cannot add a match, and one select serves all of the rules
            pos = pl.concat(rows).unique().sort()
            if pos.len() < part.height:
                part = part[pos]
        return [self._matches(part, plan, chosen)]

    @staticmethod
    def _matches(frame: pl.DataFrame, plan: _Plan, chosen: list[CompiledVariant]) -> pl.DataFrame:
        """The chosen variants on every row of ``frame``, as (rule, __row) pairs: each distinct
        leaf once (one ``select``, run in parallel by Polars), then each tree over bit sets."""
        table = plan.table
        programs = [table.program(v) for v in chosen]
        needed = set().union(*(used for _p, used in programs))
        subs = table.substrings
        owners: dict[tuple[str, str], list[int]] = {}
        for i in needed:
            if i in subs:
                owners.setdefault(subs[i], []).append(i)
        texts: dict[str, list[str]] = {}
        for col, text in sorted(owners):
            texts.setdefault(col, []).append(text)
        # a few substrings: one memmem search each beats building an automaton and its matches
        many = {c: t for c, t in texts.items() if len(t) >= AHO_CORASICK_MIN}
        used = sorted(i for i in needed if i not in subs or subs[i][0] not in many)
        vals = frame.select([table.exprs[i] for i in used])
        bits: dict[int, int] = dict.fromkeys(needed, 0)
        for i, b in zip(used, _bitsets(vals, frame.height), strict=True):
            bits[i] = b
        if many:
            for key, b in _substring_bitsets(frame, many).items():
                for i in owners[key]:
                    bits[i] = b
        full = (1 << frame.height) - 1
        rules: list[int] = []
        at: list[int] = []
        for v, (program, _used) in zip(chosen, programs, strict=True):
            hit = _run_program(program, bits, full)
            if hit:
                got = _positions(hit, frame.height)
                rules.extend([v.rule] * len(got))
                at.extend(got)
        row = frame["__row"]
        return pl.DataFrame(
            {"rule": pl.Series(rules, dtype=pl.Int32), "__row": row.gather(at) if at else row.clear()}
        )

    @staticmethod
    def _by_literals(
        part: pl.DataFrame, plan: _Plan, chosen: list[CompiledVariant], rows: list[pl.Series]
    ) -> bool:
        """Candidate events: those with one of the literals of which each rule needs one (one
        Aho-Corasick pass per column with many literals, one search per literal otherwise)."""
        picked: set[int] = set()
        owners = plan.literal_owners
        if plan.few_literals:
            flags = part.select(plan.few_literal_exprs)
            for key, hit in zip(plan.few_literals, flags.select(pl.all().any()).row(0), strict=True):
                if hit:
                    picked.update(owners[key])
            if picked:
                rows.append(flags.select(pl.any_horizontal(pl.all())).to_series().arg_true().cast(pl.UInt32))
        if plan.many_literals:
            found = _found(part, plan.many_literals)
            if found.height:
                rows.append(found["__pos"])
                for key in found.select("__col", "__lit").unique().iter_rows():
                    picked.update(owners[key])
        chosen.extend(plan.by_literal[i] for i in sorted(picked))
        return False

    @staticmethod
    def _by_prefilters(
        part: pl.DataFrame, plan: _Plan, chosen: list[CompiledVariant], rows: list[pl.Series]
    ) -> bool:
        """The cheap prefilters (deduplicated) on every event of the part; True when a chosen
        variant has none (so every event is evaluated)."""
        if plan.pre_exprs:
            pre = part.select(plan.pre_exprs)
            pre_any = pre.select(pl.all().any()).row(0)
        else:
            pre, pre_any = part.select(pl.lit(True).alias("__p")), ()
        picked = [i for i, k in enumerate(plan.slot) if k is None or pre_any[k]]
        chosen.extend(plan.rest[i] for i in picked)
        if not picked:
            return False
        if any(plan.slot[i] is None for i in picked):
            return True
        cols = sorted({f"__p{plan.slot[i]}" for i in picked})
        rows.append(pre.select(pl.any_horizontal(cols)).to_series().arg_true().cast(pl.UInt32))
        return False


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
