"""Detector state that outlives a batch: per (tenant, detector), kept as Polars frames.

A detector that needs history (a 24-hour beacon window, a host's usual peers) keeps it
in ``ctx.state``, a dict this store hands it for its tenant. Values that are Polars
DataFrames are written to ``<root>/<tenant>/<detector>/<key>.parquet`` after each ingest
and read back lazily, so a restart resumes where it stopped; other values live in memory
only. Detectors bound their own state (prune by time, cap by size).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import polars as pl

_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class StateStore:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root
        self._live: dict[tuple[str, str], dict[str, Any]] = {}

    def get(self, tenant: str, detector: str) -> dict[str, Any]:
        key = (tenant, detector)
        state = self._live.get(key)
        if state is None:
            state = self._live[key] = self._load(tenant, detector)
        return state

    def _folder(self, tenant: str, detector: str) -> Path | None:
        return None if self.root is None else self.root / tenant / detector

    def _load(self, tenant: str, detector: str) -> dict[str, Any]:
        folder = self._folder(tenant, detector)
        if folder is None or not folder.is_dir():
            return {}
        return {p.stem: pl.read_parquet(p) for p in sorted(folder.glob("*.parquet"))}

    def save(self, tenant: str, detector: str) -> None:
        """Write the frames of one state atomically (temp file, then rename)."""
        folder = self._folder(tenant, detector)
        state = self._live.get((tenant, detector))
        if folder is None or state is None:
            return
        frames = {k: v for k, v in state.items() if isinstance(v, pl.DataFrame)}
        folder.mkdir(parents=True, exist_ok=True)
        for name, frame in frames.items():
            if not _KEY_RE.match(name):
                raise ValueError(f"state key {name!r} of detector {detector} is not a safe file name")
            tmp = folder / f".{name}.parquet.tmp"
            frame.write_parquet(tmp, compression="lz4")
            tmp.replace(folder / f"{name}.parquet")
        for old in folder.glob("*.parquet"):
            if old.stem not in frames:
                old.unlink()

    def save_all(self) -> None:
        for tenant, detector in list(self._live):
            self.save(tenant, detector)
