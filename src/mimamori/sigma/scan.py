"""Scan EVTX/JSON files or folders with a rule set, no database: the hunting path.

``scan_paths`` streams each file in batches through the engine and yields detections with
rule metadata; unreadable files and records are collected as ``ScanIssue``s (file and
reason) and the scan goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from mimamori.sigma.correlate import correlate
from mimamori.sigma.engine import SigmaEngine, describe
from mimamori.sigma.rules import RuleSet
from mimamori.sources.base import SourceError
from mimamori.sources.evtx import EVTX_MAGIC, read_windows_file

EVENT_SUFFIXES = (".evtx", ".json", ".jsonl", ".ndjson")


@dataclass(frozen=True)
class ScanIssue:
    path: str
    reason: str
    position: int | None = None  # record or line number, when the problem is one record


@dataclass
class ScanStats:
    files: int = 0
    events: int = 0
    bad_records: int = 0
    detections: int = 0
    issues: list[ScanIssue] = field(default_factory=list)


def event_files(paths: Iterable[Path]) -> list[Path]:
    """Files to scan: the given files, and under folders the EVTX and JSON files."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            for q in sorted(p.rglob("*")):
                if q.is_file() and q.suffix.lower() in EVENT_SUFFIXES:
                    out.append(q)
        else:
            out.append(p)
    return out


def _looks_like_events(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return True  # let the reader report it
    return head[:8] == EVTX_MAGIC or head.lstrip()[:1] in (b"{", b"[")


def scan_paths(
    ruleset: RuleSet,
    paths: Iterable[Path],
    stats: ScanStats | None = None,
    *,
    progress: Callable[[Path], None] | None = None,
    batch_events: int = 50_000,
) -> Iterator[pl.DataFrame]:
    """Detections (``describe``d) per batch, then those of the correlation rules."""
    stats = stats if stats is not None else ScanStats()
    engine = SigmaEngine(ruleset)
    kept: list[pl.DataFrame] = []  # base matches the correlation rules refer to
    pending: list[pl.DataFrame] = []  # small files are evaluated together (one plan per part)
    pending_rows = 0

    def flush() -> Iterator[pl.DataFrame]:
        nonlocal pending, pending_rows
        if not pending:
            return
        wide = pending[0] if len(pending) == 1 else pl.concat(pending, how="diagonal_relaxed").rechunk()
        pending, pending_rows = [], 0
        found = engine.evaluate(wide)
        if found.height == 0:
            return
        if ruleset.correlations:
            kept.append(_keep_for_correlation(ruleset, wide, found))
        out = describe(ruleset, found.drop("__row"))
        if ruleset.min_level is not None:
            shown = [r.index for r in ruleset.rules if ruleset.reported(r.index)]
            out = out.filter(pl.col("rule").is_in(shown))
        stats.detections += out.height
        if out.height:
            yield out

    for path in event_files(paths):
        stats.files += 1
        if not _looks_like_events(path):
            stats.issues.append(ScanIssue(str(path), "not an EVTX or JSON file; skipped"))
            if progress:
                progress(path)
            continue
        try:
            for batch in read_windows_file(path):
                stats.events += batch.wide.height
                if batch.quarantine.height:
                    stats.bad_records += batch.quarantine.height
                    for no, reason in batch.quarantine.select("log.file.line", "reason").iter_rows():
                        stats.issues.append(ScanIssue(str(path), reason, no))
                if batch.wide.height:
                    pending.append(batch.wide)
                    pending_rows += batch.wide.height
                if pending_rows >= batch_events:
                    yield from flush()
        except (SourceError, OSError) as exc:
            stats.issues.append(ScanIssue(str(path), str(exc)))
        if progress:
            progress(path)
    yield from flush()
    if ruleset.correlations and kept:
        out = correlate(ruleset, pl.concat(kept, how="diagonal_relaxed"))
        if out.height:
            stats.detections += out.height
            yield out


def _keep_for_correlation(ruleset: RuleSet, wide: pl.DataFrame, found: pl.DataFrame) -> pl.DataFrame:
    fields = sorted({f for c in ruleset.correlations for f in c.fields} & set(wide.columns))
    ev = wide.with_row_index("__row").select("__row", *fields)
    return found.join(ev, on="__row", how="left").drop("__row")
