"""Warnings to trading partners from an incident: draft, sanitise, send, acknowledge, chase.

Who may be reached (``candidate_recipients``):

- *the partner is the source*: an alert names a partner's mail domain as the sender of
  malware (incident keys ``sender:<domain>``, evidence ``sender_domains``) — the hacked
  partner must hear that its server or accounts send malware; only that partner is warned;
- *mail-stealing malware here* (Emotet and kin): it sends mail in the tenant's name to the
  people it has corresponded with, so every partner with a contact is warned;
- otherwise partners whose domains appear in the incident's evidence.

The text is drafted in plain Japanese and English (what happened, what to look for, what to
do), passed through ``Sanitizer`` (tenant CIDRs and RFC 1918 addresses, host names, mail
addresses, phone numbers, the contact persons' names), and marked with its TLP 2.0 label.
Sending checks TLP per recipient (a contact of kind ``provider`` is another security
provider: AMBER needs the originator's recorded permission), mails each contact through
SMTP with a personal acknowledgement link, and records the delivery for the partner portal
when the partner is a tenant too. Acknowledgements, chases and deliveries are written to
the incident timeline, so the incident shows who knows.
"""

from __future__ import annotations

import hashlib
import secrets
import smtplib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mimamori.db.models import Alert, Incident, Tenant, TimelineEntry
from mimamori.db.models_share import Partner, PartnerContact, ShareWarning, WarningRecipient
from mimamori.db.repo import audit
from mimamori.incidents.engine import get_incident
from mimamori.intel.normalize import DOMAIN, IP, MD5, SHA1, SHA256, URL
from mimamori.share.partners import ShareError, get_partner, has_provider_permission
from mimamori.share.sanitize import Sanitizer
from mimamori.share.stix_export import incident_indicators
from mimamori.share.tlp import TLP, Audience, Reach, decide

MAIL_STEALERS = ("emotet", "qakbot", "qbot", "icedid", "trickbot", "dridex", "ursnif", "gozi", "pikabot")
MAIL_STEALING_KINDS = {"emotet", "banking_malware"}
_KIND_JA = {
    "emotet": "マルウェア Emotet の感染",
    "banking_malware": "不正送金マルウェアの感染",
    "malware_mail_campaign": "マルウェア付きメールの大量着信",
    "ransomware": "ランサムウェアの感染",
    "malware_infection": "マルウェアの感染",
    "malicious_destination": "不審な通信先への接続",
}
_TYPE_JA = {IP: "IPアドレス", DOMAIN: "ドメイン", URL: "URL", MD5: "ファイル(MD5)", SHA1: "ファイル(SHA-1)",
            SHA256: "ファイル(SHA-256)"}  # fmt: skip


@dataclass
class Candidate:
    partner: Partner
    reason: str  # "source", "impersonation", "mentioned"
    detail: str


@dataclass
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 25
    sender: str = "mimamori@localhost"
    sender_name: str = "mimamori"
    starttls: bool = False
    user: str | None = None
    password: str | None = None
    ack_base_url: str = "http://127.0.0.1:8765"
    timeout: float = 30.0
    # a pickup directory instead of a server: each message is written there as an .eml file
    # (the demo, and sites whose MTA collects mail from a directory)
    outbox: Path | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def _timeline(session: Session, inc: Incident, actor: str, text: str) -> None:
    session.add(
        TimelineEntry(incident_id=inc.id, tenant_id=inc.tenant_id, actor=actor, entry="share", text=text)
    )


def _alerts(session: Session, inc: Incident) -> list[Alert]:
    return list(
        session.scalars(select(Alert).where(Alert.incident_id == inc.id, Alert.tenant_id == inc.tenant_id))
    )


def _families(alerts: list[Alert]) -> set[str]:
    out: set[str] = set()
    for a in alerts:
        ev = a.evidence if isinstance(a.evidence, dict) else {}
        for v in [ev.get("threat"), *(ev.get("families") or []), *(ev.get("verdicts") or []), a.title]:
            if isinstance(v, str):
                low = v.lower()
                out.update(m for m in MAIL_STEALERS if m in low)
    return out


def _sender_domains(inc: Incident, alerts: list[Alert]) -> set[str]:
    doms = {k.key.split(":", 1)[1].lower() for k in inc.keys if k.key.startswith("sender:")}
    for a in alerts:
        ev = a.evidence if isinstance(a.evidence, dict) else {}
        doms.update(str(d).lower() for d in ev.get("sender_domains") or [])
    return doms


