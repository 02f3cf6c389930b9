"""`make fp`: alerts each detector raises on the real data, false positives counted apart.

Runs every registered detector (``mimamori.detect.default_detectors``) and the device
inventory observer over the public real data in ``../shared/data`` (or $MIMAMORI_CORPUS),
the way the tests in ``tests/detect`` and ``tests/assets/test_inventory.py`` do: the same
files, the same parsers (``mimamori.sources``), the same internal networks, batch sizes
and tenant settings. Each alert is counted as

- **FP**: raised on a part of the data the tests treat as benign (a false positive),
- **TP**: a true detection of an attack the tests (or the data set's labels) name,
- **other**: on attack data, neither labelled an attack nor benign by the tests.

Nothing is hard-coded but the labels the tests use (which hosts are the red team, which
fail2ban lines say "no match"); counts are computed. A note gives the tests' reason where
they pin a count. Detectors with no real-data test (ids, malware, intel) are run over the
benign frames the outbound tests use and marked so in the note.

    .venv/bin/python bench/false_positives.py [--json]

Progress goes to stderr; the table (or JSON) to stdout.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy.orm import Session

from mimamori.assets.inventory import DeviceInventoryObserver
from mimamori.db import migrate
from mimamori.db.models import Provider, Tenant
from mimamori.db.session import make_engine
from mimamori.detect import DETECTORS, default_detectors
from mimamori.detect.base import AlertDraft, DetectContext, Detector
from mimamori.detect.beacon import BeaconDetector
from mimamori.detect.ids import IdsAlertDetector
from mimamori.detect.intel import IntelMatchDetector
from mimamori.detect.internet import (
    CloudSigninDetector,
    CredentialStuffingDetector,
    ExposedServiceDetector,
    WebAttackDetector,
)
from mimamori.detect.lateral import LateralMovementDetector
from mimamori.detect.malware import MalwareVerdictDetector
from mimamori.detect.outbound import OutboundScanDetector, OutboundSmtpDetector
from mimamori.detect.volume import VolumeSpikeDetector
from mimamori.events.schema import conform, empty_events
from mimamori.intel import IndicatorSet
from mimamori.intel.importer import read_paths
from mimamori.intel.warninglist import WarningList
from mimamori.sources import get_parser, read_batches

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("MIMAMORI_CORPUS") or ROOT.parent / "shared" / "data").resolve()
RITA = CORPUS / "zeek-rita-testdata" / "test_data"
WRCCDC = CORPUS / "zeek-wrccdc-2018"
WEB = CORPUS / "web-access-logs"
C2 = WEB / "evtx-attack-samples" / "Command and Control"
CLOUD = CORPUS / "cloud-and-web-logs"
SENSOR = ("64.225.56.201/32",)  # the RITA sensor's public server, as "our" host
PRIVATE = ("10.0.0.0/8", "192.168.0.0/16", "172.16.0.0/12")
#: WRCCDC 2018 red-team hosts, as tests/detect/test_lateral.py names them
RED_TEAM = {"10.164.94.120", "10.128.0.214", "10.150.0.20"}
#: kinds the device-inventory observer raises (src/mimamori/assets/inventory.py)
INVENTORY_KINDS = ("new_device", "rogue_router", "eol_os", "isolated_asset_external")
#: the inventory tests' pinned clock (tests/assets/conftest.py)
INVENTORY_NOW = datetime(2026, 11, 22, tzinfo=UTC)

Verdict = Callable[[AlertDraft], str]  # "fp" | "tp" | "other"


def _always(verdict: str) -> Verdict:
    return lambda _: verdict


def _lookup(labels: dict[int, str]) -> Verdict:
    """A verdict per alert object, decided when it was raised."""
    return lambda a: labels[id(a)]


def benign(_: AlertDraft) -> str:
    return "fp"


def unlabelled(_: AlertDraft) -> str:
    return "other"


@dataclass
class Row:
    detector: str
    dataset: str
    networks: str
    events: int
    alerts: int
    fp: int
    tp: int
    other: int
    note: str = ""


ROWS: list[Row] = []


def progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def nets_label(networks: tuple[str, ...] | None) -> str:
    return "default" if not networks else ",".join(networks)


def record(
    detector: str,
    dataset: str,
    networks: tuple[str, ...] | None,
    events: int,
    alerts: Iterable[AlertDraft],
    verdict: Verdict,
    note: str = "",
) -> Row:
    got = Counter(verdict(a) for a in alerts)
    row = Row(
        detector,
        dataset,
        nets_label(networks),
        events,
        sum(got.values()),
        got["fp"],
        got["tp"],
        got["other"],
        note,
    )
    ROWS.append(row)
    progress(f"{detector:<20} {dataset:<44} {events:>8} events  {row.alerts} alerts")
    return row


def ctx(tenant: str, networks: tuple[str, ...] | None = None, **kw: Any) -> DetectContext:
    if networks:
        kw["networks"] = networks
    return DetectContext(tenant=tenant, batch_id="b1", **kw)


# ---------------------------------------------------------------------- loading


def parse_batches(path: Path | bytes, source: str, name: str | None = None) -> Iterator[pl.DataFrame]:
    """Parsed event frames of one file, batch by batch, one parser context per file."""
    parser, pctx = get_parser(source), dict[str, Any]()
    for batch in read_batches(path, name):
        yield parser.parse(batch, pctx).events


def parse_file(path: Path | bytes, source: str, name: str | None = None) -> pl.DataFrame:
    """A whole file's events (as tests/sources/util.py's ``parse_file``)."""
    frames = list(parse_batches(path, source, name))
    return pl.concat(frames) if frames else empty_events()


@cache
def load(paths: tuple[Path, ...], source: str) -> pl.DataFrame:
    """Files parsed and conformed, concatenated (the detector tests' ``load``)."""
    out = [conform(f) for p in paths for f in parse_batches(p, source)]
    return pl.concat(out) if out else conform(empty_events())


def run_slices(det: Detector, frame: pl.DataFrame, c: DetectContext, size: int) -> list[AlertDraft]:
    return [a for part in frame.iter_slices(size) for a in det.detect(part, c)]


def rita_days() -> tuple[Path, ...]:
    return tuple(sorted((RITA / "missing_host").glob("*/conn.*.log.gz")))


def rita_proxy() -> tuple[Path, ...]:
    return (RITA / "proxy" / "conn.log", *sorted((RITA / "proxy_rolling").glob("conn.*.log.gz")))


def eve_files() -> tuple[Path, ...]:
    eve = CORPUS / "suricata-eve"
    return (*sorted(eve.rglob("*.json")), *eve.rglob("*.log"))


def wrccdc_all() -> tuple[Path, ...]:
    return tuple(sorted((WRCCDC / "zeek-default").glob("*.log.gz")))


#: the benign frames of tests/detect/test_outbound.py (name, paths, parser)
def outbound_frames() -> list[tuple[str, tuple[Path, ...], str]]:
    return [
        ("rita missing_host conn (3 days)", rita_days(), "zeek"),
        ("rita proxy + proxy_rolling conn", rita_proxy(), "zeek"),
        ("suricata-eve (all files)", eve_files(), "suricata"),
    ]


# ---------------------------------------------------------------------- beacon


def beacon() -> None:
    """tests/detect/test_beacon.py: files streamed batch by batch, parser output unconformed."""

    def stream(paths: Iterable[Path], det: BeaconDetector, c: DetectContext) -> tuple[int, list[AlertDraft]]:
        n, alerts = 0, []
        for p in paths:
            for events in parse_batches(p, "zeek"):
                n += events.height
                alerts += det.detect(events, c)
        return n, alerts

    nets = ("10.136.0.0/16",)
    n, alerts = stream(
        [RITA / "proxy" / f for f in ("conn.log", "http.log", "ssl.log", "dns.log")],
        BeaconDetector(),
        ctx("acme", nets),
    )
    record(
        "beacon",
        "rita proxy conn/http/ssl/dns (HTTPS beacon)",
        nets,
        n,
        alerts,
        lambda a: "tp" if (a.host, a.indicator) == ("10.136.0.18", "www.honestimnotevil.com") else "fp",
        "TP: the proxied beacon 10.136.0.18 -> www.honestimnotevil.com",
    )
    day = RITA / "missing_host" / "2024-04-20"
    n, alerts = stream(
        [*sorted(day.glob("conn.*.log.gz")), *sorted(day.glob("ssl.*.log.gz"))],
        BeaconDetector(),
        ctx("acme", SENSOR),
    )
    record(
        "beacon",
        "rita missing_host 2024-04-20 conn+ssl",
        SENSOR,
        n,
        alerts,
        benign,
        "the README's 200-350 s HTTP beacon is inbound to the sensor, not from it",
    )
    det = BeaconDetector(ignore_ports=(), ignore_transports=())
    n, alerts = stream(
        [*sorted(day.glob("conn.*.log.gz")), *sorted(day.glob("ssl.*.log.gz"))], det, ctx("acme", SENSOR)
    )
    record(
        "beacon [ntp+icmp counted]",
        "rita missing_host 2024-04-20 conn+ssl",
        SENSOR,
        n,
        alerts,
        benign,
        "not the default settings: ignore_ports=(), ignore_transports=(); test_beacon.py's comment "
        f"says 2 (ntp.ubuntu.com, ICMP errors); got: {', '.join(sorted(str(a.indicator) for a in alerts))}",
    )
    files = [*sorted((RITA / "proxy_rolling").glob("[chs]*.log.gz"))]
    files += [RITA / "json_with_all_fields" / f for f in ("conn.log", "http.log", "ssl.log")]
    n, alerts = stream(files, BeaconDetector(), ctx("acme", PRIVATE))
    record(
        "beacon",
        "rita proxy_rolling + json_with_all_fields",
        PRIVATE,
        n,
        alerts,
        benign,
        "ordinary browsing through the proxy",
    )


# ---------------------------------------------------------------------- lateral / volume


def lateral_and_volume() -> None:
    """tests/detect/test_lateral.py and test_volume.py: conn frames in 40,000-row slices."""
    logs = ("smb_mapping", "smb_files", "dce_rpc", "rdp", "ntlm")
    for fmt, ext in (("zeek-default", "log.gz"), ("zeek-json", "json.gz")):
        frame = load(tuple(WRCCDC / fmt / f"{n}.{ext}" for n in logs), "zeek")
        alerts = run_slices(LateralMovementDetector(), frame, ctx("t1"), 1000)
        record(
            "lateral",
            f"wrccdc {fmt} smb/dce_rpc/rdp/ntlm",
            None,
            frame.height,
            alerts,
            lambda a: "tp" if a.host in RED_TEAM else "fp",
            "TP: red-team hosts the test names (share mapping, RDP, svcctl service creation)"
            + ("; the same traffic as zeek-default, in JSON" if fmt == "zeek-json" else ""),
        )
    benign_frames = [
        ("rita missing_host conn (3 days)", rita_days()),
        ("rita proxy + proxy_rolling conn", rita_proxy()),
    ]
    for networks in (None, SENSOR):
        for name, paths in benign_frames:
            frame = load(paths, "zeek")
            alerts = run_slices(LateralMovementDetector(), frame, ctx("t1", networks), 40_000)
            record("lateral", name, networks, frame.height, alerts, benign)
    for networks in (None, SENSOR):
        for name, paths in benign_frames:
            frame = load(paths, "zeek")
            alerts = run_slices(VolumeSpikeDetector(), frame, ctx("t1", networks), 40_000)
            record("volume_spike", name, networks, frame.height, alerts, benign)
    frame = load(rita_days(), "zeek")
    alerts = run_slices(
        VolumeSpikeDetector(min_bytes=0, min_history_hours=6), frame, ctx("t1", SENSOR), 5_000
    )
    record(
        "volume_spike [min_bytes=0, 6h]",
        "rita missing_host conn (3 days)",
        SENSOR,
        frame.height,
        alerts,
        benign,
        "not the default settings: min_bytes=0, min_history_hours=6, 5,000-row slices, as the test",
    )


# ---------------------------------------------------------------------- outbound


def outbound() -> None:
    """tests/detect/test_outbound.py: scan and SMTP detectors, each with its own context."""
    for networks in (None, SENSOR):
        for name, paths, source in outbound_frames():
            frame = load(paths, source)
            for det in (OutboundScanDetector(), OutboundSmtpDetector()):
                alerts = run_slices(det, frame, ctx("t1", networks), 40_000)
                record(det.name, name, networks, frame.height, alerts, benign)
    frame = load(wrccdc_all(), "zeek")
    for det in (OutboundScanDetector(), OutboundSmtpDetector()):
        alerts = run_slices(det, frame, ctx("t1"), 50_000)
        record(
            det.name,
            "wrccdc zeek-default (all logs)",
            None,
            frame.height,
            alerts,
            benign,
            "all traffic internal or inbound; its 208 certificate notices are not attacks",
        )


# ---------------------------------------------------------------------- internet-facing


def run_internet(events: pl.DataFrame) -> list[AlertDraft]:
    """test_internet.py's ``run_all``: the three log detectors, each with a fresh context."""
    out: list[AlertDraft] = []
    for det in (WebAttackDetector(), CredentialStuffingDetector(), CloudSigninDetector()):
        out += det.detect(events, ctx("t1"))
    return out


def record_internet(
    dataset: str,
    events: pl.DataFrame,
    alerts: list[AlertDraft],
    verdict: Verdict,
    note: str = "",
    who: str | None = None,
) -> None:
    """One row per internet-facing detector (alerts split by the detector that raised them);
    ``note`` goes on the row of detector ``who`` (every row if None)."""
    for name in ("web_attack", "credential_stuffing", "cloud_signin"):
        mine = [a for a in alerts if a.detector == name]
        record(name, dataset, None, events.height, mine, verdict, note if who in (None, name) else "")


def ual_from_csv(rows: list[dict[str, str]], time_field: str) -> bytes:
    """Log Analytics CSV exports of OfficeActivity rows as unified-audit JSON lines (as the test)."""
    out = []
    for r in rows:
        params = json.loads(r["Parameters"]) if r.get("Parameters") else []
        when = r[time_field]
        if "/" in when:  # "4/26/2021, 7:17:10.000 AM"
            when = datetime.strptime(when, "%m/%d/%Y, %I:%M:%S.%f %p").isoformat()
        out.append({"CreationTime": when, "UserId": r.get("UserId"), "ClientIP": r.get("ClientIP"),
                    "Operation": r["Operation"], "Parameters": params})  # fmt: skip
    return "\n".join(json.dumps(o) for o in out).encode()


def fail2ban(name: str) -> tuple[pl.DataFrame, set[str], set[str]]:
    """A fail2ban fixture's access-log lines parsed; hosts labelled match / no match."""
    text = (WEB / "fail2ban" / name).read_text("utf-8")
    labels = [json.loads(m) for m in re.findall(r"#\s*failJSON:\s*(\{.*\})", text)]
    body = "\n".join(ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")) + "\n"
    events = parse_file(body.encode(), "apache", name)
    pos = {lb.get("host") for lb in labels if lb.get("match")}
    neg = {lb.get("host") for lb in labels if lb.get("match") is False} - pos
    return events, pos, neg


def _is(
    kind: str,
    *,
    indicators: Iterable[str] | None = None,
    category: Iterable[str] | None = None,
    otherwise: str = "fp",
) -> Verdict:
    """A verdict: "tp" for alerts of ``kind`` (and indicator / evidence category, if given)."""
    inds, cats = set(indicators or ()), set(category or ())

    def verdict(a: AlertDraft) -> str:
        ok = a.kind == kind or (bool(cats) and kind == "*")
        ok = ok and (not inds or a.indicator in inds) and (not cats or a.evidence.get("category") in cats)
        return "tp" if ok else otherwise

    return verdict


def internet() -> None:
    """tests/detect/test_internet.py: access, sign-in and audit logs."""
    pkgs = CLOUD / "elastic-integrations-ELv2" / "packages"
    exch = CLOUD / "msticpy-testdata" / "docs" / "notebooks" / "data" / "demo_exchange_data.csv"
    exch_rows = list(csv.DictReader(io.StringIO(exch.read_text(encoding="utf-8"))))
    lab = "sentinel-training-lab/Solutions/Training/Azure-Sentinel-Training-Lab/Artifacts/Telemetry"
    inbox = (CLOUD / lab / "office_activity_inbox_rule.csv").read_text(encoding="utf-8-sig")
    inbox_rows = list(csv.DictReader(io.StringIO(inbox)))
    specs: list[tuple[str, Callable[[], pl.DataFrame], Verdict, str, str | None]] = [
        # benign: every alert is a false positive
        (
            "elastic apache_logs (public blog)",
            lambda: parse_file(WEB / "elastic-examples" / "apache_logs", "apache"),
            benign,
            "",
            None,
        ),
        (
            "msticpy aad_logons (demo tenant)",
            lambda: parse_file(CLOUD / "msticpy-testdata/derived/aad_logons.jsonl", "entra_signin"),
            benign,
            "the test's one FP: impossible_travel ctfuser3, Millstone -> Park Ridge (US), 1,119 km in "
            "73 min, the candidate the data's README names; ~2 h by plane, so VPN or geo-IP error",
            "cloud_signin",
        ),
        (
            "msticpy Exchange admin cmdlets",
            lambda: parse_file(ual_from_csv(exch_rows, "TimeGenerated"), "m365_audit", "x.jsonl"),
            benign,
            "135 Set-Mailbox, 211 Set-User: none sets forwarding or a hiding rule",
            "cloud_signin",
        ),
        (
            "elastic Entra sign-in pipeline sample",
            lambda: parse_file(
                pkgs / "azure/data_stream/signinlogs/_dev/test/pipeline/test-signinlogs-raw.log",
                "entra_signin",
            ),
            benign,
            "",
            None,
        ),
        (
            "elastic Google Workspace login sample",
            lambda: parse_file(
                pkgs / "google_workspace/data_stream/login/_dev/test/pipeline/test-login.log", "gws_login"
            ),
            lambda a: "tp" if a.kind == "account_takeover" and a.evidence.get("warning") else "fp",
            "TP: Google's own account warnings (the sample's test event of each warning type)",
            "cloud_signin",
        ),
        # attack data: what the tests check is TP; what they pin as absent is FP; the rest "other"
        (
            "Tunna RDP tunnel IIS log",
            lambda: parse_file(C2 / "Tunna_rdp_tunnel_IIS.log", "iis"),
            _is("web_shell", indicators=["10.0.2.17"]),
            "TP: every Tunna request, in hourly web_shell alerts (the test pins only these)",
            "web_attack",
        ),
        (
            "plaso apache_access.log",
            lambda: parse_file(CLOUD / "plaso-testdata/test_data/apache_access.log", "apache"),
            _is("web_shell", indicators=["10.1.1.2", "192.168.0.2"], otherwise="other"),
            "TP: evil.php and ?cmd=uname web shells (each line is in the log twice, once with a vhost); "
            "other: 1.2.3.4's XSS/OGNL probes, which the test does not check",
            "web_attack",
        ),
        (
            "web attack + web shell localhost log",
            lambda: parse_file(C2 / "web_attack_and_isp_webshell_localhost_access_log.txt", "apache"),
            _is("*", category=["path_traversal", "web_shell", "exploit_attempt"], otherwise="other"),
            "TP: path traversal, web shell, exploit attempts (the test asserts 2 of each); "
            "other: admin-tool probes (web_scan)",
            "web_attack",
        ),
        (
            "plaso iis7_sqli.log",
            lambda: parse_file(CLOUD / "plaso-testdata/test_data/iis/iis7_sqli.log", "iis"),
            _is("*", indicators=["222.222.222.222"], category=["sql_injection"]),
            "TP: SQL injection from 222.222.222.222 (the test pins only this)",
            "web_attack",
        ),
        (
            "gtkcyber hackers-access.httpd",
            lambda: parse_file(WEB / "gtkcyber/data/hackers-access.httpd", "apache"),
            _is("credential_stuffing"),
            "TP: 499 POSTs to a Plone /login_form from 346 addresses (the test pins only this)",
            "credential_stuffing",
        ),
        (
            "sentinel lab New-InboxRule records",
            lambda: parse_file(ual_from_csv(inbox_rows, "Start_Time [UTC]"), "m365_audit", "x.jsonl"),
            _is("mailbox_rule"),
            "TP: two rules that hide mail (move to Junk, delete covid-19 mail)",
            "cloud_signin",
        ),
    ]
    for dataset, events_of, verdict, note, who in specs:
        events = events_of()
        record_internet(dataset, events, run_internet(events), verdict, note, who)
    panther_labelled()
    for name in ("nginx-botsearch", "php-url-fopen", "apache-badbots", "nginx-bad-request", "traefik-auth"):
        events, pos, neg = fail2ban(name)
        alerts = run_internet(events)
        hit = len({a.indicator for a in alerts} & pos)

        def verdict(a: AlertDraft, p: set[str] = pos, n: set[str] = neg) -> str:
            return "tp" if a.indicator in p else "fp" if a.indicator in n else "other"

        note = f"fail2ban-labelled hosts: {len(pos)} match / {len(neg)} no match; found {hit} of {len(pos)}"
        record_internet(f"fail2ban {name}", events, alerts, verdict, note, "web_attack")


def panther_labelled() -> None:
    """Panther's labelled rule test events: one detector call per event, as the tests do; an
    alert on an event Panther's rule expects to fire is TP, on one it expects not to, FP."""
    sets = [
        (
            "panther M365 Exchange test events",
            "tests_Microsoft365_Audit_Exchange.jsonl",
            "m365_audit",
            lambda r: True,
            "labels: Panther's expected_result (the test checks its 10 forwarding cases)",
        ),
        (
            "panther Entra sign-in test events",
            "tests_Azure_Audit.jsonl",
            "entra_signin",
            lambda r: "SignInLogs" in (r["log"].get("category") or ""),
            "labels: Panther's expected_result; the FP is LegacyAuth's 'known exception', a user "
            "that rule allow-lists (we have no allow-list)",
        ),
    ]
    for dataset, name, source, keep, note in sets:
        lines = (CLOUD / "panther-analysis" / "derived" / name).read_text().splitlines()
        rows = [r for r in map(json.loads, lines) if keep(r)]
        data = "\n".join(json.dumps(r["log"]) for r in rows).encode()
        events = parse_file(data, source, "x.jsonl")
        alerts: list[AlertDraft] = []
        labels: dict[int, str] = {}
        for i, row in enumerate(rows, start=1):
            got = CloudSigninDetector().detect(events.filter(pl.col("log.file.line") == i), ctx("t1"))
            labels.update({id(a): "tp" if row["expected_result"] else "fp" for a in got})
            alerts += got
        record("cloud_signin", dataset, None, events.height, alerts, _lookup(labels), note)


def exposed() -> None:
    """test_fp_count_exposed_service_on_real_zeek: every conn* file, a fresh detector per file."""
    for root in ("zeek-rita-testdata", "zeek-wrccdc-2018"):
        n, alerts, files = 0, [], sorted((CORPUS / root).rglob("conn*"))
        for f in files:
            events = parse_file(f, "zeek")
            n += events.height
            alerts += ExposedServiceDetector().detect(events, ctx("t1"))
        note = "" if files else "no conn log in this data set (left out upstream: too large)"
        record("exposed_service", f"{root} conn* ({len(files)} files)", None, n, alerts, benign, note)


# ---------------------------------------------------------------------- untested on real data


def untested() -> None:
    """ids, malware and intel have no real-data test: run them over the outbound tests' frames
    (RITA and suricata-eve: benign, so FP; WRCCDC is attack data: "other")."""
    note = "no real-data test; the frames of test_outbound.py"
    frames = [*outbound_frames(), ("wrccdc zeek-default (all logs)", wrccdc_all(), "zeek")]
    indicators, n_indicators = intel_indicators()
    by_value = {v: src for v, src in indicators.frame.select("value", "source").iter_rows()}
    for name, paths, source in frames:
        frame = load(paths, source)
        verdict = unlabelled if name.startswith("wrccdc") else benign
        for det in (IdsAlertDetector(), MalwareVerdictDetector()):
            alerts = run_slices(det, frame, ctx("t1"), 40_000)
            rules = sorted({a.title.split(" (")[0] for a in alerts})
            record(det.name, name, None, frame.height, alerts, verdict, "; ".join([note, *rules]))
        alerts = run_slices(IntelMatchDetector(), frame, ctx("t1", indicators=indicators), 40_000)
        hits = Counter(f"{a.kind} {a.indicator} [{by_value.get(a.indicator or '')}]" for a in alerts)
        detail = "; ".join(f"{n}x {h}" for h, n in hits.most_common(4))
        record(
            "intel",
            name,
            None,
            frame.height,
            alerts,
            verdict,
            f"{note}; all of threat-intel/ ({n_indicators:,} indicators after the warning list, "
            f"no expiry; malicious_source = an outside address reached us){'; ' + detail if detail else ''}",
        )


@cache
def intel_indicators() -> tuple[IndicatorSet, int]:
    """Every indicator file of ``threat-intel/``, warning-list filtered, as an IndicatorSet."""
    progress("reading threat-intel/ ...")
    frame, _ = read_paths([CORPUS / "threat-intel"])
    kept = frame.filter(WarningList.default().reasons(frame).is_null())
    return IndicatorSet(kept), kept.height


# ---------------------------------------------------------------------- inventory


def inventory() -> None:
    """tests/assets/test_inventory.py: a migrated SQLite DB, the tenant on the default private
    ranges, the tests' pinned clock; one fresh database per data set, as one test each."""
    runs: list[tuple[str, list[Path], dict[str, tuple[str, str]]]] = [
        (
            "rita proxy dhcp.log + software.log",
            [RITA / "proxy" / "dhcp.log", RITA / "proxy" / "software.log"],
            {},  # the test: the first day of a tenant's data is its baseline, no alert at all
        ),
        (
            "wrccdc software.log",
            [WRCCDC / "zeek-default" / "software.log.gz"],
            {
                "rogue_router": (
                    "fp",
                    "the test's 3 FPs: red-team hosts rotating spoofed user agents (10.128.0.19, .202, .214)",
                ),
                "eol_os": (
                    "other",
                    "count not pinned by any test; old OS versions the competition network runs "
                    "(or red-team user agents claim)",
                ),
            },
        ),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, paths, verdicts) in enumerate(runs):
            engine = make_engine(f"sqlite:///{Path(tmp) / f'inventory{i}.db'}")
            migrate.upgrade(engine)
            with Session(engine, expire_on_commit=False) as s:
                tenant = Tenant(id="acme", name="Acme", provider=Provider(name="prov"), networks=[])
                s.add(tenant)
                s.commit()
                obs = DeviceInventoryObserver(clock=lambda: INVENTORY_NOW)
                alerts: list[AlertDraft] = []
                n = 0
                for p in paths:
                    for batch in parse_batches(p, "zeek"):
                        if batch.height:
                            n += batch.height
                            alerts += obs.observe(s, tenant, batch, p.name)
                s.commit()
            engine.dispose()
            for kind in sorted({*INVENTORY_KINDS, *(a.kind for a in alerts)}, key=_kind_order):
                mine = [a for a in alerts if a.kind == kind]
                verdict, note = verdicts.get(kind, ("fp", ""))
                if kind == "eol_os" and mine:
                    seen = Counter(
                        f"{a.evidence['device'].get('os_name')} {a.evidence['device'].get('os_version')}"
                        for a in mine
                    )
                    note += ": " + ", ".join(f"{os} {k}" for os, k in seen.most_common())
                record(f"inventory:{kind}", name, None, n, mine, _always(verdict), note)


def _kind_order(kind: str) -> int:
    return INVENTORY_KINDS.index(kind) if kind in INVENTORY_KINDS else len(INVENTORY_KINDS)


# ---------------------------------------------------------------------- output


def table(rows: list[Row]) -> str:
    head = ("detector", "dataset", "networks", "events", "alerts", "FP", "TP", "other", "note")
    cells = [
        (
            r.detector,
            r.dataset,
            r.networks,
            f"{r.events:,}",
            *map(str, (r.alerts, r.fp, r.tp, r.other)),
            r.note,
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head[:-1])]
    right = {3, 4, 5, 6, 7}

    def line(c: tuple[str, ...]) -> str:
        parts = [c[i].rjust(w) if i in right else c[i].ljust(w) for i, w in enumerate(widths)]
        return "  ".join(parts) + "  " + c[-1]

    out = [line(head), "  ".join("-" * w for w in widths) + "  ----"]
    out += [line(c) for c in cells]
    totals: dict[str, list[int]] = {}
    for r in rows:
        t = totals.setdefault(r.detector, [0, 0, 0, 0])
        for j, v in enumerate((r.alerts, r.fp, r.tp, r.other)):
            t[j] += v
    out += ["", "totals per detector (alerts / FP / TP / other):"]
    out += [f"  {d:<34} {t[0]:>5} {t[1]:>5} {t[2]:>5} {t[3]:>5}" for d, t in totals.items()]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args()
    if not CORPUS.is_dir():
        sys.exit(f"real-data corpus not found at {CORPUS} (set MIMAMORI_CORPUS)")
    registered = {d.name for d in default_detectors()}
    t0, c0 = time.perf_counter(), time.process_time()
    for step in (beacon, lateral_and_volume, outbound, internet, exposed, untested, inventory):
        progress(f"--- {step.__name__}")
        step()
    missing = registered - {r.detector for r in ROWS}
    if missing:  # a detector registered after this script was written
        progress(f"registered detectors not covered here: {sorted(missing)}")
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    progress(f"done in {wall:.1f} s wall, {cpu:.1f} s CPU")
    if args.json:
        out = {
            "corpus": str(CORPUS),
            "registered_detectors": sorted(DETECTORS),
            "not_covered": sorted(missing),
            "rows": [asdict(r) for r in ROWS],
        }
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        print(table(ROWS))
        if missing:
            print(f"\nregistered detectors not covered: {', '.join(sorted(missing))}")


if __name__ == "__main__":
    main()
