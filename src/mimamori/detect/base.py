"""The detector protocol, the one alert shape every detector emits, and shared helpers."""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any, ClassVar

import polars as pl

from mimamori import yamlio
from mimamori.events.net import DEFAULT_INTERNAL, in_networks

if TYPE_CHECKING:
    from mimamori.config import Settings
    from mimamori.intel import IndicatorSet

SEVERITIES = ("low", "medium", "high", "critical")


def severity_rank(s: str) -> int:
    return SEVERITIES.index(s) if s in SEVERITIES else 0


@dataclass
class AlertDraft:
    """What a detector found, before it is stored and grouped into an incident.

    ``keys`` are grouping keys (``host:10.0.0.5``, ``sha256:…``, ``subject:…``): an alert
    joins an open incident of the same kind that shares any of them.
    """

    detector: str
    kind: str
    severity: str
    title: str
    first_seen: datetime
    last_seen: datetime
    keys: list[str]
    host: str | None = None
    indicator: str | None = None
    event_count: int = 1
    evidence: dict[str, Any] = field(default_factory=dict)
    dedup_key: str = ""

    def with_dedup(self, *parts: object) -> AlertDraft:
        raw = "|".join([self.detector, self.kind, *map(str, parts)])
        self.dedup_key = hashlib.sha256(raw.encode()).hexdigest()[:40]
        return self


@dataclass
class DetectContext:
    """What a detector may know besides the batch: the tenant, intel, its own state."""

    tenant: str
    batch_id: str
    networks: tuple[str, ...] = DEFAULT_INTERNAL
    indicators: IndicatorSet | None = None
    state: dict[str, Any] = field(default_factory=dict)

    def internal(self, col: str) -> pl.Expr:
        return in_networks(pl.col(col), self.networks)

    def internal_host(self, fallback: pl.Expr | None = None) -> pl.Expr:
        """The inside party of an event: the internal source, else the internal destination,
        else ``fallback`` (the source address by default)."""
        return (
            pl.when(self.internal("source.ip"))
            .then(pl.col("source.ip"))
            .when(self.internal("destination.ip"))
            .then(pl.col("destination.ip"))
            .otherwise(pl.col("source.ip") if fallback is None else fallback)
        )


class Detector(ABC):
    name: ClassVar[str]
    description: ClassVar[str] = ""

    @abstractmethod
    def detect(self, events: pl.DataFrame, ctx: DetectContext) -> list[AlertDraft]:
        """Alerts for one batch of normalised events of one tenant."""

    def configure(self, settings: Settings) -> None:  # noqa: B027 - most detectors need nothing
        """Take what the platform's settings say about this detector (folders in the data
        dir, …); called once when a ``Platform`` is built."""


# -------------------------------------------------------------- threat classification


@cache
def _families() -> dict[str, list[tuple[re.Pattern[str], str]]]:
    text = resources.files("mimamori.detect").joinpath("families.yaml").read_text(encoding="utf-8")
    data = yamlio.safe_load(text)
    out: dict[str, list[tuple[re.Pattern[str], str]]] = {}
    for kind, names in data["families"].items():
        out[kind] = [(re.compile(rf"(?<![a-z0-9]){re.escape(n.lower())}(?![a-z0-9])"), n) for n in names]
    return out


@lru_cache(maxsize=4096)
def classify_threat(text: str | None) -> tuple[str | None, str | None]:
    """(incident kind, family) for a malware or signature name, or (None, None).

    Cached: alerts of one batch repeat a few threat and signature names many times."""
    if not text:
        return None, None
    low = text.lower()
    for kind, patterns in _families().items():
        for pat, name in patterns:
            if pat.search(low):
                return kind, name
    return None, None


def subject_pattern(expr: pl.Expr) -> pl.Expr:
    """A mail subject with reply prefixes, numbers and spacing normalised (campaign key)."""
    return (
        expr.str.to_lowercase()
        .str.replace_all(r"^\s*((re|fw|fwd|aw|wg|転送)\s*[:：]\s*)+", "")
        .str.replace_all(r"[0-9０-９]+", "#")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )
