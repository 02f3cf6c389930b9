"""Login events from the syslog of an SME's own internet-facing servers: sshd, Dovecot
(IMAP/POP3), Postfix SMTP AUTH (SASL) and PAM.

Each line's RFC 3164 / RFC 5424 header is split off (``syslog_header``; the ``year`` and
``timezone`` options place BSD timestamps, which carry neither). The message is matched
against the declared ``PATTERNS`` (service, outcome, regex with ``user`` and ``ip`` groups);
the first that matches makes an ``authentication`` event with ``event.outcome``, ``user.name``
and ``source.ip``, which the credential-stuffing detector counts. A syslog line that is no
login (a daemon starting, a disconnect) is kept as a plain event with its message; a line
with no syslog header is quarantined with the reason. ``source.ip`` is null when the log
names a host instead of an address (sshd with UseDNS); the name stays in the message.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import polars as pl

from mimamori.sources.base import ParseResult, SourceParser, finish, split_structural
from mimamori.sources.reader import LINE, TEXT, LineBatch, quarantine_rows
from mimamori.sources.syslog_header import (
    APPNAME,
    FORMAT,
    HOSTNAME,
    MESSAGE,
    PARSED_TS,
    valid_ip,
    with_syslog_header,
)

_IP = r"(?P<ip>\[?[0-9A-Fa-f:.]+\]?|[^\s,()]+)"
#: (service, outcome, regex on the message); ``user`` and ``ip`` groups (``user`` optional)
PATTERNS: list[tuple[str, str, str]] = [
    ("ssh", "failure", rf"Failed \S+ for (?:invalid user )?(?P<user>.*?) from {_IP}(?: port \d+)?"),
    ("ssh", "failure", rf"Invalid user (?P<user>.*?) from {_IP}"),
    ("ssh", "failure", rf"(?i)(?:error: )?PAM: (?:User not known to the underlying authentication module|"
                       rf"Authentication (?:failure|error)) for (?:illegal user )?(?P<user>.*?) from {_IP}"),
    ("ssh", "failure", rf"User (?P<user>\S+) from {_IP} not allowed because"),
    ("ssh", "failure", rf"ROOT LOGIN REFUSED FROM (?:::ffff:)?{_IP}"),
    ("ssh", "failure", rf"maximum authentication attempts exceeded for (?:invalid user )?(?P<user>\S+) "
                       rf"from {_IP}"),
    ("ssh", "success", rf"Accepted \S+ for (?P<user>\S+) from {_IP}"),
    ("imap", "failure", rf"(?:imap|pop3|managesieve|submission|lmtp)-login: .*?\(auth failed[^)]*\)[^:]*:"
                        rf"(?: user=<(?P<user>[^>]*)>,)?.*?\brip={_IP}"),
    ("imap", "failure", rf"\b(?:auth|pam|passwd-file|sql|ldap|passwd|shadow)\((?P<user>[^,()]*),{_IP}[,)].*?"
                        rf"(?i:failed|unknown user|mismatch|invalid credentials)"),
    ("imap", "success", rf"(?:imap|pop3|submission)-login: (?:Info: )?Login: user=<(?P<user>[^>]*)>"
                        rf".*?\brip={_IP},"),
    ("smtp", "failure", rf"warning: [^\[\s]*\[{_IP}\]: SASL \S+ authentication failed"),
    ("pam", "failure", rf"authentication failure;.*?\brhost={_IP}(?:\s+user=(?P<user>\S+))?"),
]  # fmt: skip


class AuthLogParser(SourceParser):
    """sshd / Dovecot / Postfix SASL / PAM login lines from syslog."""

    name: ClassVar[str] = "authlog"
    description: ClassVar[str] = "login successes and failures from sshd, Dovecot, Postfix SASL, PAM syslog"

    def __init__(self, year: int | None = None, timezone: str = "UTC") -> None:
        self.year = year
        self.timezone = timezone

    def sniff(self, head: list[str]) -> bool:
        lines = [ln for ln in head if ln.strip()][:20]
        if not lines:
            return False
        s = pl.Series(lines)
        any_login = "|".join(f"(?:{re.sub(r'[(][?]P<[a-z]+>', '(?:', rx)})" for _, _, rx in PATTERNS)
        logins = s.str.contains(any_login).sum()
        return bool(logins >= max(1, len(lines) // 4))

    def parse(self, batch: LineBatch, ctx: dict[str, Any]) -> ParseResult:
        data, skipped = split_structural(batch)
        lines = with_syslog_header(data, TEXT, year=self.year, timezone=self.timezone)
        has_header = pl.col(FORMAT).is_in(["rfc3164", "rfc5424"]).fill_null(False)
        bad = lines.filter(~has_header)
        quarantine = None
        if bad.height:
            quarantine = quarantine_rows(
                batch.path,
                bad[LINE].to_list(),
                ["not a syslog line (no RFC 3164 / RFC 5424 header)"] * bad.height,
                bad[TEXT].to_list(),
            )
        lines = lines.filter(has_header)
        msg = pl.col(MESSAGE).fill_null("")
        matched = [msg.str.extract_groups(rx).alias(f"__p{i}") for i, (_, _, rx) in enumerate(PATTERNS)]
        lines = lines.with_columns(matched)
        service: pl.Expr = pl.lit(None, dtype=pl.String)
        outcome: pl.Expr = pl.lit(None, dtype=pl.String)
        user: pl.Expr = pl.lit(None, dtype=pl.String)
        ip: pl.Expr = pl.lit(None, dtype=pl.String)
        for i, (svc, out, rx) in reversed(list(enumerate(PATTERNS))):
            hit = pl.col(f"__p{i}").struct.field("ip").is_not_null()
            service = pl.when(hit).then(pl.lit(svc)).otherwise(service)
            outcome = pl.when(hit).then(pl.lit(out)).otherwise(outcome)
            u = pl.col(f"__p{i}").struct.field("user") if "?P<user>" in rx else pl.lit(None, dtype=pl.String)
            user = pl.when(hit).then(u).otherwise(user)
            ip = pl.when(hit).then(pl.col(f"__p{i}").struct.field("ip")).otherwise(ip)
        is_login = service.is_not_null()
        events = lines.select(
            pl.col(LINE),
            pl.col(PARSED_TS).alias("@timestamp"),
            pl.lit("event").alias("event.kind"),
            pl.when(is_login).then(pl.lit("authentication")).otherwise(None).alias("event.category"),
            pl.when(is_login).then(pl.lit("start")).otherwise(pl.lit("info")).alias("event.type"),
            pl.when(is_login).then(pl.lit("login")).otherwise(None).alias("event.action"),
            outcome.alias("event.outcome"),
            pl.concat_str(pl.lit("authlog."), pl.col(APPNAME).fill_null("syslog").str.replace(r"/.*$", ""))
            .str.to_lowercase()
            .alias("event.dataset"),
            pl.lit("authlog").alias("event.module"),
            service.alias("network.application"),
            pl.when(user.str.strip_chars() == "").then(None).otherwise(user).alias("user.name"),
            valid_ip(ip.str.strip_chars("[]")).alias("source.ip"),
            pl.col(HOSTNAME).alias("host.name"),
            pl.col(MESSAGE).alias("message"),
        )
        return finish(
            events,
            batch.path,
            required={"@timestamp": "syslog timestamp"},
            quarantine=quarantine,
            raw=data.select(LINE, TEXT),
            skipped=skipped,
        )


__all__ = ["PATTERNS", "AuthLogParser"]
