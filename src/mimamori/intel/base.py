"""The indicator frame, the feed-reader protocol, and the errors of the intel package.

A reader has a ``name`` (also the ``IntelSource.kind`` it produces), a cheap ``sniff`` that
only looks at the head of a file (or the listing of a directory), and ``read`` which
returns every indicator it could normalise plus one ``Issue`` per record it could not.
"Not my format" only affects reader choice; a bad record is an issue, never an exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import polars as pl

from mimamori.events.schema import TS
from mimamori.intel.normalize import NormalizeError, normalize

#: column -> dtype of every indicator frame, in order.
INDICATOR_SCHEMA: dict[str, pl.DataType] = {
    "type": pl.String(),  # ip, cidr, domain, url, md5, sha1, sha256
    "value": pl.String(),  # normalised (see intel.normalize)
    "threat": pl.String(),  # malware family / threat name
    "source": pl.String(),  # IntelSource.name
    "reference": pl.String(),  # link or id at the source
    "confidence": pl.Int32(),  # 0-100
    "first_seen": TS,
    "last_seen": TS,
    "expires_at": TS,
    "tags": pl.List(pl.String()),
}

#: Longest threat name the database keeps (``Indicator.threat`` is String(200)).
MAX_THREAT = 200
SNIFF_BYTES = 8192


def empty_indicators() -> pl.DataFrame:
    return pl.DataFrame(schema=INDICATOR_SCHEMA)


# ------------------------------------------------------------------------------ errors


class IntelError(Exception):
    """Root of the errors raised by the intel package."""


class FeedFormatError(IntelError):
    """A record (or a whole file) that does not follow its feed format."""

    def __init__(self, file: str, line: int | None, reason: str) -> None:
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {reason}")
        self.file = file
        self.line = line
        self.reason = reason


class UnknownReaderError(IntelError):
    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(f"unknown feed reader {name!r}; known readers: {', '.join(sorted(known))}")
        self.name = name


class DuplicateReaderError(IntelError):
    def __init__(self, name: str) -> None:
        super().__init__(f"feed reader {name!r} registered twice")
        self.name = name


class NoReaderError(IntelError):
    """No registered reader recognises a file."""

    def __init__(self, file: str) -> None:
        super().__init__(f"{file}: not a known threat-intel feed format")
        self.file = file


class FeedConfigError(IntelError):
    def __init__(self, file: str, key: str | None, reason: str) -> None:
        where = f"{file} [{key}]" if key else file
        super().__init__(f"{where}: {reason}")
        self.file = file
        self.key = key
        self.reason = reason


class FeedFetchError(IntelError):
    def __init__(self, feed: str, url: str, reason: str) -> None:
        super().__init__(f"feed {feed!r} ({url}): {reason}")
        self.feed = feed
        self.url = url
        self.reason = reason


# ------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class Issue:
    """One record a reader could not use: where it is, why, and the raw text if short."""

    file: str
    line: int | None
    reason: str
    raw: str | None = None

    def as_error(self) -> FeedFormatError:
        return FeedFormatError(self.file, self.line, self.reason)

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.reason}"


@dataclass
class ReadResult:
    """Indicators of one file (``INDICATOR_SCHEMA``), its issues, and records skipped on purpose.

    ``skipped`` counts records that are valid but carry nothing to match on (MISP
    attributes without ``to_ids``, comment attributes, revoked STIX indicators).
    """

    indicators: pl.DataFrame = field(default_factory=empty_indicators)
    issues: list[Issue] = field(default_factory=list)
    skipped: int = 0


@runtime_checkable
class FeedReader(Protocol):
    """One feed format. Instances are stateless and cheap."""

    name: ClassVar[str]
    description: ClassVar[str]

    def sniff(self, path: Path) -> bool:
        """True when ``path`` looks like this format; reads at most the head of a file."""
        ...

    def read(self, path: Path) -> ReadResult:
        """Every indicator of ``path``; bad records become issues."""
        ...


# ------------------------------------------------------------------------------ helpers


def read_head(path: Path, size: int = SNIFF_BYTES) -> str:
    """The first bytes of a file as text (BOM dropped); '' for directories and unreadable files."""
    try:
        if not path.is_file():
            return ""
        with path.open("rb") as fh:
            data = fh.read(size)
    except OSError:
        return ""
    return data.decode("utf-8-sig", errors="replace")


def parse_time(value: Any) -> datetime | None:
    """UTC datetime from the shapes feeds use; ``None`` for empty. Raises ``ValueError``.

    Accepts datetimes, dates, epoch seconds (int or digit string, as MISP writes them),
    ``YYYY-MM-DD``, ``YYYY-MM-DD HH:MM:SS`` with optional `` UTC`` suffix, and ISO 8601.
    Naive values are taken as UTC.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime.combine(value, time(0), UTC)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        dt = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        text = value.strip()
        if not text or text.lower() in {"none", "null", "n/a"}:
            return None
        if text.isdigit():
            if len(text) > 10:  # milliseconds
                return datetime.fromtimestamp(int(text) / 1000, UTC)
            return datetime.fromtimestamp(int(text), UTC)
        if text.endswith(" UTC"):
            text = text[:-4]
        dt = datetime.fromisoformat(text)
    else:
        raise ValueError(f"not a timestamp: {value!r}")
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def split_tags(value: Any) -> list[str]:
    """Tags from a list or a comma-separated string; abuse.ch's ``None`` means no tags."""
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    out: list[str] = []
    for item in items:
        if item is None:
            continue
        tag = str(item).strip()
        if tag and tag.lower() not in {"none", "null"} and tag not in out:
            out.append(tag)
    return out