def _matches(domain: str, partner_domains: list[Any]) -> bool:
    return any(domain == d or domain.endswith("." + str(d)) for d in partner_domains)


def candidate_recipients(session: Session, tenant_id: str | None, incident_id: int) -> list[Candidate]:
    """The tenant's partners this incident may reach, each with why."""
    inc = get_incident(session, tenant_id, incident_id)
    alerts = _alerts(session, inc)
    partners = list(
        session.scalars(select(Partner).where(Partner.tenant_id == inc.tenant_id).order_by(Partner.id))
    )
    senders = _sender_domains(inc, alerts)
    sources = [p for p in partners if any(_matches(d, p.domains or []) for d in senders)]
    if sources:
        return [
            Candidate(p, "source", ", ".join(sorted(d for d in senders if _matches(d, p.domains or []))))
            for p in sources
        ]
    families = _families(alerts)
    if inc.kind in MAIL_STEALING_KINDS or families:
        fam = ", ".join(sorted(families)) or inc.kind
        return [Candidate(p, "impersonation", fam) for p in partners if any(c.active for c in p.contacts)]
    blob = " ".join(str(a.evidence) + " " + (a.indicator or "") for a in alerts).lower()
    return [
        Candidate(p, "mentioned", ", ".join(str(d) for d in p.domains or []))
        for p in partners
        if any(str(d) in blob for d in p.domains or [])
    ]


# ------------------------------------------------------------------------------ drafting


def _look_for(session: Session, inc: Incident, alerts: list[Alert], san: Sanitizer) -> dict[str, list[str]]:
    items: dict[str, list[str]] = {}
    for row in incident_indicators(session, inc, san):
        items.setdefault(row["type"], []).append(row["value"])
    for a in alerts:
        ev = a.evidence if isinstance(a.evidence, dict) else {}
        for h in ev.get("attachment_hashes") or []:
            if isinstance(h, str) and h not in items.get(SHA256, []) and len(h) == 64:
                items.setdefault(SHA256, []).append(h.lower())
        for key, name in (("attachments", "attachment"), ("subject_patterns", "subject")):
            for v in ev.get(key) or []:
                if isinstance(v, str) and v not in items.get(name, []):
                    items.setdefault(name, []).append(v)
    return {k: sorted(set(v))[:20] for k, v in items.items()}


def _fmt_items(items: dict[str, list[str]], ja: bool) -> list[str]:
    lines = []
    names_ja = {**_TYPE_JA, "attachment": "添付ファイル名", "subject": "件名のパターン"}
    names_en = {
        **{IP: "IP address", DOMAIN: "domain", URL: "URL", MD5: "file (MD5)", SHA1: "file (SHA-1)"},
        **{SHA256: "file (SHA-256)", "attachment": "attachment name", "subject": "subject pattern"},
    }
    for kind in (DOMAIN, URL, IP, SHA256, SHA1, MD5, "attachment", "subject"):
        for v in items.get(kind, []):
            shown = v.replace(".", "[.]") if kind in (DOMAIN, URL, IP) else v  # defanged
            lines.append(f"  - {(names_ja if ja else names_en)[kind]}: {shown}")
    return lines


