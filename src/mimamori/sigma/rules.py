"""Load a Sigma rules folder (SigmaHQ ``rules/`` layout) with pySigma and compile it.

Each Windows rule is run through pySigma's log-source pipelines and compiled to a Polars
expression per *variant*:

- ``sysmon``: ``sysmon_pipeline`` + ``windows_logsource_pipeline`` (process_creation →
  Sysmon EventID 1 on the Sysmon channel, file_event → 11, …; service → Channel);
- ``audit``: ``windows_audit_pipeline`` + ``windows_logsource_pipeline`` for the categories
  Windows' own audit log also records (process_creation → Security 4688 with
  ``NewProcessName``/``ParentProcessName``, registry → 4657).

A rule matches an event when any of its variants does. Each variant is indexed by the
``Channel`` and ``EventID`` values its pipeline conditions pin, so a batch meets only the
rules that can match it. Anything that goes wrong with one rule (YAML, the rule model, an
unknown modifier, a pipeline refusing a field, a value with no Polars form, a log source no
pipeline maps) becomes a ``RuleIssue`` and the load goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml
from sigma.collection import SigmaCollection
from sigma.conditions import ConditionAND, ConditionFieldEqualsValueExpression, ConditionOR
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.pipelines.sysmon import sysmon_pipeline
from sigma.pipelines.windows import windows_audit_pipeline, windows_logsource_pipeline
from sigma.pipelines.windows.windows import generic_logsource_to_windows_audit_event_mapping
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaRule
from sigma.types import SigmaNumber, SigmaString

from mimamori import yamlio
from mimamori.sigma.compiler import Compiler, Needs, Tree, expr_key, tree_expr, tree_node
from mimamori.sigma.errors import RuleIssue, RulesNotFoundError, SigmaCompileError

LEVELS = ("informational", "low", "medium", "high", "critical")


#: the categories windows_audit_pipeline maps (its module annotates the dict oddly for mypy)
_AUDIT_CATEGORIES: Any = generic_logsource_to_windows_audit_event_mapping


def _sysmon() -> ProcessingPipeline:
    return sysmon_pipeline() + windows_logsource_pipeline()


def _audit() -> ProcessingPipeline:
    return windows_audit_pipeline() + windows_logsource_pipeline()


#: variant name -> (pipeline factory, categories it applies to; None: every rule)
VARIANTS: dict[str, tuple[Callable[[], ProcessingPipeline], frozenset[str] | None]] = {
    "sysmon": (_sysmon, None),
    "audit": (_audit, frozenset(str(k) for k in _AUDIT_CATEGORIES)),
}


_PIPELINES: dict[str, ProcessingPipeline] = {}


def pipeline_of(variant: str) -> ProcessingPipeline:
    """The variant's pipeline, built once (``apply`` resets its per-rule state)."""
    p = _PIPELINES.get(variant)
    if p is None:
        p = _PIPELINES[variant] = VARIANTS[variant][0]()
    return p


def level_rank(level: str | None) -> int:
    return LEVELS.index(level) if level in LEVELS else 0


@dataclass(frozen=True)
class RuleMeta:
    index: int
    id: str
    title: str
    level: str
    tags: tuple[str, ...]
    path: str
    logsource: str
    name: str | None = None
    description: str = ""


@dataclass
class CompiledVariant:
    rule: int  # RuleMeta.index
    variant: str
    #: the condition as a boolean tree of null-filled leaves (see ``compiler.Tree``)
    tree: Tree
    needs: Needs
    channels: frozenset[str] | None  # lower-cased Channel values, None: any
    event_ids: frozenset[str] | None
    #: a cheap, selective conjunct of ``expr`` (true wherever ``expr`` is): the engine runs it on
    #: every event and the tree only where some such prefilter holds. None: on every event.
    prefilter: pl.Expr | None = None
    prefilter_key: bytes = b""
    #: (field, lower-cased literal) pairs of which one occurs in any event ``expr`` matches: the
    #: engine finds candidate events for all such rules with one Aho-Corasick pass per field
    literals: tuple[tuple[str, str], ...] | None = None

    @property
    def expr(self) -> pl.Expr:
        """The condition as one Polars expression."""
        return tree_expr(self.tree)


@dataclass
class RuleSet:
    rules: list[RuleMeta] = field(default_factory=list)
    variants: list[CompiledVariant] = field(default_factory=list)
    issues: list[RuleIssue] = field(default_factory=list)
    correlations: list[Any] = field(default_factory=list)  # sigma.correlate.CompiledCorrelation
    documents: list[dict[str, Any]] = field(default_factory=list)  # YAML of rules[i]
    skipped: int = 0  # rules for other products (not Windows), or below ``min_level``
    min_level: str | None = None  # detections of rules below it are not reported

    @property
    def failed(self) -> list[RuleIssue]:
        return [i for i in self.issues if i.kind == "error"]

    def summary(self) -> dict[str, int]:
        return {
            "rules": len(self.rules),
            "variants": len(self.variants),
            "correlations": len(self.correlations),
            "failed": len(self.failed),
            "skipped": self.skipped,
        }

    def reported(self, rule: int) -> bool:
        return self.min_level is None or level_rank(self.rules[rule].level) >= level_rank(self.min_level)


