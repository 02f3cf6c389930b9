"""FortiGateSyslogParser on the Cribl FortiGate samples and crafted FortiOS lines."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mimamori.sources import ParseResult, get_parser, head_lines, read_batches
from mimamori.sources.fortigate import FortiGateSyslogParser
from tests.sources.util import check_invariant, fields

RAW = "firewall-utm-syslog/cribl-fortigate/raw"


def parse(source: Path | bytes, parser: Any = None, **ctx: Any) -> tuple[ParseResult, int]:
    """All batches of one file -> (merged result, lines the reader quarantined)."""
    parser = parser or get_parser("fortigate")
    results, reader_bad = [], 0
    for batch in read_batches(source, "t.log" if isinstance(source, bytes) else None):
        results.append(parser.parse(batch, ctx))
        reader_bad += batch.quarantine.height
    merged = ParseResult(
        pl.concat([r.events for r in results]),
        pl.concat([r.quarantine for r in results]),
        sum(r.skipped for r in results),
    )
    return merged, reader_bad


# --------------------------------------------------------------------------- real samples


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("name", "events", "quarantined", "skipped"),
    [
        ("fortigate_eventtype.log", 6, 0, 0),
        ("fortigate_traffic.log", 19, 0, 0),
        ("fortigate_utm.log", 5, 0, 0),
    ],
)
def test_counts(corpus: Path, name: str, events: int, quarantined: int, skipped: int) -> None:
    path = corpus / RAW / name
    result, _ = parse(path)
    assert (result.events.height, result.quarantine.height, result.skipped) == (
        events,
        quarantined,
        skipped,
    )
    assert FortiGateSyslogParser().sniff(head_lines(path))


@pytest.mark.corpus
def test_traffic_event(corpus: Path) -> None:
    path = corpus / RAW / "fortigate_traffic.log"
    result, _ = parse(path)
    # line 1: syslog header, eventtime=1609960622 (s), srcip=10.192.168.121 ... proto=17
    assert fields(result.events, 1) == {
        "@timestamp": datetime(2021, 1, 6, 19, 17, 2, tzinfo=UTC),
        "event.kind": "event",
        "event.category": "network",
        "event.type": "allowed",
        "event.action": "accept",
        "event.outcome": "success",
        "event.dataset": "fortigate.traffic",
        "event.module": "fortigate",
        "event.severity": 5,  # level="notice"
        "event.duration": 180_000_000_000,
        "source.ip": "10.192.168.121",
        "source.port": 55468,
        "source.bytes": 100,
        "source.packets": 1,
        "destination.ip": "95.192.16.56",
        "destination.port": 53,
        "destination.bytes": 133,
        "destination.packets": 1,
        "network.transport": "udp",
        "network.protocol": "dns",
        "network.bytes": 233,
        "observer.vendor": "Fortinet",
        "observer.product": "FortiGate",
        "observer.hostname": "rdaganffffffc01",
        "rule.id": "1",
        "log.file.path": str(path),
        "log.file.line": 1,
    }
    # line 15: no header, no eventtime, IPv6 ICMP (proto=58); port-only service dropped
    ev = fields(result.events, 15)
    assert ev["@timestamp"] == datetime(2021, 4, 23, 19, 19, 43, tzinfo=UTC)
    assert ev["source.ip"] == "fe80::20c:29ff:fe77:20d4"
    assert ev["destination.ip"] == "ff02::1:ff77:20d4"
    assert ev["network.transport"] == "ipv6-icmp"
    assert "network.protocol" not in ev  # service="icmp6/131/0" names no application
    # line 18: anonymised addresses are not IPs; the MAC and OS are kept
    ev = fields(result.events, 18)
    assert "source.ip" not in ev and "destination.ip" not in ev
    assert ev["source.mac"] == "00:09:0f:97:ef:e4"
    assert (ev["host.os.name"], ev["host.os.version"]) == ("Windows", "7")
    assert "network.protocol" not in ev  # service="udp/1194"


@pytest.mark.corpus
def test_utm_event(corpus: Path) -> None:
    path = corpus / RAW / "fortigate_utm.log"
    result, _ = parse(path)
    # line 2: subtype=virus, date/time without tz or eventtime -> UTC; user="" -> absent;
    # a sandbox submission without verdict is a file event, not a malware one
    assert fields(result.events, 2) == {
        "@timestamp": datetime(2021, 4, 23, 19, 21, 2, tzinfo=UTC),
        "event.kind": "alert",
        "event.category": "file",
        "event.type": "info",
        "event.action": "analytics",
        "event.outcome": "unknown",
        "event.dataset": "fortigate.utm",
        "event.module": "fortigate",
        "event.severity": 5,
        "message": "File submitted to Sandbox.",
        "source.port": 51211,
        "destination.port": 80,
        "network.transport": "tcp",
        "network.protocol": "http",
        "network.direction": "inbound",
        "url.full": "http://oa.fortinet.com/js/functions.js",
        "url.domain": "oa.fortinet.com",
        "url.path": "/js/functions.js",
        "user_agent.original": "Mozilla/5.0",
        "file.name": "functions.js",
        "file.hash.sha256": "0362a2dfabddf155aea6183c04ee7e00e5455d0560882d27b348b9ef1421ba53",
        "observer.vendor": "Fortinet",
        "observer.product": "FortiGate",
        "observer.hostname": "US-Corp_Main1",
        "rule.ruleset": "scan+sandbox",
        "log.file.path": str(path),
        "log.file.line": 2,
    }
    # line 1: app-ctrl over HTTPS; url is a path, hostname separate
    ev = fields(result.events, 1)
    assert ev["url.full"] == "https://myacme.test.com/"
    assert ev["destination.domain"] == "myacme.test.com"
    assert ev["event.category"] == "network"
    assert "source.ip" not in ev  # srcip=21.259.351.45 is not an address


@pytest.mark.corpus
def test_event_log(corpus: Path) -> None:
    path = corpus / RAW / "fortigate_eventtype.log"
    result, _ = parse(path)
    # line 1: eventtime in nanoseconds
    assert fields(result.events, 1) == {
        "@timestamp": datetime(2019, 5, 13, 18, 20, 54, 587081, tzinfo=UTC),
        "event.kind": "event",
        "event.category": "authentication",
        "event.type": "start",
        "event.action": "login",
        "event.outcome": "success",
        "event.dataset": "fortigate.event",
        "event.module": "fortigate",
        "event.severity": 6,
        "message": "Administrator admin logged in successfully from ssh(192.168.56.254)",
        "source.ip": "192.168.56.254",
        "destination.ip": "192.168.56.2",
        "observer.vendor": "Fortinet",
        "observer.product": "FortiGate",
        "user.name": "admin",
        "rule.ruleset": "super_admin",
        "log.file.path": str(path),
        "log.file.line": 1,
    }
    assert fields(result.events, 2)["event.duration"] == 17_000_000_000


# --------------------------------------------------------------------------- crafted lines

# FortiOS antivirus log (logid 0211008192, "File is infected.") for an SMTP attachment,
# fields in the order of the FortiOS log reference; addresses from documentation ranges.
SMTP_VIRUS = (
    'date=2024-05-01 time=10:15:30 devname="FGT60F-Office" devid="FGT60FTK2209XXXX" '
    'eventtime=1714526130123456789 tz="+0900" logid="0211008192" type="utm" subtype="virus" '
    'eventtype="infected" level="warning" vd="root" policyid=3 msg="File is infected." '
    'action="blocked" service="SMTP" sessionid=889911 srcip=203.0.113.45 dstip=192.168.1.25 '
    'srcport=41234 dstport=25 srcintf="wan1" srcintfrole="wan" dstintf="internal" '
    'dstintfrole="lan" proto=6 direction="incoming" filename="請求書_0501.zip" '
    'checksum="6851cf3c" quarskip="No-skip" virus="EICAR_TEST_FILE" dtype="Virus" '
    'ref="http://www.fortinet.com/ve?vn=EICAR_TEST_FILE" virusid=2172 profile="default" '
    'from="billing@example.net" to="tanaka@example.co.jp" sender="billing@example.net" '
    'recipient="tanaka@example.co.jp" subject="Invoice = May, \\"urgent\\"" '
    'analyticscksum="275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f" '
    'analyticssubmit="false" crscore=50 craction=2 crlevel="critical"'
)


def test_smtp_virus() -> None:
    result, _ = parse(("<188>" + SMTP_VIRUS + "\n").encode())
    assert result.quarantine.height == 0
    assert fields(result.events, 1) == {
        # eventtime (ns) wins over date/time/tz
        "@timestamp": datetime(2024, 5, 1, 1, 15, 30, 123456, tzinfo=UTC),
        "event.kind": "alert",
        "event.category": "malware",
        "event.type": "denied",
        "event.action": "blocked",
        "event.outcome": "failure",
        "event.dataset": "fortigate.utm",
        "event.module": "fortigate",
        "event.severity": 4,
        "message": "File is infected.",
        "source.ip": "203.0.113.45",
        "source.port": 41234,
        "destination.ip": "192.168.1.25",
        "destination.port": 25,
        "network.transport": "tcp",
        "network.protocol": "smtp",
        "network.direction": "inbound",
        "file.name": "請求書_0501.zip",
        "file.hash.sha256": "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
        "email.from.address": "billing@example.net",
        "email.to.address": "tanaka@example.co.jp",
        "email.subject": 'Invoice = May, "urgent"',
        "email.attachments.file.name": "請求書_0501.zip",
        "observer.vendor": "Fortinet",
        "observer.product": "FortiGate",
        "observer.hostname": "FGT60F-Office",
        "rule.ruleset": "default",
        "threat.indicator.name": "EICAR_TEST_FILE",
        "log.file.path": "t.log",
        "log.file.line": 1,
    }


def test_ips_signature() -> None:
    line = (
        'date=2024-05-01 time=11:00:00 devname="FGT60F" devid="FGT60FTK0000001" '
        'eventtime=1714528800 logid="0419016384" type="utm" subtype="ips" eventtype="signature" '
        'level="alert" vd="root" severity="high" srcip=198.51.100.9 srccountry="Reserved" '
        'dstip=192.168.1.10 srcintf="wan1" dstintf="internal" sessionid=4242 '
        'action="dropped" proto=6 service="SMB" policyid=7 policyname="wan-to-lan" '
        'attack="MS.SMB.Server.SMB1.Trans2.Secondary.Handling.Code.Execution" srcport=50123 '
        'dstport=445 direction="outgoing" attackid=43796 profile="default" ref="" '
        'incidentserialno=123 msg="netbios: MS.SMB.Server.SMB1.Trans2.Secondary.Handling"'
    )
    ev = fields(parse((line + "\n").encode())[0].events, 1)
    assert (ev["rule.name"], ev["rule.id"]) == (
        "MS.SMB.Server.SMB1.Trans2.Secondary.Handling.Code.Execution",
        "43796",
    )
    assert ev["event.severity"] == 2  # severity="high"; level="alert" would be 1
    assert (ev["event.category"], ev["event.kind"], ev["event.type"]) == (
        "intrusion_detection",
        "alert",
        "denied",
    )
    assert ev["network.protocol"] == "smb"


def test_shift_jis_line() -> None:
    line = (
        'date=2024-05-01 time=09:00:00 tz="+0900" devname="本社FGT" devid="FGT60FTK0000001" '
        'logid="0100032001" type="event" subtype="system" level="information" vd="root" '
        'logdesc="Admin login successful" user="山田太郎" ui="https(192.168.1.10)" '
        'action="login" status="success" msg="管理者 山田太郎 が https(192.168.1.10) からログイン"'
    )
    data = line.encode("cp932") + b"\r\n"
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    result, reader_bad = parse(data)
    assert reader_bad == 0
    ev = fields(result.events, 1)
    assert ev["@timestamp"] == datetime(2024, 5, 1, 0, 0, 0, tzinfo=UTC)  # 09:00 +0900
    assert ev["user.name"] == "山田太郎"
    assert ev["observer.hostname"] == "本社FGT"
    assert ev["message"] == "管理者 山田太郎 が https(192.168.1.10) からログイン"
    assert ev["event.category"] == "authentication"


def test_quoted_values_with_spaces_and_equals() -> None:
    line = (
        'date=2024-05-01 time=12:00:00 devname="fw 1" logid="0316013056" type="utm" '
        'subtype="webfilter" level="warning" srcip=192.0.2.10 dstip=198.51.100.7 proto=6 '
        'service="HTTPS" hostname="www.example.com" url="/search?q=a b&x=1" '
        'msg="URL belongs to a denied category in policy: type=bad key=val" action="blocked" '
        'catdesc="Malicious Websites" user="bob smith"'
    )
    result, _ = parse((line + "\n").encode())
    ev = fields(result.events, 1)
    assert ev["message"] == "URL belongs to a denied category in policy: type=bad key=val"
    assert ev["observer.hostname"] == "fw 1"
    assert ev["url.full"] == "https://www.example.com/search?q=a b&x=1"
    assert ev["url.path"] == "/search"
    assert ev["user.name"] == "bob smith"
    assert ev["rule.category"] == "Malicious Websites"
    assert ev["event.dataset"] == "fortigate.utm"  # type=bad inside msg did not count
    assert ev["event.category"] == "web"


def test_time_sources_and_quarantine() -> None:
    lines = [
        "date=2024-05-01 time=09:00:00 logid=0000000013 type=traffic eventtime=1714521600123",  # ms
        "date=2024-05-01 time=09:00:00 logid=0000000013 type=traffic eventtime=1714521600123456",  # us
        "date=2024-05-01 time=09:00:00 logid=0000000013 type=traffic tz=-0500",
        "date=2024-05-01 time=09:00:00 logid=0000000013 type=traffic",  # option timezone
        "logid=0000000013 type=traffic srcip=192.0.2.1",  # no time at all
        "date=2024-13-45 time=99:00:00 logid=0000000013 type=traffic eventtime=abc",
        "this is not a key value line",
        "   ",
        "date=2024-05-01 time=09:00:00 logid=0000000013 type=traffic eventtime=1714521600",
    ]
    parser = FortiGateSyslogParser(timezone="Asia/Tokyo")
    result, _ = parse("\n".join(lines).encode(), parser)
    ts = dict(zip(result.events["log.file.line"], result.events["@timestamp"], strict=True))
    assert ts == {
        1: datetime(2024, 5, 1, 0, 0, 0, 123000, tzinfo=UTC),
        2: datetime(2024, 5, 1, 0, 0, 0, 123456, tzinfo=UTC),
        3: datetime(2024, 5, 1, 14, 0, 0, tzinfo=UTC),
        4: datetime(2024, 5, 1, 0, 0, 0, tzinfo=UTC),
        9: datetime(2024, 5, 1, 0, 0, 0, tzinfo=UTC),
    }
    reasons = dict(zip(result.quarantine["log.file.line"], result.quarantine["reason"], strict=True))
    assert reasons == {
        5: "field eventtime/date/time: missing or invalid",
        6: "field eventtime/date/time: missing or invalid",
        7: "not a FortiGate key=value line",
    }
    assert result.skipped == 1
    assert result.quarantine.filter(pl.col("log.file.line") == 7)["raw"].item() == lines[6]


def test_sniff_rejects_other_formats() -> None:
    parser = FortiGateSyslogParser()
    assert not parser.sniff(["<14>Jul 20 23:59:02 fw 1,2021/07/20 23:59:02,1,TRAFFIC,end"])
    assert not parser.sniff(["<134>Jul  3 19:10:30 filterlog[1]: 146,,,1,igb1,match,block"])
    assert parser.sniff(["date=2021-04-23 time=19:21:02 devid=FG1 logid=0201009233 type=utm"])


# --------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes(data: bytes) -> None:
    check_invariant(FortiGateSyslogParser(), data)


@pytest.mark.corpus
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_real_lines(corpus: Path, data: st.DataObject) -> None:
    lines = [
        ln.encode()
        for name in ("fortigate_utm.log", "fortigate_traffic.log", "fortigate_eventtype.log")
        for ln in (corpus / RAW / name).read_text().splitlines()
    ]
    out = []
    for _ in range(data.draw(st.integers(1, 6))):
        line = data.draw(st.sampled_from(lines))
        cut = data.draw(st.integers(0, len(line)))
        junk = data.draw(st.binary(max_size=6))
        mode = data.draw(st.sampled_from(["cut", "insert", "replace", "keep"]))
        if mode == "cut":
            line = line[:cut]
        elif mode == "insert":
            line = line[:cut] + junk + line[cut:]
        elif mode == "replace":
            line = line[:cut] + junk + line[cut + len(junk) :]
        out.append(line)
    check_invariant(FortiGateSyslogParser(), b"\n".join(out))
