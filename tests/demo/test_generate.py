"""The demo generator: real formats, determinism, and ground truth that matches the files."""

from __future__ import annotations

import csv
import ipaddress
import itertools
import json
import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from mimamori.demo.generate import (
    SCENARIO_KINDS,
    DemoError,
    TenantTableError,
    generate,
    load_tenants,
    read_manifest,
)

START = datetime(2024, 4, 18, 15, 0, tzinfo=UTC)  # 2024-04-19 (a Friday) 00:00 in Japan
HOURS = 24
END = START + timedelta(hours=HOURS)
DOC_NETS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]

ZEEK_KEYS = {
    "conn": {
        "ts",
        "uid",
        "id.orig_h",
        "id.orig_p",
        "id.resp_h",
        "id.resp_p",
        "proto",
        "conn_state",
        "local_orig",
        "local_resp",
        "history",
        "orig_pkts",
        "resp_pkts",
    },
    "dns": {"ts", "uid", "id.orig_h", "id.resp_h", "proto", "trans_id", "query", "qtype_name", "rcode_name"},
    "http": {
        "ts",
        "uid",
        "id.orig_h",
        "id.resp_h",
        "trans_depth",
        "method",
        "host",
        "uri",
        "user_agent",
        "status_code",
    },
    "ssl": {"ts", "uid", "id.orig_h", "id.resp_h", "version", "cipher", "established"},
    "dhcp": {"ts", "uids", "mac", "host_name", "assigned_addr", "lease_time", "msg_types"},
    "software": {"ts", "host", "software_type", "name", "version.major"},
}
EVE_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d{4}$")
KV = re.compile(r'(?:^|\s)([A-Za-z_][\w.\-]*)=("(?:[^"\\]|\\.)*"|\S*)')


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], float]:
    out = tmp_path_factory.mktemp("demo")
    began = time.process_time()  # CPU time: wall time depends on what else the machine runs
    generate(out, seed=7, start=START, hours=HOURS)
    elapsed = time.process_time() - began
    return out, json.loads((out / "manifest.json").read_text("utf-8")), elapsed


def _kv(line: str) -> dict[str, str]:
    out = {}
    for key, value in KV.findall(line):
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = re.sub(r'\\(["\\])', r"\1", value[1:-1])
        out[key] = value
    return out


def _records(root: Path, entry: dict[str, Any]) -> list[dict[str, Any]]:
    lines = (root / entry["path"]).read_text("utf-8").splitlines()
    if entry["source"] == "fortigate":
        return [_kv(line) for line in lines]
    return [json.loads(line) for line in lines]


IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")


def _ips(text: str) -> set[str]:
    return set(IPV4.findall(text))