def rule_files(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.suffix in (".yml", ".yaml") and q.is_file()))
        elif p.is_file():
            out.append(p)
        else:
            raise RulesNotFoundError(str(p))
    return out


def _pins(node: Any, name: str) -> frozenset[str] | None:
    """Values a top-level AND pins ``name`` to (equality or an OR of equalities), or None."""
    if isinstance(node, ConditionAND):
        for a in node.args:
            got = _pins(a, name)
            if got is not None:
                return got
        return None
    leaves = node.args if isinstance(node, ConditionOR) else [node]
    vals: set[str] = set()
    for leaf in leaves:
        if not isinstance(leaf, ConditionFieldEqualsValueExpression) or leaf.field != name:
            return None
        v = leaf.value
        if isinstance(v, SigmaNumber):
            vals.add(str(v.number))
        elif type(v) is SigmaString and not v.contains_special():
            vals.add(v.to_plain().lower() if name == "Channel" else v.to_plain())
        else:
            return None
    return frozenset(vals) if vals else None


def compile_rule(rule: SigmaRule, variant: str, index: int) -> CompiledVariant:
    """Apply the variant's pipeline to ``rule`` (mutated) and compile its condition."""
    pipeline_of(variant).apply(rule)
    comp = Compiler()
    trees: list[Any] = [c.parsed for c in rule.detection.parsed_condition]
    tree = tree_node("or", [comp.tree(t) for t in trees])
    channels = _common([_pins(t, "Channel") for t in trees])
    if channels is None:
        raise SigmaCompileError(f"log source {_logsource(rule)} is not mapped to a Windows channel")
    out = CompiledVariant(
        index, variant, tree, comp.needs, channels, _common([_pins(t, "EventID") for t in trees])
    )
    lits = [_necessary(t) for t in trees]
    if all(x is not None for x in lits):
        out.literals = tuple(sorted({p for x in lits if x is not None for p in x}))
    if len(trees) == 1:
        best = min((c for c in _conjuncts(trees[0]) if not _is_pin(c)), key=_cost, default=None)
        if best is not None and _cost(best) < _NOT_SELECTIVE:
            pre = Compiler()
            out.prefilter = pre.compile(best)
            out.prefilter_key = expr_key(out.prefilter)
    return out


_NOT_SELECTIVE = 50
MIN_LITERAL = 3


def _necessary(node: Any) -> frozenset[tuple[str, str]] | None:
    """Literals of which one is in any event the condition matches (None: no such set)."""
    from sigma.types import SigmaExpansion

    if isinstance(node, ConditionAND):
        sets = [s for s in (_necessary(a) for a in node.args) if s is not None]
        if not sets:
            return None
        return max(sets, key=lambda s: (min(len(lit) for _f, lit in s), -len(s)))
    if isinstance(node, ConditionOR):
        out: set[tuple[str, str]] = set()
        for a in node.args:
            got = _necessary(a)
            if got is None:
                return None
            out |= got
        return frozenset(out)
    if isinstance(node, ConditionFieldEqualsValueExpression) and node.field and not _is_pin(node):
        values = node.value.values if isinstance(node.value, SigmaExpansion) else [node.value]
        found: set[tuple[str, str]] = set()
        for v in values:
            if not isinstance(v, SigmaString):
                return None
            parts = [p for p in v.s if isinstance(p, str)]
            if not parts:
                return None
            lit = max(parts, key=len).lower()
            if len(lit) < MIN_LITERAL:
                return None
            found.add((node.field, lit))
        return frozenset(found)
    return None


def _conjuncts(node: Any) -> list[Any]:
    if isinstance(node, ConditionAND):
        return [c for a in node.args for c in _conjuncts(a)]
    return [node]


def _is_pin(node: Any) -> bool:
    return isinstance(node, ConditionFieldEqualsValueExpression) and node.field in ("Channel", "EventID")


def _cost(node: Any) -> int:
    """Rough cost of testing a condition on every event (lower is cheaper and more selective)."""
    from sigma.conditions import ConditionNOT, ConditionValueExpression
    from sigma.types import SigmaCompareExpression, SigmaExists, SigmaExpansion, SigmaNull, SpecialChars

    if isinstance(node, ConditionAND):
        return min(_cost(a) for a in node.args)
    if isinstance(node, ConditionOR):
        return min(_NOT_SELECTIVE, sum(_cost(a) for a in node.args))
    if isinstance(node, ConditionNOT | ConditionValueExpression):
        return _NOT_SELECTIVE
    if isinstance(node, ConditionFieldEqualsValueExpression):
        v = node.value
        if isinstance(v, SigmaNull | SigmaExists | SigmaCompareExpression):
            return _NOT_SELECTIVE
        if isinstance(v, SigmaExpansion):
            return min(_NOT_SELECTIVE, 3 * len(v.values))
        if isinstance(v, SigmaString):
            parts = list(v.s)
            stars = sum(1 for p in parts if p is SpecialChars.WILDCARD_MULTI)
            if not v.contains_special():
                return 1
            if stars == len(parts):
                return _NOT_SELECTIVE
            return 2 if stars == 1 and len(parts) == 2 else 3 if stars == 2 and len(parts) == 3 else 6
        return 6
    return _NOT_SELECTIVE


