"""Information classes held by a tenant's assets and data stores, and the authority reports
an incident touching them may require.

A tag says "this asset (or this address, or this named data store) holds personal data /
card data / export-controlled technology". ``reports_for_incident`` finds the tags an
incident reaches (its hosts: incident keys ``host:<ip>`` and the alerts' ``host``) and lists
the reports that may apply, mandatory first.

Merging with other tag sources: ``HOLDING_SOURCES`` is a list of functions
``(session, incident) -> list[Holding]``; this module registers the one that reads
``share_info_class``. Another package (e.g. web-system inventory tagging personal data) adds
its own function to the list and its holdings count the same way.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mimamori.db.models import Alert, Asset, Incident
from mimamori.db.models_share import InfoClassTag
from mimamori.incidents.engine import get_incident
from mimamori.share.partners import ShareError

PERSONAL = "personal_data"
CARD = "card_data"
EXPORT = "export_controlled"


@dataclass(frozen=True)
class Report:
    key: str
    authority_ja: str
    authority_en: str
    obligation: str  # mandatory, requested, contractual
    deadline_ja: str
    deadline_en: str
    note_ja: str
    note_en: str


REPORTS: dict[str, list[Report]] = {
    PERSONAL: [
        Report(
            "ppc",
            "個人情報保護委員会",
            "Personal Information Protection Commission (PPC)",
            "mandatory",
            "速報は知った時点から概ね3〜5日以内、確報は30日以内（不正の目的による場合は60日以内）",
            "preliminary report within about 3-5 days of learning of it; final report within 30 days "
            "(60 days where the leak was for an unlawful purpose)",
            "漏えい等が発生し、または発生したおそれがある場合（不正アクセス等によるもの等）は報告と本人への通知が義務です。",
            "A leak, or a feared leak (e.g. by unauthorised access), must be reported and the people "
            "concerned notified.",
        ),
    ],
    CARD: [
        Report(
            "card_acquirer",
            "カード会社（アクワイアラ）・決済代行会社",
            "Card acquirer / payment service provider",
            "mandatory",
            "判明後ただちに",
            "immediately",
            "カード情報の漏えいのおそれは、割賦販売法と加盟店契約に基づきカード会社へ報告します"
            "（PCI DSS の調査を求められます）。",
            "A feared card-data leak is reported to the acquirer under the Installment Sales Act and the "
            "merchant contract (a PCI DSS forensic investigation will be asked for).",
        ),
        Report(
            "ppc",
            "個人情報保護委員会",
            "Personal Information Protection Commission (PPC)",
            "mandatory",
            "速報は概ね3〜5日以内、確報は30日以内（財産的被害のおそれがある場合を含む）",
            "preliminary within about 3-5 days; final within 30 days",
            "クレジットカード番号は財産的被害が生じるおそれのある個人データとして報告対象です。",
            "Card numbers are personal data whose leak may cause financial harm: reportable.",
        ),
    ],
    EXPORT: [
        Report(
            "meti",
            "経済産業省（安全保障貿易管理）",
            "Ministry of Economy, Trade and Industry (security export control)",
            "requested",
            "速やかに",
            "promptly",
            "機微技術（外為法の規制対象技術）の流出のおそれがある場合、経済産業省への報告が求められています。",
            "Where export-controlled (sensitive) technology may have leaked, METI asks to be informed.",
        ),
    ],
}
CLASSES = tuple(REPORTS)


@dataclass(frozen=True)
class Holding:
    info_class: str
    where: str  # "asset 12 (10.0.0.5)", "store 顧客DB"
    records: int | None
    matched: bool  # the incident reaches it (host match) rather than "held by the tenant"
    source: str = "share"


HoldingSource = Callable[[Session, Incident], list[Holding]]


def tag(
    session: Session,
    tenant_id: str,
    info_class: str,
    *,
    asset_id: int | None = None,
    host: str | None = None,
    store: str | None = None,
    records: int | None = None,
    note: str | None = None,
) -> InfoClassTag:
    if info_class not in CLASSES:
        raise ShareError(f"unknown information class {info_class!r} ({', '.join(CLASSES)})")
    if asset_id is None and host is None and store is None:
        raise ShareError("tag an asset, a host (address or CIDR) or a named data store")
    if asset_id is not None:
        a = session.get(Asset, asset_id)
        if a is None or a.tenant_id != tenant_id:
            raise ShareError(f"tenant {tenant_id!r} has no asset {asset_id}")
    if host is not None:
        try:
            ipaddress.ip_network(host, strict=False)
        except ValueError as exc:
            raise ShareError(f"not an address or CIDR: {host!r}") from exc
    t = InfoClassTag(
        tenant_id=tenant_id,
        info_class=info_class,
        asset_id=asset_id,
        host=host,
        store=store,
        records=records,
        note=note,
    )
    session.add(t)
    session.flush()
    return t


def list_tags(session: Session, tenant_id: str) -> list[InfoClassTag]:
    return list(
        session.scalars(
            select(InfoClassTag).where(InfoClassTag.tenant_id == tenant_id).order_by(InfoClassTag.id)
        )
    )


def incident_hosts(session: Session, inc: Incident) -> set[str]:
    hosts = {k.key.split(":", 1)[1] for k in inc.keys if k.key.startswith("host:")}
    hosts.update(
        h
        for h in session.scalars(
            select(Alert.host).where(Alert.incident_id == inc.id, Alert.tenant_id == inc.tenant_id)
        )
        if h
    )
    return hosts


def _in(host: str, net: str) -> bool:
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(net, strict=False)
    except ValueError:
        return False


def share_tag_holdings(session: Session, inc: Incident) -> list[Holding]:
    hosts = incident_hosts(session, inc)
    out = []
    for t in list_tags(session, inc.tenant_id):
        if t.asset_id is not None:
            a = session.get(Asset, t.asset_id)
            ip = a.ip if a else None
            where = f"asset {t.asset_id}" + (f" ({a.hostname or ip})" if a else "")
            out.append(Holding(t.info_class, where, t.records, bool(ip and ip in hosts)))
        elif t.host is not None:
            out.append(Holding(t.info_class, f"host {t.host}", t.records, any(_in(h, t.host) for h in hosts)))
        else:
            out.append(Holding(t.info_class, f"store {t.store}", t.records, False))
    return out


def data_scope_holdings(session: Session, inc: Incident) -> list[Holding]:
    """Systems tagged with ``mimamori datascope`` (web shops, member databases): personal data
    (sensitive data included) and card data count like this module's own tags."""
    from mimamori.incidents.personal_data import scoped_systems

    out = []
    for sc, touched in scoped_systems(session, inc):
        where = f"system {sc.name or sc.system}"
        if sc.personal_data or sc.sensitive_data:
            out.append(Holding("personal_data", where, sc.persons, touched, source="datascope"))
        if sc.card_data:
            out.append(Holding("card_data", where, sc.persons, touched, source="datascope"))
    return out


