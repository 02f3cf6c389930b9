"""IDS alerts pass through, grouped per internal host and signature, classified by family."""

from __future__ import annotations

import polars as pl
import pytest

from mimamori.detect.base import DetectContext, classify_threat
from mimamori.detect.ids import IdsAlertDetector
from tests.detect.util import events


def ids(src: str, dst: str, name: str, sev: int) -> dict:
    return {
        "event.kind": "alert",
        "event.category": "intrusion_detection",
        "event.dataset": "suricata.alert",
        "rule.name": name,
        "rule.id": "9000001",
        "event.severity": sev,
        "source.ip": src,
        "destination.ip": dst,
        "destination.port": 443,
    }


def test_banking_trojan_signatures_become_banking_malware_per_host():
    ctx = DetectContext(tenant="t", batch_id="b", networks=("10.1.0.0/16",))
    rows = [ids("10.1.0.5", "198.51.100.9", "ET TROJAN Dyre/Upatre CnC Checkin", 1)] * 3
    rows += [ids("10.1.0.6", "198.51.100.9", "ET TROJAN Dyre/Upatre CnC Checkin", 1)]
    rows += [ids("10.1.0.7", "93.184.216.34", "ET POLICY curl User-Agent Outbound", 3)]  # low: dropped
    rows += [ids("203.0.113.8", "10.1.0.20", "ET SCAN Nmap Scripting Engine", 2)]  # inbound, internal target
    alerts = IdsAlertDetector().detect(events(rows), ctx)
    got = sorted((a.kind, a.host, a.event_count, a.severity) for a in alerts)
    assert got == [
        ("banking_malware", "10.1.0.5", 3, "high"),
        ("banking_malware", "10.1.0.6", 1, "high"),
        ("ids_alert", "10.1.0.20", 1, "medium"),
    ]
    assert all("family:dyre" in a.keys for a in alerts if a.kind == "banking_malware")


def test_min_severity_low_keeps_policy_alerts():
    ctx = DetectContext(tenant="t", batch_id="b")
    rows = [ids("192.168.0.7", "93.184.216.34", "ET POLICY curl User-Agent Outbound", 3)]
    assert len(IdsAlertDetector(min_severity="low").detect(events(rows), ctx)) == 1


def test_classification_matches_whole_words_only():
    assert classify_threat("ET TROJAN Win32/Dridex CnC") == ("banking_malware", "dridex")
    assert classify_threat("WannaCry killswitch domain") == ("ransomware", "wannacry")
    assert classify_threat("Emotet epoch5 C2")[0] == "emotet"
    assert classify_threat("ET POLICY Dyreless example") == (None, None)
    assert classify_threat(None) == (None, None)


@pytest.mark.corpus
def test_policy_and_info_signatures_stay_low_whatever_their_priority(corpus):
    """The real Suricata sample has "ET POLICY Observed IP Lookup Domain" at priority 1."""
    from mimamori.sources import get_parser, read_batches

    path = corpus / "suricata-eve" / "elastic-fixtures" / "test-eve-small.log"
    parser = get_parser("suricata")
    frames = [parser.parse(b, {}).events for b in read_batches(path)]
    ev = pl.concat(frames)
    policy = ev.filter(pl.col("rule.name").str.starts_with("ET POLICY Observed IP Lookup").fill_null(False))
    assert policy.height and policy["event.severity"].min() == 1
    ctx = DetectContext(tenant="t", batch_id="b")
    assert [a for a in IdsAlertDetector().detect(policy, ctx)] == []
    kept = IdsAlertDetector(min_severity="low").detect(policy, ctx)
    assert kept and {a.severity for a in kept} == {"low"}
    crafted = [ids("10.1.0.7", "93.184.216.34", "ET INFO Suspicious Domain Lookup", 1)]
    crafted += [
        {**ids("10.1.0.8", "93.184.216.34", "Some vendor rule", 1), "rule.category": "Not Suspicious Traffic"}
    ]
    crafted += [ids("10.1.0.9", "93.184.216.34", "ET EXPLOIT Apache Struts RCE", 1)]
    got = IdsAlertDetector().detect(
        events(crafted), DetectContext(tenant="t", batch_id="b", networks=("10.1.0.0/16",))
    )
    assert [(a.host, a.severity) for a in got] == [("10.1.0.9", "high")]