def draft_texts(
    session: Session, inc: Incident, reason: str, tlp: TLP, detail: str = ""
) -> tuple[str, str, str, str]:
    """(subject_ja, body_ja, subject_en, body_en), sanitised and TLP-marked."""
    tenant = session.get(Tenant, inc.tenant_id)
    assert tenant is not None
    alerts = _alerts(session, inc)
    san_ja = Sanitizer.for_tenant(session, inc.tenant_id, "ja")
    san_en = Sanitizer.for_tenant(session, inc.tenant_id, "en")
    items = _look_for(session, inc, alerts, san_en)
    first = (inc.first_seen or inc.opened_at).astimezone(UTC)
    last = (inc.last_seen or inc.opened_at).astimezone(UTC)
    jst = timedelta(hours=9)
    when_ja = f"{(first + jst):%Y年%m月%d日 %H:%M}〜{(last + jst):%m月%d日 %H:%M}（日本時間）"
    when_en = f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC"
    kind_ja = _KIND_JA.get(inc.kind, "セキュリティ上の事案")
    org = tenant.name
    mails = sum(int((a.evidence or {}).get("mails", 0) or 0) for a in alerts if isinstance(a.evidence, dict))
    if reason == "source":
        subj_ja = f"[{tlp.label}] 【重要】貴社ドメインからのマルウェア付きメールについて（{org}より）"
        subj_en = f"[{tlp.label}] Important: malware-laden mail sent from your domain (from {org})"
        what_ja = [
            f"{when_ja}、貴社のドメイン（{detail}）から、マルウェアが添付されたメールが弊社に"
            + (f"約{mails}通" if mails else "複数")
            + "届きました。",
            "貴社のメールサーバまたはメールアカウントが第三者に不正に使われている可能性があります。",
        ]
        what_en = [
            f"Between {when_en} we received "
            + (f"about {mails}" if mails else "several")
            + f" mails with malware attached, sent from your domain ({detail}).",
            "Your mail server or mail accounts may be in the hands of an attacker.",
        ]
        todo_ja = [
            "メールサーバの送信ログを確認し、不正な送信元のアカウントを特定してください。",
            "該当アカウントのパスワードを変更し、多要素認証を有効にしてください。",
            "メールを送信したパソコンのウイルス検査を行ってください。",
            "他の取引先にも同様のメールが送られていないか確認し、必要に応じて注意喚起をしてください。",
        ]
        todo_en = [
            "Check your mail server's sending logs and find the accounts that sent these mails.",
            "Change those accounts' passwords and turn on multi-factor authentication.",
            "Scan the PCs that sent the mails for malware.",
            "Check whether other partners received such mails and warn them if so.",
        ]
    elif reason == "impersonation":
        subj_ja = f"[{tlp.label}] 【注意喚起】弊社をかたる不審なメールにご注意ください（{org}より）"
        subj_en = f"[{tlp.label}] Warning: suspicious mail in our name (from {org})"
        what_ja = [
            f"{when_ja}、弊社のパソコンで{kind_ja}の疑いを確認しました（{detail}）。",
            "このマルウェアはメールの情報を盗み、弊社の名前や過去のやり取りを装ったメールを取引先に送ることがあります。",
        ]
        what_en = [
            f"Between {when_en} we found a suspected {inc.kind.replace('_', ' ')} ({detail})"
            " on one of our PCs.",
            "This malware steals mail and sends messages that imitate us and our past conversations"
            " to partners.",
        ]
        todo_ja = [
            "弊社の社員名で届いたメールでも、送信元アドレスのドメインが"
            "弊社のものと異なる場合は開かないでください。",
            "添付ファイル（特に zip、Word、Excel）を開いたり"
            "「コンテンツの有効化」を押したりしないでください。",
            "下記の通信先をファイアウォール等で遮断し、過去に通信がないか確認してください。",
            "既に開いてしまった場合は、そのパソコンをネットワークから外し、担当の窓口へご連絡ください。",
        ]
        todo_en = [
            "Do not open mail that shows one of our staff as sender but comes from a domain"
            " that is not ours.",
            "Do not open attachments (zip, Word, Excel) or press 'Enable content'.",
            "Block the addresses below on your firewall and check whether anything talked to them before.",
            "If an attachment was opened, take that PC off the network and contact your IT support.",
        ]
    else:
        subj_ja = f"[{tlp.label}] 【情報提供】セキュリティ事案に関するお知らせ（{org}より）"
        subj_en = f"[{tlp.label}] Notice: a security incident that may concern you (from {org})"
        what_ja = [
            f"{when_ja}、弊社で{kind_ja}を確認しました。貴社にも関係する可能性があるためお知らせします。"
        ]
        what_en = [f"Between {when_en} we saw {inc.kind.replace('_', ' ')}; it may concern you as well."]
        todo_ja = [
            "下記の項目が貴社の環境で見られないかご確認ください。",
            "見つかった場合は担当の窓口へご連絡ください。",
        ]
        todo_en = ["Check your systems for the items below.", "If you find any, contact your IT support."]
    look_ja = _fmt_items(items, ja=True) or ["  - （具体的な指標はありません）"]
    look_en = _fmt_items(items, ja=False) or ["  - (no specific indicators)"]
    tlp_ja = {
        TLP.CLEAR: "この情報は制限なく共有できます。",
        TLP.GREEN: "この情報は貴社と同業・取引先のコミュニティ内で共有できます（公開はしないでください）。",
        TLP.AMBER: "この情報は貴社内と、必要に応じて貴社の取引先に限って共有できます。",
        TLP.AMBER_STRICT: "この情報は貴社内に限って共有できます。",
        TLP.RED: "この情報は受信者ご本人限りとし、他の方へ共有しないでください。",
    }[tlp]
    tlp_en = {
        TLP.CLEAR: "This information may be shared without restriction.",
        TLP.GREEN: "Share within your community and peers; do not publish.",
        TLP.AMBER: "Share only within your organisation and, on a need-to-know basis, its clients.",
        TLP.AMBER_STRICT: "Share only within your organisation.",
        TLP.RED: "For the named recipient only; do not share.",
    }[tlp]
    body_ja = "\n".join(
        [f"{tlp.label}", "", "■ 何が起きたか", *what_ja, "", "■ 確認していただきたいこと", *look_ja, "",
         "■ お願いしたい対応", *[f"  - {t}" for t in todo_ja], "", f"■ 取り扱い（{tlp.label}）", tlp_ja]
    )  # fmt: skip
    body_en = "\n".join(
        [f"{tlp.label}", "", "What happened", *what_en, "", "What to look for", *look_en, "",
         "What to do", *[f"  - {t}" for t in todo_en], "", f"Handling ({tlp.label})", tlp_en]
    )  # fmt: skip
    return (san_ja.text(subj_ja), san_ja.text(body_ja), san_en.text(subj_en), san_en.text(body_en))


