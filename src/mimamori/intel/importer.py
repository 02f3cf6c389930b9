"""Import threat-intel files into the database: detect, read, filter, deduplicate, store.

``import_paths`` takes files and directories (a MISP feed directory is one unit; other
directories are walked), picks a reader per file by sniffing (or uses the one named),
drops warning-list values, merges everything by ``(type, value)`` and upserts it. The
report says, per file, what was read and what went wrong (file, line, reason), which
values the warning list dropped and why, and which indicators are new (for retro-hunts).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from sqlalchemy.orm import Session

from mimamori.intel.base import INDICATOR_SCHEMA, FeedReader, Issue, NoReaderError, empty_indicators
from mimamori.intel.dedup import DEFAULT_EXPIRY, ExpiryPolicy, deduplicate
from mimamori.intel.misp import MispFeedReader
from mimamori.intel.registry import detect_reader, get_reader
from mimamori.intel.store import SourceMeta, store
from mimamori.intel.warninglist import DROPPED_SCHEMA, WarningList


@dataclass
class FileReport:
    """What one file (or MISP feed directory) gave."""

    path: str
    reader: str | None  # None when no reader recognised the file
    sources: list[str] = field(default_factory=list)
    indicators: int = 0  # normalised indicators read (before dedup and warning list)
    dropped: int = 0  # of those, dropped by the warning list
    skipped: int = 0  # records valid but not matchable (e.g. MISP attributes without to_ids)
    issues: list[Issue] = field(default_factory=list)


@dataclass
class ImportReport:
    files: list[FileReport] = field(default_factory=list)
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    new_indicators: pl.DataFrame = field(default_factory=empty_indicators)
    dropped: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=DROPPED_SCHEMA))

    @property
    def issues(self) -> list[Issue]:
        return [i for f in self.files for i in f.issues]

    @property
    def stored(self) -> int:
        return self.new + self.updated + self.unchanged

    def summary(self) -> str:
        lines = [
            f"{len(self.files)} file(s): {self.stored} indicators "
            f"({self.new} new, {self.updated} updated, {self.unchanged} unchanged), "
            f"{self.dropped.height} dropped by the warning list, {len(self.issues)} issue(s)"
        ]
        for f in self.files:
            lines.append(
                f"  {f.path} [{f.reader or 'unrecognised'}]: {f.indicators} read, {f.dropped} dropped, "
                f"{f.skipped} skipped, {len(f.issues)} issue(s)"
            )
        return "\n".join(lines)


def _units(paths: Iterable[str | Path]) -> list[tuple[Path, bool]]:
    """``(path, explicit)`` to read: MISP feed directories whole, other directories walked."""
    misp = MispFeedReader()
    out: list[tuple[Path, bool]] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir() or misp.sniff(path):
            out.append((path, True))
            continue
        feeds: list[Path] = []  # MISP feed directories found in the walk; their files are theirs
        for child in sorted(path.rglob("*")):
            rel = child.relative_to(path).parts
            if any(p.startswith(".") for p in rel) or any(f in child.parents for f in feeds):
                continue
            if child.is_dir() and misp.sniff(child):
                feeds.append(child)
                out.append((child, False))
            elif child.is_file():
                out.append((child, False))
    return out


def read_paths(
    paths: Iterable[str | Path],
    source_name: str | None = None,
    *,
    reader: str | FeedReader | None = None,
) -> tuple[pl.DataFrame, list[FileReport]]:
    """Read every unit of ``paths``: the indicator frame (with a ``file`` index) and reports.

    Files in a walked directory that no reader recognises are reported with no reader and
    no issue; a path given explicitly that cannot be read gets an issue saying why.
    """
    chosen = get_reader(reader) if isinstance(reader, str) else reader
    frames: list[pl.DataFrame] = []
    reports: list[FileReport] = []
    for path, explicit in _units(paths):
        report = FileReport(str(path), None)
        if not path.exists():
            report.issues.append(Issue(str(path), None, "no such file or directory"))
            reports.append(report)
            continue
        try:
            rd = chosen or detect_reader(path)
        except NoReaderError as exc:
            if explicit:
                report.issues.append(Issue(str(path), None, str(exc).split(": ", 1)[-1]))
            reports.append(report)
            continue
        result = rd.read(path)
        df = result.indicators
        if source_name:
            df = df.with_columns(pl.lit(source_name, dtype=pl.String).alias("source"))
        report.reader = rd.name
        report.sources = sorted(df["source"].unique().drop_nulls().to_list())
        report.indicators = df.height
        report.skipped = result.skipped
        report.issues = list(result.issues)
        frames.append(df.with_columns(pl.lit(len(reports), dtype=pl.UInt32).alias("file")))
        reports.append(report)
    schema = {**INDICATOR_SCHEMA, "file": pl.UInt32()}
    frame = pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=schema)
    return frame, reports


def import_paths(
    session: Session,
    paths: Iterable[str | Path],
    source_name: str | None = None,
    *,
    reader: str | FeedReader | None = None,
    warninglist: WarningList | None = None,
    allow_private: bool = False,
    expiry: ExpiryPolicy = DEFAULT_EXPIRY,
    now: datetime | None = None,
    source_url: str | None = None,
) -> ImportReport:
    """Read, filter, deduplicate and store the indicators of ``paths``.

    ``source_name`` replaces every reader's own source name (one ``IntelSource`` for the
    lot); ``reader`` forces a reader instead of sniffing. ``allow_private`` keeps
    private-range values (they still only alert for tenants that opted in, see
    ``load_active``). Nothing is committed: the caller's session owns the transaction.
    """
    now = now or datetime.now(UTC)
    frame, files = read_paths(paths, source_name, reader=reader)
    wl = warninglist or WarningList.default()
    tagged = frame.with_columns(wl.reasons(frame, allow_private=allow_private).alias("reason"))
    dropped_rows = tagged.filter(pl.col("reason").is_not_null())
    for idx, n in dropped_rows.group_by("file").len().iter_rows():
        files[idx].dropped = n
    dropped = dropped_rows.select(list(DROPPED_SCHEMA)).unique(maintain_order=True)
    kept = tagged.filter(pl.col("reason").is_null()).drop("reason", "file")
    kinds: dict[str, SourceMeta] = {}
    for f in files:
        for name in f.sources:
            kinds[name] = SourceMeta(kind=f.reader or "unknown", url=source_url)
    batch = deduplicate(kept, expiry, now=now)
    result = store(session, batch, now=now, sources=kinds)
    return ImportReport(
        files=files,
        new=result.new,
        updated=result.updated,
        unchanged=result.unchanged,
        new_indicators=result.new_indicators,
        dropped=dropped,
    )
