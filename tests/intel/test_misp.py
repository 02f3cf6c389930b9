"""MISP readers: the CERT-FR feed directory and the CIRCL OSINT events (counts derived by hand
from the attribute tallies: only ``to_ids`` attributes of matchable types count)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from mimamori.intel import READERS, ReadResult

pytestmark = pytest.mark.corpus

Read = Callable[[str, str], ReadResult]
CIRCL = "misp-events-circl/tests"


def counts(res: ReadResult) -> dict[str, int]:
    return dict(res.indicators.group_by("type").len().sort("type").rows())


def test_certfr_feed_directory(read_feed: Read) -> None:
    res = read_feed("misp_feed", "misp-feed-certfr")
    # 13 events; to_ids attributes: domain 897, ip-dst 593 + ip-src 37, sha1 62, md5 59,
    # sha256 58, url 16 = 1722; the other 191 (filename, comment, email-src, sha512, text…) skipped.
    assert (res.indicators.height, len(res.issues), res.skipped) == (1722, 0, 191)
    assert counts(res) == {"domain": 897, "ip": 630, "md5": 59, "sha1": 62, "sha256": 58, "url": 16}
    assert res.indicators["source"].unique().to_list() == ["CERT-FR"]
    row = res.indicators.filter(pl.col("value") == "104.168.174.32").to_dicts()
    assert row == [
        {
            "type": "ip",
            "value": "104.168.174.32",
            "threat": "Maze ransomware IOCs (OSINT)",  # event info: no galaxy tag on this event
            "source": "CERT-FR",
            "reference": "misp:event/5e396a1e-68e4-4db5-8810-ca350aba047c",
            "confidence": 75,  # threat_level_id 2
            "first_seen": datetime(2020, 1, 10, tzinfo=UTC),  # event date
            "last_seen": datetime(2020, 2, 4, 12, 57, 2, tzinfo=UTC),  # attribute timestamp
            "expires_at": None,
            "tags": [
                'fr-classif:non-classifiees="NON-CLASSIFIEES"',
                'cert-fr:fiabilite="Bonne"',
                "tlp:clear",
                "PAP:CLEAR",
            ],
        }
    ]


def test_object_attributes_and_galaxy_threat(read_feed: Read) -> None:
    res = read_feed("misp_feed", "misp-feed-certfr")
    row = res.indicators.filter(pl.col("value") == "7239da273d3a3bfd8d169119670bb745").to_dicts()[0]
    # From a "file" object of the Dridex event; the galaxy tag names the threat.
    assert (row["type"], row["threat"], row["confidence"]) == ("md5", "Dridex", 50)
    assert row["last_seen"] == datetime(2020, 6, 19, 9, 18, 42, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "n", "issues", "skipped", "types"),
    [
        ("57c4445b-c548-4654-af0b-4be3950d210f.json", 3, 0, 6, {"md5": 1, "sha1": 1, "sha256": 1}),
        ("mispevent_testfiles/existing_event.json", 68, 0, 54, {"domain": 19, "ip": 12, "sha1": 37}),
        ("reportlab_testfiles/galaxy_1.json", 4, 0, 6, {"md5": 1, "sha1": 1, "sha256": 2}),
        # url attributes: 3 URLs, 6 bare hosts (read as domains), 5 non-URLs (issues).
        (
            "reportlab_testfiles/long_event.json",
            245,
            5,
            120,
            {"domain": 18, "ip": 8, "md5": 75, "sha1": 57, "sha256": 84, "url": 3},
        ),
        ("reportlab_testfiles/mainly_objects_1.json", 17, 0, 57, {"md5": 11, "sha1": 3, "sha256": 3}),
        ("reportlab_testfiles/sighting_1.json", 5, 0, 0, {"domain": 4, "url": 1}),
    ],
)
def test_circl_events(
    read_feed: Read, name: str, n: int, issues: int, skipped: int, types: dict[str, int]
) -> None:
    res = read_feed("misp_event", f"{CIRCL}/{name}")
    assert (res.indicators.height, len(res.issues), res.skipped) == (n, issues, skipped)
    assert counts(res) == types


def test_circl_event_exact_fields(read_feed: Read) -> None:
    res = read_feed("misp_event", f"{CIRCL}/57c4445b-c548-4654-af0b-4be3950d210f.json")
    assert res.indicators.filter(pl.col("type") == "sha256").to_dicts() == [
        {
            "type": "sha256",
            "value": "b3c4ae251f8094fa15b510051835c657eaef2a6cea46075d3aec964b14a99f68",
            "threat": "Ransomware - Xorist",
            "source": "CIRCL",
            "reference": "misp:event/57c4445b-c548-4654-af0b-4be3950d210f",
            "confidence": 60,  # threat_level_id 3
            "first_seen": datetime(2016, 8, 29, tzinfo=UTC),
            "last_seen": datetime(2016, 8, 29, 14, 19, 55, tzinfo=UTC),
            "expires_at": None,
            "tags": [
                "tlp:white",
                'circl:incident-classification="malware"',
                'ms-caro-malware:malware-type="Ransom"',
                'malware_classification:malware-category="Ransomware"',
            ],
        }
    ]


def test_long_event_issues_name_the_attribute(read_feed: Read) -> None:
    res = read_feed("misp_event", f"{CIRCL}/reportlab_testfiles/long_event.json")
    assert [i.reason for i in res.issues] == [
        "not an absolute URL: '107.183.86'",
        "not an absolute URL: 'igfxtray.exe'",
        "not an absolute URL: 'Data/dtl.dat'",
        "not an absolute URL: 'Data/glp.uin'",
        "not an absolute URL: 'www.kcico.com.tw/data/openwebmail/doc/wthk.txt'",
    ]
    assert res.issues[1].raw == "Event 57153590-f73c-49fa-be4b-4737950d210f Attribute 124: url igfxtray.exe"


def test_composite_types(tmp_path: Path) -> None:
    event = {
        "Event": {
            "uuid": "00000000-0000-4000-8000-000000000001",
            "info": "composite",
            "threat_level_id": "1",
            "date": "2024-01-01",
            "Orgc": {"name": "Test Org"},
            "Attribute": [
                {"type": "ip-dst|port", "value": "192.0.2.5|443", "to_ids": True},
                {"type": "domain|ip", "value": "evil.example|198.51.100.7", "to_ids": True},
                {"type": "filename|sha1", "value": f"a.exe|{'F' * 40}", "to_ids": "1"},
                {"type": "hostname", "value": "c2.evil.example", "to_ids": True, "deleted": True},
                {"type": "ip-src", "value": "203.0.113.0/24", "to_ids": True},
                {"type": "md5", "value": "nothex", "to_ids": True},
            ],
        }
    }
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    res = READERS["misp_event"].read(path)
    assert res.indicators.select("type", "value", "confidence").rows() == [
        ("ip", "192.0.2.5", 90),
        ("domain", "evil.example", 90),
        ("ip", "198.51.100.7", 90),
        ("sha1", "f" * 40, 90),
        ("cidr", "203.0.113.0/24", 90),
    ]
    assert res.skipped == 1
    assert [i.reason for i in res.issues] == ["not a md5 hash (32 hex digits): 'nothex'"]


def test_feed_directory_with_broken_and_missing_events(tmp_path: Path, ti: Path) -> None:
    feed = tmp_path / "feed"
    shutil.copytree(ti / "misp-feed-certfr", feed)
    (feed / "5e396a1e-68e4-4db5-8810-ca350aba047c.json").write_text('{"Event": {"info": ')
    (feed / "62167543-c4e0-4f39-a23e-c09f0abe1822.json").unlink()
    res = READERS["misp_feed"].read(feed)
    # The Maze event (37 indicators) is broken, the Cyclops Blink event (37) is gone.
    reasons = sorted(i.reason for i in res.issues)
    assert (
        reasons[0] == "event 62167543-c4e0-4f39-a23e-c09f0abe1822 is in manifest.json but "
        "62167543-c4e0-4f39-a23e-c09f0abe1822.json is missing"
    )
    assert reasons[1].startswith("invalid JSON in 5e396a1e-68e4-4db5-8810-ca350aba047c.json")
    broken = next(i for i in res.issues if i.reason.startswith("invalid JSON"))
    assert broken.file.endswith("5e396a1e-68e4-4db5-8810-ca350aba047c.json") and broken.line == 1
    assert res.indicators.height == 1722 - 37 - 37


def test_sniff(ti: Path) -> None:
    assert READERS["misp_feed"].sniff(ti / "misp-feed-certfr")
    assert READERS["misp_event"].sniff(ti / f"{CIRCL}/mispevent_testfiles/existing_event.json")
    assert not READERS["misp_event"].sniff(ti / "abusech/feodotracker/ipblocklist_recommended.json")
