"""PanOsCsvParser on the Cribl PAN-OS samples and crafted PAN-OS CSV lines."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mimamori.sources import ParseResult, get_parser, head_lines
from mimamori.sources.panos import PanOsCsvParser
from tests.sources.util import check_invariant, fields, parse_merged

RAW = "firewall-utm-syslog/cribl-paloalto-panos/raw"


def parse(source: Path | bytes, parser: Any = None, **ctx: Any) -> ParseResult:
    return parse_merged(parser or get_parser("panos"), source, **ctx)


# --------------------------------------------------------------------------- real samples


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("name", "events", "quarantined", "skipped"),
    [
        ("pan_config.log", 1, 0, 0),
        ("pan_correlation.log", 1, 0, 0),
        ("pan_globalprotect.log", 1, 0, 0),
        ("pan_hipmatch.log", 1, 0, 0),
        ("pan_system.log", 4, 0, 0),
        ("pan_threat.log", 1, 0, 0),
        ("pan_traffic.log", 4, 0, 0),
    ],
)
def test_counts(corpus: Path, name: str, events: int, quarantined: int, skipped: int) -> None:
    path = corpus / RAW / name
    result = parse(path)
    assert (result.events.height, result.quarantine.height, result.skipped) == (
        events,
        quarantined,
        skipped,
    )
    assert PanOsCsvParser().sniff(head_lines(path))
    assert (
        result.events["event.dataset"].to_list()
        == ["panos." + name.removeprefix("pan_").removesuffix(".log")] * events
    )


@pytest.mark.corpus
def test_threat_event(corpus: Path) -> None:
    path = corpus / RAW / "pan_threat.log"
    assert fields(parse(path).events, 1) == {
        "@timestamp": datetime(2021, 7, 20, 23, 59, 2, tzinfo=UTC),
        "event.kind": "alert",
        "event.category": "web",
        "event.type": "allowed",
        "event.action": "alert",
        "event.outcome": "success",
        "event.dataset": "panos.threat",
        "event.module": "panos",
        "event.severity": 5,  # informational
        "source.ip": "10.14.6.57",
        "source.port": 58102,
        "destination.ip": "206.169.145.222",
        "destination.port": 80,
        "network.transport": "tcp",
        "network.protocol": "web-browsing",
        "url.full": "cribl.io/download",
        "url.domain": "cribl.io",
        "url.path": "/download",
        "observer.vendor": "Palo Alto Networks",
        "observer.product": "PAN-OS",
        "observer.hostname": "firewall",  # the line stops before Device Name
        "rule.id": "9999",  # "(9999)": no threat name
        "rule.category": "not-defined",
        "log.file.path": str(path),
        "log.file.line": 1,
    }


@pytest.mark.corpus
def test_traffic_event(corpus: Path) -> None:
    path = corpus / RAW / "pan_traffic.log"
    assert fields(parse(path).events, 3) == {
        "@timestamp": datetime(2018, 9, 20, 13, 3, 56, tzinfo=UTC),
        "event.kind": "event",
        "event.category": "network",
        "event.type": "denied",
        "event.action": "deny",
        "event.outcome": "failure",
        "event.dataset": "panos.traffic",
        "event.module": "panos",
        "event.duration": 0,
        "source.ip": "134.119.193.57",
        "source.port": 40478,
        "source.bytes": 54,
        "source.packets": 1,
        "destination.ip": "10.0.0.102",
        "destination.port": 60108,
        "destination.bytes": 0,
        "destination.packets": 0,
        "network.transport": "tcp",
        "network.protocol": "not-applicable",
        "network.bytes": 54,
        "observer.vendor": "Palo Alto Networks",
        "observer.product": "PAN-OS",
        "observer.hostname": "PA-VM",
        "rule.name": "interzone-default",
        "log.file.path": str(path),
        "log.file.line": 3,
    }


@pytest.mark.corpus
def test_other_types(corpus: Path) -> None:
    system = parse(corpus / RAW / "pan_system.log").events
    # line 2 lacks the virtual-system column: read one field to the left
    ev = fields(system, 2)
    assert ev["event.action"] == "ike-config-p1-success"
    assert ev["message"] == "IKE daemon configuration load phase-1 succeeded."
    assert ev["event.severity"] == 5  # informational
    ev = fields(system, 1)
    assert (ev["event.action"], ev["message"]) == (
        "routed-config-p1-success",
        "Route daemon configuration load phase-1 succeeded.",
    )

    path = corpus / RAW / "pan_correlation.log"
    assert fields(parse(path).events, 1) == {
        "@timestamp": datetime(2021, 7, 20, 23, 59, 2, tzinfo=UTC),
        "event.kind": "alert",
        "event.category": "threat",
        "event.type": "indicator",
        "event.action": "beacon-heuristics",
        "event.outcome": "unknown",
        "event.dataset": "panos.correlation",
        "event.module": "panos",
        "event.severity": 3,  # medium
        "message": "Host visited known malware URL (100 times).",
        "source.ip": "1.2.3.4",
        "observer.vendor": "Palo Alto Networks",
        "observer.product": "PAN-OS",
        "observer.hostname": "us2",
        "user.name": "username",
        "rule.id": "6005",
        "rule.name": "beacon-heuristics",
        "rule.category": "compromised-host",
        "log.file.path": str(path),
        "log.file.line": 1,
    }

    gp = fields(parse(corpus / RAW / "pan_globalprotect.log").events, 1)
    assert (gp["event.action"], gp["user.name"], gp["source.ip"]) == (
        "gateway-hip-report",
        "user",
        "76.1.1.1",
    )
    assert (gp["host.name"], gp["host.ip"], gp["event.outcome"]) == (
        "SysAdmin",
        "10.1.15.252",
        "success",
    )

    config = fields(parse(corpus / RAW / "pan_config.log").events, 1)
    assert config["@timestamp"] == datetime(2021, 7, 20, 0, 53, 40, tzinfo=UTC)
    assert (config["event.action"], config["user.name"], config["source.ip"]) == (
        "commit",
        "admin",
        "192.168.0.1",
    )

    hip = fields(parse(corpus / RAW / "pan_hipmatch.log").events, 1)
    assert (hip["user.name"], hip["host.name"], hip["host.os.name"], hip["source.ip"]) == (
        "xx.xx",
        "xx-xxxxx-MB",
        "Mac",
        "10.252.31.187",
    )


# --------------------------------------------------------------------------- crafted lines


def _threat_virus(subtype: str = "virus", category: str = "any") -> str:
    """A PAN-OS 10 THREAT/virus record for a mail attachment, fields in documented order."""
    fields_ = [
        "1", "2024/05/01 10:00:05", "012801096514", "THREAT", subtype, "2561",
        "2024/05/01 10:00:01", "198.51.100.25", "192.168.1.20", "0.0.0.0", "0.0.0.0",
        "inbound-smtp", "", "example\\tanaka", "smtp", "vsys1", "untrust", "trust",
        "ethernet1/1", "ethernet1/2", "default", "2024/05/01 10:00:01", "123456", "1",
        "45123", "25", "0", "0", "0x402000", "tcp", "reset-both",
        '"invoice, May 2024.zip"', "Eicar Test File(39040)", category, "medium",
        "server-to-client", "7654321", "0x2000000000000000", "United States",
        "192.168.0.0-192.168.255.255", "0", "", "0",
        "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f", "", "0", "",
        "zip", "", "", "billing@example.net", '"Invoice, May ""urgent"""',
        "tanaka@example.co.jp", "0", "0", "0", "0", "0", "", "PA-3220", "", "", "", "", "0",
        "", "0", "", "N/A", "virus", "8563-8713", "0x0",
    ]  # fmt: skip
    return ",".join(fields_)


