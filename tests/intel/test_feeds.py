"""Feed configuration and ``update`` against a local HTTP server serving real sample files."""

from __future__ import annotations

import io
import shutil
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from mimamori.intel import FeedConfig, FeedConfigError, load_feeds, update
from mimamori.intel.feeds import parse_feeds

from .conftest import DATA, NOW


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path, corpus: Path) -> Iterator[str]:
    """Base URL of a 127.0.0.1 server over a directory of real feed files."""
    root = tmp_path / "www"
    root.mkdir()
    ti = corpus / "threat-intel"
    shutil.copy(ti / "abusech/feodotracker/ipblocklist.csv", root / "ipblocklist.csv")
    shutil.copy(ti / "abusech/urlhaus/urlhaus_csv_online.excerpt.csv", root / "csv_recent.csv")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.write(DATA / "threatfox_recent_15col.csv", "full.csv")
    (root / "threatfox_full.zip").write_bytes(buf.getvalue())
    (root / "error.html").write_text("<html><body>Rate limited</body></html>\n")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.corpus
def test_update_imports_and_reports_failures(session: Session, served: str, tmp_path: Path) -> None:
    feeds = [
        FeedConfig("abuse.ch Feodo Tracker", f"{served}/ipblocklist.csv", "feodo_csv"),
        FeedConfig("abuse.ch URLhaus", f"{served}/csv_recent.csv", "urlhaus_csv"),
        FeedConfig("abuse.ch ThreatFox", f"{served}/threatfox_full.zip", "threatfox_csv"),
        FeedConfig("missing", f"{served}/nope.csv", "urlhaus_csv"),
        FeedConfig("refused", "http://127.0.0.1:9/feed.csv", "plain"),
        FeedConfig("html", f"{served}/error.html", "threatfox_csv"),
        FeedConfig("disabled", f"{served}/ipblocklist.csv", "feodo_csv", enabled=False),
    ]
    cache = tmp_path / "cache"
    with httpx.Client() as client:
        report = update(session, feeds, client, cache_dir=cache, now=NOW)
    session.commit()
    by_name = {f.name: f for f in report.feeds}
    assert list(by_name) == [
        "abuse.ch Feodo Tracker",
        "abuse.ch URLhaus",
        "abuse.ch ThreatFox",
        "missing",
        "refused",
        "html",
    ]
    ok = {n: (f.report.new if f.report else None) for n, f in by_name.items() if f.ok}
    assert ok == {"abuse.ch Feodo Tracker": 28, "abuse.ch URLhaus": 18, "abuse.ch ThreatFox": 5}
    assert by_name["abuse.ch ThreatFox"].path == str(cache / "abuse-ch-threatfox.csv")  # unzipped
    assert by_name["missing"].error is not None and "HTTP 404" in by_name["missing"].error
    assert by_name["refused"].error is not None and "ConnectError" in by_name["refused"].error
    assert by_name["html"].error is not None
    assert by_name["html"].error.endswith(
        "download is not threatfox_csv data (starts '<html><body>Rate limited</body></html>')"
    )
    assert [f.name for f in report.failed] == ["missing", "refused", "html"]
    assert sorted(p.name for p in cache.iterdir()) == [
        "abuse-ch-feodo-tracker.csv",
        "abuse-ch-threatfox.csv",
        "abuse-ch-urlhaus.csv",
    ]

    # A failed download keeps the last good copy.
    broken = [FeedConfig("abuse.ch Feodo Tracker", f"{served}/gone.csv", "feodo_csv")]
    again = update(session, broken, httpx, cache_dir=cache, now=NOW)
    assert not again.feeds[0].ok
    assert (cache / "abuse-ch-feodo-tracker.csv").read_text().endswith("# END 28 entries")


def test_packaged_feeds() -> None:
    feeds = load_feeds()
    assert [(f.name, f.reader, f.enabled) for f in feeds] == [
        ("abuse.ch Feodo Tracker", "feodo_csv", True),
        ("abuse.ch URLhaus", "urlhaus_csv", True),
        ("abuse.ch ThreatFox", "threatfox_csv", True),
    ]
    assert feeds[0].url == "https://feodotracker.abuse.ch/downloads/ipblocklist.csv"
    assert feeds[0].resolved_headers({}) == {}
    assert feeds[0].resolved_headers({"ABUSECH_AUTH_KEY": "k"}) == {"Auth-Key": "k"}


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"feeds": [{"name": "a", "url": "u", "reader": "nope"}]}, r"feeds\[0\]\.reader"),
        ({"feeds": [{"name": "a", "url": "u", "reader": "plain", "intervall": 5}]}, r"feeds\[0\]\.intervall"),
        ({"feeds": [{"name": "a", "reader": "plain"}]}, r"feeds\[0\]\.url"),
        ({"feedz": []}, "feeds"),
    ],
)
def test_feed_config_errors_name_the_key(data: dict[str, Any], key: str) -> None:
    with pytest.raises(FeedConfigError, match=key):
        parse_feeds(data)
