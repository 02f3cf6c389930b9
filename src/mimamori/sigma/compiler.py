"""A pySigma condition tree (after the processing pipeline) -> one vectorised Polars expression.

Semantics (Sigma specification, checked against pySigma's SQLite backend by the two-engine
test):

- string values match case-insensitively (both sides lower-cased, Unicode-aware) unless
  ``|cased``; plain values are whole-value equality, ``*`` and ``?`` are wildcards;
- ``|re`` is case-sensitive unless its ``i`` flag is set; ``m`` and ``s`` flags are honoured;
  it is a search (unanchored), like Sigma's reference backends;
- a condition on a field the event lacks is false, and ``not`` of it is true (two-valued
  logic: every leaf is null-filled to false);
- ``null`` matches a missing or null field; ``|exists`` tests presence; numbers compare as
  text for equality and numerically for ``gt/gte/lt/lte``; ``|cidr`` matches the address
  prefixes of the network; ``|fieldref`` compares two fields case-insensitively;
- keywords (values without a field) search every Windows field of the event.

A rule compiles to a boolean tree (``Tree``) whose leaves are single Polars kernels; lists of
plain values on one field are grouped (equality into one ``is_in``), and every plain substring
is its own leaf, marked so the engine finds the substrings of all rules of a batch with one
Aho-Corasick pass per column (a rule with 300 alternatives costs no more than one with 3).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import (
    CompareOperators,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SigmaType,
    SpecialChars,
)

from mimamori.sigma.errors import SigmaCompileError

LC = "__lc__"  # prefix of the lower-cased copy of a field, made once per batch
ALL = "__all__"  # every Windows field of the event, lower-cased, NUL-separated (keywords)
_META = re.compile(r"[\\.+*?()|\[\]{}^$#&\-~]")


def lc(name: str) -> str:
    return LC + name


def rx_escape(text: str) -> str:
    """Escape for the Rust regex syntax Polars uses (no superfluous escapes of letters)."""
    return _META.sub(lambda m: "\\" + m.group(0), text)


class PythonRegexSearch:
    """``re.search`` as a Polars UDF that pickles (by pattern), for the compiled-rule cache."""

    def __init__(self, pattern: str, flags: int) -> None:
        self.pattern, self.flags = pattern, flags
        self._rx = re.compile(pattern, flags)

    def __call__(self, value: str) -> bool:
        return self._rx.search(value) is not None

    def __reduce__(self) -> tuple[Any, ...]:
        return (PythonRegexSearch, (self.pattern, self.flags))


@dataclass
class Needs:
    """The columns an expression reads: raw fields, lower-cased fields, the keyword column."""

    raw: set[str] = field(default_factory=set)
    lower: set[str] = field(default_factory=set)
    keywords: bool = False
    python_regex: bool = False  # a pattern Polars' regex engine refuses ran through Python's re

    def update(self, other: Needs) -> None:
        self.raw |= other.raw
        self.lower |= other.lower
        self.keywords |= other.keywords
        self.python_regex |= other.python_regex


# A leaf in a form that can be grouped with its siblings: (kind, column, literal)
_Groupable = tuple[str, str, str]

#: A boolean tree: ``("leaf", key, expr, substring)`` (a null-filled kernel; equal ``key``s are
#: the same test, so the engine evaluates each once per batch however many rules share it;
#: ``substring`` is ``(column, text)`` when the test is "column contains text", which the engine
#: runs for all rules at once with one Aho-Corasick pass per column), ``("and", children)``,
#: ``("or", children)``, ``("not", child)``.
Tree = tuple[Any, ...]


def leaf(expr: pl.Expr, substring: tuple[str, str] | None = None) -> Tree:
    e = expr.fill_null(False)
    return ("leaf", expr_key(e), e, substring)


def expr_key(e: pl.Expr) -> bytes:
    """Equal for equal expressions (``str`` would not do: it elides the middle of long lists).
    An expression calling Python (``PythonRegexSearch``) does not serialise without cloudpickle:
    it gets a key of its own, shared with nothing."""
    try:
        return e.meta.serialize()
    except pl.exceptions.ComputeError:
        return b"python:%d" % next(_UNSHARED)


_UNSHARED = itertools.count()


def tree_expr(t: Tree) -> pl.Expr:
    """The one Polars expression of a tree."""
    if t[0] == "leaf":
        return t[2]
    if t[0] == "not":
        return ~tree_expr(t[1])
    kids = [tree_expr(c) for c in t[1]]
    if len(kids) == 1:
        return kids[0]
    return pl.all_horizontal(kids) if t[0] == "and" else pl.any_horizontal(kids)


def tree_node(op: str, kids: list[Tree]) -> Tree:
    return kids[0] if len(kids) == 1 else (op, tuple(kids))


class Compiler:
    """Compiles one rule's condition tree; ``needs`` collects the columns it reads."""

    def __init__(self) -> None:
        self.needs = Needs()

    # ------------------------------------------------------------------ tree
    def compile(self, node: Any) -> pl.Expr:
        """``node``: a pySigma condition element (item, field=value or value expression)."""
        return tree_expr(self.tree(node))

    def tree(self, node: Any) -> Tree:
        if isinstance(node, ConditionAND):
            return tree_node("and", [self.tree(a) for a in node.args])
        if isinstance(node, ConditionOR):
            return self._or(node.args)
        if isinstance(node, ConditionNOT):
            return ("not", self.tree(node.args[0]))
        if isinstance(node, ConditionFieldEqualsValueExpression):
            g = self._groupable(node.field, node.value)
            if g is not None:
                return self._grouped([g])
            if isinstance(node.value, SigmaExpansion) and node.field is not None:
                # e.g. |windash: one alternative per dash, most of them plain substrings
                return self._alternatives(node.field, node.value.values)
            return leaf(self._leaf(node.field, node.value))
        if isinstance(node, ConditionValueExpression):
            return leaf(self._keyword(node.value))
        raise SigmaCompileError(f"unsupported condition element {type(node).__name__}")

    def _alternatives(self, fname: str, values: list[SigmaType]) -> Tree:
        groupable: list[_Groupable] = []
        rest: list[Tree] = []
        for v in values:
            g = self._groupable(fname, v)
            if g is not None:
                groupable.append(g)
            else:
                rest.append(leaf(self._leaf(fname, v)))
        if groupable:
            rest.append(self._grouped(groupable))
        return tree_node("or", rest)

    def _or(self, args: list) -> Tree:
        groupable: list[_Groupable] = []
        rest: list[Tree] = []
        for a in args:
            g = (
                self._groupable(a.field, a.value)
                if isinstance(a, ConditionFieldEqualsValueExpression)
                else None
            )
            if g is not None:
                groupable.append(g)
            else:
                rest.append(self.tree(a))
        if groupable:
            rest.append(self._grouped(groupable))
        return tree_node("or", rest)

    # ------------------------------------------------------------------ plain strings
    def _groupable(self, fname: str | None, value: SigmaType) -> _Groupable | None:
        """Plain case-insensitive equality/substring/prefix/suffix leaves, or None."""
        if fname is None or type(value) is not SigmaString:
            return None
        parts = list(value.s)
        if any(not isinstance(p, str) and p is not SpecialChars.WILDCARD_MULTI for p in parts):
            return None
        texts = [p for p in parts if isinstance(p, str)]
        if len(texts) > 1:
            return None
        text = texts[0].lower() if texts else ""
        stars = [p is SpecialChars.WILDCARD_MULTI for p in parts]
        if not texts:
            return ("any", fname, "") if stars else ("eq", fname, "")
        if len(parts) == 1:
            return ("eq", fname, text)
        if parts == [SpecialChars.WILDCARD_MULTI, texts[0], SpecialChars.WILDCARD_MULTI]:
            return ("contains", fname, text)
        if parts == [texts[0], SpecialChars.WILDCARD_MULTI]:
            return ("startswith", fname, text)
        if parts == [SpecialChars.WILDCARD_MULTI, texts[0]]:
            return ("endswith", fname, text)
        return None  # e.g. "**x" or "x**": left to the regex path

    def _grouped(self, items: list[_Groupable]) -> Tree:
        by: dict[tuple[str, str], list[str]] = {}
        for kind, fname, text in items:
            by.setdefault((kind, fname), []).append(text)
        exprs: list[pl.Expr] = []
        subs: list[Tree] = []
        for (kind, fname), texts in by.items():
            if kind == "any":
                self.needs.raw.add(fname)
                exprs.append(pl.col(fname).is_not_null())
                continue
            self.needs.lower.add(fname)
            c = pl.col(lc(fname))
            uniq = sorted(set(texts))
            if kind == "eq":
                exprs.append(c == uniq[0] if len(uniq) == 1 else c.is_in(uniq))
            elif kind == "contains":
                if "" in uniq:
                    exprs.append(c.is_not_null())
                else:
                    subs.extend(leaf(c.str.contains(t, literal=True), (lc(fname), t)) for t in uniq)
            elif kind == "startswith":
                exprs.extend(c.str.starts_with(t) for t in uniq)
            else:
                exprs.extend(c.str.ends_with(t) for t in uniq)
        return tree_node("or", [leaf(e) for e in exprs] + subs)

    # ------------------------------------------------------------------ other leaves
    def _leaf(self, fname: str | None, value: SigmaType) -> pl.Expr:
        if fname is None:
            return self._keyword(value)
        if isinstance(value, SigmaExpansion):
            return pl.any_horizontal([self._leaf(fname, v).fill_null(False) for v in value.values])
        if isinstance(value, SigmaNull):
            self.needs.raw.add(fname)
            return pl.col(fname).is_null()
        if isinstance(value, SigmaExists):
            self.needs.raw.add(fname)
            return pl.col(fname).is_not_null() if value.exists else pl.col(fname).is_null()
        if isinstance(value, SigmaCasedString):
            self.needs.raw.add(fname)
            return self._string(pl.col(fname), value, lower=False)
        if isinstance(value, SigmaString):
            self.needs.lower.add(fname)
            return self._string(pl.col(lc(fname)), value, lower=True)
        if isinstance(value, SigmaBool):
            self.needs.lower.add(fname)
            return pl.col(lc(fname)).is_in(["true", "1"] if value.boolean else ["false", "0"])
        if isinstance(value, SigmaNumber):
            self.needs.raw.add(fname)
            return pl.col(fname) == str(value.number)
        if isinstance(value, SigmaRegularExpression):
            self.needs.raw.add(fname)
            return self._regex(pl.col(fname), value)
        if isinstance(value, SigmaCIDRExpression):
            self.needs.lower.add(fname)
            prefixes = [p.lower() for p in value.expand(wildcard="*")]
            c = pl.col(lc(fname))
            alts = [c.str.starts_with(p[:-1]) if p.endswith("*") else c == p for p in prefixes]
            return alts[0] if len(alts) == 1 else pl.any_horizontal([a.fill_null(False) for a in alts])
        if isinstance(value, SigmaCompareExpression):
            self.needs.raw.add(fname)
            num = pl.col(fname).cast(pl.Float64, strict=False)
            n = float(value.number.number)
            ops = {
                CompareOperators.LT: num < n,
                CompareOperators.LTE: num <= n,
                CompareOperators.GT: num > n,
                CompareOperators.GTE: num >= n,
            }
            return ops[value.op]
        if isinstance(value, SigmaFieldReference):
            self.needs.lower.update({fname, value.field})
            a, b = pl.col(lc(fname)), pl.col(lc(value.field))
            if value.starts_with and value.ends_with:
                return a.str.contains(b, literal=True)
            if value.starts_with:
                return a.str.starts_with(b)
            if value.ends_with:
                return a.str.ends_with(b)
            return a == b
        raise SigmaCompileError(f"field {fname}: unsupported value type {type(value).__name__}")

    def _string(self, col: pl.Expr, value: SigmaString, *, lower: bool) -> pl.Expr:
        pattern = self._wildcard_regex(value, lower=lower, any_char=".")
        if pattern is None:  # no wildcard: whole-value equality
            text = value.to_plain()
            return col == (text.lower() if lower else text)
        return col.str.contains("(?s)^" + pattern + "$")

    @staticmethod
    def _wildcard_regex(value: SigmaString, *, lower: bool, any_char: str) -> str | None:
        out: list[str] = []
        special = False
        for p in value.s:
            if isinstance(p, str):
                out.append(rx_escape(p.lower() if lower else p))
            elif p is SpecialChars.WILDCARD_MULTI:
                out.append(any_char + "*")
                special = True
            elif p is SpecialChars.WILDCARD_SINGLE:
                out.append(any_char)
                special = True
            else:
                raise SigmaCompileError(f"unexpanded placeholder {p!r} in value {value!s}")
        return "".join(out) if special else None

    def _regex(self, col: pl.Expr, value: SigmaRegularExpression) -> pl.Expr:
        flags = "".join(sorted(value.sigma_to_re_flag[f] for f in value.flags if f in value.sigma_to_re_flag))
        pattern = str(value.regexp)
        prefixed = f"(?{flags}){pattern}" if flags else pattern
        try:
            pl.Series([""], dtype=pl.String).str.contains(prefixed)
        except pl.exceptions.ComputeError:
            # look-around or back-references: Python's re, on this column only
            py_flags = 0
            for f in value.flags:
                py_flags |= value.sigma_to_python_flags[f]
            self.needs.python_regex = True
            return col.map_elements(PythonRegexSearch(pattern, py_flags), return_dtype=pl.Boolean)
        return col.str.contains(prefixed)

    def _keyword(self, value: SigmaType) -> pl.Expr:
        self.needs.keywords = True
        c = pl.col(ALL)
        if isinstance(value, SigmaExpansion):
            return pl.any_horizontal([self._keyword(v).fill_null(False) for v in value.values])
        if isinstance(value, SigmaString):
            cased = isinstance(value, SigmaCasedString)
            pattern = self._wildcard_regex(value, lower=not cased, any_char="[^\\x00]")
            text = value.to_plain() if pattern is None else ""
            if cased:
                raise SigmaCompileError("cased keyword searches are not supported")
            if pattern is None:
                return c.str.contains(text.lower(), literal=True)  # keywords: see tree()
            return c.str.contains("(?s)" + pattern)
        if isinstance(value, SigmaNumber):
            return c.str.contains(str(value.number), literal=True)
        if isinstance(value, SigmaRegularExpression):
            return self._regex(c, value)
        raise SigmaCompileError(f"keyword of type {type(value).__name__} is not supported")
