"""ZeekParser on real Zeek logs (RITA test data, WRCCDC 2018) in TSV and JSON.

Expected values were read off the raw lines (``zcat FILE | sed -n Np``), not taken from
the parser: ``ts`` 1713484795.943239 is 2024-04-18 23:59:55.943239 UTC, and so on.
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
from mimamori.sources import get_parser, head_lines, read_batches, reader
from mimamori.sources.zeek import ZeekParser
from tests.sources.util import event_at, parse_file, reasons

RITA = "zeek-rita-testdata/test_data"
DAY = f"{RITA}/missing_host/2024-04-19"
WRCCDC = "zeek-wrccdc-2018"
CRAFTED = Path(__file__).resolve().parents[1] / "data" / "zeek"


def zeek(
    dataset: str, kind: str = "event", category: str = "network", type_: str = "protocol"
) -> dict[str, Any]:
    """The fields every Zeek event of a dataset carries."""
    return {
        "event.module": "zeek",
        "event.dataset": dataset,
        "event.kind": kind,
        "event.category": category,
        "event.type": type_,
        "observer.vendor": "zeek",
        "observer.product": "zeek",
    }


def at(year: int, month: int, day: int, hour: int, minute: int, second: int, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


# --------------------------------------------------------------------------- counts

COUNTS = [
    # path, events, quarantined, skipped, datasets
    (f"{RITA}/json_with_all_fields/conn.log", 29, 0, 0, {"zeek.conn"}),
    (f"{RITA}/json_with_all_fields/dns.log", 34, 0, 0, {"zeek.dns"}),  # no _path: file name
    (f"{RITA}/json_with_all_fields/http.log", 10, 0, 0, {"zeek.http"}),
    (f"{RITA}/json_with_all_fields/ssl.log", 10, 0, 0, {"zeek.ssl"}),
    (f"{RITA}/json_with_all_fields/open_conn.log", 59, 0, 0, {"zeek.conn"}),  # _path says conn
    (f"{DAY}/conn.00:00:00-01:00:00.log.gz", 1765, 0, 9, {"zeek.conn"}),
    (f"{DAY}/open_conn.00:00:00-01:00:00.log.gz", 1, 0, 9, {"zeek.open_conn"}),
    (f"{DAY}/dns.00:00:00-01:00:00.log.gz", 86, 0, 9, {"zeek.dns"}),
    (f"{DAY}/http.01:00:00-02:00:00.log.gz", 436, 0, 9, {"zeek.http"}),
    (f"{DAY}/ssl.00:00:00-01:00:00.log.gz", 2, 0, 9, {"zeek.ssl"}),
    (f"{DAY}/files.00:00:00-01:00:00.log.gz", 189, 0, 9, {"zeek.files"}),
    (f"{DAY}/software.19:00:00-20:00:00.log.gz", 2, 0, 9, {"zeek.software"}),
    (f"{DAY}/notice.03:00:00-04:00:00.log.gz", 1, 0, 9, {"zeek.notice"}),
    (f"{RITA}/proxy/dhcp.log", 57, 0, 9, {"zeek.dhcp"}),
    (f"{RITA}/proxy/files.log", 194, 0, 9, {"zeek.files"}),
    (f"{RITA}/proxy/software.log", 4, 0, 9, {"zeek.software"}),
    (f"{RITA}/proxy/http.log", 407, 0, 9, {"zeek.http"}),
    (f"{RITA}/proxy/weird.log", 131, 0, 9, {"zeek.weird"}),
    (f"{RITA}/proxy/x509.log", 173, 0, 9, {"zeek.x509"}),
    (f"{RITA}/proxy/loaded_scripts.log", 0, 443, 9, set()),  # a Zeek log without ts
    (f"{RITA}/dnscat2-ja3-strobe-agent/http.log.gz", 27204, 0, 9, {"zeek.http"}),  # trailing tabs
    (f"{RITA}/has_unknown_field/http.log", 4, 1, 8, {"zeek.http"}),
    (f"{RITA}/truncated/conn.log", 58, 1, 8, {"zeek.conn"}),
    (f"{RITA}/truncated/conn_json.log", 3, 1, 0, {"zeek.conn"}),  # conn_json: fingerprint
    (f"{RITA}/truncated/conn_top.log", 0, 59, 0, set()),
    (f"{WRCCDC}/zeek-default/dns.log.gz", 53615, 0, 9, {"zeek.dns"}),
    (f"{WRCCDC}/zeek-default/ssl.log.gz", 49474, 0, 9, {"zeek.ssl"}),
    (f"{WRCCDC}/zeek-default/notice.log.gz", 207, 0, 9, {"zeek.notice"}),
    (f"{WRCCDC}/zeek-default/software.log.gz", 376, 0, 9, {"zeek.software"}),
    (f"{WRCCDC}/zeek-default/smtp.log.gz", 1188, 0, 9, {"zeek.smtp"}),
    (f"{WRCCDC}/zeek-default/kerberos.log.gz", 11, 0, 9, {"zeek.kerberos"}),
    (f"{WRCCDC}/zeek-json/dns.json.gz", 53615, 0, 0, {"zeek.dns"}),
    (f"{WRCCDC}/zeek-json/ssl.json.gz", 49474, 0, 0, {"zeek.ssl"}),
    (f"{WRCCDC}/zeek-json/notice.json.gz", 207, 0, 0, {"zeek.notice"}),
    (f"{WRCCDC}/zeek-json/software.json.gz", 376, 0, 0, {"zeek.software"}),
    (f"{WRCCDC}/zeek-json/smtp.json.gz", 1188, 0, 0, {"zeek.smtp"}),
    (f"{WRCCDC}/zeek-json/x509.json.gz", 348, 0, 0, {"zeek.x509"}),
]


@pytest.mark.corpus
@pytest.mark.parametrize(("path", "events", "quarantined", "skipped", "datasets"), COUNTS)
def test_counts(
    corpus: Path, path: str, events: int, quarantined: int, skipped: int, datasets: set[str]
) -> None:
    parsed = parse_file(ZeekParser(), corpus / path)
    assert parsed.counts == (events, quarantined, skipped)
    assert parsed.lines == events + quarantined + skipped
    assert set(parsed.events["event.dataset"].unique()) == datasets


@pytest.mark.parametrize(
    ("name", "events", "skipped", "dataset"),
    [("dhcp.log", 2, 9, "zeek.dhcp"), ("smtp.log", 1, 9, "zeek.smtp"), ("files.json", 2, 0, "zeek.files")],
)
def test_counts_crafted(name: str, events: int, skipped: int, dataset: str) -> None:
    parsed = parse_file(ZeekParser(), CRAFTED / name)
    assert parsed.counts == (events, 0, skipped)
    assert parsed.events["event.dataset"].unique().to_list() == [dataset]


# --------------------------------------------------------------------------- one event each

EVENTS = [
    pytest.param(
        f"{DAY}/conn.00:00:00-01:00:00.log.gz",
        9,  # worker-eth0-1 1713484795.943239 CYl7H53iN6mY9NyXJ8 167.94.138.145 25320 ... REJ F T
        {
            **zeek("zeek.conn", type_="connection"),
            "@timestamp": at(2024, 4, 18, 23, 59, 55, 943239),
            "event.id": "CYl7H53iN6mY9NyXJ8",
            "event.action": "REJ",
            "event.outcome": "failure",
            "event.duration": 64_000,
            "source.ip": "167.94.138.145",
            "source.port": 25320,
            "source.bytes": 0,
            "source.packets": 1,
            "destination.ip": "64.225.56.201",
            "destination.port": 6008,
            "destination.bytes": 0,
            "destination.packets": 1,
            "network.transport": "tcp",
            "network.bytes": 0,
            "network.direction": "inbound",
            "log.file.line": 9,
        },
        id="conn-tsv",
    ),
    pytest.param(
        f"{RITA}/json_with_all_fields/conn.log",
        1,
        {
            **zeek("zeek.conn", type_="connection"),
            "@timestamp": at(2018, 1, 31, 18, 12, 6, 539915),
            "event.id": "CxHo3m4N8uGxrMlcl2",
            "event.action": "SF",
            "event.outcome": "success",
            "event.duration": 108_985_496_000,
            "source.ip": "10.55.100.100",
            "source.port": 61843,
            "source.bytes": 719,
            "source.packets": 10,
            "destination.ip": "205.204.101.182",
            "destination.port": 80,
            "destination.bytes": 336,
            "destination.packets": 4,
            "network.transport": "tcp",
            "network.protocol": "http",
            "network.bytes": 1055,
            "network.direction": "outbound",
            "log.file.line": 1,
        },
        id="conn-json",
    ),
    pytest.param(
        f"{DAY}/open_conn.00:00:00-01:00:00.log.gz",
        9,  # the SSH session open all day: S1, 14400.964662 s
        {
            **zeek("zeek.open_conn", type_="connection"),
            "@timestamp": at(2024, 4, 18, 20, 7, 52, 451585),
            "event.id": "C3ZW8c1wDLCz4w18d8",
            "event.action": "S1",
            "event.outcome": "success",
            "event.duration": 14_400_964_662_000,
            "source.ip": "73.54.23.243",
            "source.port": 56394,
            "source.bytes": 26739,
            "source.packets": 570,
            "destination.ip": "64.225.56.201",
            "destination.port": 22,
            "destination.bytes": 57370,
            "destination.packets": 448,
            "network.transport": "tcp",
            "network.protocol": "ssh",
            "network.bytes": 84109,
            "network.direction": "inbound",
            "log.file.line": 9,
        },
        id="open_conn-tsv",
    ),
    pytest.param(
        f"{DAY}/dns.00:00:00-01:00:00.log.gz",
        89,
        {
            **zeek("zeek.dns"),
            "@timestamp": at(2024, 4, 19, 0, 30, 32, 637266),
            "event.id": "CmBTFL1aFmnpEtopS1",
            "source.ip": "64.225.56.201",
            "source.port": 34529,
            "destination.ip": "67.207.67.2",
            "destination.port": 53,
            "destination.domain": "repos-droplet.digitalocean.com",
            "network.transport": "udp",
            "network.protocol": "dns",
            "dns.question.name": "repos-droplet.digitalocean.com",
            "dns.question.type": "A",
            "dns.response_code": "NOERROR",
            "dns.answers": "104.19.174.68,104.19.173.68",
            "log.file.line": 89,
        },
        id="dns-tsv",
    ),
    pytest.param(
        f"{WRCCDC}/zeek-json/dns.json.gz",
        1,  # JSON Streaming Logs: ISO 8601 ts
        {
            **zeek("zeek.dns"),
            "@timestamp": at(2018, 3, 24, 17, 15, 20, 865716),
            "event.id": "CqKst53mF3det3eDV9",
            "source.ip": "10.47.1.100",
            "source.port": 41772,
            "destination.ip": "10.0.0.100",
            "destination.port": 53,
            "destination.domain": "ise.wrccdc.org",
            "network.transport": "udp",
            "network.protocol": "dns",
            "dns.question.name": "ise.wrccdc.org",
            "dns.question.type": "A",
            "dns.response_code": "NOERROR",
            "dns.answers": "ise.wrccdc.cpp.edu,134.71.3.16",
            "log.file.line": 1,
        },
        id="dns-json",
    ),
    pytest.param(
        f"{DAY}/http.01:00:00-02:00:00.log.gz",
        27,  # the beacon: empty Host header, UA "Modzilla/0.0001 (Atari 7800)"
        {
            **zeek("zeek.http"),
            "@timestamp": at(2024, 4, 19, 1, 2, 0, 349133),
            "event.id": "CmWv832p0Pu8MM8JN1",
            "source.ip": "73.54.23.243",
            "source.port": 61975,
            "destination.ip": "64.225.56.201",
            "destination.port": 80,
            "network.protocol": "http",
            "url.path": "/",
            "http.request.method": "GET",
            "http.response.status_code": 400,
            "user_agent.original": "Modzilla/0.0001 (Atari 7800)",
            "log.file.line": 27,
        },
        id="http-tsv-no-host",
    ),
    pytest.param(
        f"{RITA}/json_with_all_fields/http.log",
        1,
        {
            **zeek("zeek.http"),
            "@timestamp": at(2018, 1, 31, 18, 12, 8, 146198),
            "event.id": "CB9DKu4WI1kRo88sj6",
            "source.ip": "10.55.100.105",
            "source.port": 52261,
            "destination.ip": "205.204.101.182",
            "destination.port": 80,
            "destination.domain": "gm.mmstat.com",
            "network.protocol": "http",
            "url.domain": "gm.mmstat.com",
            "url.path": "/sc.13.1?cache=70ebbd&gmkey=OTHER&gokey=type=subscribePopup&result=before"
            "&ua=Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; .NET4.0C; .NET4.0E; rv:11.0) like Gecko"
            "&browser=trident&cna=ySmxEpZG0wgCAdBrqzzpaX9C&isbeta=5&spm-cnt=a2700.8293689.0.0.9i2gNc&logtype=2",
            "url.full": "http://gm.mmstat.com/sc.13.1?cache=70ebbd&gmkey=OTHER&gokey=type=subscribePopup"
            "&result=before&ua=Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; .NET4.0C; .NET4.0E; rv:11.0)"
            " like Gecko&browser=trident&cna=ySmxEpZG0wgCAdBrqzzpaX9C&isbeta=5"
            "&spm-cnt=a2700.8293689.0.0.9i2gNc&logtype=2",
            "http.request.method": "GET",
            "http.response.status_code": 200,
            "user_agent.original": "Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; rv:11.0) like Gecko",
            "log.file.line": 1,
        },
        id="http-json",
    ),
    pytest.param(
        f"{RITA}/proxy/http.log",
        9,  # CONNECT through the squid proxy: no URL to build
        {
            **zeek("zeek.http"),
            "@timestamp": at(2023, 1, 4, 14, 37, 36, 914972),
            "event.id": "CXHB1X22027MRWU6D",
            "source.ip": "10.136.0.18",
            "source.port": 55548,
            "destination.ip": "10.136.0.16",
            "destination.port": 3128,
            "destination.domain": "www.google.com",
            "network.protocol": "http",
            "url.domain": "www.google.com",
            "url.path": "www.google.com:443",
            "http.request.method": "CONNECT",
            "http.response.status_code": 200,
            "user_agent.original": "Modzilla/-2.0 (Atari 7800)",
            "log.file.line": 9,
        },
        id="http-tsv-connect",
    ),
    pytest.param(
        f"{DAY}/ssl.00:00:00-01:00:00.log.gz",
        10,
        {
            **zeek("zeek.ssl"),
            "@timestamp": at(2024, 4, 19, 0, 30, 32, 637266),
            "event.id": "CBdaKH1CSJLhCOz0Pg",
            "source.ip": "64.225.56.201",
            "source.port": 40902,
            "destination.ip": "104.19.174.68",
            "destination.port": 443,
            "destination.domain": "repos-droplet.digitalocean.com",
            "network.protocol": "tls",
            "tls.client.server_name": "repos-droplet.digitalocean.com",
            "log.file.line": 10,
        },
        id="ssl-tsv",
    ),
    pytest.param(
        f"{RITA}/json_with_all_fields/ssl.log",
        1,
        {
            **zeek("zeek.ssl"),
            "@timestamp": at(2018, 1, 31, 18, 12, 16, 45390),
            "event.id": "C2nyFQkh6oijTV5hd",
            "source.ip": "10.55.100.111",
            "source.port": 57488,
            "destination.ip": "208.89.12.153",
            "destination.port": 443,
            "destination.domain": "lptag.liveperson.net",
            "network.protocol": "tls",
            "tls.client.server_name": "lptag.liveperson.net",
            "tls.version": "TLSv12",
            "log.file.line": 1,
        },
        id="ssl-json",
    ),
    pytest.param(
        f"{RITA}/proxy/dhcp.log",
        9,  # pre-3.0 dhcp.log: id.* and assigned_ip
        {
            **zeek("zeek.dhcp"),
            "@timestamp": at(2021, 1, 14, 17, 25, 41, 523272),
            "event.id": "C35eXU203XxSNS5h53",
            "source.ip": "192.168.0.15",
            "source.port": 68,
            "source.mac": "f4:8e:38:8b:b6:03",
            "destination.ip": "192.168.0.1",
            "destination.port": 67,
            "network.protocol": "dhcp",
            "host.ip": "192.168.0.15",
            "log.file.line": 9,
        },
        id="dhcp-tsv-old",
    ),
    pytest.param(
        f"{DAY}/software.19:00:00-20:00:00.log.gz",
        9,
        {
            **zeek("zeek.software", type_="info"),
            "@timestamp": at(2024, 4, 19, 19, 41, 4, 377169),
            "event.action": "SSH::SERVER",
            "source.ip": "64.225.56.201",
            "source.port": 22,
            "host.ip": "64.225.56.201",
            "package.name": "OpenSSH",
            "package.version": "8.2",
            "user_agent.original": "OpenSSH_8.2p1 Ubuntu-4ubuntu0.11",
            "log.file.line": 9,
        },
        id="software-tsv",
    ),
    pytest.param(
        f"{WRCCDC}/zeek-json/software.json.gz",
        1,
        {
            **zeek("zeek.software", type_="info"),
            "@timestamp": at(2018, 3, 24, 17, 15, 20, 609736),
            "event.action": "HTTP::BROWSER",
            "source.ip": "10.164.94.120",
            "host.ip": "10.164.94.120",
            "package.name": "MSIE",
            "package.version": "8.0",
            "user_agent.original": "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 5.1; Trident/4.0)",
            "log.file.line": 1,
        },
        id="software-json",
    ),
    pytest.param(
        f"{RITA}/proxy/files.log",
        9,  # older files.log: tx_hosts / rx_hosts sets
        {
            **zeek("zeek.files", category="file", type_="info"),
            "@timestamp": at(2021, 1, 14, 17, 30, 53, 121325),
            "event.id": "FfH7reG9kzJuarq6d",
            "source.ip": "151.101.1.69",
            "destination.ip": "192.168.0.15",
            "network.protocol": "ssl",
            "file.mime_type": "application/pkix-cert",
            "file.size": 1784,
            "file.hash.md5": "d6c6642cd4be96f391726a1e5b8b9695",
            "file.hash.sha1": "ef4a07dc91ccc67f0ba7d7c42b5a02344c39ad73",
            "log.file.line": 9,
        },
        id="files-tsv",
    ),
    pytest.param(
        f"{WRCCDC}/zeek-json/smtp.json.gz",
        1175,  # nessus probing the mail server: envelope sender only
        {
            **zeek("zeek.smtp", category="email"),
            "@timestamp": at(2018, 3, 24, 17, 24, 52, 178596),
            "event.id": "CKLfGY1LHSobF0HGe",
            "source.ip": "10.164.94.120",
            "source.port": 39087,
            "destination.ip": "10.47.1.208",
            "destination.port": 25,
            "network.protocol": "smtp",
            "email.from.address": "nessus49048747@hotmail.com",
            "log.file.line": 1175,
        },
        id="smtp-json",
    ),
    pytest.param(
        f"{WRCCDC}/zeek-json/notice.json.gz",
        1,
        {
            **zeek("zeek.notice", kind="alert", type_="info"),
            "@timestamp": at(2018, 3, 24, 17, 15, 20, 629574),
            "event.id": "CmC9kY1X0u9nP78KZc",
            "source.ip": "10.164.94.120",
            "source.port": 39611,
            "destination.ip": "10.47.3.200",
            "destination.port": 443,
            "network.transport": "tcp",
            "rule.name": "SSL::Invalid_Server_Cert",
            "message": "SSL certificate validation failed with (unable to get local issuer certificate)",
            "log.file.line": 1,
        },
        id="notice-json",
    ),
    pytest.param(
        f"{DAY}/notice.03:00:00-04:00:00.log.gz",
        9,  # a notice about the sensor itself: no connection
        {
            **zeek("zeek.notice", kind="alert", type_="info"),
            "@timestamp": at(2024, 4, 19, 3, 41, 15, 543789),
            "rule.name": "CaptureLoss::Too_Much_Loss",
            "message": "The capture loss script detected an estimated loss rate above 11.258%",
            "log.file.line": 9,
        },
        id="notice-tsv",
    ),
    pytest.param(
        f"{WRCCDC}/zeek-default/kerberos.log.gz",
        9,
        {
            **zeek("zeek.kerberos", category="authentication", type_="info"),
            "@timestamp": at(2018, 3, 24, 17, 18, 5, 713879),
            "event.id": "CiB1v61O1fMDWoHN2",
            "event.action": "AS",
            "source.ip": "10.128.0.241",
            "source.port": 58444,
            "destination.ip": "10.47.1.208",
            "destination.port": 808,
            "network.protocol": "kerberos",
            "user.name": "/NM",
            "log.file.line": 9,
        },
        id="kerberos-tsv",
    ),
    pytest.param(
        f"{WRCCDC}/zeek-default/rfb.log.gz",
        9,  # a type without its own mapping keeps the common fields
        {
            **zeek("zeek.rfb", type_="info"),
            "@timestamp": at(2018, 3, 24, 17, 17, 49, 614130),
            "event.id": "C22RRY2eUniPO7ldn7",
            "source.ip": "10.164.94.120",
            "source.port": 33671,
            "destination.ip": "10.47.3.142",
            "destination.port": 5900,
            "log.file.line": 9,
        },
        id="rfb-tsv",
    ),
    pytest.param(
        f"{WRCCDC}/zeek-default/smb_mapping.log.gz",
        9,  # the TSV writer doubles backslashes: \\\\host\\ADMIN$ is \\host\ADMIN$
        {
            **zeek("zeek.smb_mapping", type_="access"),
            "@timestamp": at(2018, 3, 24, 17, 15, 21, 382822),
            "event.id": "C4RwE01ohVxASBuobd",
            "event.action": "DISK",
            "source.ip": "10.128.0.233",
            "source.port": 52298,
            "destination.ip": "10.47.21.25",
            "destination.port": 445,
            "network.protocol": "smb",
            "url.path": "\\\\10.47.21.25\\ADMIN$",
            "log.file.line": 9,
        },
        id="smb_mapping-tsv",
    ),
    pytest.param(
        f"{WRCCDC}/zeek-json/smb_files.json.gz",
        1,
        {
            **zeek("zeek.smb_files", category="file", type_="access"),
            "@timestamp": at(2018, 3, 24, 17, 15, 54, 600639),
            "event.id": "C6WWAQ2G8MqT1hrQHd",
            "event.action": "SMB::FILE_OPEN",
            "source.ip": "10.128.0.214",
            "source.port": 41717,
            "destination.ip": "10.47.8.142",
            "destination.port": 445,
            "network.protocol": "smb",
            "file.name": "\\svcctl",
            "file.size": 0,
            "log.file.line": 1,
        },
        id="smb_files-json",
    ),
]


@pytest.mark.corpus
@pytest.mark.parametrize(("path", "line", "expected"), EVENTS)
def test_event_fields(corpus: Path, path: str, line: int, expected: dict[str, Any]) -> None:
    parsed = parse_file(ZeekParser(), corpus / path)
    assert event_at(parsed.events, line) == expected


def test_crafted_zeek3_dhcp() -> None:
    """Zeek 3+ dhcp.log: no id.*, ``uids`` set, ``assigned_addr`` else ``client_addr``."""
    events = parse_file(ZeekParser(), CRAFTED / "dhcp.log").events
    assert event_at(events, 9) == {
        **zeek("zeek.dhcp"),
        "@timestamp": at(2023, 3, 1, 10, 0, 0, 123456),
        "event.id": "CbM0g51h2nEJsUCw4d",
        "event.action": "DISCOVER,OFFER,REQUEST,ACK",
        "source.ip": "192.0.2.50",
        "source.mac": "00:11:22:33:44:55",
        "destination.ip": "192.0.2.1",
        "network.protocol": "dhcp",
        "host.name": "laptop-7",
        "host.ip": "192.0.2.50",
        "log.file.line": 9,
    }
    inform = event_at(events, 10)
    assert (inform["source.ip"], inform["event.action"], "host.ip" in inform) == (
        "192.0.2.77",
        "INFORM,ACK",
        False,
    )


def test_crafted_smtp_recipients() -> None:
    events = parse_file(ZeekParser(), CRAFTED / "smtp.log").events
    assert event_at(events, 9) == {
        **zeek("zeek.smtp", category="email"),
        "@timestamp": at(2023, 3, 1, 10, 5, 0, 250000),
        "event.id": "CHhAvVGS1DHFjwGM9",
        "source.ip": "198.51.100.20",
        "source.port": 49152,
        "destination.ip": "192.0.2.25",
        "destination.port": 25,
        "network.protocol": "smtp",
        "email.from.address": "alice@example.net",
        "email.to.address": "bob@example.org,carol@example.org",
        "email.subject": "Invoice 4711",
        "email.message_id": "<20230301100500.1234@example.net>",
        "user_agent.original": "ExampleMailer 1.0",
        "log.file.line": 9,
    }


def test_crafted_files_with_conn_ids() -> None:
    """Zeek 5+ files.log carries id.* instead of tx_hosts/rx_hosts."""
    events = parse_file(ZeekParser(), CRAFTED / "files.json").events
    assert event_at(events, 1) == {
        **zeek("zeek.files", category="file", type_="info"),
        "@timestamp": at(2023, 3, 1, 10, 6, 40, 500000),
        "event.id": "FnbXq41Wd4Gf3mUjJ5",
        "source.ip": "192.0.2.50",
        "source.port": 50123,
        "destination.ip": "203.0.113.80",
        "destination.port": 80,
        "network.protocol": "http",
        "file.name": "setup.exe",
        "file.mime_type": "application/x-dosexec",
        "file.size": 73802,
        "file.hash.md5": "5d41402abc4b2a76b9719d911017c592",
        "file.hash.sha1": "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d",
        "file.hash.sha256": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
        "log.file.line": 1,
    }
    assert event_at(events, 2)["file.size"] == 612  # no total_bytes: seen_bytes


@pytest.mark.corpus
@pytest.mark.parametrize("name", ["dns", "ssl", "notice", "software", "smtp"])
def test_tsv_and_json_agree(corpus: Path, name: str) -> None:
    """WRCCDC wrote the same traffic as TSV and as JSON (ISO ts): same events either way."""
    tsv = parse_file(ZeekParser(), corpus / WRCCDC / "zeek-default" / f"{name}.log.gz").events
    js = parse_file(ZeekParser(), corpus / WRCCDC / "zeek-json" / f"{name}.json.gz").events
    drop = ["log.file.path", "log.file.line"]
    order = ["@timestamp", "event.id", "source.port", "rule.name", "package.name", "message", "dns.answers"]
    assert tsv.drop(drop).sort(order, nulls_last=True).equals(js.drop(drop).sort(order, nulls_last=True))


# --------------------------------------------------------------------------- bad lines


@pytest.mark.corpus
def test_truncated_tsv_last_line(corpus: Path) -> None:
    parsed = parse_file(ZeekParser(), corpus / RITA / "truncated" / "conn.log")
    assert reasons(parsed) == {67: "expected 21 fields, got 9"}
    assert parsed.quarantine["raw"][0].startswith("1517336086.507674\tCWjAXr3YklCCTQsYPg\t")


@pytest.mark.corpus
def test_truncated_json_last_line(corpus: Path) -> None:
    parsed = parse_file(ZeekParser(), corpus / RITA / "truncated" / "conn_json.log")
    (line, reason), *_ = reasons(parsed).items()
    assert line == 4
    assert reason.startswith("invalid JSON: Unterminated string")
    assert event_at(parsed.events, 1)["@timestamp"] == at(2024, 1, 8, 18, 35, 46, 55436)


@pytest.mark.corpus
def test_data_before_any_header(corpus: Path) -> None:
    """conn_top.log is conn.log without its header block: nothing can be read."""
    parsed = parse_file(ZeekParser(), corpus / RITA / "truncated" / "conn_top.log")
    assert set(reasons(parsed)) == set(range(1, 60))
    assert all("before any #fields header" in r for r in reasons(parsed).values())


@pytest.mark.corpus
def test_line_shorter_than_header(corpus: Path) -> None:
    parsed = parse_file(ZeekParser(), corpus / RITA / "has_unknown_field" / "http.log")
    assert reasons(parsed) == {9: "expected 30 fields, got 29"}


@pytest.mark.corpus
def test_missing_or_bad_ts(corpus: Path) -> None:
    raw = (corpus / RITA / "proxy" / "software.log").read_bytes().split(b"\n")
    raw[9] = b"-" + raw[9][raw[9].index(b"\t") :]  # unset ts
    raw[10] = b"yesterday" + raw[10][raw[10].index(b"\t") :]
    parsed = parse_file(ZeekParser(), b"\n".join(raw), "software.log")
    assert reasons(parsed) == {10: "field ts: missing or invalid", 11: "field ts: missing or invalid"}
    assert parsed.counts == (2, 2, 9)

    line = json.loads((corpus / RITA / "json_with_all_fields" / "conn.log").read_text().splitlines()[0])
    del line["ts"]
    parsed = parse_file(ZeekParser(), json.dumps(line).encode(), "conn.log")
    assert reasons(parsed) == {1: "field ts: missing or invalid"}


# --------------------------------------------------------------------------- header state


@pytest.mark.corpus
def test_header_carried_across_batches(corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = corpus / DAY / "conn.00:00:00-01:00:00.log.gz"
    whole = parse_file(ZeekParser(), path)
    monkeypatch.setattr(reader, "BLOCK_BYTES", 4096)
    assert len(list(read_batches(path))) > 20
    pieces = parse_file(ZeekParser(), path)
    assert pieces.counts == whole.counts == (1765, 0, 9)
    assert pieces.events.equals(whole.events)


@pytest.mark.corpus
def test_new_header_block_switches_schema(corpus: Path) -> None:
    """``cat software.log dhcp.log``: the second header block brings its own fields."""
    software = (corpus / RITA / "proxy" / "software.log").read_bytes()  # 13 lines
    dhcp = (corpus / RITA / "proxy" / "dhcp.log").read_bytes()
    parsed = parse_file(ZeekParser(), software + dhcp, "zeek.log")
    assert parsed.counts == (4 + 57, 0, 18)
    assert event_at(parsed.events, 12)["package.name"] == "curl"
    first_dhcp = event_at(parsed.events, 13 + 9)
    assert (first_dhcp["event.dataset"], first_dhcp["source.mac"]) == ("zeek.dhcp", "f4:8e:38:8b:b6:03")


# --------------------------------------------------------------------------- JSON variants


@pytest.fixture
def conn_json(corpus: Path) -> list[str]:
    return (corpus / RITA / "json_with_all_fields" / "conn.log").read_text().splitlines()


@pytest.mark.corpus
def test_underscore_keys(conn_json: list[str]) -> None:
    """Exporters that cannot write dots in keys write ``id_orig_h``."""
    expected = event_at(parse_file(ZeekParser(), conn_json[0].encode(), "conn.log").events, 1)
    renamed = conn_json[0].replace('"id.', '"id_').encode()
    assert b'"id_orig_h"' in renamed
    assert event_at(parse_file(ZeekParser(), renamed, "conn.log").events, 1) == expected


@pytest.mark.corpus
@pytest.mark.parametrize("variant", ["underscore", "nested", "iso_ts"])
def test_later_lines_unlike_the_first(conn_json: list[str], variant: str) -> None:
    """The read schema follows the first line (numeric ``ts``, dotted keys); later lines that
    differ are still read in full, each the same as when written like the first."""
    lines = conn_json[:6]
    expected = parse_file(ZeekParser(), "\n".join(lines).encode(), "conn.log").events
    changed = [json.loads(ln) for ln in lines]
    for obj in changed[3:]:
        if variant == "underscore":
            for k in [k for k in obj if k.startswith("id.")]:
                obj["id_" + k[3:]] = obj.pop(k)
        elif variant == "nested":
            obj["id"] = {k[3:]: obj.pop(k) for k in [k for k in obj if k.startswith("id.")]}
        else:
            obj["ts"] = datetime.fromtimestamp(obj["ts"], UTC).isoformat().replace("+00:00", "Z")
    parsed = parse_file(ZeekParser(), "\n".join(json.dumps(o) for o in changed).encode(), "conn.log")
    assert parsed.quarantine.height == 0
    assert parsed.events.height == len(lines)
    for line in range(1, len(lines) + 1):
        assert event_at(parsed.events, line) == event_at(expected, line)


@pytest.mark.corpus
def test_nested_id_object(conn_json: list[str]) -> None:
    obj = json.loads(conn_json[0])
    nested = {k: v for k, v in obj.items() if not k.startswith("id.")}
    nested["id"] = {k[3:]: v for k, v in obj.items() if k.startswith("id.")}
    expected = event_at(parse_file(ZeekParser(), conn_json[0].encode(), "conn.log").events, 1)
    assert event_at(parse_file(ZeekParser(), json.dumps(nested).encode(), "conn.log").events, 1) == expected


@pytest.mark.corpus
def test_type_from_fingerprint(corpus: Path) -> None:
    """No _path, no telling file name: the fields say dns."""
    data = (corpus / RITA / "json_with_all_fields" / "dns.log").read_bytes()
    parsed = parse_file(ZeekParser(), data, "capture-0001.json")
    assert parsed.counts == (34, 0, 0)
    assert parsed.events["event.dataset"].unique().to_list() == ["zeek.dns"]
    assert event_at(parsed.events, 1)["dns.question.name"] == "6dde0175375169c68f.dnsc.r-1x.com"


@pytest.mark.corpus
def test_mixed_types_in_one_stream(corpus: Path) -> None:
    """A JSON stream of several logs (``_path`` per line) keeps each line's own mapping."""
    lines = [
        (corpus / RITA / "json_with_all_fields" / "conn.log").read_text().splitlines()[0],
        (corpus / RITA / "json_with_all_fields" / "http.log").read_text().splitlines()[0],
        (corpus / RITA / "json_with_all_fields" / "ssl.log").read_text().splitlines()[0],
    ]
    parsed = parse_file(ZeekParser(), "\n".join(lines).encode(), "all.json")
    assert parsed.events["event.dataset"].to_list() == ["zeek.conn", "zeek.http", "zeek.ssl"]
    assert parsed.events["log.file.line"].to_list() == [1, 2, 3]
    assert parsed.events["tls.client.server_name"].to_list() == [None, None, "lptag.liveperson.net"]
    assert parsed.events["url.domain"].to_list() == [None, "gm.mmstat.com", None]


