"""SuricataEveParser on real EVE files (Elastic's fixtures, surevego, GTK Cyber) and a
crafted file for the event types the corpus lacks (dhcp, smtp, anomaly, DNS v2/v3).

Expected values were read off the raw lines (``sed -n Np FILE``), not from the parser.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mimamori.events.schema import EVENT_SCHEMA
from mimamori.sources import get_parser, head_lines
from mimamori.sources.suricata import SuricataEveParser
from tests.sources.util import event_at, parse_file, reasons

EVE = "suricata-eve"
ELASTIC = f"{EVE}/elastic-fixtures/test-eve-small.log"
SUREVEGO = f"{EVE}/surevego/testdata/eve.json"
BROKEN = f"{EVE}/surevego/testdata/eve_broken.json"
GTK = f"{EVE}/gtkcyber-applied-data-science/data/eve.json"
CRAFTED = Path(__file__).resolve().parents[1] / "data" / "suricata" / "eve_crafted.json"


def suricata(
    event_type: str, kind: str = "event", category: str = "network", type_: str = "protocol"
) -> dict[str, Any]:
    """The fields every EVE event of one event_type carries."""
    return {
        "event.module": "suricata",
        "event.dataset": f"suricata.{event_type}",
        "event.kind": kind,
        "event.category": category,
        "event.type": type_,
        "observer.vendor": "OISF",
        "observer.product": "suricata",
    }


def at(year: int, month: int, day: int, hour: int, minute: int, second: int, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


# --------------------------------------------------------------------------- counts


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("path", "events", "quarantined", "skipped", "types"),
    [
        (
            ELASTIC,
            12,
            0,
            0,
            {"alert": 1, "dns": 1, "fileinfo": 1, "flow": 1, "http": 3, "ssh": 1, "stats": 1, "tls": 3},
        ),
        (SUREVEGO, 266, 0, 0, {"alert": 68, "dns": 48, "fileinfo": 68, "flow": 13, "http": 68, "stats": 1}),
        (GTK, 5000, 0, 0, {"alert": 68, "fileinfo": 4841, "flow": 1, "stats": 90}),
        (f"{EVE}/gtkcyber-applied-data-science/data/eve_small.json", 1000, 0, 0, None),
        # 6 lines not JSON, 1 timestamp with trailing junk, 4 blank lines
        (BROKEN, 262, 7, 4, {"alert": 68, "dns": 45, "fileinfo": 68, "flow": 13, "http": 67, "stats": 1}),
    ],
)
def test_counts(
    corpus: Path, path: str, events: int, quarantined: int, skipped: int, types: dict[str, int] | None
) -> None:
    parsed = parse_file(SuricataEveParser(), corpus / path)
    assert parsed.counts == (events, quarantined, skipped)
    assert parsed.lines == events + quarantined + skipped
    if types is not None:
        counted = dict(parsed.events["event.dataset"].value_counts().iter_rows())
        assert counted == {f"suricata.{t}": n for t, n in types.items()}


def test_counts_crafted() -> None:
    parsed = parse_file(SuricataEveParser(), CRAFTED)
    assert parsed.counts == (7, 2, 1)
    assert reasons(parsed) == {
        9: "field timestamp: missing or invalid",
        10: "field timestamp: missing or invalid",
    }


# --------------------------------------------------------------------------- one event each

EVENTS = [
    pytest.param(
        ELASTIC,
        2,  # ET POLICY alert with tls and flow metadata; -0400 offset
        {
            **suricata("alert", kind="alert", category="intrusion_detection", type_="allowed"),
            "@timestamp": at(2018, 7, 5, 19, 7, 20, 910626),
            "event.id": "904992230150281",
            "event.action": "allowed",
            "event.severity": 1,
            "rule.id": "2024833",
            "rule.name": "ET POLICY Observed IP Lookup Domain (l2 .io in TLS SNI)",
            "rule.category": "Potential Corporate Privacy Violation",
            "source.ip": "192.168.86.85",
            "source.port": 55641,
            "source.bytes": 793,
            "source.packets": 4,
            "destination.ip": "192.168.156.70",
            "destination.port": 443,
            "destination.domain": "l2.io",
            "destination.bytes": 343,
            "destination.packets": 3,
            "network.bytes": 1136,
            "network.transport": "tcp",
            "network.protocol": "tls",
            "tls.client.server_name": "l2.io",
            "tls.version": "TLS 1.2",
            "log.file.line": 2,
        },
        id="alert",
    ),
    pytest.param(
        ELASTIC,
        3,
        {
            **suricata("http"),
            "@timestamp": at(2018, 7, 5, 19, 43, 47, 690014),
            "event.id": "2115002772430095",
            "source.ip": "192.168.86.85",
            "source.port": 56119,
            "destination.ip": "192.168.86.28",
            "destination.port": 63963,
            "destination.domain": "192.168.86.28",
            "network.transport": "tcp",
            "network.protocol": "http",
            "url.domain": "192.168.86.28",
            "url.path": "/dd.xml",
            "url.full": "http://192.168.86.28/dd.xml",
            "http.request.method": "GET",
            "http.response.status_code": 200,
            "user_agent.original": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_13_5) AppleWebKit/537.36"
            " (KHTML, like Gecko) Chrome/67.0.3396.99 Safari/537.36",
            "log.file.line": 3,
        },
        id="http",
    ),
    pytest.param(
        ELASTIC,
        11,  # non-default port in http_port
        {
            **suricata("http"),
            "@timestamp": at(2020, 12, 9, 16, 3, 0, 179037),
            "event.id": "1097935193623328",
            "source.ip": "192.168.50.1",
            "source.port": 50898,
            "destination.ip": "192.168.50.1",
            "destination.port": 8081,
            "destination.domain": "192.168.50.1",
            "network.transport": "tcp",
            "network.protocol": "http",
            "url.domain": "192.168.50.1",
            "url.path": "/uuid",
            "url.full": "http://192.168.50.1:8081/uuid",
            "http.request.method": "POST",
            "user_agent.original": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.14; rv:84.0)"
            " Gecko/20100101 Firefox/84.0",
            "log.file.line": 11,
        },
        id="http-port",
    ),
    pytest.param(
        ELASTIC,
        4,
        {
            **suricata("fileinfo", category="file", type_="info"),
            "@timestamp": at(2018, 7, 5, 19, 44, 33, 222441),
            "event.id": "2211411903323127",
            "source.ip": "192.168.86.28",
            "source.port": 8008,
            "destination.ip": "192.168.86.85",
            "destination.port": 56118,
            "destination.domain": "192.168.86.28",
            "network.transport": "tcp",
            "network.protocol": "http",
            "url.domain": "192.168.86.28",
            "url.path": "/ssdp/device-desc.xml",
            "url.full": "http://192.168.86.28/ssdp/device-desc.xml",
            "http.request.method": "GET",
            "http.response.status_code": 200,
            "user_agent.original": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_13_5) AppleWebKit/537.36"
            " (KHTML, like Gecko) Chrome/67.0.3396.99 Safari/537.36",
            "file.name": "/ssdp/device-desc.xml",
            "file.mime_type": "application/xml",
            "file.size": 1071,
            "file.hash.md5": "427b7337ff37eeb24d74f47d8e04cf21",
            "file.hash.sha1": "313573490192c685e9e53abef25453ed0d5e2aee",
            "file.hash.sha256": "f610428ebddf6f8cf9e39322e672583c45fcdcf885efad0ab48fd53a3dfc2c4b",
            "log.file.line": 4,
        },
        id="fileinfo",
    ),
    pytest.param(
        ELASTIC,
        7,
        {
            **suricata("tls"),
            "@timestamp": at(2018, 7, 5, 19, 51, 50, 666597),
            "event.id": "89751777876473",
            "source.ip": "192.168.86.85",
            "source.port": 56187,
            "destination.ip": "89.160.20.112",
            "destination.port": 443,
            "destination.domain": "p33-btmmdns.icloud.com.",
            "network.transport": "tcp",
            "network.protocol": "tls",
            "tls.client.server_name": "p33-btmmdns.icloud.com.",
            "tls.version": "TLS 1.2",
            "log.file.line": 7,
        },
        id="tls",
    ),
    pytest.param(
        ELASTIC,
        8,  # IPv6 written in full by EVE: compared in canonical form
        {
            **suricata("flow", type_="connection"),
            "@timestamp": at(2018, 7, 5, 19, 51, 54, 1329),
            "event.id": "1828507008887644",
            "event.duration": 0,
            "source.ip": "fe80::fada:cff:fedc:87f1",
            "source.port": 546,
            "source.bytes": 110,
            "source.packets": 1,
            "destination.ip": "ff02::1:2",
            "destination.port": 547,
            "destination.bytes": 0,
            "destination.packets": 0,
            "network.bytes": 110,
            "network.transport": "udp",
            "log.file.line": 8,
        },
        id="flow-ipv6",
    ),
    pytest.param(
        SUREVEGO,
        1,  # EVE v1 DNS query
        {
            **suricata("dns"),
            "@timestamp": at(2017, 1, 30, 15, 12, 26, 985026),
            "event.id": "955054024165314",
            "source.ip": "172.17.0.2",
            "source.port": 55645,
            "destination.ip": "172.21.3.254",
            "destination.port": 53,
            "destination.domain": "_http._tcp.security.debian.org",
            "network.transport": "udp",
            "network.protocol": "dns",
            "dns.question.name": "_http._tcp.security.debian.org",
            "dns.question.type": "SRV",
            "log.file.line": 1,
        },
        id="dns-query-v1",
    ),
    pytest.param(
        SUREVEGO,
        5,  # EVE v1 DNS answer: one record per event
        {
            **suricata("dns"),
            "@timestamp": at(2017, 1, 30, 15, 12, 27, 27213),
            "event.id": "1800462501880023",
            "source.ip": "172.21.3.254",
            "source.port": 53,
            "destination.ip": "172.17.0.2",
            "destination.port": 47719,
            "destination.domain": "prod.debian.map.fastly.net",
            "network.transport": "udp",
            "network.protocol": "dns",
            "dns.question.name": "prod.debian.map.fastly.net",
            "dns.question.type": "A",
            "dns.response_code": "NOERROR",
            "dns.answers": "151.101.12.204",
            "log.file.line": 5,
        },
        id="dns-answer-v1",
    ),
    pytest.param(
        SUREVEGO,
        253,
        {
            **suricata("flow", type_="connection"),
            "@timestamp": at(2017, 1, 30, 15, 12, 29, 951412),
            "event.id": "1132792655884373",
            "event.duration": 2_906_271_000,
            "source.ip": "172.17.0.2",
            "source.port": 46038,
            "source.bytes": 216833,
            "source.packets": 3247,
            "destination.ip": "151.101.12.204",
            "destination.port": 80,
            "destination.bytes": 10333230,
            "destination.packets": 6922,
            "network.bytes": 10550063,
            "network.transport": "tcp",
            "log.file.line": 253,
        },
        id="flow",
    ),
    pytest.param(
        GTK,
        109,
        {
            **suricata("alert", kind="alert", category="intrusion_detection", type_="allowed"),
            "@timestamp": at(2011, 3, 12, 22, 33, 29, 217918),
            "event.id": "210960014471571",
            "event.action": "allowed",
            "event.severity": 3,
            "rule.id": "2260002",
            "rule.name": "SURICATA Applayer Detect protocol only one direction",
            "rule.category": "Generic Protocol Command Decode",
            "source.ip": "192.168.205.188",
            "source.port": 60757,
            "destination.ip": "192.168.26.201",
            "destination.port": 5432,
            "network.transport": "tcp",
            "log.file.line": 109,
        },
        id="alert-gtk",
    ),
    pytest.param(
        GTK,
        7,  # ICMPv6 flow without ports
        {
            **suricata("flow", type_="connection"),
            "@timestamp": at(2017, 4, 6, 18, 16, 1, 345),
            "event.id": "182632843422416",
            "event.duration": 743_988_000,
            "source.ip": "::",
            "source.bytes": 180,
            "source.packets": 2,
            "destination.ip": "ff02::16",
            "destination.bytes": 0,
            "destination.packets": 0,
            "network.bytes": 180,
            "network.transport": "ipv6-icmp",
            "log.file.line": 7,
        },
        id="flow-icmpv6",
    ),
]


@pytest.mark.corpus
@pytest.mark.parametrize(("path", "line", "expected"), EVENTS)
def test_event_fields(corpus: Path, path: str, line: int, expected: dict[str, Any]) -> None:
    parsed = parse_file(SuricataEveParser(), corpus / path)
    assert event_at(parsed.events, line) == expected


CRAFTED_EVENTS = [
    pytest.param(
        1,
        {
            **suricata("dhcp"),
            "@timestamp": at(2023, 3, 1, 10, 0, 0, 100),
            "event.id": "1111111111111111",
            "event.action": "ack",
            "source.ip": "192.0.2.1",
            "source.port": 67,
            "source.mac": "00:11:22:33:44:55",
            "destination.ip": "192.0.2.50",
            "destination.port": 68,
            "network.transport": "udp",
            "network.protocol": "dhcp",
            "host.name": "laptop-7",
            "host.ip": "192.0.2.50",
            "log.file.line": 1,
        },
        id="dhcp",
    ),
    pytest.param(
        2,
        {
            **suricata("smtp", category="email"),
            "@timestamp": at(2023, 3, 1, 10, 5, 0, 250000),
            "event.id": "2222222222222222",
            "source.ip": "198.51.100.20",
            "source.port": 49152,
            "destination.ip": "192.0.2.25",
            "destination.port": 25,
            "network.transport": "tcp",
            "network.protocol": "smtp",
            "email.from.address": "alice@example.net",
            "email.to.address": "bob@example.org,carol@example.org",
            "email.subject": "Invoice 4711",
            "email.message_id": "<20230301100500.1234@example.net>",
            "email.attachments.file.name": "invoice.pdf.exe",
            "log.file.line": 2,
        },
        id="smtp",
    ),
    pytest.param(
        3,
        {
            **suricata("anomaly", kind="alert", category="intrusion_detection", type_="info"),
            "@timestamp": at(2023, 3, 1, 10, 6, 0, 1),
            "rule.name": "decoder.ipv4.trunc_pkt",
            "rule.category": "decode",
            "message": "decode anomaly: decoder.ipv4.trunc_pkt",
            "source.ip": "203.0.113.9",
            "destination.ip": "192.0.2.10",
            "network.transport": "tcp",
            "log.file.line": 3,
        },
        id="anomaly-decode",
    ),
    pytest.param(
        4,
        {
            **suricata("anomaly", kind="alert", category="intrusion_detection", type_="info"),
            "@timestamp": at(2023, 3, 1, 10, 6, 30, 500000),
            "event.id": "3333333333333333",
            "rule.name": "UNABLE_TO_MATCH_RESPONSE_TO_REQUEST",
            "rule.category": "applayer",
            "message": "applayer anomaly: UNABLE_TO_MATCH_RESPONSE_TO_REQUEST (layer proto_parser)",
            "source.ip": "198.51.100.7",
            "source.port": 51000,
            "destination.ip": "192.0.2.80",
            "destination.port": 80,
            "network.transport": "tcp",
            "network.protocol": "http",
            "log.file.line": 4,
        },
        id="anomaly-applayer",
    ),
    pytest.param(
        5,
        {
            **suricata("dns"),
            "@timestamp": at(2023, 3, 1, 10, 7, 0),
            "event.id": "4444444444444444",
            "source.ip": "192.0.2.53",
            "source.port": 53,
            "destination.ip": "192.0.2.50",
            "destination.port": 53000,
            "destination.domain": "www.example.org",
            "network.transport": "udp",
            "network.protocol": "dns",
            "dns.question.name": "www.example.org",
            "dns.question.type": "A",
            "dns.response_code": "NOERROR",
            "dns.answers": "web.example.org,192.0.2.80",
            "log.file.line": 5,
        },
        id="dns-answers-v2",
    ),
    pytest.param(
        6,
        {
            **suricata("alert", kind="alert", category="intrusion_detection", type_="denied"),
            "@timestamp": at(2023, 3, 1, 10, 8, 0),
            "event.id": "5555555555555555",
            "event.action": "blocked",
            "event.severity": 2,
            "rule.id": "2027863",
            "rule.name": "ET INFO Observed DNS Query to .cloud TLD",
            "rule.category": "Potentially Bad Traffic",
            "source.ip": "192.0.2.50",
            "source.port": 53001,
            "destination.ip": "192.0.2.53",
            "destination.port": 53,
            "destination.domain": "evil.example.cloud",
            "network.transport": "udp",
            "network.protocol": "dns",
            "dns.question.name": "evil.example.cloud",
            "dns.question.type": "A",
            "log.file.line": 6,
        },
        id="alert-blocked-dns-query-list",
    ),
    pytest.param(
        7,
        {
            **suricata("dns"),
            "@timestamp": at(2023, 3, 1, 10, 9, 0),
            "event.id": "6666666666666666",
            "source.ip": "192.0.2.50",
            "source.port": 53002,
            "destination.ip": "192.0.2.53",
            "destination.port": 53,
            "destination.domain": "v3.example.org",
            "network.transport": "udp",
            "network.protocol": "dns",
            "dns.question.name": "v3.example.org",
            "dns.question.type": "AAAA",
            "dns.response_code": "NOERROR",
            "log.file.line": 7,
        },
        id="dns-queries-v3",
    ),
]


@pytest.mark.parametrize(("line", "expected"), CRAFTED_EVENTS)
def test_crafted_event_fields(line: int, expected: dict[str, Any]) -> None:
    assert event_at(parse_file(SuricataEveParser(), CRAFTED).events, line) == expected


# --------------------------------------------------------------------------- the broken file


@pytest.mark.corpus
def test_broken_file_reasons(corpus: Path) -> None:
    parsed = parse_file(SuricataEveParser(), corpus / BROKEN)
    got = reasons(parsed)
    assert sorted(got) == [1, 2, 4, 5, 104, 160, 270]
    assert got[2] == "field timestamp: missing or invalid"  # "...+0100asloefbnjhowebfg"
    assert all(got[n].startswith("invalid JSON: ") for n in (1, 4, 5, 104, 160, 270))
    assert got[4] == "invalid JSON: Expecting ',' delimiter: line 1 column 16 (char 15)"  # ""2017-..""
    raw = dict(parsed.quarantine.select("log.file.line", "raw").iter_rows())
    assert raw[104] == "asdjpqawjdp/()/&WS()f7d56dqa87w9f69QD"
    # the good line after the bad ones still parses
    assert event_at(parsed.events, 3)["@timestamp"] == at(2017, 1, 30, 15, 12, 27, 8407)


@pytest.mark.corpus
def test_broken_file_loses_only_bad_lines(corpus: Path) -> None:
    """Every line of eve_broken.json that is also in eve.json gives the same event."""
    good = parse_file(SuricataEveParser(), corpus / SUREVEGO).events
    broken_path = corpus / BROKEN
    broken = parse_file(SuricataEveParser(), broken_path).events
    good_lines = (corpus / SUREVEGO).read_text().splitlines()
    broken_lines = broken_path.read_bytes().decode().splitlines()
    drop = ["log.file.path", "log.file.line"]
    shared = 0
    for n, text in enumerate(broken_lines, 1):
        if text in good_lines:
            expected = event_at(good, good_lines.index(text) + 1)
            got = event_at(broken, n)
            assert {k: v for k, v in got.items() if k not in drop} == {
                k: v for k, v in expected.items() if k not in drop
            }
            shared += 1
    assert shared == 262


# --------------------------------------------------------------------------- sniff


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (ELASTIC, True),
        (SUREVEGO, True),
        (GTK, True),
        ("zeek-rita-testdata/test_data/json_with_all_fields/conn.log", False),
        ("zeek-wrccdc-2018/zeek-default/dns.log.gz", False),
    ],
)
def test_sniff(corpus: Path, path: str, expected: bool) -> None:
    assert SuricataEveParser().sniff(head_lines(corpus / path)) is expected
    assert get_parser("suricata").name == "suricata"


# --------------------------------------------------------------------------- properties

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check_invariant(data: bytes) -> None:
    parsed = parse_file(SuricataEveParser(), data, "eve.json")  # checks every batch
    assert parsed.events.height + parsed.quarantine.height + parsed.skipped == parsed.lines
    assert dict(parsed.events.schema) == EVENT_SCHEMA


@PROPERTY
@given(st.binary(max_size=400))
def test_any_bytes(data: bytes) -> None:
    _check_invariant(data)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["rrname", "rdata", "query", "signature", "start", "rcpt_to"]), inner, max_size=3
        )
    ),
    max_leaves=6,
)
EVE_KEYS = ["timestamp", "event_type", "src_ip", "flow_id", "alert", "dns", "flow", "http", "smtp", "anomaly"]


@PROPERTY
@given(st.lists(st.dictionaries(st.sampled_from(EVE_KEYS), JSON_VALUES, max_size=6), min_size=1, max_size=5))
def test_any_json_objects(objects: list[dict[str, Any]]) -> None:
    """Valid JSON of any shape under EVE's keys: no crash, every line accounted for."""
    _check_invariant("\n".join(json.dumps(o) for o in objects).encode())