HOLDING_SOURCES: list[HoldingSource] = [share_tag_holdings, data_scope_holdings]


def reports_for_incident(session: Session, tenant_id: str | None, incident_id: int) -> dict[str, Any]:
    """Which information classes the incident reaches and which reports may apply."""
    inc = get_incident(session, tenant_id, incident_id)
    holdings = [h for src in HOLDING_SOURCES for h in src(session, inc)]
    reached = sorted({h.info_class for h in holdings if h.matched})
    held = sorted({h.info_class for h in holdings} - set(reached))
    reports: list[dict[str, Any]] = []
    seen: set[str] = set()
    for cls in reached:
        for r in REPORTS.get(cls, []):
            if r.key in seen:
                continue
            seen.add(r.key)
            reports.append(
                {
                    "key": r.key,
                    "because": cls,
                    "authority_ja": r.authority_ja,
                    "authority_en": r.authority_en,
                    "obligation": r.obligation,
                    "deadline_ja": r.deadline_ja,
                    "deadline_en": r.deadline_en,
                    "note_ja": r.note_ja,
                    "note_en": r.note_en,
                }
            )
    reports.sort(key=lambda r: (r["obligation"] != "mandatory", r["key"]))
    return {
        "incident": inc.id,
        "reached": reached,
        "held_elsewhere": held,  # the tenant holds them, the incident is not known to reach them
        "holdings": [h.__dict__ for h in holdings],
        "reports": reports,
    }
