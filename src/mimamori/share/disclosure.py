"""When to go public, and a public statement that leaves out what would help attackers.

``assess`` weighs four factors (the seed report's §4.2③): severe damage, scope unknown,
many parties affected, and small-group sharing not enough. Facts from the incident fill
in what they can (severity, partners warned and still silent, information classes
reached); the analyst's answers override. Two or more factors, or personal data reached
where not everyone can be notified, recommend a public disclosure.

``draft_statement`` writes a TLP:CLEAR statement (Japanese, English available): what
happened in general terms, what may be affected, what readers should do, a contact. It
deliberately leaves out internal addresses, host names, products and versions, security
controls, vulnerabilities and the state of the investigation; ``attacker_help`` lists any
such detail still present so the analyst can take it out before publishing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy.orm import Session

from mimamori.db.models import Tenant
from mimamori.incidents.engine import get_incident
from mimamori.share.infoclass import CARD, EXPORT, PERSONAL, reports_for_incident
from mimamori.share.partner_warnings import MAIL_STEALING_KINDS, who_knows
from mimamori.share.sanitize import Sanitizer
from mimamori.share.tlp import TLP, Audience, Reach, enforce

FACTORS = ("severe_damage", "scope_unknown", "many_parties", "small_group_insufficient")
MANY_PARTIES = 10

_ATTACKER_HELP = [
    (re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])"), "IP address"),
    (re.compile(r"\bCVE-\d{4}-\d{4,}\b", re.I), "vulnerability id"),
    (
        re.compile(
            r"\b(?:FortiGate|FortiOS|PAN-OS|Palo Alto|pfSense|OPNsense|Suricata|Zeek"
            r"|Windows (?:XP|7|8|10|11|Server)"
            r"|VPN|RDP|Active Directory|Exchange|EDR|UTM|SIEM)\b",
            re.I,
        ),
        "product or control",
    ),
    (re.compile(r"\bunpatched\b|未対策|未修正|パッチ未適用|脆弱性", re.I), "weakness"),
    (re.compile(r"\[(?:内部アドレス|社内ホスト|internal address|internal host)\]"), "redaction marker"),
]


@dataclass
class Assessment:
    factors: dict[str, bool]
    evidence: dict[str, str]
    recommendation: str  # disclose, consider, not_yet
    reasons_ja: list[str] = field(default_factory=list)
    reasons_en: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def assess(
    session: Session,
    tenant_id: str | None,
    incident_id: int,
    *,
    answers: dict[str, bool] | None = None,
    affected_people: int | None = None,
) -> Assessment:
    inc = get_incident(session, tenant_id, incident_id)
    answers = answers or {}
    knows = who_knows(session, inc.tenant_id, inc.id)
    partners = {str(k["partner"]) for k in knows}
    silent = {str(k["partner"]) for k in knows if k["state"] in ("delivered", "failed")}
    reports = reports_for_incident(session, inc.tenant_id, inc.id)
    auto = {
        "severe_damage": inc.severity == "critical" or bool(set(reports["reached"]) & {CARD, EXPORT}),
        "scope_unknown": inc.state in ("new", "triage", "remote_support", "onsite")
        and inc.kind in MAIL_STEALING_KINDS,
        "many_parties": len(partners) >= MANY_PARTIES or (affected_people or 0) >= 1000,
        "small_group_insufficient": bool(silent) and len(silent) * 2 >= max(len(partners), 1),
    }
    evidence = {
        "severe_damage": f"severity {inc.severity}; information reached: "
        + (", ".join(reports["reached"]) or "none"),
        "scope_unknown": f"state {inc.state}, kind {inc.kind}",
        "many_parties": f"{len(partners)} partner(s) warned; affected people: {affected_people or 'unknown'}",
        "small_group_insufficient": f"{len(silent)} of {len(partners)} warned partner(s)"
        " have not acknowledged",
    }
    factors = {f: bool(answers.get(f, auto[f])) for f in FACTORS}
    for f in FACTORS:
        if f in answers:
            evidence[f] += " (analyst's answer)"
    count = sum(factors.values())
    personal = PERSONAL in reports["reached"] or CARD in reports["reached"]
    ja = {
        "severe_damage": "被害が重大です",
        "scope_unknown": "被害の範囲がまだ分かりません",
        "many_parties": "影響を受ける相手が多数です",
        "small_group_insufficient": "取引先など限られた範囲への連絡だけでは届きません",
    }
    en = {
        "severe_damage": "the damage is severe",
        "scope_unknown": "the scope is not yet known",
        "many_parties": "many parties are affected",
        "small_group_insufficient": "warning the small group is not enough",
    }
    reasons_ja = [ja[f] for f in FACTORS if factors[f]]
    reasons_en = [en[f] for f in FACTORS if factors[f]]
    if personal and (factors["many_parties"] or factors["scope_unknown"]):
        reasons_ja.append("個人データに及び、本人全員への個別通知が難しい場合は公表が代替措置になります")
        reasons_en.append(
            "personal data is reached; where not everyone can be told, publication stands in for it"
        )
        recommendation = "disclose"
    elif count >= 2:
        recommendation = "disclose"
    elif count == 1:
        recommendation = "consider"
    else:
        recommendation = "not_yet"
    return Assessment(factors, evidence, recommendation, reasons_ja, reasons_en)


def attacker_help(text: str) -> list[str]:
    """Details in ``text`` that would help an attacker (to be removed before publishing)."""
    found = []
    for rx, what in _ATTACKER_HELP:
        found += [f"{what}: {m.group(0)}" for m in rx.finditer(text)]
    return found


def draft_statement(
    session: Session,
    tenant_id: str | None,
    incident_id: int,
    *,
    contact: str,
    affected: str | None = None,
    tlp: TLP = TLP.CLEAR,
) -> dict[str, Any]:
    """A public statement (TLP:CLEAR only: publishing anything else raises TlpViolation)."""
    enforce(tlp, Audience(Reach.PUBLIC, "public statement"), first_hand=True)
    inc = get_incident(session, tenant_id, incident_id)
    tenant = session.get(Tenant, inc.tenant_id)
    assert tenant is not None
    reports = reports_for_incident(session, inc.tenant_id, inc.id)
    when = (inc.first_seen or inc.opened_at).astimezone(UTC) + timedelta(hours=9)
    impersonation = inc.kind in MAIL_STEALING_KINDS or inc.kind == "malware_mail_campaign"
    what_ja = (
        f"{when:%Y年%m月%d日}ごろ、当社の一部のパソコンがマルウェアに感染し、当社の社員や当社を装った"
        "不審なメールが社外の皆様に送信されている可能性があることが判明しました。"
        if impersonation
        else f"{when:%Y年%m月%d日}ごろ、当社の情報システムが第三者による"
        "不正なアクセスを受けたことが判明しました。"
    )
    what_en = (
        f"Around {when:%d %B %Y}, some of our PCs were infected with malware, and suspicious mail "
        "pretending to come from us or our staff may have been sent to people outside the company."
        if impersonation
        else f"Around {when:%d %B %Y}, we found that a third party had accessed our information"
        " systems without "
        "authorisation."
    )
    classes_ja = {PERSONAL: "お客様・お取引先様の個人情報", CARD: "クレジットカード情報", EXPORT: "技術情報"}
    classes_en = {
        PERSONAL: "personal data of customers and partners",
        CARD: "credit card data",
        EXPORT: "technical data",
    }
    reached = reports["reached"]
    aff_ja = affected or (
        "、".join(classes_ja[c] for c in reached) + "が流出した可能性があり、現在調査しています。"
        if reached
        else "現時点で情報の流出は確認されていませんが、引き続き調査しています。"
    )
    aff_en = affected or (
        "We are investigating whether " + ", ".join(classes_en[c] for c in reached) + " may have leaked."
        if reached
        else "We have found no leak of information so far and are continuing to investigate."
    )
    do_ja = (
        [
            "当社の社員名で届いたメールでも、送信元のメールアドレスが当社のものと異なる場合は開かずに削除してください。",
            "心当たりのない添付ファイルやリンクは開かないでください。",
        ]
        if impersonation
        else ["当社を名乗る不審な連絡にご注意ください。"]
    )
    do_en = (
        [
            "Delete, without opening, mail that shows one of our staff as sender but comes from"
            " an address that is "
            "not ours.",
            "Do not open unexpected attachments or links.",
        ]
        if impersonation
        else ["Beware of suspicious messages claiming to be from us."]
    )
    body_ja = "\n".join(
        [
            f"{tenant.name}",
            "不審なメール・不正アクセスに関するお知らせとお詫び"
            if impersonation
            else "不正アクセスに関するお知らせとお詫び",
            "",
            "■ 概要",
            what_ja,
            "",
            "■ 影響",
            aff_ja,
            "",
            "■ 皆様へのお願い",
            *[f"・{d}" for d in do_ja],
            "",
            "■ 当社の対応",
            "外部の専門家の協力を得て調査と再発防止に取り組んでおり、関係機関への報告も行っています。",
            "",
            "■ お問い合わせ",
            contact,
            "",
            "皆様にご迷惑とご心配をおかけしておりますことを深くお詫び申し上げます。",
        ]
    )
    body_en = "\n".join(
        [
            f"{tenant.name}",
            "Notice of a security incident",
            "",
            "What happened",
            what_en,
            "",
            "What may be affected",
            aff_en,
            "",
            "What we ask of you",
            *[f"- {d}" for d in do_en],
            "",
            "What we are doing",
            "We are investigating with outside specialists, working to prevent a recurrence,"
            " and have informed "
            "the relevant authorities.",
            "",
            "Contact",
            contact,
            "",
            "We sincerely apologise for the concern and inconvenience this causes.",
        ]
    )
    san_ja = Sanitizer.for_tenant(session, inc.tenant_id, "ja")
    san_en = Sanitizer.for_tenant(session, inc.tenant_id, "en")
    # the contact line is the company's own public desk: keep it as given
    body_ja = san_ja.text(body_ja.replace(contact, "\x00")).replace("\x00", contact)
    body_en = san_en.text(body_en.replace(contact, "\x00")).replace("\x00", contact)
    return {
        "incident": inc.id,
        "tlp": tlp.value,
        "body_ja": body_ja,
        "body_en": body_en,
        "attacker_help": attacker_help(body_ja) + attacker_help(body_en),
        "reports": reports["reports"],
    }
