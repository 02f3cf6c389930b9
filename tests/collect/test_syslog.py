"""Syslog receivers with real senders (logger, rsyslog) and bad input; framing."""

from __future__ import annotations

import logging
import shutil
import socket
import ssl
import subprocess
import threading
import time

import pytest

from mimamori.collect.config import CollectConfig
from mimamori.collect.service import Collector
from mimamori.collect.syslog import Framer
from mimamori.config import Settings
from tests.collect.helpers import archived, make_tenant, quarantined, seq_counts
from tests.collect.servers import Rsyslog, need, self_signed

FORTI = (
    'date=2025-04-15 time=10:00:00 devname="FGT60F" devid="FGT60FTK1234" logid="0000000013" '
    'type="traffic" subtype="forward" level="notice" srcip=10.0.0.5 srcport=5000 dstip=198.51.100.7 '
    'dstport=443 proto=6 action="accept" policyid=1 sentbyte=100 rcvdbyte=200'
)


def wait_for(check, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.1)


def total(settings: Settings, tenant: str = "acme") -> int:
    return archived(settings.archive_dir, tenant).height + quarantined(settings.archive_dir, tenant).height


@pytest.fixture
def receiver(tmp_path):
    settings = Settings.load(tmp_path / "home")
    cert, key = self_signed(tmp_path)
    make_tenant(settings, "acme", address="127.0.0.1/32")
    cfg = CollectConfig.load(
        settings, syslog_udp=0, syslog_tcp=0, syslog_tls=0, tls_cert=cert, tls_key=key,
        idle_seconds=1.0, flush_seconds=0.1,
    )  # fmt: skip
    collector = Collector(settings, cfg)
    collector.start()
    yield settings, collector, cert
    collector.close()


def logger(port: int, *args: str) -> None:
    subprocess.run(
        [need("logger", "bsdutils"), "-n", "127.0.0.1", "-P", str(port), *args], check=True, timeout=30
    )


def test_logger_over_udp_and_tcp_with_vendor_recognition(receiver):
    settings, collector, _ = receiver
    ports = collector.syslog.ports
    for i in range(20):
        logger(ports["udp"], "-d", "--rfc3164", "-t", "app", f"udp seq={i}")
    for i in range(20, 40):
        logger(ports["tcp"], "-T", "--octet-count", "-t", "app", f"tcp octet seq={i}")
    for i in range(40, 60):
        logger(ports["tcp"], "-T", "--rfc3164", "-t", "app", f"tcp newline seq={i}")
    logger(ports["tcp"], "-T", "--octet-count", FORTI)
    wait_for(lambda: archived(settings.archive_dir, "acme").height >= 61)
    time.sleep(0.5)
    events = archived(settings.archive_dir, "acme")
    assert seq_counts(events) == (60, 60)  # every message once
    assert events.height == 61
    forti = events.filter(events["event.module"] == "fortigate")
    assert forti.height == 1 and forti["destination.ip"].to_list() == ["198.51.100.7"]
    generic = events.filter(events["event.module"] == "syslog")
    assert generic["event.dataset"].unique().to_list() == ["syslog.app"]


def test_a_token_in_structured_data_picks_the_tenant(receiver):
    settings, collector, _ = receiver
    _, token = make_tenant(settings, "beta")
    port = collector.syslog.ports["tcp"]
    logger(
        port,
        "-T",
        "--octet-count",
        "--sd-id",
        "mimamori@32473",
        "--sd-param",
        f'token="{token}"',
        "seq=1 beta",
    )
    logger(port, "-T", "--octet-count", "seq=2 acme")
    wait_for(lambda: archived(settings.archive_dir, "beta").height == 1)
    wait_for(lambda: archived(settings.archive_dir, "acme").height == 1)
    beta = archived(settings.archive_dir, "beta")
    assert token not in beta["message"][0] and token not in str(beta.to_dicts())


def test_unknown_senders_are_refused(tmp_path, caplog):
    settings = Settings.load(tmp_path)
    make_tenant(settings, "acme", address="10.9.9.9/32")  # not us
    collector = Collector(settings, CollectConfig.load(settings, syslog_tcp=0, syslog_udp=0))
    collector.start()
    try:
        with caplog.at_level(logging.WARNING):
            logger(collector.syslog.ports["tcp"], "-T", "--octet-count", "seq=1")
            wait_for(lambda: "unknown sender" in caplog.text, 10)
    finally:
        collector.close()
    assert archived(settings.archive_dir, "acme").height == 0


