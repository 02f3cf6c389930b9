"""Demo: the supply-chain part — partners of the scenario tenants, and warnings sent.

Scenario 6 (a hacked partner's mail server sends malware): that partner is told its server
or accounts send malware. Scenarios 5 (Emotet, which stole the address book) and 7 (banking
malware that steals mail): every partner of the tenant is warned that mail in the tenant's
name may follow. The demo
has no mail server: messages go to ``<data dir>/outbox/`` as ``.eml`` files, and each
warning stays unacknowledged until someone follows its link.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from mimamori.db.session import session_scope
from mimamori.share.partner_warnings import SmtpConfig, draft_warning, send_warning, who_knows
from mimamori.share.partners import add_contact, add_partner
from mimamori.share.tlp import TLP

#: fictional partners (documentation domains) of the tenants whose mail was stolen
_PARTNERS = {
    7: [
        (
            "株式会社北陸精密",
            "hokuriku-seimitsu.example",
            "購買部 高橋",
            "takahashi@hokuriku-seimitsu.example",
        ),
        ("東和ロジスティクス", "towa-logi.example", "総務部 伊藤", "ito@towa-logi.example"),
    ],
    5: [
        ("加賀鋳造株式会社", "kaga-chuzo.example", "資材課 中村", "nakamura@kaga-chuzo.example"),
        ("能登テクノサービス", "noto-techno.example", "営業部 小林", "kobayashi@noto-techno.example"),
    ],
}


def warn_partners(
    engine: Engine, manifest: dict[str, Any], scenarios: list[dict[str, Any]], outbox: Path
) -> list[dict[str, Any]]:
    """Add the scenario tenants' partners, draft and send warnings; what was sent to whom."""
    by_number = {sc["scenario"]: sc for sc in manifest.get("scenarios", [])}
    found = {sc["scenario"]: sc for sc in scenarios if sc["detected"]}
    smtp = SmtpConfig(outbox=outbox, sender="soc@provider.example", sender_name="mimamori SOC")
    out: list[dict[str, Any]] = []
    with session_scope(engine) as s:
        if 6 in by_number:
            tenant = by_number[6]["tenant"]
            partner = by_number[6].get("details", {}).get("partner", {})
            if partner.get("domain"):
                p = add_partner(s, tenant, partner["name"], domains=[partner["domain"]], actor="demo")
                add_contact(s, tenant, p.id, "情報システム担当", f"it@{partner['domain']}", actor="demo")
        for number, partners in _PARTNERS.items():
            if number not in by_number:
                continue
            tenant = by_number[number]["tenant"]
            for name, domain, person, mail in partners:
                p = add_partner(s, tenant, name, domains=[domain], actor="demo")
                add_contact(s, tenant, p.id, person, mail, actor="demo")
        s.flush()
        for number in (5, 6, 7):
            sc = found.get(number)
            if sc is None or not sc["incidents"]:
                continue
            incident = sc["incidents"][0]
            w = draft_warning(s, sc["tenant"], incident, tlp=TLP.AMBER, created_by="demo")
            send_warning(s, sc["tenant"], w.id, smtp, actor="demo")
            knows = who_knows(s, sc["tenant"], incident)
            out.append(
                {
                    "scenario": number,
                    "tenant": sc["tenant"],
                    "incident": incident,
                    "warning": w.id,
                    "tlp": w.tlp,
                    "subject": w.subject_ja,
                    "partners": sorted({str(k["partner"]) for k in knows if k["state"] == "delivered"}),
                    "reasons": sorted({str(k["reason"]).split(":")[0] for k in knows}),
                }
            )
    return out
