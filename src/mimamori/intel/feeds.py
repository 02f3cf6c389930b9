"""Online feeds: the configured list (``feeds.yaml``) and ``update``, which fetches and imports.

``update`` downloads each enabled feed with the given HTTP client (``httpx`` or an
``httpx.Client``), keeps the last good copy in a cache directory (written atomically, so a
failed download never replaces it), and imports it under the feed's name. A failure of one
feed (network, HTTP status, unreadable file) is recorded in its ``FeedUpdate``; the
others still run. Outbound fetches happen only when ``update`` is called.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import httpx
import yaml
from sqlalchemy.orm import Session

from mimamori import yamlio
from mimamori.intel.base import FeedConfigError, FeedFetchError, IntelError
from mimamori.intel.importer import ImportReport, import_paths
from mimamori.intel.registry import READERS
from mimamori.intel.warninglist import WarningList

#: Largest feed body (or unzipped member) accepted, in bytes.
MAX_FEED_BYTES = 512 << 20
_KEYS = {"name", "url", "reader", "enabled", "headers"}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class FeedConfig:
    name: str
    url: str
    reader: str
    enabled: bool = True
    headers: Mapping[str, str] = field(default_factory=dict)

    def resolved_headers(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """Headers with ``${VAR}`` filled from the environment; unset variables drop the header."""
        env = os.environ if environ is None else environ
        out: dict[str, str] = {}
        for key, value in self.headers.items():
            missing = [m for m in _ENV.findall(value) if not env.get(m)]
            if not missing:
                out[key] = _ENV.sub(lambda m: env[m.group(1)], value)
        return out


def parse_feeds(data: Any, where: str = "<feeds>") -> list[FeedConfig]:
    """Feed configs from parsed YAML (``{"feeds": [...]}``); unknown keys and readers are errors."""
    if not isinstance(data, dict) or not isinstance(data.get("feeds"), list):
        raise FeedConfigError(where, "feeds", "expected a 'feeds' list")
    extra = set(data) - {"feeds"}
    if extra:
        raise FeedConfigError(where, sorted(extra)[0], "unknown key")
    out: list[FeedConfig] = []
    names: set[str] = set()
    for i, entry in enumerate(data["feeds"]):
        at = f"feeds[{i}]"
        if not isinstance(entry, dict):
            raise FeedConfigError(where, at, "a feed is a mapping")
        unknown = set(entry) - _KEYS
        if unknown:
            raise FeedConfigError(where, f"{at}.{sorted(unknown)[0]}", "unknown key")
        for key in ("name", "url", "reader"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise FeedConfigError(where, f"{at}.{key}", "required text value")
        if entry["reader"] not in READERS:
            raise FeedConfigError(where, f"{at}.reader", f"unknown reader {entry['reader']!r}")
        if entry["name"] in names:
            raise FeedConfigError(where, f"{at}.name", f"duplicate feed name {entry['name']!r}")
        names.add(entry["name"])
        headers = entry.get("headers") or {}
        if not isinstance(headers, dict):
            raise FeedConfigError(where, f"{at}.headers", "a mapping of header names to values")
        out.append(
            FeedConfig(
                name=entry["name"],
                url=entry["url"],
                reader=entry["reader"],
                enabled=bool(entry.get("enabled", True)),
                headers={str(k): str(v) for k, v in headers.items()},
            )
        )
    return out


def load_feeds(path: str | Path | None = None) -> list[FeedConfig]:
    """The feeds of ``path``, or of the packaged ``intel/feeds.yaml``."""
    if path is None:
        text = resources.files("mimamori.intel").joinpath("feeds.yaml").read_text(encoding="utf-8")
        return parse_feeds(yamlio.safe_load(text), "mimamori/intel/feeds.yaml")
    try:
        data = yamlio.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise FeedConfigError(str(path), None, f"cannot read feed list: {exc}") from exc
    return parse_feeds(data, str(path))


class HttpGetter(Protocol):
    """What ``update`` needs from its HTTP client: ``httpx`` itself or an ``httpx.Client``."""

    def get(
        self, url: str, *, headers: Any = ..., timeout: Any = ..., follow_redirects: bool = ...
    ) -> Any: ...


@dataclass
class FeedUpdate:
    name: str
    url: str
    reader: str
    ok: bool = False
    error: str | None = None
    path: str | None = None
    bytes: int = 0
    report: ImportReport | None = None


@dataclass
class UpdateReport:
    feeds: list[FeedUpdate] = field(default_factory=list)

    @property
    def failed(self) -> list[FeedUpdate]:
        return [f for f in self.feeds if not f.ok]


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "feed"


def _body(feed: FeedConfig, content: bytes) -> bytes:
    """The feed text; a zip (abuse.ch full exports) gives its single file."""
    if len(content) > MAX_FEED_BYTES:
        raise FeedFetchError(feed.name, feed.url, f"body larger than {MAX_FEED_BYTES} bytes")
    if not content.startswith(b"PK\x03\x04"):
        return content
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if not members:
                raise FeedFetchError(feed.name, feed.url, "zip archive is empty")
            if members[0].file_size > MAX_FEED_BYTES:
                raise FeedFetchError(feed.name, feed.url, "zip member too large")
            return zf.read(members[0])
    except zipfile.BadZipFile as exc:
        raise FeedFetchError(feed.name, feed.url, f"bad zip archive: {exc}") from exc


def fetch_feed(
    feed: FeedConfig, cache_dir: Path, fetch: HttpGetter = httpx, *, timeout: float = 60.0
) -> Path:
    """Download ``feed`` into ``cache_dir``; the previous copy survives any failure."""
    try:
        response = fetch.get(
            feed.url, headers=feed.resolved_headers(), timeout=timeout, follow_redirects=True
        )
        response.raise_for_status()
        content = response.content
    except httpx.HTTPStatusError as exc:
        raise FeedFetchError(feed.name, feed.url, f"HTTP {exc.response.status_code}") from exc
    except httpx.HTTPError as exc:
        raise FeedFetchError(feed.name, feed.url, f"{type(exc).__name__}: {exc}") from exc
    body = _body(feed, content)
    ext = ".json" if feed.reader.endswith("json") or feed.reader.startswith(("stix", "misp")) else ".csv"
    if feed.reader == "plain":
        ext = ".txt"
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / f"{_slug(feed.name)}{ext}"
    tmp = target.with_name(f".{target.name}.part")
    try:
        tmp.write_bytes(body)
        # An error page or a changed format must not replace the last good copy.
        if not READERS[feed.reader].sniff(tmp):
            tmp.unlink()
            head = body[:80].decode("utf-8", errors="replace").strip()
            raise FeedFetchError(feed.name, feed.url, f"download is not {feed.reader} data (starts {head!r})")
        os.replace(tmp, target)
    except OSError as exc:
        raise FeedFetchError(feed.name, feed.url, f"cannot write {target}: {exc}") from exc
    return target


def _default_cache() -> Path:
    from mimamori.config import Settings

    return Settings.load().data_dir / "cache" / "intel"


def update(
    session: Session,
    feeds: Sequence[FeedConfig] | None = None,
    fetch: HttpGetter = httpx,
    *,
    cache_dir: str | Path | None = None,
    timeout: float = 60.0,
    now: datetime | None = None,
    warninglist: WarningList | None = None,
) -> UpdateReport:
    """Fetch and import every enabled feed; one feed's failure never stops the others."""
    feeds = load_feeds() if feeds is None else feeds
    cache = Path(cache_dir) if cache_dir is not None else _default_cache()
    now = now or datetime.now(UTC)
    report = UpdateReport()
    for feed in feeds:
        if not feed.enabled:
            continue
        entry = FeedUpdate(feed.name, feed.url, feed.reader)
        report.feeds.append(entry)
        if READERS.get(feed.reader) is None or feed.reader == "misp_feed":
            entry.error = f"reader {feed.reader!r} cannot read a downloaded file"
            continue
        try:
            path = fetch_feed(feed, cache, fetch, timeout=timeout)
        except IntelError as exc:
            entry.error = str(exc)
            continue
        entry.path = str(path)
        entry.bytes = path.stat().st_size
        entry.report = import_paths(
            session,
            [path],
            feed.name,
            reader=feed.reader,
            warninglist=warninglist,
            now=now,
            source_url=feed.url,
        )
        issues = entry.report.issues
        if entry.report.stored == 0 and entry.report.dropped.height == 0 and issues:
            entry.error = f"no indicators in the download ({len(issues)} issue(s), first: {issues[0]})"
        else:
            entry.ok = True
    return report