def _text_by_tenant(root: Path, manifest: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for f in manifest["files"]:
        out[f["tenant"]] = out.get(f["tenant"], "") + (root / f["path"]).read_text("utf-8")
    return out


def _feodo(root: Path) -> list[dict[str, str]]:
    text = (root / "intel/ipblocklist.csv").read_text("utf-8")
    lines = text.split("\n")
    data = [ln for ln in lines if ln and not ln.startswith("#")]
    rows = list(csv.DictReader(data))
    assert lines[-1] == f"# END {len(rows)} entries"
    return rows


def _urlhaus(root: Path) -> list[dict[str, str]]:
    lines = (root / "intel/urlhaus_csv_recent.csv").read_text("utf-8").splitlines()
    header = next(ln for ln in lines if ln.startswith("# id,"))
    columns = header[2:].split(",")
    data = [ln for ln in lines if ln and not ln.startswith("#")]
    return [dict(zip(columns, row, strict=True)) for row in csv.reader(data)]


def _plain(root: Path) -> list[str]:
    lines = (root / "intel/blocklist.txt").read_text("utf-8").splitlines()
    return [ln.split()[0] for ln in lines if ln and not ln.startswith("#")]


def _plain_notes(root: Path) -> dict[str, str]:
    """Entries with a trailing ``# threat`` comment."""
    lines = (root / "intel/blocklist.txt").read_text("utf-8").splitlines()
    return {
        ln.split()[0]: ln.split("#", 1)[1].strip() for ln in lines if "#" in ln and not ln.startswith("#")
    }


def _intel_ips(root: Path) -> set[str]:
    ips = {r["dst_ip"] for r in _feodo(root)}
    for r in _urlhaus(root):
        host = urlsplit(r["url"]).hostname or ""
        if re.fullmatch(r"[\d.]+", host):
            ips.add(host)
    ips.update(e for e in _plain(root) if re.fullmatch(r"[\d.]+", e))
    return ips


# ------------------------------------------------------------------------------ shape


def test_fast(demo: tuple[Path, dict[str, Any], float]) -> None:
    assert demo[2] < 3.0


def test_manifest_layout(demo: tuple[Path, dict[str, Any], float]) -> None:
    root, man, _ = demo
    assert set(man) == {
        "format",
        "seed",
        "start",
        "end",
        "hours",
        "provider",
        "tenants",
        "files",
        "intel",
        "scenarios",
        "assets",
    }
    assert (man["seed"], man["hours"]) == (7, HOURS)
    assert datetime.fromisoformat(man["start"]) == START
    assert datetime.fromisoformat(man["end"]) == END
    assert len(man["tenants"]) >= 5
    nets: list[str] = []
    for t in man["tenants"]:
        assert set(t) == {
            "id",
            "name",
            "name_en",
            "industry",
            "contact_name",
            "contact_email",
            "contact_phone",
            "email_domain",
            "networks",
            "sites",
            "service_level",
            "sources",
        }
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", t["id"])
        assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", t["name"]), "the name is Japanese"
        assert t["contact_email"].endswith(".example")
        assert t["service_level"] in {"standard", "premium"}
        assert [s["network"] for s in t["sites"]] == t["networks"]
        for n in t["networks"]:
            net = ipaddress.ip_network(n)
            assert net.prefixlen == 24 and net.is_private
        nets += t["networks"]
    assert len(nets) == len(set(nets)), "every site has its own /24"
    for f in man["files"]:
        assert set(f) == {"tenant", "source", "path", "scenario", "lines"}
        assert f["source"] in {"zeek", "suricata", "fortigate"}
        assert f["scenario"] in (None, *SCENARIO_KINDS)
        path = root / f["path"]
        assert path.is_file()
        assert len(path.read_text("utf-8").splitlines()) == f["lines"]
    assert man["intel"] == ["intel/ipblocklist.csv", "intel/urlhaus_csv_recent.csv", "intel/blocklist.txt"]
    for s in man["scenarios"]:
        assert set(s) >= {
            "scenario",
            "expected_kind",
            "tenant",
            "hosts",
            "indicators",
            "first_seen",
            "last_seen",
            "events",
            "events_by_file",
            "expected_incidents",
            "details",
        }
        assert s["expected_kind"] == SCENARIO_KINDS[s["scenario"]]
        assert isinstance(s["also_expected"], list)
        assert s["expected_kind"] not in s["also_expected"]
    assert [s["scenario"] for s in man["scenarios"]] == [1, 2, 3, 4, 6, 7]
    assert len({s["tenant"] for s in man["scenarios"]}) == 6, "each scenario in a different tenant"
    for a in man["assets"]:
        assert set(a) == {
            "tenant",
            "mac",
            "ip",
            "hostname",
            "os_name",
            "isolated",
            "has_antimalware",
            "has_endpoint_agent",
            "note",
        }
        assert a["tenant"] in {t["id"] for t in man["tenants"]}
    loaded = read_manifest(root)
    assert loaded.to_dict() == man


def test_background_volume(demo: tuple[Path, dict[str, Any], float]) -> None:
    _, man, _ = demo
    per_tenant = Counter()
    for f in man["files"]:
        per_tenant[f["tenant"]] += f["lines"]
    for t in man["tenants"]:
        assert 1000 <= per_tenant[t["id"]] <= 12_000, t["id"]
        names = {
            Path(f["path"]).name for f in man["files"] if f["tenant"] == t["id"] and f["source"] == "zeek"
        }
        assert names == {"conn.log", "dns.log", "http.log", "ssl.log", "dhcp.log", "software.log"}


# ------------------------------------------------------------------------------ formats


def test_zeek_lines_are_zeek_json(demo: tuple[Path, dict[str, Any], float]) -> None:
    root, man, _ = demo
    lo, hi = START.timestamp(), END.timestamp()
    for f in (f for f in man["files"] if f["source"] == "zeek"):
        log = Path(f["path"]).stem
        for line in (root / f["path"]).read_text("utf-8").splitlines():
            assert ", " not in line[:40], "Zeek writes compact JSON"
            rec = json.loads(line)
            assert isinstance(rec, dict)
            assert ZEEK_KEYS[log] <= set(rec), (f["path"], ZEEK_KEYS[log] - set(rec))
            assert rec["_path"] == log
            assert isinstance(rec["ts"], float) and lo <= rec["ts"] < hi
            for key in ("id.orig_p", "id.resp_p"):
                if key in rec:
                    assert isinstance(rec[key], int)


def test_eve_lines_are_eve_json(demo: tuple[Path, dict[str, Any], float]) -> None:
    root, man, _ = demo
    eve = [f for f in man["files"] if f["source"] == "suricata"]
    assert eve
    types: Counter[str] = Counter()
    for f in eve:
        text = (root / f["path"]).read_text("utf-8")
        assert "\\/" in text, "Suricata escapes '/'"
        for line in text.splitlines():
            rec = json.loads(line)
            assert {
                "timestamp",
                "flow_id",
                "event_type",
                "src_ip",
                "src_port",
                "dest_ip",
                "dest_port",
                "proto",
            } <= set(rec)
            assert EVE_TS.match(rec["timestamp"]), rec["timestamp"]
            at = datetime.strptime(rec["timestamp"], "%Y-%m-%dT%H:%M:%S.%f%z")
            assert START <= at < END
            types[rec["event_type"]] += 1
            if rec["event_type"] == "alert":
                a = rec["alert"]
                assert {"action", "gid", "signature_id", "rev", "signature", "category", "severity"} <= set(a)
            if rec["event_type"] == "flow":
                assert {"pkts_toserver", "bytes_toclient", "start", "end"} <= set(rec["flow"])
    assert {"alert", "flow", "dns", "http", "tls"} <= set(types)


def test_fortigate_lines_are_fortios_key_value(demo: tuple[Path, dict[str, Any], float]) -> None:
    root, man, _ = demo
    fg = [f for f in man["files"] if f["source"] == "fortigate"]
    assert fg
    kinds: Counter[tuple[str, str]] = Counter()
    for f in fg:
        for line in (root / f["path"]).read_text("utf-8").splitlines():
            assert re.match(r"^date=\d{4}-\d\d-\d\d time=\d\d:\d\d:\d\d ", line), line
            kv = _kv(line)
            assert {
                "date",
                "time",
                "devname",
                "devid",
                "eventtime",
                "tz",
                "logid",
                "type",
                "subtype",
                "level",
                "vd",
            } <= set(kv)
            assert kv["tz"] == "+0900" and re.fullmatch(r"\d{10}", kv["logid"])
            at = datetime.fromtimestamp(int(kv["eventtime"]) / 1e9, UTC)
            assert START <= at < END
            local = datetime.strptime(f"{kv['date']} {kv['time']} {kv['tz']}", "%Y-%m-%d %H:%M:%S %z")
            assert abs((local - at).total_seconds()) < 1
            kinds[(kv["type"], kv["subtype"])] += 1
            if (kv["type"], kv["subtype"]) == ("utm", "virus"):
                assert kv["eventtype"] == "infected" and kv["action"] == "blocked"
                assert re.fullmatch(r"[0-9a-f]{64}", kv["analyticscksum"])
            if (kv["type"], kv["subtype"]) == ("utm", "ips"):
                assert kv["logid"] == "0419016384" and kv["eventtype"] == "signature"
                assert kv["action"] == "dropped" and kv["attack"] and kv["attackid"].isdigit()
                assert kv["severity"] in {"critical", "high", "medium", "low", "info"}
            if kv["type"] == "traffic" and kv["proto"] == "6":
                assert kv["action"] in {"close", "timeout", "server-rst"}
    assert {("traffic", "forward"), ("utm", "virus"), ("utm", "ips"), ("event", "system")} <= set(kinds)


def test_intel_files_in_abusech_formats(demo: tuple[Path, dict[str, Any], float]) -> None:
    root, _, _ = demo
    feodo_text = (root / "intel/ipblocklist.csv").read_text("utf-8")
    assert feodo_text.startswith("####")
    assert '\n"first_seen_utc","dst_ip","dst_port","c2_status","last_online","malware"\n' in feodo_text
    rows = _feodo(root)
    assert len(rows) >= 40
    for r in rows:
        datetime.strptime(r["first_seen_utc"], "%Y-%m-%d %H:%M:%S")
        datetime.strptime(r["last_online"], "%Y-%m-%d")
        assert r["c2_status"] in {"online", "offline"} and r["dst_port"].isdigit()
        assert any(ipaddress.ip_address(r["dst_ip"]) in n for n in DOC_NETS)
    url_text = (root / "intel/urlhaus_csv_recent.csv").read_text("utf-8")
    assert "\n# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n" in url_text
    urls = _urlhaus(root)
    assert len(urls) >= 50
    added = [r["dateadded"] for r in urls]
    assert added == sorted(added, reverse=True), "newest first"
    for r in urls:
        assert r["urlhaus_link"] == f"https://urlhaus.abuse.ch/url/{r['id']}/"
        host = urlsplit(r["url"]).hostname or ""
        assert host.endswith((".example", ".test")) or any(ipaddress.ip_address(host) in n for n in DOC_NETS)
    assert len(_plain(root)) >= 50


# ------------------------------------------------------------------------------ determinism


def test_same_seed_same_bytes(demo: tuple[Path, dict[str, Any], float], tmp_path: Path) -> None:
    root, _, _ = demo
    generate(tmp_path / "again", seed=7, start=START, hours=HOURS)
    first = {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    second = {
        p.relative_to(tmp_path / "again"): p.read_bytes()
        for p in sorted((tmp_path / "again").rglob("*"))
        if p.is_file()
    }
    assert first.keys() == second.keys()
    for rel, data in first.items():
        assert data == second[rel], rel
    generate(tmp_path / "other", seed=8, start=START, hours=HOURS)
    conn = Path("yamada-seisakusho/zeek/conn.log")
    assert (tmp_path / "other" / conn).read_bytes() != first[conn]


def test_naive_start_is_utc_and_short_windows_are_refused(tmp_path: Path) -> None:
    naive = generate(tmp_path / "n", seed=1, start=START.replace(tzinfo=None), hours=6)
    assert naive.start == START
    for s in naive.scenarios:
        assert s["events"] > 0, s["scenario"]
    with pytest.raises(DemoError):
        generate(tmp_path / "x", start=START, hours=2)


def test_tenant_table_is_validated(tmp_path: Path) -> None:
    provider, tenants = load_tenants()
    assert provider["name"] and len(tenants) >= 5
    table = tmp_path / "tenants.yaml"
    text = (Path(__file__).parents[2] / "src/mimamori/demo/tenants.yaml").read_text("utf-8")
    table.write_text(text.replace("    pcs: 12\n", "    pcs: 12\n    colour: red\n", 1), "utf-8")
    with pytest.raises(TenantTableError, match="colour"):
        load_tenants(table)
    table.write_text(text.replace("192.168.20.0/24", "192.168.10.0/24"), "utf-8")
    with pytest.raises(TenantTableError, match="share a network"):
        load_tenants(table)


# ------------------------------------------------------------------------------ ground truth


def test_bad_indicators_are_in_intel_and_only_in_their_tenant(
    demo: tuple[Path, dict[str, Any], float],
) -> None:
    root, man, _ = demo
    intel_ips = _intel_ips(root)
    intel_text = "".join((root / p).read_text("utf-8") for p in man["intel"])
    by_tenant = _text_by_tenant(root, man)
    ips_by_tenant = {tenant: _ips(text) for tenant, text in by_tenant.items()}
    networks = {t["id"]: [ipaddress.ip_network(n) for n in t["networks"]] for t in man["tenants"]}
    for s in man["scenarios"]:
        ind = s["indicators"]
        for ip in ind["ips"]:
            assert any(ipaddress.ip_address(ip) in n for n in DOC_NETS)
            assert ip in intel_ips, ip
            owners = {t for t, ips in ips_by_tenant.items() if ip in ips}
            assert owners == {s["tenant"]}, (ip, owners)
        for value in ind["domains"] + ind["urls"]:
            assert value in intel_text, value
            host = urlsplit(value).hostname if "://" in value else value
            assert host and (host.endswith((".example", ".test")) or re.fullmatch(r"[\d.]+", host))
        for value in ind["domains"] + ind["sha256"] + ind["emails"]:
            owners = {t for t, text in by_tenant.items() if value in text}
            assert owners == {s["tenant"]}, (value, owners)
        for host in s["hosts"]:
            assert any(ipaddress.ip_address(host) in n for n in networks[s["tenant"]])
            assert host in ips_by_tenant[s["tenant"]]
        assert s["events"] == sum(s["events_by_file"].values()) > 0
        assert all(p.startswith(s["tenant"] + "/") for p in s["events_by_file"])
        assert (
            START <= datetime.fromisoformat(s["first_seen"]) <= datetime.fromisoformat(s["last_seen"]) < END
        )
        marked = {f["path"] for f in man["files"] if f["scenario"] == s["scenario"]}
        assert marked == set(s["events_by_file"])
    # background never touches a listed indicator: intel IPs seen in telemetry are the scenarios'
    seen = set().union(*ips_by_tenant.values())
    assert intel_ips & seen == {ip for s in man["scenarios"] for ip in s["indicators"]["ips"]}


def test_scenario2_private_iphone(demo: tuple[Path, dict[str, Any], float]) -> None:
    root, man, _ = demo
    s = next(x for x in man["scenarios"] if x["scenario"] == 2)
    files = {
        Path(f["path"]).stem: f for f in man["files"] if f["tenant"] == s["tenant"] and f["source"] == "zeek"
    }
    (phone,) = s["hosts"]
    dev = s["details"]["device"]
    joins = [r for r in _records(root, files["dhcp"]) if r["assigned_addr"] == phone]
    assert joins[0]["msg_types"] == ["DISCOVER", "OFFER", "REQUEST", "ACK"]
    assert joins[0]["host_name"] == "Taros-iPhone" == dev["host_name"]
    assert int(joins[0]["mac"][:2], 16) & 0x02, "a private (locally administered) Wi-Fi address"
    (domain,) = s["indicators"]["domains"]
    (bad_ip,) = s["indicators"]["ips"]
    dns = [r for r in _records(root, files["dns"]) if r["query"] == domain]
    assert dns and dns[0]["id.orig_h"] == phone and dns[0]["answers"] == [bad_ip]
    assert dns[0]["ts"] > joins[0]["ts"]
    http = [r for r in _records(root, files["http"]) if r["id.resp_h"] == bad_ip]
    assert {f"http://{r['host']}{r['uri']}" for r in http} >= set(s["indicators"]["urls"])
    assert all("iPhone" in r["user_agent"] and r["id.orig_h"] == phone for r in http)
    conns = [r for r in _records(root, files["conn"]) if r["id.resp_h"] == bad_ip]
    assert conns and {r["uid"] for r in http} <= {r["uid"] for r in conns}
    listed = {r["url"] for r in _urlhaus(root)}
    assert set(s["indicators"]["urls"]) <= listed
    assert any(urlsplit(u).hostname == bad_ip for u in listed)


def test_scenario6_mail_campaign(demo: tuple[Path, dict[str, Any], float]) -> None:
    root, man, _ = demo
    s = next(x for x in man["scenarios"] if x["scenario"] == 6)
    (fg,) = [f for f in man["files"] if f["tenant"] == s["tenant"] and f["source"] == "fortigate"]
    records = _records(root, fg)
    virus = [r for r in records if r["type"] == "utm" and r["subtype"] == "virus"]
    mails = [r for r in virus if r["service"] == "SMTP"]
    partner = s["details"]["partner"]["domain"]
    assert 90 <= len(mails) <= 110 and len(mails) == s["details"]["mails"]
    stamps = sorted(int(r["eventtime"]) for r in mails)
    assert stamps[-1] - stamps[0] < 3600 * 10**9, "within one hour"
    senders = {r["sender"] for r in mails}
    assert 4 <= len(senders) <= 6 and all(x.endswith("@" + partner) for x in senders)
    assert senders == set(s["indicators"]["emails"])
    assert len({r["recipient"] for r in mails}) >= 4
    assert all(r["from"] == r["sender"] and r["to"] == r["recipient"] for r in mails)
    assert all(re.search(r"(請求書|賞与).*No\.\d+", r["subject"]) for r in mails)
    assert len({r["subject"] for r in mails}) > 50, "subjects vary by number"
    hashes = {r["analyticscksum"] for r in mails}
    assert 2 <= len(hashes) <= 3 and hashes == set(s["indicators"]["sha256"])
    for h in hashes:
        assert len({r["sender"] for r in mails if r["analyticscksum"] == h}) >= 2, "shared across senders"
    assert all(r["action"] == "blocked" and "EMOTET" in r["virus"] for r in mails)
    assert all(r["filename"].endswith((".zip", ".xlsm", ".doc")) for r in mails)
    # the unrelated web detections: single, HTTP, other hashes, away from the burst
    decoys = [r for r in virus if r["service"] != "SMTP"]
    assert len(decoys) == len(s["details"]["unrelated_detections"]) >= 2
    assert not ({r["analyticscksum"] for r in decoys} & hashes)
    assert all("sender" not in r and "subject" not in r for r in decoys)
    assert len({r["analyticscksum"] for r in decoys}) == len(decoys)
    # the blocked sessions also appear as traffic logs sharing their session id
    traffic = {r["sessionid"]: r for r in records if r["type"] == "traffic"}
    for r in mails:
        assert traffic[r["sessionid"]]["utmaction"] == "block"


def test_scenario7_banking_malware(demo: tuple[Path, dict[str, Any], float]) -> None:
    root, man, _ = demo
    s = next(x for x in man["scenarios"] if x["scenario"] == 7)
    (eve,) = [f for f in man["files"] if f["tenant"] == s["tenant"] and f["source"] == "suricata"]
    records = _records(root, eve)
    alerts = [r for r in records if r["event_type"] == "alert"]
    trojan = [r for r in alerts if r["alert"]["signature"].startswith("ET TROJAN")]
    assert {r["src_ip"] for r in trojan} == set(s["hosts"]) and len(s["hosts"]) == 2
    for r in trojan:
        a = r["alert"]
        assert 9_000_000 <= a["signature_id"] < 10_000_000
        assert a["category"] == "A Network Trojan was detected" and a["severity"] == 1
    feodo = {r["dst_ip"]: r["malware"] for r in _feodo(root)}
    c2 = {r["dest_ip"] for r in trojan if "CnC" in r["alert"]["signature"]}
    assert c2 and all(feodo.get(ip) in {"Dyre", "Dridex"} for ip in c2)
    assert c2 <= set(s["indicators"]["ips"])
    for host in s["hosts"]:
        assert any(r["src_ip"] == host and "Dyre" in r["alert"]["signature"] for r in trojan)
    # every alert has its flow record, and Zeek saw the same connections
    flows = {r["flow_id"] for r in records if r["event_type"] == "flow"}
    assert {r["flow_id"] for r in trojan} <= flows
    (conn,) = [f for f in man["files"] if f["tenant"] == s["tenant"] and f["path"].endswith("conn.log")]
    tuples = {(r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"]) for r in _records(root, conn)}
    assert all((r["src_ip"], r["src_port"], r["dest_ip"], r["dest_port"]) in tuples for r in trojan)
    # background: a handful of low-severity policy alerts, no trojans elsewhere
    policy = [r for r in alerts if not r["alert"]["signature"].startswith("ET TROJAN")]
    assert 1 <= len(policy) <= 12 and all(r["alert"]["severity"] >= 2 for r in policy)
    wannacry_tenant = next(x["tenant"] for x in man["scenarios"] if x["scenario"] == 3)
    for f in man["files"]:
        if f["source"] == "suricata" and f["tenant"] != s["tenant"]:
            others = [r for r in _records(root, f) if r["event_type"] == "alert"]
            trojans = [r for r in others if r["alert"]["signature"].startswith("ET TROJAN")]
            assert all("WannaCry" in r["alert"]["signature"] for r in trojans)
            assert not trojans or f["tenant"] == wannacry_tenant


def _zeek(root: Path, man: dict[str, Any], tenant: str, log: str) -> list[dict[str, Any]]:
    (f,) = [f for f in man["files"] if f["tenant"] == tenant and f["path"].endswith(f"/zeek/{log}.log")]
    return _records(root, f)


def test_scenario_kinds_are_known_incident_kinds() -> None:
    import yaml

    from mimamori.demo.generate import SCENARIO_ALSO

    kinds = yaml.safe_load(
        (Path(__file__).parents[2] / "src/mimamori/incidents/kinds.yaml").read_text("utf-8")
    )["kinds"]
    for number, kind in SCENARIO_KINDS.items():
        assert kind in kinds, kind
        assert number in kinds[kind]["scenarios"], (number, kind)
    for number, also in SCENARIO_ALSO.items():
        assert set(also) <= set(kinds), number


def test_scenario1_isolated_xp_pc(demo: tuple[Path, dict[str, Any], float]) -> None:
    root, man, _ = demo
    s = next(x for x in man["scenarios"] if x["scenario"] == 1)
    tenant = s["tenant"]
    (asset,) = man["assets"]
    dev = s["details"]["device"]
    assert asset["tenant"] == tenant and asset["isolated"] is True
    assert asset["has_antimalware"] is False and asset["has_endpoint_agent"] is False
    assert "XP" in asset["os_name"] and asset["note"]
    assert (asset["ip"], asset["mac"], asset["hostname"]) == (dev["ip"], dev["mac"], dev["host_name"])
    assert s["hosts"] == [asset["ip"]]
    # it joins by DHCP with the address and MAC the provider has on file (a real vendor OUI)
    dhcp = [r for r in _zeek(root, man, tenant, "dhcp") if r["mac"] == asset["mac"]]
    assert len(dhcp) == 1 and dhcp[0]["assigned_addr"] == asset["ip"]
    assert dhcp[0]["host_name"] == asset["hostname"] == "OLD-CAD-XP"
    assert dhcp[0]["msg_types"] == ["DISCOVER", "OFFER", "REQUEST", "ACK"]
    assert not int(asset["mac"][:2], 16) & 0x02, "a vendor (globally administered) MAC"
    joined = dhcp[0]["ts"]
    # XP-era user agents and Zeek's software.log say Windows XP
    http = [r for r in _zeek(root, man, tenant, "http") if r["id.orig_h"] == asset["ip"]]
    agents = {r["user_agent"] for r in http}
    assert any("MSIE 8.0; Windows NT 5.1" in a for a in agents)
    assert any(a.startswith("Microsoft-CryptoAPI/5.") for a in agents)
    soft = [r for r in _zeek(root, man, tenant, "software") if r["host"] == asset["ip"]]
    assert any(
        r["software_type"] == "OS::WINDOWS" and r.get("version.addl") == "XP" and r["version.major"] == 5
        for r in soft
    )
    others = [r for r in _zeek(root, man, tenant, "software") if r["host"] != asset["ip"]]
    assert others and not any(r.get("version.addl") == "XP" for r in others)
    # talks to the known C2 from the Feodo file, only after it was plugged in
    conns = [r for r in _zeek(root, man, tenant, "conn") if r["id.orig_h"] == asset["ip"]]
    assert min(r["ts"] for r in conns) >= joined
    (c2,) = s["indicators"]["ips"]
    feodo = {r["dst_ip"]: r for r in _feodo(root)}
    assert feodo[c2]["malware"] == s["details"]["c2"][0]["malware"]
    assert any(r["id.resp_h"] == c2 for r in conns)
    # the beacon: one host in no intel file, every ~300 s, near-constant sizes, for hours
    beacon = s["details"]["beacon"]
    assert beacon["ip"] not in _intel_ips(root)
    hits = sorted((r for r in conns if r["id.resp_h"] == beacon["ip"]), key=lambda r: r["ts"])
    assert len(hits) == beacon["connections"] >= 100
    gaps = [b["ts"] - a["ts"] for a, b in itertools.pairwise(hits)]
    assert all(abs(g - 300) <= 10 for g in gaps)
    assert hits[-1]["ts"] - hits[0]["ts"] > 8 * 3600
    sizes = [r["orig_bytes"] for r in hits]
    assert max(sizes) - min(sizes) <= 10
    assert all(r["conn_state"] == "SF" for r in hits)


_OS_FAMILIES = (
    ("Windows 7", re.compile(r"Windows NT 6\.1|CryptoAPI/6\.1")),
    ("Android", re.compile(r"Android")),
    ("iOS", re.compile(r"iPad|iPhone|CaptiveNetworkSupport")),
    ("Windows 10", re.compile(r"Windows NT 10\.0|CryptoAPI/10\.0")),
)


def test_scenario3_rogue_router_with_wannacry(demo: tuple[Path, dict[str, Any], float]) -> None:
    root, man, _ = demo
    s = next(x for x in man["scenarios"] if x["scenario"] == 3)
    tenant = s["tenant"]
    (router,) = s["hosts"]
    info = s["details"]["router"]
    assert info["ip"] == router
    dhcp = [r for r in _zeek(root, man, tenant, "dhcp") if r["assigned_addr"] == router]
    assert {r["mac"] for r in dhcp} == {info["mac"]} and info["mac"].startswith("10:6f:3f")
    # one address, several operating systems behind it
    http = [r for r in _zeek(root, man, tenant, "http") if r["id.orig_h"] == router]
    families = {name for a in {r["user_agent"] for r in http} for name, rx in _OS_FAMILIES if rx.search(a)}
    assert len(families) >= 3 and families >= set(s["details"]["os_families"])
    soft = {
        r["name"] + str(r["version.major"])
        for r in _zeek(root, man, tenant, "software")
        if r["host"] == router
    }
    assert len(soft) >= 3
    # no ordinary PC shows more than one OS family
    by_host: dict[str, set[str]] = {}
    for r in _zeek(root, man, tenant, "http"):
        for name, rx in _OS_FAMILIES:
            if rx.search(r["user_agent"]):
                by_host.setdefault(r["id.orig_h"], set()).add(name)
    assert [h for h, fam in by_host.items() if len(fam) >= 2] == [router]
    # WannaCry: the kill-switch lookup, listed in the plain list as WannaCry
    (domain,) = s["indicators"]["domains"]
    assert domain.endswith(".test") and _plain_notes(root)[domain] == "WannaCry"
    dns = [r for r in _zeek(root, man, tenant, "dns") if r["query"] == domain]
    assert dns and all(r["id.orig_h"] == router and r["rcode_name"] == "NXDOMAIN" for r in dns)
    # SMB scanning of many internal and external addresses, nearly all failing
    nets = [ipaddress.ip_network(n) for t in man["tenants"] if t["id"] == tenant for n in t["networks"]]
    smb = [r for r in _zeek(root, man, tenant, "conn") if r["id.resp_p"] == 445 and r["id.orig_h"] == router]
    inside = {r["id.resp_h"] for r in smb if any(ipaddress.ip_address(r["id.resp_h"]) in n for n in nets)}
    outside = {r["id.resp_h"] for r in smb} - inside
    assert len(inside) >= 30 and len(outside) >= 100
    assert sum(r["conn_state"] in ("S0", "REJ") for r in smb) > 0.8 * len(smb)
    assert all(ipaddress.ip_address(ip).is_global for ip in outside)
    other_smb = [
        r for r in _zeek(root, man, tenant, "conn") if r["id.resp_p"] == 445 and r["id.orig_h"] != router
    ]
    assert all(not r["local_orig"] or r["local_resp"] for r in other_smb), "only the router scans out"
    # Suricata: ETERNALBLUE and WannaCry alerts, all from the router's address
    (eve,) = [f for f in man["files"] if f["tenant"] == tenant and f["source"] == "suricata"]
    alerts = [r for r in _records(root, eve) if r["event_type"] == "alert"]
    bad = [r for r in alerts if r["alert"]["severity"] == 1]
    assert {r["src_ip"] for r in bad} == {router}
    names = {r["alert"]["signature"] for r in bad}
    assert any("ETERNALBLUE MS17-010" in n for n in names) and any("WannaCry" in n for n in names)
    assert all(9_000_000 <= r["alert"]["signature_id"] < 10_000_000 for r in bad)
    assert any(r["dest_port"] == 53 and "WannaCry" in r["alert"]["signature"] for r in bad)


def test_scenario4_stepping_stone(demo: tuple[Path, dict[str, Any], float]) -> None:
    root, man, _ = demo
    s = next(x for x in man["scenarios"] if x["scenario"] == 4)
    tenant = s["tenant"]
    (pc,) = s["hosts"]
    nets = [ipaddress.ip_network(n) for t in man["tenants"] if t["id"] == tenant for n in t["networks"]]

    def local(ip: str) -> bool:
        return any(ipaddress.ip_address(ip) in n for n in nets)

    conns = _zeek(root, man, tenant, "conn")
    failed = [
        r for r in conns if r["conn_state"] in ("S0", "REJ") and r["local_orig"] and not r["local_resp"]
    ]
    by_src = Counter(r["id.orig_h"] for r in failed)
    assert by_src.most_common(1)[0][0] == pc and by_src[pc] >= 100
    assert all(n < 5 for h, n in by_src.items() if h != pc), "only the stepping stone fails like this"
    mine = [r for r in failed if r["id.orig_h"] == pc]
    assert {r["id.resp_p"] for r in mine} == {21, 22, 80, 443}
    assert len({r["id.resp_h"] for r in mine}) >= 100
    for b in s["details"]["bursts"]:  # each burst lasts minutes
        start, end = (datetime.fromisoformat(b[k]).timestamp() for k in ("start", "end"))
        assert 0 < end - start < 600
        assert sum(start <= r["ts"] <= end for r in mine) >= 30
    # the UTM's IPS: the office PC is the source, outside servers the destinations
    (fg,) = [f for f in man["files"] if f["tenant"] == tenant and f["source"] == "fortigate"]
    records = _records(root, fg)
    ips = [r for r in records if r["type"] == "utm" and r["subtype"] == "ips"]
    assert len(ips) == s["details"]["ids_detections"] >= 20
    assert {r["srcip"] for r in ips} == {pc}
    assert all(not local(r["dstip"]) and r["direction"] == "outgoing" for r in ips)
    assert {int(r["dstport"]) for r in ips} <= {21, 22, 80, 443}
    assert {r["attack"] for r in ips} == set(s["details"]["attacks"])
    assert any("SSH" in r["attack"] for r in ips) and any(r.get("url") for r in ips)
    traffic = {r["sessionid"]: r for r in records if r["type"] == "traffic"}
    for r in ips:
        assert traffic[r["sessionid"]]["utmaction"] == "block" and traffic[r["sessionid"]]["srcip"] == pc
    # private phones with randomised MACs join the open DHCP
    phones = s["details"]["private_devices"]
    assert len(phones) >= 2
    dhcp = _zeek(root, man, tenant, "dhcp")
    for p in phones:
        assert int(p["mac"][:2], 16) & 0x02, "a randomised (locally administered) MAC"
        (join,) = [r for r in dhcp if r["mac"] == p["mac"]]
        assert join["assigned_addr"] == p["ip"] and join["msg_types"][0] == "DISCOVER"
        assert local(p["ip"]) and p["ip"] != pc


def test_new_scenarios_stay_in_their_tenants(demo: tuple[Path, dict[str, Any], float]) -> None:
    root, man, _ = demo
    by_tenant = _text_by_tenant(root, man)
    s1 = next(x for x in man["scenarios"] if x["scenario"] == 1)
    s3 = next(x for x in man["scenarios"] if x["scenario"] == 3)
    s4 = next(x for x in man["scenarios"] if x["scenario"] == 4)
    markers = {
        s1["tenant"]: ["Windows NT 5.1", s1["details"]["beacon"]["ip"], "OLD-CAD-XP"],
        s3["tenant"]: ["ETERNALBLUE", s3["details"]["router"]["mac"]],
        s4["tenant"]: ['subtype="ips"', "Go-http-client/1.1"],
    }
    for owner, values in markers.items():
        for value in values:
            assert {t for t, text in by_tenant.items() if value in text} == {owner}, value


def test_scenario3_needs_suricata(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "src/mimamori/demo/tenants.yaml").read_text("utf-8")
    table = tmp_path / "tenants.yaml"
    table.write_text(
        text.replace("sources: [zeek, suricata]\n    pcs: 5", "sources: [zeek]\n    pcs: 5"), "utf-8"
    )
    with pytest.raises(TenantTableError, match="scenario 3"):
        load_tenants(table)