def draft_warning(
    session: Session,
    tenant_id: str | None,
    incident_id: int,
    *,
    tlp: TLP = TLP.AMBER,
    partners: list[int | str] | None = None,
    created_by: str = "analyst",
) -> ShareWarning:
    """Draft a warning; recipients are the candidates (or the partners named)."""
    inc = get_incident(session, tenant_id, incident_id)
    candidates = candidate_recipients(session, inc.tenant_id, inc.id)
    if partners:
        chosen = [get_partner(session, inc.tenant_id, p) for p in partners]
        by_id = {c.partner.id: c for c in candidates}
        candidates = [by_id.get(p.id) or Candidate(p, "mentioned", "chosen by the analyst") for p in chosen]
    if not candidates:
        raise ShareError(f"incident {inc.id}: no partner it may reach; name partners explicitly")
    reason = "source" if any(c.reason == "source" for c in candidates) else candidates[0].reason
    detail = "; ".join(sorted({c.detail for c in candidates if c.reason == reason}))
    sj, bj, se, be = draft_texts(session, inc, reason, tlp, detail)
    w = ShareWarning(
        tenant_id=inc.tenant_id,
        incident_id=inc.id,
        tlp=tlp.value,
        subject_ja=sj,
        body_ja=bj,
        subject_en=se,
        body_en=be,
        created_by=created_by,
    )
    session.add(w)
    session.flush()
    for c in candidates:
        for contact in c.partner.contacts:
            if contact.active:
                w.recipients.append(
                    WarningRecipient(
                        tenant_id=inc.tenant_id,
                        partner_id=c.partner.id,
                        contact_id=contact.id,
                        email=contact.email,
                        reason=f"{c.reason}: {c.detail}",
                        portal_tenant_id=c.partner.partner_tenant_id,
                    )
                )
    if not w.recipients:
        raise ShareError("the partners it may reach have no active contacts; add contacts first")
    _timeline(
        session, inc, created_by, f"warning #{w.id} drafted ({tlp.label}) for {len(candidates)} partner(s)"
    )
    audit(session, created_by, "share.warning.draft", inc.tenant_id, warning=w.id, incident=inc.id)
    session.flush()
    return w


def get_warning(session: Session, tenant_id: str | None, warning_id: int) -> ShareWarning:
    stmt = select(ShareWarning).where(ShareWarning.id == warning_id)
    if tenant_id is not None:
        stmt = stmt.where(ShareWarning.tenant_id == tenant_id)
    w = session.scalar(stmt)
    if w is None:
        raise ShareError(f"no warning {warning_id}" + (f" of tenant {tenant_id!r}" if tenant_id else ""))
    return w


# ------------------------------------------------------------------------------ sending


def _token() -> tuple[str, str]:
    t = secrets.token_urlsafe(24)
    return t, hashlib.sha256(t.encode()).hexdigest()


