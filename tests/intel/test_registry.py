"""Reader table and format detection over every file of the threat-intel corpus; plain lists."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mimamori.intel import (
    INDICATOR_SCHEMA,
    READERS,
    FeedReader,
    NoReaderError,
    UnknownReaderError,
    detect_reader,
    get_reader,
)
from mimamori.intel.base import DuplicateReaderError
from mimamori.intel.plain import PlainListReader
from mimamori.intel.registry import _table

from .conftest import DATA

#: Every file and feed directory of threat-intel/ -> the reader that must pick it (None: no reader).
EXPECTED = {
    "SOURCES.md": None,
    "abusech/feodotracker/ipblocklist.csv": "feodo_csv",
    "abusech/feodotracker/ipblocklist_recommended.json": "feodo_json",
    "abusech/threatfox/threatfox_api.excerpt.ndjson": "threatfox_json",
    "abusech/urlhaus/elastic-test-abusechurl-dump.log": "urlhaus_json",
    "abusech/urlhaus/urlhaus_csv_online.excerpt.csv": "urlhaus_csv",
    "cisa-kev/LICENSE": None,
    "cisa-kev/known_exploited_vulnerabilities.csv": None,
    "cisa-kev/known_exploited_vulnerabilities.json": None,
    "cisa-kev/known_exploited_vulnerabilities_schema.json": None,
    "misp-events-circl/LICENSE": None,
    "misp-events-circl/tests/57c4445b-c548-4654-af0b-4be3950d210f.json": "misp_event",
    "misp-events-circl/tests/mispevent_testfiles/existing_event.json": "misp_event",
    "misp-events-circl/tests/reportlab_testfiles/galaxy_1.json": "misp_event",
    "misp-events-circl/tests/reportlab_testfiles/long_event.json": "misp_event",
    "misp-events-circl/tests/reportlab_testfiles/mainly_objects_1.json": "misp_event",
    "misp-events-circl/tests/reportlab_testfiles/sighting_1.json": "misp_event",
    "misp-feed-certfr": "misp_feed",
    "misp-feed-certfr/5e396a1e-68e4-4db5-8810-ca350aba047c.json": "misp_event",
    "misp-feed-certfr/manifest.json": None,
    "misp-feed-certfr/hashes.csv": None,
    "stix21/mitre-attack-stix-data/LICENSE.txt": None,
    "stix21/mitre-attack-stix-data/ics-attack-18.1.json": "stix21",
    "stix21/mitre-attack-stix-data/mobile-attack-17.1.json": "stix21",
    "stix21/oasis-cti-stix2-json-schemas/examples/README.md": None,
    "stix21/oasis-cti-stix2-json-schemas/examples/interop-objectmarking-test.json": "stix21",
}


@pytest.mark.corpus
@pytest.mark.parametrize(("rel", "reader"), sorted(EXPECTED.items()))
def test_detect_reader(ti: Path, rel: str, reader: str | None) -> None:
    if reader is None:
        with pytest.raises(NoReaderError):
            detect_reader(ti / rel)
    else:
        assert detect_reader(ti / rel).name == reader


@pytest.mark.corpus
def test_every_stix_example_is_stix(ti: Path) -> None:
    for path in sorted((ti / "stix21").rglob("*.json")):
        assert detect_reader(path).name == "stix21", path


@pytest.mark.parametrize("name", ["threatfox_full.excerpt.csv", "threatfox_recent_15col.csv"])
def test_detect_threatfox_csv(name: str) -> None:
    assert detect_reader(DATA / name).name == "threatfox_csv"


def test_table() -> None:
    assert list(READERS) == [
        "misp_feed",
        "feodo_csv",
        "urlhaus_csv",
        "threatfox_csv",
        "feodo_json",
        "urlhaus_json",
        "threatfox_json",
        "misp_event",
        "stix21",
        "plain",
    ]
    for reader in READERS.values():
        assert isinstance(reader, FeedReader)
    with pytest.raises(DuplicateReaderError):
        _table([PlainListReader(), PlainListReader()])
    with pytest.raises(UnknownReaderError, match="'nope'; known readers: feodo_csv"):
        get_reader("nope")


def test_plain_list(tmp_path: Path) -> None:
    path = tmp_path / "blocklist.txt"
    path.write_text(
        "# FortiGate external threat feed\n"
        "192.0.2.10\n"
        "198.51.100.0/24 ; SBL0001\n"
        "Evil.Example.\n"
        "0.0.0.0 tracker.evil.example\n"
        "hxxp://evil[.]example/payload.exe   # defanged\n"
        f"{'E' * 64}\n"
        "\n"
        "not an indicator!\n"
    )
    reader = READERS["plain"]
    assert reader.sniff(path)
    assert detect_reader(path).name == "plain"
    res = reader.read(path)
    assert res.indicators.select("type", "value").rows() == [
        ("ip", "192.0.2.10"),
        ("cidr", "198.51.100.0/24"),
        ("domain", "evil.example"),
        ("domain", "tracker.evil.example"),
        ("url", "http://evil.example/payload.exe"),
        ("sha256", "e" * 64),
    ]
    assert res.indicators["source"].unique().to_list() == ["blocklist"]
    assert [(i.line, i.reason) for i in res.issues] == [
        (9, "not an IP, network, domain, URL or hash: 'not'"),
    ]


def test_plain_sniff_rejects_prose(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("Some notes about the incident.\nNothing to import here.\n")
    assert not READERS["plain"].sniff(path)
    with pytest.raises(NoReaderError):
        detect_reader(path)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2000))
def test_any_bytes_never_crash_a_reader(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "blob"
    path.write_bytes(data)
    for reader in READERS.values():
        reader.sniff(path)
        if reader.name != "misp_feed":
            res = reader.read(path)
            assert res.indicators.schema == INDICATOR_SCHEMA


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=60), max_size=20))
def test_every_csv_row_is_read_or_reported(tmp_path: Path, lines: list[str]) -> None:
    header = '"first_seen_utc","dst_ip","dst_port","c2_status","last_online","malware"'
    good = '"2024-01-01 00:00:00","192.0.2.1","443","online","2024-01-02","X"'
    body = [ln.replace("\n", " ").replace("\r", " ") for ln in lines] + [good]
    path = tmp_path / "feodo.csv"
    path.write_text("\n".join([header, *body]) + "\n", encoding="utf-8")
    res = READERS["feodo_csv"].read(path)
    data_lines = [
        ln for ln in body if ln.strip().lstrip("\ufeff") and not ln.strip().lstrip("\ufeff").startswith("#")
    ]
    dropped = {i.line for i in res.issues if not i.reason.startswith("bad ")}  # bad dates keep the row
    assert res.indicators.height + len(dropped) == len(data_lines)
