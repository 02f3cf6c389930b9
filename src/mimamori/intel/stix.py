"""Reader for STIX 2.1 (and 2.0) JSON: indicators whose pattern compares observable values.

Patterns are parsed with the ``stix2`` library's pattern visitor. An indicator is usable
when its pattern is a disjunction of equality comparisons (``=``, ``IN``, or ``ISSUBSET``
for networks) on ``ipv4-addr:value``, ``ipv6-addr:value``, ``domain-name:value``,
``url:value`` or ``file:hashes.<MD5|SHA-1|SHA-256>``; ``START/STOP`` qualifiers are
ignored. Anything else (``AND``, ``FOLLOWEDBY``, ``MATCHES``, other object types, other
pattern languages) is an issue: a value match would claim more than the pattern says.
Non-indicator objects are skipped silently; ``indicates`` relationships name the threat.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, ClassVar

from stix2 import patterns as sp
from stix2.pattern_visitor import create_pattern_object

from mimamori.intel.base import IndicatorRows, ReadResult, read_head
from mimamori.intel.normalize import CIDR, DOMAIN, IP, MD5, SHA1, SHA256, URL

DEFAULT_CONFIDENCE = 70

_VALUE_TYPES = {"ipv4-addr": IP, "ipv6-addr": IP, "domain-name": DOMAIN, "url": URL}
_HASH_KEYS = {"md5": MD5, "sha1": SHA1, "sha-1": SHA1, "sha256": SHA256, "sha-256": SHA256}
# Which related object names an indicator's threat, best first.
_THREAT_TYPES = ("malware", "threat-actor", "intrusion-set", "campaign", "tool", "attack-pattern")


class UnsupportedPattern(Exception):
    """A pattern (or part of one) that a value match cannot honour."""


def pattern_values(pattern: str) -> tuple[list[tuple[str, str]], list[str]]:
    """``([(type, raw value)], [unsupported parts])`` of a STIX pattern.

    Raises ``UnsupportedPattern`` for a pattern that cannot be parsed or whose top level is
    not a disjunction. Unsupported members of a disjunction are listed, the rest kept.
    """
    try:
        tree = create_pattern_object(pattern, version="2.1")
    except Exception as exc:  # stix2patterns raises ParseException and friends
        raise UnsupportedPattern(f"invalid STIX pattern: {exc}") from exc
    values: list[tuple[str, str]] = []
    unsupported: list[str] = []
    _observation(tree, values, unsupported)
    return values, unsupported


def _observation(node: Any, values: list[tuple[str, str]], bad: list[str]) -> None:
    if isinstance(node, sp.OrObservationExpression):
        for operand in node.operands:
            _observation(operand, values, bad)
    elif isinstance(node, sp.ObservationExpression):
        _comparison(node.operand, values, bad)
    elif isinstance(node, sp.ParentheticalExpression):
        _observation(node.expression, values, bad)
    elif isinstance(node, sp.QualifiedObservationExpression):
        if not isinstance(node.qualifier, sp.StartStopQualifier):
            bad.append(f"qualifier {node.qualifier}")
            return
        _observation(node.observation_expression, values, bad)
    elif isinstance(node, sp.AndObservationExpression | sp.FollowedByObservationExpression):
        bad.append(f"{node.operator} of observations")
    else:
        bad.append(str(node))


def _comparison(node: Any, values: list[tuple[str, str]], bad: list[str]) -> None:
    if isinstance(node, sp.OrBooleanExpression):
        for operand in node.operands:
            _comparison(operand, values, bad)
        return
    if isinstance(node, sp.ParentheticalExpression):
        _comparison(node.expression, values, bad)
        return
    if isinstance(node, sp.AndBooleanExpression):
        bad.append(f"AND of comparisons: {node}")
        return
    if not isinstance(node, sp._ComparisonExpression) or node.negated:
        bad.append(str(node))
        return
    kind = _path_kind(node.lhs)
    if kind is None:
        bad.append(str(node))
        return
    rhs = node.rhs
    if isinstance(node, sp.EqualityComparisonExpression) and isinstance(rhs, sp.StringConstant):
        values.append((kind, str(rhs.value)))
    elif isinstance(node, sp.InComparisonExpression) and isinstance(rhs, sp.ListConstant):
        items = [c.value for c in rhs.value if isinstance(c, sp.StringConstant)]
        if len(items) != len(rhs.value):
            bad.append(str(node))
            return
        values.extend((kind, str(v)) for v in items)
    elif (
        isinstance(node, sp.IsSubsetComparisonExpression)
        and kind == IP
        and isinstance(rhs, sp.StringConstant)
    ):
        values.append((CIDR, str(rhs.value)))
    else:
        bad.append(str(node))


def _path_kind(path: Any) -> str | None:
    if not isinstance(path, sp.ObjectPath):
        return None
    props = [getattr(c, "property_name", None) for c in path.property_path]
    obj = path.object_type_name
    if obj in _VALUE_TYPES and props == ["value"]:
        return _VALUE_TYPES[obj]
    if obj == "file" and len(props) == 2 and props[0] == "hashes":
        return _HASH_KEYS.get(str(props[1]).strip("'").lower())
    return None


def _labels(obj: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key in ("indicator_types", "labels"):
        for item in obj.get(key) or []:
            if isinstance(item, str) and item not in out:
                out.append(item)
    return out


def _threats(objects: list[dict[str, Any]]) -> dict[str, str]:
    """indicator id -> name of what it ``indicates`` (malware before actors before campaigns)."""
    names = {
        o["id"]: (o.get("type"), o.get("name"))
        for o in objects
        if isinstance(o.get("id"), str) and o.get("type") in _THREAT_TYPES and o.get("name")
    }
    best: dict[str, tuple[int, str]] = {}
    for rel in objects:
        if rel.get("type") != "relationship" or rel.get("relationship_type") != "indicates":
            continue
        src, dst = rel.get("source_ref"), rel.get("target_ref")
        if not isinstance(src, str) or dst not in names:
            continue
        kind, name = names[dst]
        rank = _THREAT_TYPES.index(str(kind))
        if src not in best or (rank, str(name)) < best[src]:
            best[src] = (rank, str(name))
    return {k: v[1] for k, v in best.items()}


class StixBundleReader:
    """STIX 2.x JSON: a bundle, a list of objects, or a single object."""

    name: ClassVar[str] = "stix21"
    description: ClassVar[str] = "STIX 2.1 bundle (indicator patterns on observable values)"

    def sniff(self, path: Path) -> bool:
        head = read_head(path)
        if not head.lstrip().startswith(("{", "[")):
            return False
        return bool(
            re.search(r'"type"\s*:\s*"bundle"', head)
            or re.search(r'"spec_version"\s*:\s*"2\.[01]"', head)
            or re.search(r'"type"\s*:\s*"indicator"', head)
        )

    def read(self, path: Path) -> ReadResult:
        rows = IndicatorRows(path, f"stix:{path.name}")
        try:
            doc = json.loads(path.read_text(encoding="utf-8-sig", errors="replace"))
        except OSError as exc:
            rows.issue(None, f"cannot read file: {exc}")
            return rows.result()
        except json.JSONDecodeError as exc:
            rows.issue(exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})")
            return rows.result()
        if isinstance(doc, dict) and doc.get("type") == "bundle":
            objects = doc.get("objects") or []
        elif isinstance(doc, list):
            objects = doc
        elif isinstance(doc, dict):
            objects = [doc]
        else:
            rows.issue(None, f"JSON document is a {type(doc).__name__}, not STIX")
            return rows.result()
        objects = [o for o in objects if isinstance(o, dict)]
        identities = {
            o["id"]: str(o["name"]) for o in objects if o.get("type") == "identity" and o.get("name")
        }
        threats = _threats(objects)
        for obj in objects:
            if obj.get("type") == "indicator":
                self._indicator(obj, rows, identities, threats)
        return rows.result()

    def _indicator(
        self,
        obj: dict[str, Any],
        rows: IndicatorRows,
        identities: dict[str, str],
        threats: dict[str, str],
    ) -> None:
        ident = obj.get("id") or "indicator without id"
        if obj.get("revoked") is True:
            rows.skipped += 1
            return
        pattern = obj.get("pattern")
        pattern_type = obj.get("pattern_type", "stix")
        if pattern_type != "stix":
            rows.issue(None, f"{ident}: unsupported pattern_type {pattern_type!r}", pattern)
            return
        if not isinstance(pattern, str):
            rows.issue(None, f"{ident}: no pattern")
            return
        try:
            values, unsupported = pattern_values(pattern)
        except UnsupportedPattern as exc:
            rows.issue(None, f"{ident}: {exc}", pattern)
            return
        for part in unsupported:
            rows.issue(None, f"{ident}: unsupported pattern part {part}", pattern)
        confidence = obj.get("confidence")
        if not isinstance(confidence, int) or isinstance(confidence, bool):
            confidence = DEFAULT_CONFIDENCE
        source = identities.get(str(obj.get("created_by_ref")))
        for kind, value in values:
            rows.add(
                kind,
                value,
                threat=threats.get(ident) or obj.get("name"),
                reference=ident,
                confidence=confidence,
                first_seen=obj.get("valid_from") or obj.get("created"),
                last_seen=obj.get("modified") or obj.get("valid_from"),
                expires_at=obj.get("valid_until"),
                tags=_labels(obj),
                source=source,
                raw=f"{ident}: {pattern}",
            )