def _message(
    w: ShareWarning, r: WarningRecipient, partner: Partner, smtp: SmtpConfig, token: str, chase: bool
) -> EmailMessage:
    ack = f"{smtp.ack_base_url.rstrip('/')}/api/v1/share/ack/{token}"
    ja_first = partner.language != "en"
    again_ja = "【再送・ご確認のお願い】" if chase else ""
    again_en = "[Reminder] " if chase else ""
    ack_ja = f"■ 受領のご連絡\n  内容をご確認のうえ、次のリンクから受領をお知らせください:\n  {ack}"
    ack_en = f"Acknowledgement\n  Please confirm you received this warning:\n  {ack}"
    ja = f"{again_ja}{partner.name} ご担当者様\n\n{w.body_ja}\n\n{ack_ja}\n"
    en = f"{again_en}To {partner.name}\n\n{w.body_en}\n\n{ack_en}\n"
    msg = EmailMessage()
    msg["Subject"] = (again_ja + w.subject_ja) if ja_first else (again_en + w.subject_en)
    msg["From"] = formataddr((smtp.sender_name, smtp.sender))
    msg["To"] = r.email
    msg["Message-ID"] = make_msgid(domain=smtp.sender.rpartition("@")[2] or None)
    msg["X-TLP"] = TLP.parse(w.tlp).label
    sep = "\n" + "-" * 40 + ("\n(English follows)\n\n" if ja_first else "\n（日本語は以下）\n\n")
    msg.set_content((ja + sep + en) if ja_first else (en + sep + ja))
    return msg


def _tlp_ok(
    session: Session, w: ShareWarning, contact: PartnerContact | None, partner: Partner
) -> tuple[bool, str]:
    tlp = TLP.parse(w.tlp)
    if contact is not None and contact.kind == "provider":
        perm = has_provider_permission(session, w.tenant_id, partner.name, tlp, w.incident_id) or (
            has_provider_permission(session, w.tenant_id, contact.email, tlp, w.incident_id)
        )
        d = decide(tlp, Audience(Reach.PROVIDER, f"provider:{contact.email}"), first_hand=True,
                   provider_permission=perm)  # fmt: skip
    else:
        d = decide(
            tlp, Audience(Reach.PERSON, f"mail:{contact.email if contact else partner.name}"), first_hand=True
        )
    return d.allowed, d.reason


def send_warning(
    session: Session, tenant_id: str | None, warning_id: int, smtp: SmtpConfig, *, actor: str = "analyst"
) -> ShareWarning:
    """Mail every recipient not yet delivered; TLP is checked per recipient."""
    w = get_warning(session, tenant_id, warning_id)
    inc = get_incident(session, w.tenant_id, w.incident_id)
    sent, blocked, failed = [], [], []
    with _smtp(smtp) as conn:
        for r in w.recipients:
            if r.delivered_at is not None:
                continue
            partner = session.get(Partner, r.partner_id)
            assert partner is not None
            contact = session.get(PartnerContact, r.contact_id) if r.contact_id else None
            ok, why = _tlp_ok(session, w, contact, partner)
            if not ok:
                r.delivery_error = f"withheld by TLP: {why}"
                blocked.append(partner.name)
                continue
            token, digest = _token()
            try:
                conn.send_message(_message(w, r, partner, smtp, token, chase=False))
            except (smtplib.SMTPException, OSError) as exc:
                r.delivery_error = f"SMTP: {exc}"
                failed.append(partner.name)
                continue
            r.token_hash = digest
            r.delivered_at = _now()
            r.delivery_error = None
            sent.append(f"{partner.name} <{r.email}>")
    w.state = "sent"
    w.sent_at = w.sent_at or _now()
    text = f"warning #{w.id} sent to {len(sent)} contact(s): {', '.join(sent) or '-'}"
    if blocked:
        text += f"; withheld by TLP: {', '.join(sorted(set(blocked)))}"
    if failed:
        text += f"; delivery failed: {', '.join(sorted(set(failed)))}"
    _timeline(session, inc, actor, text)
    audit(session, actor, "share.warning.send", w.tenant_id, warning=w.id, sent=len(sent), failed=len(failed))
    session.flush()
    return w


class _Outbox:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def send_message(self, msg: EmailMessage) -> None:
        name = f"{_now():%Y%m%dT%H%M%S%f}-{secrets.token_hex(4)}.eml"
        (self.path / name).write_bytes(bytes(msg))


