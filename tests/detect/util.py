"""Build small ECS event frames for detector tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from mimamori.events.schema import conform

T0 = datetime(2025, 4, 15, 9, 0, tzinfo=UTC)


def events(rows: list[dict[str, Any]]) -> pl.DataFrame:
    filled = []
    for i, r in enumerate(rows):
        r = dict(r)
        r.setdefault("@timestamp", T0 + timedelta(seconds=i))
        r.setdefault("log.file.line", i + 1)
        r.setdefault("log.file.path", "test.log")
        filled.append(r)
    return conform(pl.DataFrame(filled, infer_schema_length=None))
