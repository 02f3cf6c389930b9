"""AuthLogParser on fail2ban's labelled sshd, Dovecot and Postfix fixtures (real log lines).

The fixtures interleave ``# failJSON: {...}`` comment lines (not syslog: quarantined when
the file is read as is). fail2ban's labels say whether a *jail* should count a line, which
is not the same question as "is this a failed login" (Postfix jails also count RCPT
rejects; sshd modes ignore public-key failures), so agreement is measured, not required.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from mimamori.detect.base import DetectContext
from mimamori.detect.internet import CredentialStuffingDetector
from mimamori.sources import detect_source, head_lines
from mimamori.sources.authlog import AuthLogParser
from tests.sources.util import Parsed, event_at, parse_file, reasons

SSHD = "linux-auth-service-logs/fail2ban/sshd"
DOVECOT = "mail-logs/fail2ban/dovecot"
POSTFIX = "mail-logs/fail2ban/postfix"


def line_of(corpus: Path, rel: str, text: str) -> int:
    """The number, among the fixture's log lines (comments removed), of the line starting with ``text``."""
    body = [ln for ln in (corpus / rel).read_text("utf-8", errors="replace").splitlines()]
    body = [ln for ln in body if ln.strip() and not ln.startswith("#")]
    return next(i for i, ln in enumerate(body, 1) if ln.startswith(text))


def labelled(corpus: Path, rel: str) -> tuple[Parsed, list[dict | None]]:
    """The fixture's log lines (comments removed) parsed, and the label of each line."""
    body: list[str] = []
    labels: list[dict | None] = []
    pending: dict | None = None
    for ln in (corpus / rel).read_text("utf-8", errors="replace").splitlines():
        m = re.match(r"#\s*failJSON:\s*(\{.*\})", ln)
        if m:
            pending = json.loads(m.group(1))
        elif ln.strip() and not ln.startswith("#"):
            body.append(ln)
            labels.append(pending)
            pending = None
    return parse_file(AuthLogParser(year=2015), ("\n".join(body) + "\n").encode(), rel), labels


def agreement(parsed: Parsed, labels: list[dict | None]) -> tuple[int, int, int, int]:
    failed = set(parsed.events.filter(pl.col("event.outcome") == "failure")["log.file.line"].to_list())
    pos = [i for i, lb in enumerate(labels, 1) if lb and lb.get("match")]
    neg = [i for i, lb in enumerate(labels, 1) if lb and lb.get("match") is False]
    return len(failed & set(pos)), len(pos), len(failed & set(neg)), len(neg)


def test_sshd(corpus: Path) -> None:
    parsed, labels = labelled(corpus, SSHD)
    assert parsed.counts == (155, 0, 0)
    ev = event_at(parsed.events, line_of(corpus, SSHD, "Feb 25 14:34:10 belka sshd[31602]: Failed password"))
    assert ev["@timestamp"] == datetime(2015, 2, 25, 14, 34, 10, tzinfo=UTC)
    assert (ev["event.category"], ev["event.outcome"], ev["network.application"]) == (
        "authentication",
        "failure",
        "ssh",
    )
    assert (ev["user.name"], ev["source.ip"], ev["host.name"]) == ("ROOT", "194.117.26.69", "belka")
    found, pos, flagged, neg = agreement(parsed, labels)
    assert (pos, neg) == (109, 46)
    assert found >= 54 and flagged <= 10  # the 10: public-key failures and PAM echoes fail2ban skips


def test_dovecot_and_postfix(corpus: Path) -> None:
    parsed, labels = labelled(corpus, DOVECOT)
    assert parsed.counts == (62, 5, 0)  # 5 lines with a TAI64N stamp instead of a syslog header
    assert set(reasons(parsed).values()) == {"not a syslog line (no RFC 3164 / RFC 5424 header)"}
    ev = event_at(parsed.events, line_of(corpus, DOVECOT, "Jun 13 16:30:54 platypus dovecot: imap-login"))
    assert (ev["user.name"], ev["source.ip"], ev["network.application"]) == (
        "username.bob",
        "49.176.98.87",
        "imap",
    )
    found, pos, flagged, neg = agreement(parsed, labels)
    assert found >= 31 and flagged == 0 and (pos, neg) == (56, 11)
    parsed, labels = labelled(corpus, POSTFIX)
    found, pos, flagged, neg = agreement(parsed, labels)
    assert found >= 11  # the SASL failures; the other "matches" are RCPT rejects, not logins
    smtp = parsed.events.filter(pl.col("network.application") == "smtp")
    assert smtp.height >= 11 and smtp["source.ip"].null_count() == 0


def test_brute_force_on_own_mail_server_is_stuffing() -> None:
    lines = [
        f"Mar  2 10:{i // 60:02d}:{i % 60:02d} mx dovecot: imap-login: Aborted login "
        f"(auth failed, 1 attempts): user=<user{i}@shop.example>, method=PLAIN, rip=198.51.100.9, "
        "lip=192.168.1.5, TLS"
        for i in range(40)
    ]
    lines.append(
        "Mar  2 10:45:00 mx dovecot: imap-login: Login: user=<user7@shop.example>, method=PLAIN, "
        "rip=198.51.100.9, lip=192.168.1.5, mpid=1, TLS"
    )
    parsed = parse_file(AuthLogParser(year=2026, timezone="Asia/Tokyo"), "\n".join(lines).encode(), "maillog")
    assert parsed.counts == (41, 0, 0)
    assert event_at(parsed.events, 1)["@timestamp"] == datetime(2026, 3, 2, 1, 0, 0, tzinfo=UTC)
    alerts = CredentialStuffingDetector().detect(parsed.events, DetectContext(tenant="t", batch_id="b"))
    assert [a.kind for a in alerts] == ["credential_stuffing", "account_takeover"]
    assert detect_source(head_lines("\n".join(lines).encode())) == "authlog"


def test_other_syslog_lines_are_kept_not_logins() -> None:
    data = b"Mar  2 10:00:00 mx sshd[1]: Server listening on 0.0.0.0 port 22.\nnot syslog at all\n"
    parsed = parse_file(AuthLogParser(year=2026), data, "auth.log")
    assert parsed.counts == (1, 1, 0)
    ev = event_at(parsed.events, 1)
    assert "event.category" not in ev and ev["message"] == "Server listening on 0.0.0.0 port 22."