# --------------------------------------------------------------------------- sniff


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (f"{DAY}/conn.00:00:00-01:00:00.log.gz", True),
        (f"{RITA}/json_with_all_fields/conn.log", True),
        (f"{WRCCDC}/zeek-json/software.json.gz", True),
        (f"{RITA}/truncated/conn_top.log", False),
        ("suricata-eve/surevego/testdata/eve.json", False),
        ("firewall-utm-syslog/cribl-fortigate/raw/fortigate_traffic.log", False),
    ],
)
def test_sniff(corpus: Path, path: str, expected: bool) -> None:
    assert ZeekParser().sniff(head_lines(corpus / path)) is expected
    assert get_parser("zeek").name == "zeek"


# --------------------------------------------------------------------------- properties

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check_invariant(data: bytes, name: str) -> None:
    parsed = parse_file(ZeekParser(), data, name)  # checks every batch
    assert parsed.events.height + parsed.quarantine.height + parsed.skipped == parsed.lines
    assert dict(parsed.events.schema) == EVENT_SCHEMA


@PROPERTY
@given(data=st.binary(max_size=400), name=st.sampled_from(["conn.log", "dns.json", "x.log", "<bytes>"]))
def test_any_bytes(data: bytes, name: str) -> None:
    _check_invariant(data, name)


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
                [b"\t", b'"', b"{", b"}", b"[", b"]", b"\n", b"#", b",", b"\\", b"-", b"(empty)"]
            )
            out[i:i] = draw(st.binary(max_size=6) | special)
        elif op == "replace" and out:
            out[i] = draw(st.integers(0, 255))
        elif op == "double":
            out += b"\n" + bytes(out)
    return bytes(out)


