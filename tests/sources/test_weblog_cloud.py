"""Web access logs (Apache/nginx, IIS) and cloud sign-in / audit logs on real samples.

Expected values were read off the raw lines (``sed -n Np FILE``): the gtkcyber ``access``
line 1 is ``[10/Nov/2011:16:23:25 -0500]`` = 21:23:25 UTC; hackers-access line 3 is
``[25/Oct/2015:04:11:27 +0100]`` = 03:11:27 UTC; and so on.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from mimamori.events.schema import EVENT_SCHEMA
from mimamori.sources import detect_source, get_parser, head_lines
from mimamori.sources.cloud import EntraSigninParser, GoogleWorkspaceLoginParser, M365AuditParser
from mimamori.sources.weblog import ApacheAccessParser, IisW3cParser
from tests.sources.util import event_at, parse_file, reasons

WEB = "web-access-logs"
CLOUD = "cloud-and-web-logs"
ELASTIC = f"{CLOUD}/elastic-integrations-ELv2/packages"
C2 = f"{WEB}/evtx-attack-samples/Command and Control"
ROOT = Path(__file__).resolve().parents[2]
APP_LOGIN_MAP = ROOT / "src/mimamori/sources/maps/app_login.yaml"


def at(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)  # type: ignore[arg-type,misc]


# ------------------------------------------------------------------------ Apache / nginx

APACHE_COUNTS = [
    # path, events, quarantined, skipped
    (f"{WEB}/elastic-examples/apache_logs", 9999, 1, 0),  # line 8899: user agent cut off
    (f"{WEB}/gtkcyber/data/hackers-access.httpd", 3456, 0, 0),
    (f"{WEB}/gtkcyber/data/access", 5837, 0, 0),  # syslog-wrapped
    (f"{C2}/web_attack_and_isp_webshell_localhost_access_log.txt", 2660, 1, 0),  # line 27 binary
    (f"{CLOUD}/plaso-testdata/test_data/apache_access.log", 14, 1, 0),
]


def test_apache_counts(corpus: Path) -> None:
    for path, n, q, skipped in APACHE_COUNTS:
        parsed = parse_file(ApacheAccessParser(), corpus / path)
        assert parsed.counts == (n, q, skipped), path
        assert dict(parsed.events.schema) == EVENT_SCHEMA


def test_apache_quarantine_reasons(corpus: Path) -> None:
    parsed = parse_file(ApacheAccessParser(), corpus / f"{WEB}/elastic-examples/apache_logs")
    assert reasons(parsed) == {8899: "field referrer/user-agent: truncated (unterminated quote)"}
    parsed = parse_file(
        ApacheAccessParser(), corpus / f"{C2}/web_attack_and_isp_webshell_localhost_access_log.txt"
    )
    assert list(reasons(parsed)) == [27]
    assert reasons(parsed)[27].startswith("undecodable bytes")


def test_apache_syslog_wrapped_with_offset(corpus: Path) -> None:
    parsed = parse_file(ApacheAccessParser(), corpus / f"{WEB}/gtkcyber/data/access")
    assert event_at(parsed.events, 1) == {
        "@timestamp": at(2011, 11, 10, 21, 23, 25),
        "event.kind": "event",
        "event.category": "web",
        "event.type": "access",
        "event.outcome": "success",
        "event.dataset": "apache.access",
        "event.module": "apache",
        "message": "GET / HTTP/1.0",
        "source.ip": "10.1.60.203",
        "url.path": "/",
        "url.original": "/",
        "http.request.method": "GET",
        "http.response.status_code": 302,
        "http.response.body.bytes": 209,
        "log.file.line": 1,
    }


def test_apache_combined(corpus: Path) -> None:
    parsed = parse_file(ApacheAccessParser(), corpus / f"{WEB}/gtkcyber/data/hackers-access.httpd")
    ev = event_at(parsed.events, 3)
    assert ev["@timestamp"] == at(2015, 10, 25, 3, 11, 27)
    assert ev["http.request.method"] == "POST"
    assert ev["url.path"] == "/join_form"
    assert ev["http.request.referrer"] == "http://howto.basjes.nl/join_form"
    assert ev["user_agent.original"] == "Mozilla/5.0 (Windows NT 5.1; rv:35.0) Gecko/20100101 Firefox/35.0"
    assert ev["source.ip"] == "23.95.237.180"


def test_apache_unescaped_quotes_in_request_are_kept(corpus: Path) -> None:
    parsed = parse_file(
        ApacheAccessParser(), corpus / f"{C2}/web_attack_and_isp_webshell_localhost_access_log.txt"
    )
    ev = event_at(parsed.events, 879)
    assert ev["url.original"] == '/WebID/IISWebAgentIF.dll?postdata="><script>foo</script>'
    assert ev["url.query"] == 'postdata="><script>foo</script>'
    assert ev["http.response.status_code"] == 404


def test_apache_vhost_prefix(corpus: Path) -> None:
    parsed = parse_file(ApacheAccessParser(), corpus / f"{CLOUD}/plaso-testdata/test_data/apache_access.log")
    ev = event_at(parsed.events, 9)
    assert ev["destination.domain"] == "plaso.log2timeline.net"
    assert ev["destination.port"] == 443
    assert ev["source.ip"] == "10.1.1.2"


def test_apache_crafted_bad_input() -> None:
    lines = [
        # nginx with "$http_x_forwarded_for": the client behind a proxy chain
        '10.0.0.2 - - [02/Mar/2026:10:15:04 +0900] "POST /member/login HTTP/1.1" 401 12 "-" "curl/8.0" '
        '"203.0.113.7, 10.0.0.9"',
        '198.51.100.4 - bob [02/Mar/2026:10:15:05 +0900] "GET /a HTTP/1.1" 200 5',  # common format
        '198.51.100.4 - - [02/Mar/2026:10:15:06 +0900] "GET /b HTTP/1.1" 200 5 "-" "Mozil',  # truncated
        "198.51.100.4 - - [02/Mar/2026:10:15",  # truncated
        '198.51.100.4 - - [31/Feb/2026:10:15:06 +0900] "GET /c HTTP/1.1" 200 5',  # bad date
        '198.51.100.4 - - [02/Mar/2026:10:15:07 +0900] "\x16\x03\x01" 400 226',  # TLS to port 80
    ]
    data = (
        "\n".join(lines).encode()
        + b"\n"
        + '198.51.100.4 - 山田 [02/Mar/2026:10:15:08 +0900] "GET /d HTTP/1.1" 200 1\n'.encode("cp932")
        + b"\xff\xfe\xfa broken\n"
    )
    parsed = parse_file(ApacheAccessParser(), data, "crafted.log")
    assert parsed.counts == (4, 4, 0)
    ev = event_at(parsed.events, 1)
    assert ev["source.ip"] == "203.0.113.7"
    assert ev["http.request.peer_ip"] == "10.0.0.2"
    assert ev["http.request.x_forwarded_for"] == "203.0.113.7, 10.0.0.9"
    assert ev["@timestamp"] == at(2026, 3, 2, 1, 15, 4)
    assert ev["event.outcome"] == "failure"
    assert event_at(parsed.events, 2)["user.name"] == "bob"
    assert "http.request.method" not in event_at(parsed.events, 6)
    assert event_at(parsed.events, 7)["user.name"] == "山田"  # Shift_JIS decoded
    got = reasons(parsed)
    assert got[3] == "field referrer/user-agent: truncated (unterminated quote)"
    assert got[4].startswith("not a common/combined access-log line")
    assert got[5] == "field time: missing or invalid"
    assert got[8].startswith("undecodable bytes")


def test_apache_sniffed(corpus: Path) -> None:
    assert detect_source(head_lines(corpus / f"{WEB}/gtkcyber/data/hackers-access.httpd")) == "apache"
    assert detect_source(head_lines(corpus / f"{WEB}/elastic-examples/apache_logs")) == "apache"


# ------------------------------------------------------------------------------- IIS


def test_iis_counts_and_event(corpus: Path) -> None:
    parsed = parse_file(IisW3cParser(), corpus / f"{C2}/Tunna_rdp_tunnel_IIS.log")
    assert parsed.counts == (4298, 0, 10)
    assert event_at(parsed.events, 7) == {
        "@timestamp": at(2019, 9, 3, 10, 13, 36),
        "event.kind": "event",
        "event.category": "web",
        "event.type": "access",
        "event.outcome": "success",
        "event.dataset": "iis.access",
        "event.module": "iis",
        "event.duration": 7_000_000,
        "source.ip": "10.0.2.17",
        "destination.ip": "10.0.2.15",
        "destination.port": 80,
        "url.path": "/erp/conn.aspx",
        "url.query": "proxy&port=3389&ip=127.0.0.1",
        "url.original": "/erp/conn.aspx?proxy&port=3389&ip=127.0.0.1",
        "http.request.method": "GET",
        "http.response.status_code": 200,
        "log.file.line": 7,
    }
    assert detect_source(head_lines(corpus / f"{C2}/Tunna_rdp_tunnel_IIS.log")) == "iis"


def test_iis_edge_cases(corpus: Path) -> None:
    parsed = parse_file(IisW3cParser(), corpus / f"{CLOUD}/plaso-testdata/test_data/iis/iis10_edge_cases.log")
    assert parsed.counts == (15, 0, 4)
    ev = event_at(parsed.events, 5)  # a doubled space between fields
    assert ev["user.name"] == "random\\ranuser1"
    assert ev["user_agent.original"] == "Microsoft WinRM Client"
    assert ev["source.ip"] == "::1"
    parsed = parse_file(IisW3cParser(), corpus / f"{CLOUD}/plaso-testdata/test_data/iis/iis7_sqli.log")
    assert parsed.counts[0] == 2


def test_iis_crafted_headers_and_truncation() -> None:
    text = (
        "2026-03-02 01:00:00 GET /before-header 200\n"
        "#Software: Microsoft Internet Information Services 10.0\n"
        "#Fields: date time c-ip cs-method cs-uri-stem sc-status X-Forwarded-For\n"
        "2026-03-02 01:00:01 10.0.0.2 GET /a 200 203.0.113.9,10.0.0.2\n"
        "2026-03-02 01:00:02 10.0.0.2 GET\n"
        "#Fields: date time c-ip cs-method cs-uri-stem sc-status\n"
        "2026-03-02 01:00:03 198.51.100.1 GET /b 404\n"
    )
    parsed = parse_file(IisW3cParser(timezone="Asia/Tokyo"), text.encode(), "u_ex.log")
    assert parsed.counts == (2, 2, 3)
    got = reasons(parsed)
    assert got[1] == "no #Fields header before this line"
    assert got[5] == "expected 7 fields (#Fields header), got 4 (truncated line?)"
    a = event_at(parsed.events, 4)
    assert a["source.ip"] == "203.0.113.9" and a["http.request.peer_ip"] == "10.0.0.2"
    assert a["@timestamp"] == at(2026, 3, 1, 16, 0, 1)  # logged in local time (option)
    b = event_at(parsed.events, 7)
    assert b["source.ip"] == "198.51.100.1" and b["event.outcome"] == "failure"


# ------------------------------------------------------------------------ cloud logs


def test_entra_signins_sentinel_shape(corpus: Path) -> None:
    parsed = parse_file(EntraSigninParser(), corpus / f"{CLOUD}/msticpy-testdata/derived/aad_logons.jsonl")
    assert parsed.counts == (86, 0, 0)
    ev = event_at(parsed.events, 1)
    assert ev["@timestamp"] == at(2020, 5, 20, 18, 19, 4)
    assert ev["user.name"] == "ctfuser3@seccxp.ninja"
    assert ev["source.ip"] == "24.13.212.221"
    assert ev["event.outcome"] == "success"
    assert ev["network.application"] == "Browser"
    assert ev["source.geo.country_iso_code"] == "US"
    assert ev["source.geo.city_name"] == "Park Ridge"
    assert ev["source.geo.location.lat"] == 41.9971809387
    assert ev["source.geo.location.lon"] == -87.8483123779
    assert parsed.events["event.outcome"].value_counts().sort("event.outcome").rows() == [
        ("failure", 2),
        ("success", 84),
    ]


def test_entra_signins_diagnostic_shape(corpus: Path) -> None:
    path = corpus / f"{ELASTIC}/azure/data_stream/signinlogs/_dev/test/pipeline/test-signinlogs-raw.log"
    parsed = parse_file(EntraSigninParser(), path)
    assert parsed.counts == (5, 0, 0)
    ev = event_at(parsed.events, 1)
    # createdDateTime 04:45:48.0729893-05:00 -> 09:45:48.072989 UTC
    assert ev["@timestamp"] == datetime(2019, 10, 18, 9, 45, 48, 72989, tzinfo=UTC)
    assert ev["rule.id"] == "50140"
    assert ev["event.outcome"] == "unknown"  # "keep me signed in" interrupt, not a bad password
    assert ev["source.geo.city_name"] == "Champs-Sur-Marne"
    assert detect_source(head_lines(path)) == "entra_signin"


def _panther(corpus: Path, name: str) -> bytes:
    lines = (corpus / f"{CLOUD}/panther-analysis/derived/{name}").read_text().splitlines()
    return "\n".join(json.dumps(json.loads(ln)["log"]) for ln in lines).encode()


def test_m365_audit_forwarding_and_rules(corpus: Path) -> None:
    parsed = parse_file(
        M365AuditParser(), _panther(corpus, "tests_Microsoft365_Audit_Exchange.jsonl"), "x.jsonl"
    )
    assert parsed.counts == (10, 0, 0)
    ev = event_at(parsed.events, 1)
    assert ev["event.action"] == "Set-Mailbox"
    assert ev["email.to.address"] == "peter.griffin@familyguy.com"
    assert ev["user.name"] == "homer.simpson@simpsons.onmicrosoft.com"
    assert ev["@timestamp"] == at(2022, 12, 12, 22, 19, 0)
    assert ev["event.category"] == "email"
    rule = event_at(parsed.events, 3)
    assert rule["event.action"] == "New-InboxRule"
    assert rule["email.to.address"] == "external@example.com"


def test_m365_audit_logins_and_plain_export(corpus: Path) -> None:
    parsed = parse_file(
        M365AuditParser(), _panther(corpus, "tests_Microsoft365_Audit_AzureActiveDirectory.jsonl"), "x.jsonl"
    )
    assert parsed.events.select("event.action", "event.outcome", "event.category").rows()[:2] == [
        ("UserLoginFailed", "failure", "authentication"),
        ("UserLoggedIn", "success", "authentication"),
    ]
    path = corpus / f"{CLOUD}/plaso-testdata/test_data/jsonl/microsoft_audit_log.jsonl"
    parsed = parse_file(M365AuditParser(), path)
    assert parsed.counts[1:] == (0, 0)
    assert event_at(parsed.events, 1)["event.action"] == "Install-DefaultSharingPolicy"
    assert detect_source(head_lines(path)) == "m365_audit"


def test_m365_client_ip_with_port() -> None:
    rows = [
        {"CreationTime": "2026-03-02T01:00:00", "Operation": "UserLoggedIn", "UserId": "A@x.jp",
         "ClientIP": "[2001:db8::1]:443", "Workload": "AzureActiveDirectory"},
        {"CreationTime": "2026-03-02T01:00:01", "Operation": "UserLoggedIn", "UserId": "a@x.jp",
         "ClientIP": "203.0.113.5:5555", "Workload": "AzureActiveDirectory"},
        {"Operation": "UserLoggedIn", "UserId": "a@x.jp"},
    ]  # fmt: skip
    data = ("\n".join(json.dumps(r) for r in rows) + "\n{not json\n").encode()
    parsed = parse_file(M365AuditParser(), data, "ual.jsonl")
    assert parsed.events["source.ip"].to_list() == ["2001:db8::1", "203.0.113.5"]
    assert parsed.events["user.name"].to_list() == ["a@x.jp", "a@x.jp"]
    got = reasons(parsed)
    assert got[3] == "field CreationTime: missing or invalid"
    assert got[4].startswith("invalid JSON")


def test_gws_login(corpus: Path) -> None:
    path = corpus / f"{ELASTIC}/google_workspace/data_stream/login/_dev/test/pipeline/test-login.log"
    parsed = parse_file(GoogleWorkspaceLoginParser(), path)
    assert parsed.counts == (17, 0, 0)
    ev = event_at(parsed.events, 10)
    assert ev["event.action"] == "login_failure"
    assert ev["event.outcome"] == "failure"
    assert ev["user.name"] == "foo@bar.com"
    assert ev["source.ip"] == "67.43.156.13"
    assert ev["@timestamp"] == at(2020, 10, 2, 15, 0, 0)
    assert detect_source(head_lines(path)) == "gws_login"


def test_gws_events_list_shape() -> None:
    row = {
        "kind": "admin#reports#activity",
        "id": {"time": "2020-11-09T22:47:35.492Z", "applicationName": "login"},
        "actor": {"email": "Taro@Example.jp"},
        "ipAddress": "52.52.52.52",
        "events": [
            {"type": "login", "name": "login_success"},
            {"type": "login", "name": "login_verification"},
        ],
    }
    parsed = parse_file(GoogleWorkspaceLoginParser(), json.dumps(row).encode(), "gws.jsonl")
    ev = event_at(parsed.events, 1)
    assert ev["event.action"] == "login_success"
    assert ev["message"] == "login_success,login_verification"
    assert ev["user.name"] == "taro@example.jp"


def test_app_login_field_map() -> None:
    rows = [
        {"ts": "2026-03-02T10:15:04+09:00", "event": "login", "result": "failure",
         "account": "hanako@example.jp", "client_ip": "203.0.113.7",
         "forwarded_for": "203.0.113.7, 10.0.0.2", "path": "/member/login"},
        {"ts": "2026-03-02 10:15:05", "event": "login", "result": "success", "account": "taro@example.jp",
         "client_ip": "203.0.113.8"},
        {"event": "login", "result": "success"},
    ]  # fmt: skip
    data = "\n".join(json.dumps(r) for r in rows).encode()
    parsed = parse_file(get_parser("ndjson", field_map=APP_LOGIN_MAP), data, "app.jsonl")
    assert parsed.counts == (2, 1, 0)
    ev = event_at(parsed.events, 1)
    assert ev["event.category"] == "authentication"
    assert ev["event.outcome"] == "failure"
    assert ev["user.name"] == "hanako@example.jp"
    assert ev["http.request.x_forwarded_for"] == "203.0.113.7, 10.0.0.2"
    assert ev["@timestamp"] == at(2026, 3, 2, 1, 15, 4)
    assert event_at(parsed.events, 2)["@timestamp"] == at(2026, 3, 2, 1, 15, 5)  # naive = Asia/Tokyo
    assert reasons(parsed) == {3: "field ts: missing or invalid"}
    assert isinstance(parsed.events, pl.DataFrame)