def test_bad_input_is_quarantined_and_the_receiver_keeps_serving(receiver, caplog):
    settings, collector, cert = receiver
    ports = collector.syslog.ports
    lines = [
        b"no header at all, just words",
        b"<999>not really a header either",
        b"<13>1 2025-04-15T10:00:00Z host app - - - bad utf-8 \xff\xfe here",
        "<13>Apr 15 10:00:00 host app: 日本語のメッセージ seq=1".encode("cp932"),
        b"<13>Apr 15 10:00:00 host app: " + b"A" * 1_100_000,  # over the reader's 1 MiB
        b"<13>Apr 15 10:00:00 host app: " + b"B" * 3_000_000,  # over the receiver's 2 MiB: cut
        b"<13>Apr 15 10:00:00 host app: fine seq=2",
    ]
    with caplog.at_level(logging.INFO):
        idle = socket.create_connection(("127.0.0.1", ports["tcp"]))  # connects, never sends
        torn = socket.create_connection(("127.0.0.1", ports["tls"]))
        torn.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40)  # half a ClientHello
        torn.close()
        with socket.create_connection(("127.0.0.1", ports["tcp"])) as s:
            s.sendall(b"\n".join(lines) + b"\n")
        ctx = ssl.create_default_context(cafile=str(cert))
        with (
            socket.create_connection(("127.0.0.1", ports["tls"])) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            msg = b"<13>1 2025-04-15T10:00:01Z host app - - - over tls seq=3"
            tls.sendall(str(len(msg)).encode() + b" " + msg)
        wait_for(lambda: total(settings) >= len(lines) + 1)
        idle.settimeout(10)
        assert idle.recv(1) == b""  # the idle client was disconnected
        idle.close()
    time.sleep(0.3)
    events = archived(settings.archive_dir, "acme")
    q = quarantined(settings.archive_dir, "acme")
    assert events.height + q.height == len(lines) + 1  # every message in exactly one place
    assert sorted(seq_counts(events)) == [3, 3]
    assert q.height >= 4 and all(r for r in q["reason"].to_list())
    assert "idle for 1 s" in caplog.text
    assert "cut there" in caplog.text
    assert "handshake" in caplog.text.lower() or "ssl" in caplog.text.lower()


def test_framing_octet_counting_and_newlines():
    f = Framer(max_message=10)
    assert f.feed(b"5 hello3 abc") == [b"hello", b"abc"]
    assert f.feed(b"plain line\r\nnext") == [b"plain line"]
    assert f.feed(b"\n") == [b"next"]
    assert f.feed(b"3 a\nb") == [b"a#012b"]  # one message stays one line
    assert f.feed(b"2") == [] and f.feed(b"0 ") == [] and f.feed(b"x" * 20) == [b"x" * 10]
    assert f.cut == 1
    assert f.feed(b"y" * 25) == [b"y" * 10] and f.feed(b"zz\nok\n") == [b"ok"]


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_rsyslog_forwards_over_tcp_and_tls(receiver, tmp_path, tls):
    settings, collector, cert = receiver
    port = collector.syslog.ports["tls" if tls else "tcp"]
    relay = Rsyslog(tmp_path / ("rs-tls" if tls else "rs-tcp"), port, tls_ca=cert if tls else None)
    relay.start()
    try:
        n = 200
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            for i in range(n):
                udp.sendto(
                    f"<13>Apr 15 10:00:00 dev app: relayed seq={i}".encode(), ("127.0.0.1", relay.in_port)
                )
                if i % 50 == 49:
                    time.sleep(0.05)  # UDP into rsyslog: do not overrun its socket buffer
        wait_for(lambda: seq_counts(archived(settings.archive_dir, "acme"))[1] >= n, 60)
        time.sleep(0.5)
        assert seq_counts(archived(settings.archive_dir, "acme")) == (n, n)
    finally:
        relay.stop()
    assert shutil.which("logger")


def test_tcp_back_pressure_while_the_spool_is_full(tmp_path, caplog):
    """Over quota the receiver stops reading: the sender blocks, then everything arrives once."""
    settings = Settings.load(tmp_path)
    make_tenant(settings, "acme", address="127.0.0.1/32")
    cfg = CollectConfig.load(settings, syslog_tcp=0, max_spool_bytes=1_000_000, flush_seconds=0.05)
    collector = Collector(settings, cfg)
    collector.start(consume=False)  # nothing drains the spool yet
    n = 200_000  # ~9 MB: more than the kernel's socket buffers hold
    data = b"".join(b"<13>Apr 15 10:00:00 dev app: pressure seq=%d\n" % i for i in range(n))
    done = threading.Event()

    def send() -> None:
        with socket.create_connection(("127.0.0.1", collector.syslog.ports["tcp"])) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)
            s.sendall(data)  # blocks while the receiver does not read
        done.set()

    try:
        with caplog.at_level(logging.WARNING):
            t = threading.Thread(target=send)
            t.start()
            wait_for(lambda: "back-pressure" in caplog.text, 30)
            time.sleep(1.0)
            assert not done.is_set()  # the sender is held back, nothing was dropped
            assert collector.spool.disk_bytes <= cfg.max_spool_bytes
            collector.start(syslog=False)  # now drain
            t.join(60)
            assert done.is_set()
            wait_for(lambda: seq_counts(archived(settings.archive_dir, "acme"))[1] >= n, 120)
            time.sleep(0.5)
    finally:
        collector.close()
    assert seq_counts(archived(settings.archive_dir, "acme")) == (n, n)