def test_threat_virus_with_quoted_commas() -> None:
    text = "<14>1 2024-05-01T10:00:05+09:00 pa-mgmt - - - - " + _threat_virus()
    result = parse((text + "\n").encode(), PanOsCsvParser(timezone="Asia/Tokyo"))
    assert result.quarantine.height == 0
    assert fields(result.events, 1) == {
        "@timestamp": datetime(2024, 5, 1, 1, 0, 1, tzinfo=UTC),  # 10:00:01 in Tokyo
        "event.kind": "alert",
        "event.category": "malware",
        "event.type": "denied",
        "event.action": "reset-both",
        "event.outcome": "failure",
        "event.dataset": "panos.threat",
        "event.module": "panos",
        "event.severity": 3,  # medium
        "source.ip": "198.51.100.25",
        "source.port": 45123,
        "destination.ip": "192.168.1.20",
        "destination.port": 25,
        "network.transport": "tcp",
        "network.protocol": "smtp",
        "file.name": "invoice, May 2024.zip",
        "file.hash.sha256": "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
        "email.from.address": "billing@example.net",
        "email.to.address": "tanaka@example.co.jp",
        "email.subject": 'Invoice, May "urgent"',
        "email.attachments.file.name": "invoice, May 2024.zip",
        "observer.vendor": "Palo Alto Networks",
        "observer.product": "PAN-OS",
        "observer.hostname": "PA-3220",
        "rule.id": "39040",
        "rule.name": "Eicar Test File",
        "rule.category": "any",
        "threat.indicator.name": "Eicar Test File",
        "log.file.path": "t.log",
        "log.file.line": 1,
    }