class _smtp:
    def __init__(self, cfg: SmtpConfig) -> None:
        self.cfg = cfg
        self.conn: smtplib.SMTP | None = None

    def __enter__(self) -> Any:
        if self.cfg.outbox is not None:
            return _Outbox(self.cfg.outbox)
        try:
            self.conn = smtplib.SMTP(self.cfg.host, self.cfg.port, timeout=self.cfg.timeout)
            if self.cfg.starttls:
                self.conn.starttls()
            if self.cfg.user:
                self.conn.login(self.cfg.user, self.cfg.password or "")
        except (smtplib.SMTPException, OSError) as exc:
            raise ShareError(f"cannot reach the mail server {self.cfg.host}:{self.cfg.port}: {exc}") from exc
        return self.conn

    def __exit__(self, *exc: object) -> None:
        if self.conn is not None:
            try:
                self.conn.quit()
            except (smtplib.SMTPException, OSError):
                self.conn.close()


# ------------------------------------------------------------------------------ acknowledgement


def acknowledge(session: Session, token: str, *, by: str, note: str | None = None) -> WarningRecipient:
    digest = hashlib.sha256(token.encode()).hexdigest()
    r = session.scalar(select(WarningRecipient).where(WarningRecipient.token_hash == digest))
    if r is None:
        raise ShareError("unknown acknowledgement token")
    return _mark_acknowledged(session, r, by=by, note=note)


def _mark_acknowledged(
    session: Session, r: WarningRecipient, *, by: str, note: str | None = None
) -> WarningRecipient:
    """Record who acknowledged (once), on the incident's timeline and in the audit log."""
    if r.acknowledged_at is None:
        r.acknowledged_at = _now()
        r.ack_by = by[:200]
        r.ack_note = note
        w = session.get(ShareWarning, r.warning_id)
        partner = session.get(Partner, r.partner_id)
        assert w is not None and partner is not None
        inc = get_incident(session, w.tenant_id, w.incident_id)
        _timeline(
            session, inc, f"partner:{partner.name}", f"{partner.name} ({by}) acknowledged warning #{w.id}"
        )
        audit(
            session, f"partner:{partner.id}", "share.warning.ack", w.tenant_id, warning=w.id, recipient=r.id
        )
        session.flush()
    return r


def acknowledge_in_portal(
    session: Session, portal_tenant_id: str, recipient_id: int, *, by: str, note: str | None = None
) -> WarningRecipient:
    """A partner that is a tenant acknowledges in its portal (scoped to that tenant)."""
    r = session.scalar(
        select(WarningRecipient).where(
            WarningRecipient.id == recipient_id, WarningRecipient.portal_tenant_id == portal_tenant_id
        )
    )
    shown = {x["recipient"] for x in portal_warnings(session, portal_tenant_id)}
    if r is None or r.id not in shown:
        raise ShareError(f"no warning {recipient_id} in the portal of {portal_tenant_id!r}")
    return _mark_acknowledged(session, r, by=by, note=note)


def acknowledge_as_partner(
    session: Session, tenant_id: str, partner_id: int, warning_id: int, *, by: str
) -> list[WarningRecipient]:
    """A partner's user (partner view) acknowledges a sent warning for all of its recipients."""
    rows = list(
        session.scalars(
            select(WarningRecipient)
            .join(ShareWarning, ShareWarning.id == WarningRecipient.warning_id)
            .where(
                ShareWarning.id == warning_id,
                ShareWarning.tenant_id == tenant_id,
                ShareWarning.state == "sent",
                WarningRecipient.partner_id == partner_id,
            )
        )
    )
    if not rows:
        raise ShareError(f"no warning {warning_id} sent to this partner")
    return [_mark_acknowledged(session, r, by=by) for r in rows]


def portal_warnings(session: Session, portal_tenant_id: str) -> list[dict[str, Any]]:
    """Warnings delivered to a partner that is itself a tenant, for its portal."""
    rows = session.scalars(
        select(WarningRecipient)
        .where(
            WarningRecipient.portal_tenant_id == portal_tenant_id, WarningRecipient.delivered_at.is_not(None)
        )
        .order_by(WarningRecipient.id)
    )
    out = []
    for r in rows:
        w = session.get(ShareWarning, r.warning_id)
        sender = session.get(Tenant, w.tenant_id) if w else None
        if w is None:
            continue
        # a portal is seen by the whole partner organisation: TLP:RED stays in the named mailbox
        portal = Audience(Reach.ORGANISATION, f"portal:{portal_tenant_id}")
        if not decide(TLP.parse(w.tlp), portal, first_hand=True).allowed:
            continue
        out.append(
            {
                "recipient": r.id,
                "from": sender.name if sender else w.tenant_id,
                "tlp": w.tlp,
                "subject_ja": w.subject_ja,
                "body_ja": w.body_ja,
                "subject_en": w.subject_en,
                "body_en": w.body_en,
                "delivered_at": r.delivered_at.isoformat() if r.delivered_at else None,
                "acknowledged_at": r.acknowledged_at.isoformat() if r.acknowledged_at else None,
            }
        )
    return out


