"""Correlation rules: event_count, value_count, temporal, temporal_ordered (inline rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import yaml

from mimamori.sigma.correlate import compile_correlations, correlate
from mimamori.sigma.engine import SigmaEngine
from tests.sigma.helpers import events, ruleset

BASE = """
title: {title}
id: {id}
name: {name}
logsource: {{product: windows, service: security}}
detection:
    sel:
        {field}: {value}
    condition: sel
level: low
"""


def base(name: str, n: int, field: str, value: str) -> str:
    return BASE.format(
        title=name, id=f"00000000-0000-0000-0000-00000000010{n}", name=name, field=field, value=value
    )


def corr(body: str) -> str:
    return f"""
title: correlated
id: 00000000-0000-0000-0000-000000000200
correlation:
{body}
level: high
"""


T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def frame(rows: list[tuple[int, dict[str, str]]]) -> pl.DataFrame:
    return events(*[{"TimeCreated": (T0 + timedelta(seconds=s)).isoformat(), **r} for s, r in rows])


def run(texts: list[str], rows: list[tuple[int, dict[str, str]]]) -> pl.DataFrame:
    rs = ruleset(*[t for t in texts if "correlation:" not in t])

    corr_docs = [("inline.yml", yaml.safe_load(t)) for t in texts if "correlation:" in t]
    compile_correlations(rs, corr_docs, 0)
    assert rs.failed == [], rs.failed
    wide = frame(rows)
    found = SigmaEngine(rs).evaluate(wide)
    fields = [c for c in ("TargetUserName", "IpAddress", "Computer") if c in wide.columns]
    joined = found.join(wide.with_row_index("__row").select("__row", *fields), on="__row").drop("__row")
    return correlate(rs, joined)


FAIL = base("failed_logon", 1, "EventID", "4625")
OK = base("good_logon", 2, "EventID", "4624")


def test_event_count_fires_once_per_group_when_the_window_fills() -> None:
    c = corr("    type: event_count\n    rules: [failed_logon]\n    group-by: [IpAddress]\n"
             "    timespan: 1m\n    condition: {gte: 3}")  # fmt: skip
    rows = [(i * 10, {"EventID": "4625", "IpAddress": "10.0.0.5"}) for i in range(4)]  # 4 in 30 s
    rows += [(i * 40, {"EventID": "4625", "IpAddress": "10.0.0.6"}) for i in range(4)]  # 1 per 40 s
    out = run([FAIL, c], rows)
    assert out["correlation.group"].to_list() == ["10.0.0.5"]
    assert out["rule.id"].to_list() == ["00000000-0000-0000-0000-000000000200"]
    assert out["@timestamp"].to_list() == [T0 + timedelta(seconds=20)]  # the third event


def test_value_count_counts_distinct_values() -> None:
    c = corr("    type: value_count\n    rules: [failed_logon]\n    group-by: [IpAddress]\n"
             "    timespan: 5m\n    condition: {gte: 3, field: TargetUserName}")  # fmt: skip
    users = ["a", "b", "a", "c"]
    rows = [
        (i, {"EventID": "4625", "IpAddress": "10.0.0.5", "TargetUserName": u}) for i, u in enumerate(users)
    ]
    rows += [(i, {"EventID": "4625", "IpAddress": "10.0.0.7", "TargetUserName": "a"}) for i in range(9)]
    out = run([FAIL, c], rows)
    assert out["correlation.group"].to_list() == ["10.0.0.5"]


def test_temporal_needs_every_rule_in_the_window_in_any_order() -> None:
    c = corr("    type: temporal\n    rules: [failed_logon, good_logon]\n    group-by: [IpAddress]\n"
             "    timespan: 2m")  # fmt: skip
    rows = [
        (0, {"EventID": "4624", "IpAddress": "10.0.0.5"}),
        (30, {"EventID": "4625", "IpAddress": "10.0.0.5"}),  # both within 2 min: fires
        (0, {"EventID": "4625", "IpAddress": "10.0.0.6"}),
        (600, {"EventID": "4624", "IpAddress": "10.0.0.6"}),  # 10 min apart: no
    ]
    assert run([FAIL, OK, c], rows)["correlation.group"].to_list() == ["10.0.0.5"]


def test_temporal_ordered_needs_the_order() -> None:
    c = corr("    type: temporal_ordered\n    rules: [failed_logon, good_logon]\n    group-by: [IpAddress]\n"
             "    timespan: 2m")  # fmt: skip
    rows = [
        (0, {"EventID": "4624", "IpAddress": "10.0.0.5"}),
        (30, {"EventID": "4625", "IpAddress": "10.0.0.5"}),  # success before failure: no
        (0, {"EventID": "4625", "IpAddress": "10.0.0.6"}),
        (50, {"EventID": "4624", "IpAddress": "10.0.0.6"}),  # failure then success: fires
    ]
    out = run([FAIL, OK, c], rows)
    assert out["correlation.group"].to_list() == ["10.0.0.6"]
    assert out["@timestamp"].to_list() == [T0 + timedelta(seconds=50)]


def test_unsupported_correlation_is_an_issue() -> None:
    rs = ruleset(FAIL)
    bad = corr("    type: value_sum\n    rules: [failed_logon]\n    timespan: 1m\n"
               "    condition: {gte: 3, field: Count}")  # fmt: skip
    missing = corr("    type: event_count\n    rules: [nope]\n    timespan: 1m\n    condition: {gte: 3}")
    compile_correlations(rs, [("a.yml", yaml.safe_load(bad)), ("b.yml", yaml.safe_load(missing))], 0)
    reasons = sorted(i.reason for i in rs.failed)
    assert reasons == ["correlation type value_sum is not supported", "refers to rules not loaded: nope"]