@pytest.mark.parametrize(
    ("subtype", "category", "ecs_category", "indicator"),
    [
        ("wildfire-virus", "any", "malware", "Eicar Test File"),
        ("wildfire", "malicious", "malware", "Eicar Test File"),
        ("wildfire", "benign", "file", None),
        ("spyware", "any", "intrusion_detection", None),
        ("vulnerability", "any", "intrusion_detection", None),
    ],
)
def test_threat_categories(subtype: str, category: str, ecs_category: str, indicator: str | None) -> None:
    events = parse((_threat_virus(subtype, category) + "\n").encode()).events
    row = events.row(0, named=True)
    assert (row["event.category"], row["threat.indicator.name"]) == (ecs_category, indicator)
    assert row["rule.name"] == "Eicar Test File"


def test_bad_lines_are_quarantined() -> None:
    lines = [
        "hello,world",
        "1,2024/13/40 99:00:00,0123,TRAFFIC,end,0,2024/13/40 99:00:00,192.0.2.1",
        "",
        "1,2024/05/01 10:00:05,0123,USERID,login,0,2024/05/01 10:00:05,vsys1",
        '<14>May  1 10:00:05 fw 1,2024/05/01 10:00:05,0123,TRAFFIC,end,0,"unterminated',
    ]
    result = parse("\n".join(lines).encode())
    reasons = dict(zip(result.quarantine["log.file.line"], result.quarantine["reason"], strict=True))
    assert reasons == {
        1: "not a PAN-OS CSV log line",
        2: "field Generated Time: missing or invalid",
    }
    assert result.skipped == 1
    assert result.events["log.file.line"].to_list() == [4, 5]
    ev = fields(result.events, 4)
    assert (ev["event.dataset"], ev["event.category"], ev["observer.hostname"]) == (
        "panos.userid",
        "iam",
        "0123",
    )
    ev = fields(result.events, 5)
    assert ev["@timestamp"] == datetime(2024, 5, 1, 10, 0, 5, tzinfo=UTC)  # receive time
    assert ev["observer.hostname"] == "fw"


def test_sniff_rejects_other_formats() -> None:
    parser = PanOsCsvParser()
    assert not parser.sniff(["date=2021-04-23 time=19:21:02 devid=FG1 logid=1 type=utm"])
    assert not parser.sniff(["<134>Jul  3 19:10:30 filterlog[1]: 146,,,1,igb1,match,block"])
    assert not parser.sniff(["a,b,c,d", ""])
    assert parser.sniff(["1,2024/05/01 10:00:05,0123,SYSTEM,general,0,2024/05/01 10:00:05"])


# --------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes(data: bytes) -> None:
    check_invariant(PanOsCsvParser(), data)


@pytest.mark.corpus
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_real_lines(corpus: Path, data: st.DataObject) -> None:
    lines = [
        ln.encode() for p in sorted((corpus / RAW).glob("pan_*.log")) for ln in p.read_text().splitlines()
    ]
    lines.append(_threat_virus().encode())
    out = []
    for _ in range(data.draw(st.integers(1, 6))):
        line = data.draw(st.sampled_from(lines))
        cut = data.draw(st.integers(0, len(line)))
        junk = data.draw(st.binary(max_size=6) | st.sampled_from([b",", b'"', b'","', b"\xff"]))
        mode = data.draw(st.sampled_from(["cut", "insert", "replace", "keep"]))
        if mode == "cut":
            line = line[:cut]
        elif mode == "insert":
            line = line[:cut] + junk + line[cut:]
        elif mode == "replace":
            line = line[:cut] + junk + line[cut + len(junk) :]
        out.append(line)
    check_invariant(PanOsCsvParser(), b"\n".join(out))
