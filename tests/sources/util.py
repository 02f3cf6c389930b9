"""Helpers for parser tests: parse a whole file batch by batch, pick out one event."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from mimamori.events.schema import empty_events, empty_quarantine
from mimamori.sources import ParseResult, SourceParser, read_batches


@dataclass
class Parsed:
    """A whole file's result; ``quarantine`` includes the lines the reader set aside."""

    events: pl.DataFrame
    quarantine: pl.DataFrame
    skipped: int
    lines: int  # lines read: the reader's line frames plus its own quarantine

    @property
    def counts(self) -> tuple[int, int, int]:
        return self.events.height, self.quarantine.height, self.skipped


def parse_file(parser: SourceParser, source: Path | bytes, name: str | None = None) -> Parsed:
    """Run ``parser`` over every batch of one file with one ctx, checking the invariant
    events + quarantined + skipped == lines for each batch."""
    ctx: dict[str, Any] = {}
    events, quarantine, skipped, lines = [], [], 0, 0
    for batch in read_batches(source, name):
        result = parser.parse(batch, ctx)
        assert result.events.height + result.quarantine.height + result.skipped == batch.lines.height
        events.append(result.events)
        quarantine += [result.quarantine, batch.quarantine]
        skipped += result.skipped
        lines += batch.lines.height + batch.quarantine.height
    return Parsed(
        pl.concat(events) if events else empty_events(),
        pl.concat(quarantine) if quarantine else empty_quarantine(),
        skipped,
        lines,
    )


def event_at(events: pl.DataFrame, line: int) -> dict[str, Any]:
    """The non-null ECS fields of the one event from ``line`` (file path left out)."""
    rows = events.filter(pl.col("log.file.line") == line).to_dicts()
    assert len(rows) == 1, f"{len(rows)} events from line {line}"
    return {k: v for k, v in rows[0].items() if v is not None and k != "log.file.path"}


def reasons(parsed: Parsed) -> dict[int, str]:
    """Quarantined line number -> reason."""
    return dict(parsed.quarantine.select("log.file.line", "reason").iter_rows())


def parse_merged(parser: SourceParser, source: Path | bytes, name: str = "t.log", **ctx: Any) -> ParseResult:
    """The parser's own results over all batches of one file, merged (the reader's quarantine
    left out: see ``parse_file`` for that)."""
    results = [
        parser.parse(b, ctx) for b in read_batches(source, name if isinstance(source, bytes) else None)
    ]
    return ParseResult(
        pl.concat([r.events for r in results]),
        pl.concat([r.quarantine for r in results]),
        sum(r.skipped for r in results),
    )


def fields(events: pl.DataFrame, line: int) -> dict[str, Any]:
    """The non-null fields of the one event from ``line`` (file path included)."""
    rows = events.filter(pl.col("log.file.line") == line).to_dicts()
    assert len(rows) == 1, f"{len(rows)} events from line {line}"
    return {k: v for k, v in rows[0].items() if v is not None}


def check_invariant(parser: SourceParser, data: bytes, name: str = "h.log") -> None:
    """Any input: every line read is an event, quarantined or skipped, once, under its own number."""
    for batch in read_batches(data, name):
        result = parser.parse(batch, {})
        read = batch.lines.height + batch.quarantine.height
        got = result.events.height + result.quarantine.height + result.skipped
        assert got + batch.quarantine.height == read
        lines = result.events["log.file.line"].to_list() + result.quarantine["log.file.line"].to_list()
        assert len(set(lines)) == len(lines)
        assert set(lines) <= set(batch.lines["log.file.line"].to_list())
