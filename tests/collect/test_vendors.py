"""Vendor recognition: real FortiGate, PAN-OS and pfSense/OPNsense samples sent as syslog
reach the same parsers as file import, with the same results."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import polars as pl
import pytest

from mimamori.collect.config import CollectConfig
from mimamori.collect.service import Collector
from mimamori.collect.vendors import split_by_vendor
from mimamori.config import Settings
from mimamori.pipeline import Platform
from tests.collect.helpers import archived, make_tenant, quarantined

FW = "firewall-utm-syslog"
FILES = {
    "fortigate": [f"cribl-fortigate/raw/fortigate_{n}.log" for n in ("eventtype", "traffic", "utm")],
    "panos": [f"cribl-paloalto-panos/raw/pan_{n}.log" for n in ("config", "system", "threat", "traffic")],
    "filterlog": ["elastic-pfsense/test-pfsense-bsd.log"],
}


def _lines(corpus: Path, rel: str) -> list[bytes]:
    return [ln for ln in (corpus / FW / rel).read_bytes().splitlines() if ln.strip()]


@pytest.mark.corpus
def test_samples_over_tcp_match_file_import(corpus, tmp_path):
    by_file = tmp_path / "file"
    ref = Settings.load(by_file)
    make_tenant(ref, "acme")
    expected: dict[str, int] = {}
    with Platform(ref) as platform:
        for source, files in FILES.items():
            for rel in files:
                report = platform.ingest("acme", source, corpus / FW / rel)
                expected[source] = expected.get(source, 0) + report.stored
    settings = Settings.load(tmp_path / "syslog")
    make_tenant(settings, "acme", address="127.0.0.1/32")
    collector = Collector(settings, CollectConfig.load(settings, syslog_tcp=0, flush_seconds=0.1))
    collector.start()
    sent = [ln for files in FILES.values() for rel in files for ln in _lines(corpus, rel)]
    interleaved = sent[::2] + sent[1::2]  # vendors mixed on one connection, as from a relay
    try:
        with socket.create_connection(("127.0.0.1", collector.syslog.ports["tcp"])) as s:
            s.sendall(b"".join(b"%d %s" % (len(m), m) for m in interleaved))
        deadline = time.monotonic() + 60
        while archived(settings.archive_dir, "acme").height + quarantined(
            settings.archive_dir, "acme"
        ).height < len(sent):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        collector.close()
    events = archived(settings.archive_dir, "acme")
    assert events.height + quarantined(settings.archive_dir, "acme").height == len(sent)
    got = dict(events.group_by("event.module").len().iter_rows())
    modules = {"fortigate": "fortigate", "panos": "panos", "filterlog": "pfsense"}
    for source, n in expected.items():
        assert n > 0
        assert got.get(modules[source], 0) == n, (source, got)


def test_split_keeps_every_line_and_its_bytes():
    sjis = "<13>Apr 15 10:00:00 host app: 日本語".encode("cp932")
    payload = (
        b"<134>Jul  3 19:10:30 fw1 date=2024-01-01 time=10:00:00 devid=FG1 logid=0000000013 type=traffic\n"
        b"<14>Jul 20 23:59:02 fw 1,2021/07/20 23:59:02,1234567890,TRAFFIC,end,2049,2021/07/20 23:59:02\n"
        b"<134>Jul  3 19:10:30 pf filterlog[123]: 5,,,1000000103,igb0,match,block,in,4\n"
        b"<38>Jan  1 00:00:00 h sshd[1]: Failed password for root from 192.0.2.4 port 22 ssh2\n"
        b"<13>1 2024-01-01T00:00:00Z host app - - - hello\n" + sjis + b"\n\xff\xfe not text\n"
    )
    parts = dict(split_by_vendor(payload))
    assert set(parts) == {"fortigate", "panos", "filterlog", "authlog", "syslog"}
    assert sum(p.count(b"\n") for p in parts.values()) == payload.count(b"\n")
    assert sjis in parts["syslog"] and b"\xff\xfe not text" in parts["syslog"]
    assert pl.Series(sorted(b"".join(parts.values()).splitlines())).equals(
        pl.Series(sorted(payload.splitlines()))
    )
