"""The second engine: the same rules converted by ``pysigma-backend-sqlite`` and run on SQLite.

Used by the two-engine test and the benchmark (it needs the ``dev`` extra). The events go
into one table ``logs`` the way Zircolite builds it — one ``TEXT COLLATE NOCASE`` column per
field, so string equality is case-insensitive like Sigma — and each rule variant is converted
with the same pySigma pipeline our engine used (``rules.VARIANTS``). ``REGEXP`` is Python's
``re.search``.

SQLite column names are case-insensitive; when two fields differ only in case (the System
``ProcessID`` and Sysmon's ``ProcessId``), the table keeps the first and a rule reading the
other is reported as not comparable.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache

import polars as pl

from mimamori.sigma.rules import VARIANTS, RuleSet
from mimamori.sources.winlog import sigma_columns

KEY = ("log.file.path", "winlog.record_id", "log.file.line")


@dataclass
class ReferenceResult:
    matches: set[tuple[str, str, int]] = field(default_factory=set)  # (rule id, file, record id)
    not_converted: dict[str, str] = field(default_factory=dict)  # rule id -> reason
    queries: int = 0


@cache
def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _regexp(pattern: str, value: object) -> bool:
    return value is not None and _rx(pattern).search(str(value)) is not None


def build_table(
    frames: Iterable[pl.DataFrame],
) -> tuple[sqlite3.Connection, list[tuple[str, int | None, int]], set[str]]:
    """An in-memory SQLite ``logs`` table of the events; returns (conn, rowid -> key, dropped)."""
    wide = pl.concat(list(frames), how="diagonal_relaxed")
    cols: list[str] = []
    seen: dict[str, str] = {}
    dropped: set[str] = set()
    for c in sigma_columns(wide):
        if c.lower() in seen:
            dropped.add(c)
            continue
        seen[c.lower()] = c
        cols.append(c)
    conn = sqlite3.connect(":memory:")
    conn.create_function("regexp", 2, _regexp, deterministic=True)
    q = ", ".join(f'"{c}" TEXT COLLATE NOCASE' for c in cols)
    conn.execute(f"CREATE TABLE logs ({q})")
    marks = ", ".join("?" for _ in cols)
    conn.executemany(f"INSERT INTO logs VALUES ({marks})", wide.select(cols).iter_rows())
    keys = list(wide.select(*KEY).iter_rows())
    return conn, keys, dropped


def run_reference(
    ruleset: RuleSet, frames: Iterable[pl.DataFrame], rule_ids: set[str] | None = None
) -> ReferenceResult:
    from sigma.backends.sqlite import sqliteBackend
    from sigma.rule import SigmaRule

    conn, keys, dropped = build_table(frames)
    present = {r[1].lower() for r in conn.execute("PRAGMA table_info(logs)")}
    out = ReferenceResult()
    backends = {
        name: sqliteBackend(processing_pipeline=factory()) for name, (factory, _c) in VARIANTS.items()
    }
    variants: dict[int, list[str]] = {}
    for v in ruleset.variants:
        variants.setdefault(v.rule, []).append(v.variant)
    for meta in ruleset.rules:
        if meta.index not in variants or (rule_ids is not None and meta.id not in rule_ids):
            continue
        doc = ruleset.documents[meta.index]
        rows: set[int] = set()
        try:
            for name in variants[meta.index]:
                rule = SigmaRule.from_dict(doc)
                queries = backends[name].convert_rule(rule)
                needed = backends[name].required_fields(rule)
                bad = sorted(f for f in needed if f in dropped)
                if bad:
                    raise ValueError(f"reads {bad[0]}, which SQLite cannot tell from another column")
                for f in needed:
                    if f.lower() not in present:
                        conn.execute(f'ALTER TABLE logs ADD COLUMN "{f}" TEXT COLLATE NOCASE')
                        present.add(f.lower())
                for sql in queries:
                    sel = str(sql).replace("SELECT * FROM logs", "SELECT rowid FROM logs", 1)
                    out.queries += 1
                    rows.update(r[0] for r in conn.execute(sel))
        except Exception as exc:  # the other engine's limits: recorded, compared elsewhere
            out.not_converted[meta.id] = f"{type(exc).__name__}: {exc}"
            continue
        for r in rows:
            path, rec, line = keys[r - 1]
            # exports without record numbers (some OTRF JSON): the line, negated, tells events apart
            out.matches.add((meta.id, path, int(rec) if rec is not None else -int(line)))
    conn.close()
    return out
