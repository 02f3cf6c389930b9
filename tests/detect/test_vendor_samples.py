"""The anti-virus and IDS pass-through detectors on the real FortiGate and PAN-OS samples
(../shared/data/firewall-utm-syslog, Cribl's sample packs). The samples hold no infection:
sandbox submissions, application control, a PAN-OS URL log at "informational". They must not
alert; the same real lines turned into a verdict must."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from mimamori.detect.base import DetectContext
from mimamori.detect.ids import IdsAlertDetector
from mimamori.detect.malware import MalwareVerdictDetector
from mimamori.events.schema import conform
from mimamori.sources import get_parser, read_batches

FG = "firewall-utm-syslog/cribl-fortigate"
PAN = "firewall-utm-syslog/cribl-paloalto-panos/raw"
CTX = DetectContext(tenant="t", batch_id="b", networks=("10.0.0.0/8", "192.168.0.0/16"))


def _events(source: str, data: bytes) -> pl.DataFrame:
    parser = get_parser(source)
    ctx: dict[str, object] = {}
    frames = [conform(parser.parse(b, ctx).events) for b in read_batches(data, f"{source}.log")]
    return pl.concat(frames).with_columns(pl.lit("t").alias("tenant.id"))


def _fortigate_lines(corpus: Path) -> list[str]:
    lines = (corpus / FG / "raw" / "fortigate_utm.log").read_text().splitlines()
    for sample in sorted((corpus / FG / "data" / "samples").glob("*.json")):
        lines += [r["_raw"] for r in json.loads(sample.read_text())]
    return lines


def _alerts(events: pl.DataFrame) -> list[tuple[str, str, str]]:
    out = []
    for det in (MalwareVerdictDetector(), IdsAlertDetector()):
        out += [(a.detector, a.kind, a.severity) for a in det.detect(events, CTX)]
    return out


@pytest.mark.corpus
def test_fortigate_samples_raise_nothing(corpus: Path) -> None:
    lines = _fortigate_lines(corpus)
    events = _events("fortigate", "\n".join(lines).encode())
    sandbox = events.filter(pl.col("event.action") == "analytics")
    assert sandbox.height >= 4 and set(sandbox["event.category"]) == {"file"}  # submissions, no verdict
    assert _alerts(events) == []


@pytest.mark.corpus
def test_a_real_sandbox_line_with_a_verdict_alerts(corpus: Path) -> None:
    line = next(ln for ln in _fortigate_lines(corpus) if "subtype=virus" in ln and "functions.js" in ln)
    infected = (
        line.replace("srcip=x.x.x.x", "srcip=203.0.113.9")
        .replace("dstip=x.x.x.x", "dstip=192.168.1.20")
        .replace('msg="File submitted to Sandbox."', 'msg="File is infected." virus="JS/Agent.ABC!tr"')
        .replace("action=analytics", "action=blocked")
    )
    got = _alerts(_events("fortigate", infected.encode()))
    assert got and all(det == "malware" for det, _, _ in got)


@pytest.mark.corpus
def test_panos_threat_sample_url_log_raises_nothing(corpus: Path) -> None:
    events = _events("panos", (corpus / PAN / "pan_threat.log").read_bytes())
    assert events.height == 1 and events["event.dataset"][0] == "panos.threat"
    assert _alerts(events) == []
