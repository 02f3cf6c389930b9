"""Bad input never loses data: the internet-facing parsers on mutated real lines and random bytes.

``parse_file`` checks for every batch that events + quarantined + skipped lines == lines read;
no exception may escape a parser.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mimamori.sources import get_parser
from tests.sources.util import parse_file

APACHE = (
    b'shop.example:443 198.51.100.7 - - [02/Mar/2026:10:15:04 +0900] "GET /mypage?id=1 HTTP/1.1" 200 512 '
    b'"https://shop.example/" "Mozilla/5.0 (X11)" "203.0.113.7, 10.0.0.2"'
)
IIS = [
    b"#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port c-ip cs(User-Agent) sc-status",
    b"2026-03-02 01:00:00 10.0.0.5 GET /login.aspx u=1 443 198.51.100.7 Mozilla/5.0+(X11) 200",
]
ENTRA = json.dumps(
    {
        "createdDateTime": "2026-03-02T01:00:00Z",
        "userPrincipalName": "a@x.example",
        "ipAddress": "198.51.100.7",
        "clientAppUsed": "IMAP4",
        "status": {"errorCode": 50126},
        "location": {
            "city": "X",
            "countryOrRegion": "JP",
            "geoCoordinates": {"latitude": 35.0, "longitude": 139.0},
        },
    }
).encode()
UAL = json.dumps(
    {
        "CreationTime": "2026-03-02T01:00:00",
        "Operation": "New-InboxRule",
        "UserId": "a@x.example",
        "ClientIP": "[2001:db8::1]:443",
        "Parameters": [{"Name": "ForwardTo", "Value": "b@y.example"}],
    }
).encode()
GWS = json.dumps(
    {
        "kind": "admin#reports#activity",
        "id": {"time": "2026-03-02T01:00:00Z", "applicationName": "login"},
        "actor": {"email": "a@x.example"},
        "ipAddress": "198.51.100.7",
        "events": [{"name": "login_failure"}],
    }
).encode()
AUTH = b"Mar  2 10:00:00 mx sshd[1]: Failed password for invalid user admin from 198.51.100.7 port 22 ssh2"


@st.composite
def mutated(draw: st.DrawFn, line: bytes) -> bytes:
    out = bytearray(line)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["delete", "insert", "replace", "truncate"]))
        i = draw(st.integers(0, max(len(out) - 1, 0)))
        if op == "delete" and out:
            del out[i]
        elif op == "insert":
            out[i:i] = draw(st.binary(min_size=1, max_size=3))
        elif op == "replace" and out:
            out[i] = draw(st.integers(0, 255))
        elif op == "truncate":
            del out[i:]
    return bytes(out)


CASES = [
    ("apache", [APACHE]),
    ("iis", IIS),
    ("entra_signin", [ENTRA]),
    ("m365_audit", [UAL]),
    ("gws_login", [GWS]),
    ("authlog", [AUTH]),
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(CASES), data=st.data())
def test_mutated_lines_are_parsed_or_quarantined(case: tuple[str, list[bytes]], data: st.DataObject) -> None:
    source, good = case
    lines = [*good, *data.draw(st.lists(mutated(good[-1]), max_size=5)), *good[-1:]]
    parsed = parse_file(get_parser(source), b"\n".join(lines), f"fuzz.{source}")
    assert parsed.events.height + parsed.quarantine.height + parsed.skipped == parsed.lines


@settings(max_examples=40, deadline=None)
@given(source=st.sampled_from([c[0] for c in CASES]), blob=st.binary(max_size=300))
def test_random_bytes(source: str, blob: bytes) -> None:
    parsed = parse_file(get_parser(source), blob, f"fuzz.{source}")
    assert parsed.events.height + parsed.quarantine.height + parsed.skipped == parsed.lines
