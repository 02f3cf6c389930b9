"""FilterlogParser on the elastic pfSense/OPNsense fixtures and crafted filterlog lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mimamori.sources import ParseResult, get_parser, head_lines
from mimamori.sources.filterlog import FilterlogParser
from tests.sources.util import check_invariant, fields, parse_merged

RAW = "firewall-utm-syslog/elastic-pfsense"


def parse(source: Path | bytes, parser: Any = None, **ctx: Any) -> ParseResult:
    return parse_merged(parser or get_parser("filterlog"), source, **ctx)


# --------------------------------------------------------------------------- real samples


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("name", "events", "syslog_events", "quarantined", "skipped"),
    [
        # the last line of both files has no newline: 5 and 19 lines
        ("test-opensense.log", 5, 2, 0, 0),
        ("test-pfsense-bsd.log", 19, 0, 0, 0),
    ],
)
def test_counts(
    corpus: Path, name: str, events: int, syslog_events: int, quarantined: int, skipped: int
) -> None:
    path = corpus / RAW / name
    result = parse(path, year=2023)
    assert (result.events.height, result.quarantine.height, result.skipped) == (
        events,
        quarantined,
        skipped,
    )
    assert (result.events["event.dataset"] == "syslog").sum() == syslog_events
    assert FilterlogParser().sniff(head_lines(path))


@pytest.mark.corpus
def test_bsd_event(corpus: Path) -> None:
    path = corpus / RAW / "test-pfsense-bsd.log"
    events = parse(path, year=2023).events
    assert fields(events, 1) == {
        "@timestamp": datetime(2023, 7, 3, 19, 10, 30, tzinfo=UTC),
        "event.kind": "event",
        "event.category": "network",
        "event.type": "denied",
        "event.action": "block",
        "event.outcome": "failure",
        "event.dataset": "pfsense.filterlog",
        "event.module": "pfsense",
        "event.severity": 6,  # <134> = local0.info
        "source.ip": "10.170.12.50",
        "source.port": 49724,
        "destination.ip": "1.1.1.1",
        "destination.port": 853,
        "network.transport": "tcp",
        "network.bytes": 60,
        "network.direction": "ingress",
        "observer.product": "filterlog",  # no hostname, numeric tracker
        "rule.id": "1535324496",
        "rule.ruleset": "igb1.12",
        "log.file.path": str(path),
        "log.file.line": 1,
    }
    # IPv6 UDP (line 7), IGMP (line 17) and ICMP (line 18): ports only for TCP/UDP
    v6 = fields(events, 7)
    assert (v6["source.ip"], v6["destination.ip"], v6["source.port"], v6["destination.port"]) == (
        "fe80::208:9bff:fef3:652b",
        "ff02::1:2",
        546,
        547,
    )
    assert (v6["network.transport"], v6["network.bytes"]) == ("udp", 32)
    igmp = fields(events, 17)
    assert (igmp["network.transport"], igmp["destination.ip"], igmp["event.action"]) == (
        "igmp",
        "239.255.255.250",
        "pass",
    )
    assert "source.port" not in igmp
    icmp = fields(events, 18)
    assert icmp["network.transport"] == "icmp" and "destination.port" not in icmp
    assert icmp["@timestamp"] == datetime(2023, 7, 4, 11, 10, 45, tzinfo=UTC)


@pytest.mark.corpus
def test_opnsense_events(corpus: Path) -> None:
    path = corpus / RAW / "test-opensense.log"
    events = parse(path, year=2023).events
    # RFC 5424 header with its own offset; the year option does not apply
    assert fields(events, 5) == {
        "@timestamp": datetime(2022, 6, 9, 20, 44, 11, tzinfo=UTC),
        "event.kind": "event",
        "event.category": "network",
        "event.type": "allowed",
        "event.action": "pass",
        "event.outcome": "success",
        "event.dataset": "pfsense.filterlog",
        "event.module": "pfsense",
        "event.severity": 6,
        "source.ip": "192.168.1.1",
        "source.port": 40370,
        "destination.ip": "10.10.10.10",
        "destination.port": 80,
        "network.transport": "tcp",
        "network.bytes": 60,
        "network.direction": "egress",
        "observer.vendor": "Deciso",
        "observer.product": "OPNsense",
        "observer.hostname": "OPNsense.example.com",
        "rule.id": "fae559338f65e11c53669fc3642c93c2",
        "rule.ruleset": "ixl1_vlan70",
        "log.file.path": str(path),
        "log.file.line": 5,
    }
    # another program in the same stream: kept as a generic syslog event
    assert fields(events, 3) == {
        "@timestamp": datetime(2023, 12, 31, 22, 6, 16, tzinfo=UTC),
        "event.kind": "event",
        "event.dataset": "syslog",
        "event.module": "pfsense",
        "event.severity": 6,  # <190> = local7.info
        "message": "dhcpd[40152]: DHCPDISCOVER from 4c:55:41:a0:fa:99 via eth0.60",
        "host.name": "firewall.opnsense.net",
        "observer.hostname": "firewall.opnsense.net",
        "log.file.path": str(path),
        "log.file.line": 3,
    }
    assert fields(events, 1)["observer.product"] == "OPNsense"  # from the hostname


# --------------------------------------------------------------------------- crafted lines

GOOD = (
    "146,,,1535324496,igb1.12,match,block,in,4,0x0,,63,12617,0,DF,6,tcp,60,"
    "10.0.0.5,192.0.2.1,49724,853,0,S,1,,64240,,mss"
)


def test_bad_lines_are_quarantined() -> None:
    lines = [
        "<134>Jul  3 19:10:30 fw.pfsense.lan filterlog[1]: " + GOOD,
        "<134>Jul  3 19:10:30 fw filterlog[1]: " + GOOD.replace(",4,0x0,", ",5,0x0,"),
        "<134>Jul  3 19:10:30 fw filterlog[1]: " + GOOD.replace(",block,", ",frobnicate,"),
        "<134>Jul  3 19:10:30 fw filterlog[1]: " + GOOD.replace("10.0.0.5", "999.0.0.5"),
        "<134>Feb 30 19:10:30 fw filterlog[1]: " + GOOD,
        "<134>Jul  3 19:10:30 fw filterlog[1]: 146,,,",
        "no header here: " + GOOD,
        "",
        "<134>Jul  3 19:10:30 fw filterlog[1]: "
        + "5,,,1000000003,em0,match,pass,out,4,0x0,,64,0,0,none,112,carp,36,"
        + "192.0.2.2,224.0.0.18,advertise,64,1,2,1,0",
    ]
    result = parse("\n".join(lines).encode(), year=2024)
    reasons = dict(zip(result.quarantine["log.file.line"], result.quarantine["reason"], strict=True))
    assert reasons == {
        2: "field ip version: missing or invalid",
        3: "field action: missing or invalid",
        4: "field source address: missing or invalid",
        5: "field syslog timestamp: missing or invalid",
        6: "field action: missing or invalid",
        7: "not a syslog line (no RFC 3164 / RFC 5424 header)",
    }
    assert result.skipped == 1
    assert result.events["log.file.line"].to_list() == [1, 9]
    ev = fields(result.events, 1)
    assert (ev["observer.product"], ev["observer.vendor"]) == ("pfSense", "Netgate")
    carp = fields(result.events, 9)
    assert carp["network.transport"] == "carp" and "source.port" not in carp


def test_year_and_timezone() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    past = now - timedelta(days=2)
    line = f"<134>{past:%b} {past.day:2d} {past:%H:%M:%S} fw filterlog[1]: {GOOD}\n"
    # no year given: the current year, or the previous one when that would be ahead
    assert parse(line.encode()).events["@timestamp"].item() == past
    tokyo = parse(
        b"<134>Jul  3 19:10:30 fw filterlog[1]: " + GOOD.encode(),
        FilterlogParser(year=2021),
        timezone="Asia/Tokyo",
    )
    assert tokyo.events["@timestamp"].item() == datetime(2021, 7, 3, 10, 10, 30, tzinfo=UTC)


def test_sniff() -> None:
    parser = FilterlogParser()
    assert parser.sniff(["<134>1 2022-06-09T14:44:11-06:00 h filterlog 76404 - - 1,,,"])
    assert not parser.sniff(["<190>Dec 31 22:06:16 fw dhcpd[40152]: DHCPDISCOVER"])
    assert not parser.sniff(["date=2021-04-23 time=19:21:02 devid=FG1 logid=1 type=utm"])


# --------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes(data: bytes) -> None:
    check_invariant(FilterlogParser(year=2024), data)


@pytest.mark.corpus
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_real_lines(corpus: Path, data: st.DataObject) -> None:
    lines = [ln.encode() for p in sorted((corpus / RAW).glob("*.log")) for ln in p.read_text().splitlines()]
    out = []
    for _ in range(data.draw(st.integers(1, 6))):
        line = data.draw(st.sampled_from(lines))
        cut = data.draw(st.integers(0, len(line)))
        junk = data.draw(st.binary(max_size=6) | st.sampled_from([b",", b",,", b"::", b" "]))
        mode = data.draw(st.sampled_from(["cut", "insert", "replace", "keep"]))
        if mode == "cut":
            line = line[:cut]
        elif mode == "insert":
            line = line[:cut] + junk + line[cut:]
        elif mode == "replace":
            line = line[:cut] + junk + line[cut + len(junk) :]
        out.append(line)
    check_invariant(FilterlogParser(year=2024), b"\n".join(out))
