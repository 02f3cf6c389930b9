"""Inline rules and events for the semantics tests."""

from __future__ import annotations

from typing import Any

import polars as pl
import yaml

from mimamori.sigma.engine import SigmaEngine
from mimamori.sigma.rules import RuleSet, _load_one
from mimamori.sources.winlog import RecordBuilder


def events(*rows: dict[str, Any]) -> pl.DataFrame:
    """A wide frame from flat records (Sigma field names), as the JSON reader makes it."""
    b = RecordBuilder("inline.json")
    for i, r in enumerate(rows, 1):
        b.add({"Channel": "Security", "EventID": 4688, "EventRecordID": i, **r}, i, flavour="flat")
    return b.take().wide


def ruleset(*texts: str) -> RuleSet:
    out = RuleSet()
    for i, text in enumerate(texts):
        _load_one(out, f"inline-{i}.yml", yaml.safe_load(text), 0)
    return out


def rule(detection: str, *, service: str = "security", extra: str = "") -> str:
    body = "\n".join("    " + line for line in detection.strip("\n").splitlines())
    return f"""
title: inline
id: 00000000-0000-0000-0000-000000000001
status: test
logsource:
    product: windows
    service: {service}
detection:
{body}
level: high
{extra}
"""


def matches(text: str, frame: pl.DataFrame) -> list[int]:
    """EventRecordIDs the rule matches in ``frame``."""
    rs = ruleset(text)
    assert rs.failed == [], rs.failed
    found = SigmaEngine(rs).evaluate(frame)
    return sorted(found["winlog.record_id"].to_list())