# ------------------------------------------------------------------------------ chasing


def chase(
    session: Session,
    smtp: SmtpConfig,
    *,
    after: timedelta,
    tenant_id: str | None = None,
    max_chases: int = 3,
    now: datetime | None = None,
    actor: str = "chaser",
) -> list[WarningRecipient]:
    """Re-send to recipients who have not acknowledged ``after`` the delivery (or last chase)."""
    now = now or _now()
    stmt = select(WarningRecipient).where(
        WarningRecipient.delivered_at.is_not(None),
        WarningRecipient.acknowledged_at.is_(None),
        WarningRecipient.chase_count < max_chases,
    )
    if tenant_id is not None:
        stmt = stmt.where(WarningRecipient.tenant_id == tenant_id)
    due = [
        r
        for r in session.scalars(stmt.order_by(WarningRecipient.id))
        if (r.last_chased_at or r.delivered_at) is not None
        and (r.last_chased_at or r.delivered_at) + after <= now  # type: ignore[operator]
    ]
    if not due:
        return []
    chased = []
    with _smtp(smtp) as conn:
        for r in due:
            w = session.get(ShareWarning, r.warning_id)
            partner = session.get(Partner, r.partner_id)
            assert w is not None and partner is not None
            token, digest = _token()  # a fresh link; the old one stops working
            try:
                conn.send_message(_message(w, r, partner, smtp, token, chase=True))
            except (smtplib.SMTPException, OSError) as exc:
                r.delivery_error = f"chase: SMTP: {exc}"
                continue
            r.token_hash = digest
            r.chase_count += 1
            r.last_chased_at = now
            chased.append(r)
            inc = get_incident(session, w.tenant_id, w.incident_id)
            _timeline(
                session,
                inc,
                actor,
                f"chased {partner.name} <{r.email}> for warning #{w.id} ({r.chase_count})",
            )
    session.flush()
    return chased


def who_knows(session: Session, tenant_id: str | None, incident_id: int) -> list[dict[str, Any]]:
    """Per recipient of the incident's warnings: delivered, acknowledged, chased."""
    inc = get_incident(session, tenant_id, incident_id)
    out = []
    for w in session.scalars(
        select(ShareWarning).where(ShareWarning.incident_id == inc.id).order_by(ShareWarning.id)
    ):
        for r in w.recipients:
            partner = session.get(Partner, r.partner_id)
            state = (
                "acknowledged" if r.acknowledged_at else "delivered" if r.delivered_at else
                "withheld" if r.delivery_error and "TLP" in r.delivery_error else
                "failed" if r.delivery_error else "draft"
            )  # fmt: skip
            out.append(
                {
                    "warning": w.id,
                    "tlp": w.tlp,
                    "partner": partner.name if partner else r.partner_id,
                    "email": r.email,
                    "state": state,
                    "reason": r.reason,
                    "delivered_at": r.delivered_at.isoformat() if r.delivered_at else None,
                    "acknowledged_at": r.acknowledged_at.isoformat() if r.acknowledged_at else None,
                    "ack_by": r.ack_by,
                    "chases": r.chase_count,
                    "error": r.delivery_error,
                    "portal": r.portal_tenant_id,
                }
            )
    return out


def warning_dict(w: ShareWarning) -> dict[str, Any]:
    return {
        "id": w.id,
        "tenant": w.tenant_id,
        "incident": w.incident_id,
        "tlp": w.tlp,
        "state": w.state,
        "subject_ja": w.subject_ja,
        "body_ja": w.body_ja,
        "subject_en": w.subject_en,
        "body_en": w.body_en,
        "recipients": [{"partner": r.partner_id, "email": r.email, "reason": r.reason} for r in w.recipients],
        "created_at": w.created_at.isoformat(),
        "sent_at": w.sent_at.isoformat() if w.sent_at else None,
    }