class IndicatorRows:
    """Collects indicators row by row, normalising values and recording issues.

    Readers call ``add`` with the type they believe a value has; the value is normalised
    (``ip`` with a prefix becomes ``cidr``) and a failure becomes an issue for that line.
    Timestamps that cannot be parsed are nulled and reported, the indicator is kept.
    """

    def __init__(self, file: str | Path, source: str) -> None:
        self.file = str(file)
        self.source = source
        self.issues: list[Issue] = []
        self.skipped = 0
        self._cols: dict[str, list[Any]] = {name: [] for name in INDICATOR_SCHEMA}

    def issue(self, line: int | None, reason: str, raw: Any = None) -> None:
        text = None if raw is None else str(raw)
        if text is not None and len(text) > 500:
            text = text[:500] + "…"
        self.issues.append(Issue(self.file, line, reason, text))

    def time(self, value: Any, what: str, line: int | None) -> datetime | None:
        try:
            return parse_time(value)
        except (ValueError, OverflowError, OSError):
            self.issue(line, f"bad {what} timestamp {value!r}; left empty")
            return None

    def add(
        self,
        kind: str,
        value: Any,
        *,
        line: int | None = None,
        threat: str | None = None,
        reference: str | None = None,
        confidence: int | None = None,
        first_seen: Any = None,
        last_seen: Any = None,
        expires_at: Any = None,
        tags: Sequence[str] = (),
        source: str | None = None,
        raw: Any = None,
    ) -> bool:
        """Normalise and keep one indicator; False (and an issue) when the value is bad."""
        try:
            final_type, final_value = normalize(kind, value)
        except NormalizeError as exc:
            self.issue(line, str(exc), raw if raw is not None else value)
            return False
        self._append(
            final_type,
            final_value,
            line=line,
            threat=threat,
            reference=reference,
            confidence=confidence,
            first_seen=first_seen,
            last_seen=last_seen,
            expires_at=expires_at,
            tags=tags,
            source=source,
        )
        return True

    def add_normalised(self, kind: str, value: str, **fields: Any) -> None:
        """Keep an indicator whose value is already canonical (from ``normalize``)."""
        self._append(kind, value, **fields)

    def _append(
        self,
        kind: str,
        value: str,
        *,
        line: int | None,
        threat: str | None,
        reference: str | None,
        confidence: int | None,
        first_seen: Any,
        last_seen: Any,
        expires_at: Any,
        tags: Sequence[str],
        source: str | None,
    ) -> None:
        c = self._cols
        first = self.time(first_seen, "first_seen", line)
        last = self.time(last_seen, "last_seen", line)
        if first is not None and last is not None and last < first:
            last = first  # date-only "last online" of the day it was first seen
        if confidence is not None:
            confidence = max(0, min(100, int(confidence)))
        threat = threat.strip() if isinstance(threat, str) else None
        c["type"].append(kind)
        c["value"].append(value)
        c["threat"].append(threat[:MAX_THREAT] if threat else None)
        c["source"].append(source or self.source)
        c["reference"].append(reference or None)
        c["confidence"].append(confidence)
        c["first_seen"].append(first)
        c["last_seen"].append(last)
        c["expires_at"].append(self.time(expires_at, "expires_at", line))
        c["tags"].append(list(dict.fromkeys(t for t in tags if t)))

    def __len__(self) -> int:
        return len(self._cols["type"])

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(self._cols, schema=INDICATOR_SCHEMA)

    def result(self) -> ReadResult:
        return ReadResult(self.frame(), self.issues, self.skipped)