def _common(sets: list[frozenset[str] | None]) -> frozenset[str] | None:
    if any(s is None for s in sets):
        return None
    return frozenset().union(*[s for s in sets if s is not None])


def _logsource(rule: SigmaRule | SigmaCorrelationRule) -> str:
    ls = getattr(rule, "logsource", None)
    if ls is None:
        return "-"
    return "/".join(x for x in (ls.product, ls.category, ls.service) if x) or "-"


def _is_windows(doc: dict[str, Any]) -> bool:
    ls = doc.get("logsource") or {}
    return isinstance(ls, dict) and str(ls.get("product", "")).lower() == "windows"


def load_rules(
    paths: Iterable[Path | str], *, min_level: str | None = None, cache_dir: Path | None = None
) -> RuleSet:
    """Load and compile every Windows rule under ``paths``; problems become issues.

    With ``cache_dir``, the compiled rule set is kept there (``sigma.cache``) and read back
    on the next load of the same, unchanged files."""
    files = rule_files([Path(p) for p in paths])
    if cache_dir is None:
        return _load_files(files, min_level)
    from mimamori.sigma.cache import cached_ruleset

    return cached_ruleset(cache_dir, files, min_level, lambda: _load_files(files, min_level))[0]


def _load_files(files: list[Path], min_level: str | None) -> RuleSet:
    from mimamori.sigma.correlate import compile_correlations

    out = RuleSet()
    correlation_docs: list[tuple[str, dict[str, Any]]] = []
    floor = level_rank(min_level) if min_level else 0
    for f in files:
        try:
            docs = [
                d for d in yaml.load_all(f.read_text(encoding="utf-8"), Loader=yamlio.Loader) if d is not None
            ]
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            out.issues.append(RuleIssue(str(f), f"YAML error: {exc}".replace("\n", " ")))
            continue
        for doc in docs:
            if not isinstance(doc, dict):
                out.issues.append(RuleIssue(str(f), "not a Sigma rule (YAML document is not a mapping)"))
                continue
            if "correlation" in doc:
                correlation_docs.append((str(f), doc))
                continue
            if not _is_windows(doc):
                out.skipped += 1
                continue
            _load_one(out, str(f), doc, floor)
    if correlation_docs:
        compile_correlations(out, correlation_docs, floor)
    if floor:
        _drop_below(out, floor)
    return out


def _drop_below(out: RuleSet, floor: int) -> None:
    """``--min-level``: rules below it stop running, unless a correlation rule needs them."""
    needed = {r for c in out.correlations for r in c.refs}
    low = {r.index for r in out.rules if level_rank(r.level) < floor and r.index not in needed}
    out.variants = [v for v in out.variants if v.rule not in low]
    out.skipped += len(low)
    out.min_level = LEVELS[floor]


def _load_one(out: RuleSet, path: str, doc: dict[str, Any], floor: int) -> None:
    rid, title = str(doc.get("id") or ""), str(doc.get("title") or "")
    try:
        probe = SigmaRule.from_dict(doc, collect_errors=True)
    except SigmaError as exc:
        out.issues.append(RuleIssue(path, str(exc), rid or None, title or None))
        return
    if probe.errors:
        out.issues.append(
            RuleIssue(path, "; ".join(str(e) for e in probe.errors), rid or None, title or None)
        )
        return
    level = probe.level.name.lower() if probe.level else "informational"
    index = len(out.rules)
    compiled: list[CompiledVariant] = []
    reasons: list[str] = []
    category = probe.logsource.category
    for name, (_factory, cats) in VARIANTS.items():
        if cats is not None and category not in cats:
            continue
        rule = probe if not compiled and name == "sysmon" else SigmaRule.from_dict(doc)
        try:
            compiled.append(compile_rule(rule, name, index))
        except (SigmaError, SigmaCompileError) as exc:
            reasons.append(f"{name}: {exc}")
    if not compiled:
        out.issues.append(RuleIssue(path, "; ".join(reasons), rid or None, title or None))
        return
    out.rules.append(
        RuleMeta(
            index=index,
            id=str(probe.id) if probe.id else rid,
            title=probe.title,
            level=level,
            tags=tuple(str(t) for t in probe.tags),
            path=path,
            logsource=_logsource(probe),
            name=probe.name,
            description=(probe.description or "").strip(),
        )
    )
    out.documents.append(doc)
    out.variants.extend(compiled)


def collection_of(doc: dict[str, Any]) -> SigmaCollection:
    """A one-rule collection from a loaded rule's YAML (for other backends, e.g. SQLite)."""
    return SigmaCollection.from_dicts([doc])