@st.composite
def mutations(draw: st.DrawFn, line: bytes) -> bytes:
    """A real line with a few bytes deleted, inserted, replaced or the line doubled."""
    out = bytearray(line)
    for _ in range(draw(st.integers(1, 5))):
        op = draw(st.sampled_from(["delete", "insert", "replace", "double"]))
        i = draw(st.integers(0, max(len(out) - 1, 0)))
        if op == "delete" and out:
            del out[i : i + draw(st.integers(1, 16))]
        elif op == "insert":
            special = st.sampled_from(
                [b'"', b"{", b"}", b"[", b"]", b"\n", b",", b":", b"\\", b"null", b"{}"]
            )
            out[i:i] = draw(st.binary(max_size=6) | special)
        elif op == "replace" and out:
            out[i] = draw(st.integers(0, 255))
        elif op == "double":
            out += b"\n" + bytes(out)
    return bytes(out)


@pytest.mark.corpus
def test_mutated_real_lines(corpus: Path) -> None:
    alert = (corpus / ELASTIC).read_bytes().split(b"\n")[1]

    @PROPERTY
    @given(st.lists(mutations(alert), min_size=1, max_size=4))
    def check(lines: list[bytes]) -> None:
        _check_invariant(b"\n".join([alert, *lines]))

    check()
