"""Outbound scanning, IDS-flagged outbound attacks (seed case ④) and spam from non-mail hosts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from mimamori.detect import DETECTORS
from mimamori.detect.base import DetectContext
from mimamori.detect.outbound import OutboundScanDetector, OutboundSmtpDetector
from mimamori.events.schema import conform
from mimamori.sources import get_parser, read_batches
from tests.detect.util import T0, events

PC = "192.168.1.23"


def ctx(**kw: Any) -> DetectContext:
    return DetectContext(tenant="t1", batch_id="b1", **kw)


def conn(i: int, dst: str, port: int, state: str = "S0", src: str = PC, **extra: Any) -> dict[str, Any]:
    row = {
        "@timestamp": T0 + timedelta(seconds=i),
        "event.id": f"C{i:06d}{dst}{port}",
        "event.kind": "event",
        "event.category": "network",
        "event.type": "connection",
        "event.dataset": "zeek.conn",
        "event.module": "zeek",
        "event.action": state,
        "network.transport": "tcp",
        "source.ip": src,
        "destination.ip": dst,
        "destination.port": port,
    }
    row.update(extra)
    return row


def sweep(n: int, start: int = 0, step: int = 1, state: str = "S0") -> list[dict[str, Any]]:
    return [
        conn(start + i * step, f"203.0.{(start + i) // 250}.{(start + i) % 250 + 1}", 22, state)
        for i in range(n)
    ]


def load(paths: list[Path], source: str) -> pl.DataFrame:
    out = []
    for p in paths:
        parser, pctx = get_parser(source), {}
        out += [conform(parser.parse(b, pctx).events) for b in read_batches(p)]
    return pl.concat(out)


def test_registered() -> None:
    assert DETECTORS["outbound_scan"] is OutboundScanDetector
    assert DETECTORS["outbound_smtp"] is OutboundSmtpDetector


# ---------------------------------------------------------------------------- scanning


def test_ssh_sweep_to_many_outside_hosts_is_one_alert_with_evidence() -> None:
    c = ctx()
    alerts = OutboundScanDetector().detect(events([*sweep(60), conn(70, "198.51.100.7", 443, "SF")]), c)
    assert len(alerts) == 1
    a = alerts[0]
    assert (a.kind, a.severity, a.host, a.keys, a.event_count) == (
        "outbound_attack",
        "high",
        PC,
        [f"host:{PC}"],
        61,
    )
    ev = a.evidence
    assert (ev["behaviour"], ev["window"], ev["distinct_targets"], ev["distinct_hosts"]) == (
        "scan",
        "10min",
        60,
        60,
    )
    assert (ev["distinct_ports"], ev["failures"], ev["failure_ratio"], ev["top_ports"]) == (
        1,
        60,
        0.984,
        [22],
    )
    assert len(ev["sample_targets"]) == 10 and ev["sample_targets"][0] == "203.0.0.10:22"
    assert ev["window_start"] == "2025-04-15T09:00:00+00:00"
    assert a.dedup_key


@pytest.mark.parametrize(
    "rows",
    [
        pytest.param(sweep(60, state="SF"), id="successful"),
        pytest.param(sweep(39), id="below-threshold"),
        pytest.param(
            [{**r, "network.transport": "icmp", "event.action": "OTH"} for r in sweep(60)], id="icmp"
        ),
        pytest.param(
            [{**r, "destination.ip": f"10.9.0.{i}"} for i, r in enumerate(sweep(60))], id="internal"
        ),
        pytest.param([{**r, "source.ip": "198.51.100.9"} for r in sweep(60)], id="inbound-scanner"),
        pytest.param(
            sweep(45) + [conn(100 + i, "198.51.100.7", 443, "SF") for i in range(50)], id="low-ratio"
        ),
    ],
)
def test_no_alert(rows: list[dict[str, Any]]) -> None:
    assert OutboundScanDetector().detect(events(rows), ctx()) == []


def test_firewall_denies_count_as_failures() -> None:
    rows = [
        {
            "@timestamp": T0 + timedelta(seconds=i),
            "event.category": "network",
            "event.type": "denied",
            "event.dataset": "fortigate.traffic",
            "event.action": "deny",
            "source.ip": PC,
            "destination.ip": "198.51.100.5",
            "destination.port": 1000 + i,
        }
        for i in range(50)
    ]
    (a,) = OutboundScanDetector().detect(events(rows), ctx())
    assert (a.evidence["distinct_hosts"], a.evidence["distinct_ports"]) == (1, 50)


def test_batches_out_of_order_and_repeated_alert_once() -> None:
    det, c = OutboundScanDetector(), ctx()
    first, second = events(sweep(30)), events(sweep(30, start=30))
    assert det.detect(second, c) == []
    (a,) = det.detect(first, c)
    assert a.evidence["distinct_targets"] == 60
    assert det.detect(first, c) == []  # the same batch again: nothing new
    assert det.detect(pl.concat([first, second]), c) == []
    again = OutboundScanDetector().detect(pl.concat([second, first]), ctx())
    assert [x.dedup_key for x in again] == [a.dedup_key]  # stable per (host, window)


def test_duplicate_records_are_counted_once() -> None:
    rows = sweep(60)
    (a,) = OutboundScanDetector().detect(events(rows + rows + rows[:10]), ctx())
    assert (a.event_count, a.evidence["failures"]) == (60, 60)


def test_slow_scan_over_a_day() -> None:
    # 320 targets, one every 4 minutes: never 40 in ten minutes
    det, c = OutboundScanDetector(), ctx()
    rows = sweep(320, step=240)
    alerts = [a for i in range(0, 320, 40) for a in det.detect(events(rows[i : i + 40]), c)]
    assert [(a.evidence["window"], a.evidence["distinct_targets"]) for a in alerts] == [("24h", 320)]


def test_missing_fields_and_clock_jump_do_not_crash() -> None:
    det, c = OutboundScanDetector(), ctx()
    rows = sweep(5)
    rows[0]["source.ip"] = None
    rows[1]["destination.port"] = None
    rows[2]["event.action"] = None
    rows[3]["event.dataset"] = None
    rows[4]["@timestamp"] = None
    assert det.detect(events(rows), c) == []
    assert det.detect(events([]), c) == []
    jump = [{**r, "@timestamp": T0 + timedelta(days=400, seconds=i)} for i, r in enumerate(sweep(3))]
    assert det.detect(events(jump), c) == []
    assert det.detect(events(sweep(3)), c) == []  # back in time again


def test_state_is_bounded() -> None:
    det, c = OutboundScanDetector(max_rows=100), ctx()
    for day in range(3):
        rows = [
            {**r, "@timestamp": T0 + timedelta(days=day, seconds=i)}
            for i, r in enumerate(sweep(80, state="SF"))
        ]
        det.detect(events(rows), c)
        assert c.state["conns"].height <= 100
    assert c.state["conns"]["ts"].min() >= T0 + timedelta(days=1)  # a day and ten minutes kept
    assert all(isinstance(v, pl.DataFrame) for v in c.state.values())


# ------------------------------------------------------------------ IDS, outward


def ids(i: int, dst: str, port: int, name: str, sev: int = 1, src: str = PC) -> dict[str, Any]:
    return {
        "@timestamp": T0 + timedelta(minutes=i),
        "event.kind": "alert",
        "event.category": "intrusion_detection",
        "event.dataset": "suricata.alert",
        "event.action": "blocked",
        "event.severity": sev,
        "rule.name": name,
        "rule.category": "Web Application Attack",
        "source.ip": src,
        "destination.ip": dst,
        "destination.port": port,
    }


def test_ids_alerts_against_outside_servers_are_an_outbound_attack() -> None:
    rows = [ids(0, "198.51.100.80", 80, "ET WEB_SERVER Possible SQL Injection Attempt")]
    rows += [ids(5, "198.51.100.81", 21, "ET EXPLOIT FTP Buffer Overflow")]
    rows += [ids(9, "198.51.100.80", 80, "ET WEB_SERVER Possible SQL Injection Attempt")]
    (a,) = OutboundScanDetector().detect(events(rows), ctx())
    assert (a.kind, a.keys, a.event_count) == ("outbound_attack", [f"host:{PC}"], 3)
    ev = a.evidence
    assert (ev["behaviour"], ev["distinct_targets"], ev["ports"], ev["actions"]) == (
        "ids_outbound",
        2,
        [21, 80],
        ["blocked"],
    )
    assert ev["signatures"][0] == "ET WEB_SERVER Possible SQL Injection Attempt"


@pytest.mark.parametrize(
    "row",
    [
        pytest.param(dict(name="ET POLICY curl User-Agent Outbound", sev=3), id="policy"),
        pytest.param(dict(name="ET TROJAN Dyre CnC Checkin"), id="c2-is-not-an-attack"),
        pytest.param(dict(name="ET EXPLOIT something", src="203.0.113.9"), id="inbound"),
        pytest.param(dict(name="GPL ATTACK_RESPONSE", sev=4), id="low-severity"),
    ],
)
def test_ids_alerts_that_are_not_outbound_attacks(row: dict[str, Any]) -> None:
    rows = [ids(i, "198.51.100.80", 80, **row) for i in range(5)]
    if row.get("src"):
        rows = [{**r, "destination.ip": PC} for r in rows]
    assert OutboundScanDetector().detect(events(rows), ctx()) == []


def test_two_ids_alerts_are_not_repeated_enough() -> None:
    rows = [ids(i, "198.51.100.80", 443, "ET EXPLOIT Apache Struts RCE") for i in range(2)]
    assert OutboundScanDetector().detect(events(rows), ctx()) == []


# ------------------------------------------------------------------------- SMTP


def smtp(i: int, dst: str, src: str = PC, port: int = 25, **extra: Any) -> dict[str, Any]:
    return conn(i * 20, dst, port, "SF", src=src, **extra)


def spam(src: str = PC, n: int = 40, start: int = 0) -> list[dict[str, Any]]:
    return [smtp(start + i, f"198.51.100.{i % 8 + 1}", src=src) for i in range(n)]


def test_pc_sending_to_many_outside_mail_servers_is_spam() -> None:
    (a,) = OutboundSmtpDetector().detect(events(spam()), ctx())
    assert (a.kind, a.severity, a.host, a.keys, a.event_count) == (
        "outbound_spam",
        "high",
        PC,
        [f"host:{PC}"],
        40,
    )
    ev = a.evidence
    assert (ev["external_mtas"], ev["connections"], ev["ports"], ev["window"]) == (8, 40, [25], "1h")
    assert sorted(ev["mtas"]) == [f"198.51.100.{i}" for i in range(1, 9)]


def test_configured_mail_server_is_quiet() -> None:
    assert OutboundSmtpDetector(mail_servers=[PC]).detect(events(spam()), ctx()) == []


def test_mail_client_submitting_to_its_provider_is_quiet() -> None:
    rows = [smtp(i, "203.0.113.25", port=587) for i in range(12)]
    assert OutboundSmtpDetector().detect(events(rows), ctx()) == []


def test_learned_mail_server_is_quiet_and_others_are_not() -> None:
    det, c = OutboundSmtpDetector(learn_days=3), ctx()
    server = "192.168.1.2"
    for day in range(3):
        rows = [{**r, "@timestamp": r["@timestamp"] + timedelta(days=day)} for r in spam(server, n=3)]
        assert det.detect(events(rows), c) == []
    burst = [{**r, "@timestamp": r["@timestamp"] + timedelta(days=3)} for r in spam(server) + spam(PC)]
    assert [a.host for a in det.detect(events(burst), c)] == [PC]


def test_zeek_smtp_and_conn_of_one_connection_count_once_and_recipients_count() -> None:
    rows = []
    for i in range(25):
        rows.append(smtp(i, "198.51.100.1", **{"event.id": f"U{i}"}))
        rcpt = f"a{i}@example.jp,b{i}@example.jp"
        rows.append(
            smtp(
                i,
                "198.51.100.1",
                **{"event.id": f"U{i}", "event.dataset": "zeek.smtp", "email.to.address": rcpt},
            )
        )
    (a,) = OutboundSmtpDetector(min_recipients=50).detect(events(rows), ctx())
    assert (a.evidence["connections"], a.evidence["recipients"], a.evidence["external_mtas"]) == (25, 50, 1)


def test_smtp_repeat_and_duplicates() -> None:
    det, c = OutboundSmtpDetector(), ctx()
    rows = spam(n=30)
    assert len(det.detect(events(rows + rows), c)) == 1
    assert det.detect(events(rows), c) == []
    assert det.detect(events(spam(n=10, start=30)), c) == []  # same host, same hour: already reported


# ------------------------------------------------------------------------ real data


@pytest.mark.corpus
def test_false_positives_on_real_benign_traffic(corpus: Path) -> None:
    rita = corpus / "zeek-rita-testdata" / "test_data"
    days = sorted((rita / "missing_host").glob("*/conn.*.log.gz"))
    conns = load(days, "zeek")
    proxy = load(
        [rita / "proxy" / "conn.log", *sorted((rita / "proxy_rolling").glob("conn.*.log.gz"))], "zeek"
    )
    eve = load(
        [*sorted((corpus / "suricata-eve").rglob("*.json")), *(corpus / "suricata-eve").rglob("*.log")],
        "suricata",
    )
    # the RITA sensor watches one public server (64.225.56.201): as our "office" host it
    # answers an internet of scanners with ICMP and makes DNS/NTP/TLS calls; never a scan
    for networks in ((), ("64.225.56.201/32",)):
        kw = {"networks": networks} if networks else {}
        for frame in (conns, proxy, eve):
            scan, mail = OutboundScanDetector(), OutboundSmtpDetector()
            c1, c2 = ctx(**kw), ctx(**kw)
            found = [
                a for part in frame.iter_slices(40_000) for a in scan.detect(part, c1) + mail.detect(part, c2)
            ]
            assert found == []


def test_state_survives_a_restart(tmp_path: Path) -> None:
    from mimamori.detect.state import StateStore

    store = StateStore(tmp_path)
    first = OutboundScanDetector().detect(events(sweep(60)), ctx(state=store.get("t1", "outbound_scan")))
    mail = OutboundSmtpDetector().detect(events(spam()), ctx(state=store.get("t1", "outbound_smtp")))
    assert len(first) == len(mail) == 1
    store.save_all()
    again = StateStore(tmp_path)
    assert OutboundScanDetector().detect(events(sweep(60)), ctx(state=again.get("t1", "outbound_scan"))) == []
    assert OutboundSmtpDetector().detect(events(spam()), ctx(state=again.get("t1", "outbound_smtp"))) == []
    (more,) = OutboundScanDetector().detect(
        events(sweep(60, start=900)), ctx(state=again.get("t1", "outbound_scan"))
    )
    assert more.evidence["window_start"] == "2025-04-15T09:10:00+00:00"


def notice(i: int, note: str) -> dict[str, Any]:
    return {
        **ids(i, f"198.51.100.{i}", 22, note, sev=None),
        "event.dataset": "zeek.notice",
        "rule.category": None,
    }


def test_zeek_notices_count_only_when_they_name_an_attacker() -> None:
    certs = [notice(i, "SSL::Invalid_Server_Cert") for i in range(5)]
    assert OutboundScanDetector().detect(events(certs), ctx()) == []
    (a,) = OutboundScanDetector().detect(
        events([notice(i, "SSH::Password_Guessing") for i in range(3)]), ctx()
    )
    assert a.evidence["signatures"] == ["SSH::Password_Guessing"]


@pytest.mark.corpus
def test_wrccdc_has_no_outbound_attack_or_spam(corpus: Path) -> None:
    """WRCCDC 2018: all traffic is internal (10/8) or inbound; its 208 certificate notices
    from internal clients are not attacks."""
    frame = load(sorted((corpus / "zeek-wrccdc-2018" / "zeek-default").glob("*.log.gz")), "zeek")
    scan, mail, c1, c2 = OutboundScanDetector(), OutboundSmtpDetector(), ctx(), ctx()
    assert [
        a for part in frame.iter_slices(50_000) for a in scan.detect(part, c1) + mail.detect(part, c2)
    ] == []


def test_a_few_rows_from_a_wrong_clock_do_not_wipe_the_window() -> None:
    det, c = OutboundScanDetector(), ctx()
    assert det.detect(events(sweep(30)), c) == []
    rows = sweep(30, start=30)
    rows[-1]["@timestamp"] = T0 + timedelta(days=3650)
    (a,) = det.detect(events(rows), c)
    assert a.evidence["distinct_targets"] == 59
    assert c.state["conns"]["ts"].max() < T0 + timedelta(days=1)
