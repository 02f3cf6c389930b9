"""STIX 2.1 reader: OASIS example bundles, the ATT&CK bundles (no value indicators), bad patterns."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from mimamori.intel import READERS, ReadResult
from mimamori.intel.stix import UnsupportedPattern, pattern_values

pytestmark = pytest.mark.corpus

Read = Callable[[str, str], ReadResult]
DOCS = "stix21/oasis-cti-documentation/examples/example_json"
SCHEMAS = "stix21/oasis-cti-stix2-json-schemas/examples"


@pytest.mark.parametrize(
    ("rel", "n", "issues", "types"),
    [
        # 12 indicators: 4 networks, 3 domains, 3 MD5s, 2 x509 AND-patterns (issues).
        (f"{DOCS}/apt1.json", 10, 2, {"cidr": 4, "domain": 3, "md5": 3}),
        # 25 indicators with 40 ipv4 and 25 domain comparisons; "domain autuo.xicp.net" is
        # not a domain name and 2 patterns are file:name (issues).
        (f"{DOCS}/poisonivy.json", 64, 3, {"domain": 24, "ip": 40}),
        (f"{DOCS}/indicator-for-malicious-url.json", 1, 0, {"url": 1}),
        (f"{DOCS}/malware-indicator-for-file-hash.json", 1, 0, {"sha256": 1}),
        (f"{DOCS}/sighting-of-an-indicator.json", 1, 0, {"url": 1}),
        (f"{DOCS}/using-marking-definitions.json", 1, 0, {"ip": 1}),
        (f"{DOCS}/using-granular-markings.json", 0, 1, {}),  # email-message MATCHES
        (f"{DOCS}/defining-campaigns-threat-actors-intrusion-sets.json", 0, 0, {}),
        (f"{DOCS}/identifying-a-threat-actor-profile.json", 0, 0, {}),
        (f"{DOCS}/sighting-of-observed-data.json", 0, 0, {}),
        (f"{DOCS}/threat-actor-leveraging-attack-patterns-and-malware.json", 0, 0, {}),
        (f"{SCHEMAS}/indicator-for-c2-ip-address.json", 1, 0, {"ip": 1}),
        (f"{SCHEMAS}/indicator-to-campaign-relationship.json", 1, 0, {"ip": 1}),
        (f"{SCHEMAS}/indicators-for-C2-with-COA.json", 2, 0, {"ip": 1, "sha256": 1}),
        (f"{SCHEMAS}/infrastructure.json", 0, 0, {}),
        (f"{SCHEMAS}/interop-objectmarking-test.json", 0, 0, {}),  # a bare campaign object
        (f"{SCHEMAS}/malicious-email-indicator-with-attachment.json", 0, 2, {}),
        (f"{SCHEMAS}/threat-reports/apt1.json", 10, 2, {"cidr": 4, "domain": 3, "md5": 3}),
        (f"{SCHEMAS}/threat-reports/poisonivy.json", 64, 3, {"domain": 24, "ip": 40}),
    ],
)
def test_oasis_examples(read_feed: Read, rel: str, n: int, issues: int, types: dict[str, int]) -> None:
    res = read_feed("stix21", rel)
    assert (res.indicators.height, len(res.issues)) == (n, issues)
    assert dict(res.indicators.group_by("type").len().rows()) == types


def test_exact_fields(read_feed: Read) -> None:
    res = read_feed("stix21", f"{DOCS}/malware-indicator-for-file-hash.json")
    assert res.indicators.to_dicts() == [
        {
            "type": "sha256",
            "value": "ef537f25c895bfa782526529a9b63d97aa631564d5d789c2b765448c8635fb6c",
            "threat": "Poison Ivy",  # the malware the indicator "indicates"
            "source": "stix:malware-indicator-for-file-hash.json",
            "reference": "indicator--a932fcc6-e032-476c-826f-cb970a5a1ade",
            "confidence": 70,
            "first_seen": datetime(2014, 2, 20, 9, 0, tzinfo=UTC),  # valid_from
            "last_seen": datetime(2014, 2, 20, 9, 16, 8, 989000, tzinfo=UTC),  # modified
            "expires_at": None,
            "tags": ["malicious-activity"],
        }
    ]


def test_apt1_network_and_threat(read_feed: Read) -> None:
    res = read_feed("stix21", f"{DOCS}/apt1.json")
    cidr = res.indicators.filter(pl.col("value") == "223.166.0.0/15").row(0, named=True)
    assert (cidr["type"], cidr["threat"]) == ("cidr", "HUC Packet Transmit Tool (HTRAN)")
    assert res.indicators.filter(pl.col("value") == "hugesoft.org")["threat"].item() == "Ugly Gorilla"
    assert all("AND of comparisons" in i.reason for i in res.issues)


@pytest.mark.parametrize("name", ["ics-attack-18.1.json", "mobile-attack-17.1.json"])
def test_attack_bundles_have_no_indicators(read_feed: Read, name: str) -> None:
    start = time.perf_counter()
    res = read_feed("stix21", f"stix21/mitre-attack-stix-data/{name}")
    assert (res.indicators.height, len(res.issues)) == (0, 0)
    assert time.perf_counter() - start < 10  # one json.load; no pattern work


def test_unsupported_and_invalid_patterns(tmp_path: Path) -> None:
    def indicator(n: int, pattern: str, **extra: object) -> dict[str, object]:
        return {
            "type": "indicator",
            "spec_version": "2.1",
            "id": f"indicator--00000000-0000-4000-8000-00000000000{n}",
            "created": "2024-01-01T00:00:00Z",
            "modified": "2024-01-01T00:00:00Z",
            "pattern": pattern,
            "pattern_type": "stix",
            "valid_from": "2024-01-01T00:00:00Z",
            **extra,
        }

    bundle = {
        "type": "bundle",
        "id": "bundle--00000000-0000-4000-8000-000000000000",
        "objects": [
            indicator(
                1, "[ipv4-addr:value = '198.51.100.1'] FOLLOWEDBY [domain-name:value = 'evil.example']"
            ),
            indicator(2, "[ipv4-addr:value = '198.51.100.2'"),  # unbalanced
            indicator(3, "[process:name = 'evil.exe']"),
            indicator(4, "[ipv4-addr:value IN ('198.51.100.3', '198.51.100.4')]", confidence=85),
            indicator(5, "[ipv4-addr:value ISSUBSET '203.0.113.0/24']", valid_until="2024-06-01T00:00:00Z"),
            indicator(
                6,
                "[file:hashes.MD5 = 'D41D8CD98F00B204E9800998ECF8427E' OR url:value = 'http://e.example/a']",
            ),
            indicator(7, 'alert tcp any any -> any any (msg:"x";)', pattern_type="snort"),
            indicator(8, "[domain-name:value = 'gone.example']", revoked=True),
            indicator(9, "[ipv4-addr:value = '198.51.100.9'] REPEATS 5 TIMES"),
            {"type": "malware", "id": "malware--00000000-0000-4000-8000-000000000001", "name": "X"},
        ],
    }
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    res = READERS["stix21"].read(path)
    assert res.indicators.select("type", "value", "confidence").rows() == [
        ("ip", "198.51.100.3", 85),
        ("ip", "198.51.100.4", 85),
        ("cidr", "203.0.113.0/24", 70),
        ("md5", "d41d8cd98f00b204e9800998ecf8427e", 70),
        ("url", "http://e.example/a", 70),
    ]
    assert res.indicators["expires_at"][2] == datetime(2024, 6, 1, tzinfo=UTC)
    assert res.skipped == 1  # revoked
    reasons = [i.reason.split(": ", 1)[1] for i in res.issues]
    assert reasons[0] == "unsupported pattern part FOLLOWEDBY of observations"
    assert reasons[1].startswith("invalid STIX pattern")
    assert reasons[2] == "unsupported pattern part process:name = 'evil.exe'"
    assert reasons[3] == "unsupported pattern_type 'snort'"
    assert reasons[4] == "unsupported pattern part qualifier REPEATS 5 TIMES"
    assert len(reasons) == 5


def test_pattern_values() -> None:
    assert pattern_values("[domain-name:value = 'a.example' OR ipv6-addr:value = '2001:db8::1']") == (
        [("domain", "a.example"), ("ip", "2001:db8::1")],
        [],
    )
    values, bad = pattern_values("[file:hashes.'SHA-1' = 'aa'] AND [url:value = 'http://x.example/']")
    assert values == [] and bad == ["AND of observations"]
    with pytest.raises(UnsupportedPattern):
        pattern_values("not a pattern")


def test_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "bundle.json"
    path.write_text('{"type": "bundle", "objects": [\n{"type": "indicator",\n')
    res = READERS["stix21"].read(path)
    assert res.indicators.height == 0
    assert [(i.line, i.reason.split(":")[0]) for i in res.issues] == [(3, "invalid JSON")]
