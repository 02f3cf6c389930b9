"""Install a SigmaHQ rule release (zip) into the data directory, safely and atomically."""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from mimamori.config import Settings
from mimamori.sigma.errors import UpdateError

MAX_ARCHIVE = 256 << 20


def rules_dir(settings: Settings) -> Path:
    return settings.data_dir / "sigma-rules"


def fetch(url: str, timeout: float = 60.0) -> bytes:
    """Download the release archive (explicitly asked for: ``sigma update --online``)."""
    import httpx

    try:
        with httpx.Client(timeout=timeout, follow_redirects=True) as client:
            r = client.get(url)
            r.raise_for_status()
    except httpx.HTTPError as exc:
        raise UpdateError(f"{url}: download failed: {exc}") from exc
    if len(r.content) > MAX_ARCHIVE:
        raise UpdateError(f"{url}: archive larger than {MAX_ARCHIVE} bytes")
    return r.content


def install_archive(data: bytes, target: Path, *, source: str) -> int:
    """Unpack the ``.yml`` files of a rule zip into ``target`` (replaced); returns their count."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise UpdateError(f"{source}: not a zip archive: {exc}") from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".sigma-", dir=target.parent))
    n = 0
    try:
        for info in zf.infolist():
            name = PurePosixPath(info.filename)
            if info.is_dir() or name.suffix not in (".yml", ".yaml"):
                continue
            if name.is_absolute() or ".." in name.parts:
                raise UpdateError(f"{source}: unsafe path in archive: {info.filename}")
            dest = tmp.joinpath(*name.parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(zf.read(info))
            n += 1
        if n == 0:
            raise UpdateError(f"{source}: no Sigma rule files (.yml) in the archive")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return n
