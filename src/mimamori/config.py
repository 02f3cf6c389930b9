"""Settings: where data lives and which database to use, from the environment or flags."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str

    @property
    def archive_dir(self) -> Path:
        return self.data_dir / "archive"

    @classmethod
    def load(cls, data_dir: str | Path | None = None, database_url: str | None = None) -> Settings:
        home = Path(data_dir or os.environ.get("MIMAMORI_HOME") or ".mimamori").resolve()
        url = database_url or os.environ.get("MIMAMORI_DATABASE_URL") or f"sqlite:///{home / 'mimamori.db'}"
        return cls(data_dir=home, database_url=url)