TSV_FILE = Path(f"{RITA}/proxy/software.log")
JSON_FILE = Path(f"{RITA}/json_with_all_fields/http.log")


@pytest.mark.corpus
def test_mutated_real_lines(corpus: Path) -> None:
    tsv = (corpus / TSV_FILE).read_bytes().split(b"\n")
    header, tsv_line = tsv[:8], tsv[8]
    json_line = (corpus / JSON_FILE).read_bytes().split(b"\n")[0]

    @PROPERTY
    @given(st.lists(mutations(tsv_line), max_size=4), st.lists(mutations(json_line), max_size=4))
    def check(tsv_lines: list[bytes], json_lines: list[bytes]) -> None:
        _check_invariant(b"\n".join([*header, *tsv_lines]), "software.log")
        _check_invariant(b"\n".join(json_lines), "http.log")
        _check_invariant(b"\n".join([json_line, *json_lines]), "unnamed")

    check()


def test_tsv_escapes_are_undone() -> None:
    r"""The ASCII writer writes ``\`` as ``\\`` and unprintable bytes as ``\xNN``; an escaped
    backslash before ``x41`` stays a backslash followed by the text ``x41``."""
    header = (
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tsmb_files\n"
        "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\taction\tpath\tname\tsize\n"
        "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tstring\tcount\n"
    )
    rows = [
        "1700000000.0\tCa\t10.0.0.1\t50000\t10.0.0.2\t445\tSMB::FILE_OPEN\t\\\\\\\\pc2\\\\C$\ta\\x09b\t1",
        "1700000001.0\tCb\t10.0.0.1\t50001\t10.0.0.2\t445\tSMB::FILE_OPEN\t-\t\\\\x41\\x2c\t2",
    ]
    events = parse_file(ZeekParser(), (header + "\n".join(rows) + "\n").encode()).events
    assert events["url.path"].to_list() == ["\\\\pc2\\C$", None]
    assert events["file.name"].to_list() == ["a\tb", "\\x41,"]
