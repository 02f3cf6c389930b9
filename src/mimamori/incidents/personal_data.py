"""Personal data in scope: the Personal Information Protection Commission's duties for an incident.

A tenant tags the systems that hold personal data or card data (``data_scope`` table: an
address, a host or site name, or a URL prefix). When an incident touches such a system (an
alert's host or server, the site or page in its evidence, a ``site:``/``page:``/``enum:``
key), its detail shows which of the PPC's mandatory-report triggers hold and the report
deadlines, counted from the moment the leak was suspected (the incident's first evidence,
or when it was opened), as REFERENCE.md states them:

(1) sensitive personal data; (2) data whose misuse can cause financial loss (card numbers);
(3) a possibly wrongful purpose (unauthorised access, web skimming); (4) more than 1,000
persons. A suspected leak counts. Preliminary report promptly (in practice 3-5 days); final
report within 30 days, 60 days for case (3). Data under strong encryption is exempt.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from mimamori.cliutil import DataDir, session
from mimamori.db.models import Alert, Incident
from mimamori.db.models_internet import DataScope

#: incident kinds that mean unauthorised access or data being collected (trigger 3)
WRONGFUL_KINDS = frozenset(
    {
        "web_attack",
        "web_shell",
        "member_data_enumeration",
        "credential_stuffing",
        "account_takeover",
        "mailbox_rule",
        "impossible_travel",
        "legacy_auth_signin",
        "card_skimming",
        "ransomware",
        "malware_infection",
        "emotet",
        "banking_malware",
        "lateral_movement",
    }
)

TRIGGERS = {
    "sensitive": {"ja": "要配慮個人情報が含まれる", "en": "sensitive personal data (要配慮個人情報)"},
    "financial": {
        "ja": "不正に利用されると財産的被害が生じるおそれ（クレジットカード番号等）",
        "en": "data whose misuse can cause financial loss (card numbers)",
    },
    "wrongful": {
        "ja": "不正の目的によるおそれ（不正アクセス・ウェブスキミング等）",
        "en": "possibly a wrongful purpose (unauthorised access, web skimming)",
    },
    "over_1000": {"ja": "本人の数が1,000人を超える", "en": "more than 1,000 persons"},
}


def incident_names(alerts: Iterable[Alert], keys: Iterable[str]) -> set[str]:
    """Everything an incident may name a system by: addresses, hosts, sites, page URLs."""
    out: set[str] = set()
    for a in alerts:
        if a.host:
            out.add(a.host)
        ev = a.evidence or {}
        for field in ("site", "server", "page"):
            value = ev.get(field)
            if isinstance(value, str) and value:
                out.add(value)
    for k in keys:
        prefix, _, value = k.partition(":")
        if prefix in ("site", "page", "enum", "webshell", "host", "user") and value:
            out.add(value)
    for n in list(out):
        if "://" in n:
            host = urlsplit(n).hostname
            if host:
                out.add(host)
    return {n.lower() for n in out}


def scope_matches(scope: DataScope, names: set[str]) -> bool:
    system = scope.system.strip().lower()
    if "://" in system:  # a URL prefix: a page under it, or the host of it
        host = (urlsplit(system).hostname or "").lower()
        return any(n.startswith(system) for n in names) or host in names
    return system in names


def ppc_obligations(session: Session, inc: Incident, alerts: Iterable[Alert]) -> dict[str, Any] | None:
    """The PPC duties of an incident touching a tagged system, or None when it touches none."""
    alerts = list(alerts)
    scopes = session.scalars(select(DataScope).where(DataScope.tenant_id == inc.tenant_id)).all()
    if not scopes:
        return None
    names = incident_names(alerts, [k.key for k in inc.keys])
    touched = [s for s in scopes if scope_matches(s, names)]
    if not touched:
        return None
    exposed = [s for s in touched if not s.encrypted]
    triggers: list[str] = []
    if any(s.sensitive_data for s in exposed):
        triggers.append("sensitive")
    if any(s.card_data for s in exposed):
        triggers.append("financial")
    if exposed and inc.kind in WRONGFUL_KINDS:
        triggers.append("wrongful")
    if sum(s.persons or 0 for s in exposed) > 1000:
        triggers.append("over_1000")
    suspected: datetime = inc.first_seen or inc.opened_at
    final_days = 60 if "wrongful" in triggers else 30
    mandatory = bool(triggers)
    return {
        "systems": [
            {
                "system": s.system,
                "name": s.name,
                "personal_data": s.personal_data,
                "card_data": s.card_data,
                "sensitive_data": s.sensitive_data,
                "persons": s.persons,
                "encrypted": s.encrypted,
            }
            for s in touched
        ],
        "report_mandatory": mandatory,
        "triggers": [{"key": t, **TRIGGERS[t]} for t in triggers],
        "suspected_at": suspected.isoformat(),
        "deadlines": (
            {
                "preliminary": {
                    "due_by": (suspected + timedelta(days=5)).isoformat(),
                    "ja": "速報：速やかに（把握から3〜5日以内が目安）",
                    "en": "preliminary report: promptly (in practice within 3-5 days)",
                },
                "final": {
                    "due_by": (suspected + timedelta(days=final_days)).isoformat(),
                    "ja": f"確報：{final_days}日以内",
                    "en": f"final report: within {final_days} days",
                },
                "notify_persons": {"ja": "本人への通知が必要", "en": "the persons affected must be told"},
            }
            if mandatory
            else None
        ),
        "exempt_reason": (
            {
                "ja": "高度な暗号化で保護されているため報告対象外",
                "en": "exempt: protected by strong encryption",
            }
            if touched and not exposed
            else None
        ),
    }


def _alerts(session: Session, inc: Incident) -> list[Alert]:
    return list(
        session.scalars(select(Alert).where(Alert.incident_id == inc.id, Alert.tenant_id == inc.tenant_id))
    )


def incident_personal_data(session: Session, inc: Incident) -> dict[str, Any] | None:
    return ppc_obligations(session, inc, _alerts(session, inc))


def scoped_systems(session: Session, inc: Incident) -> list[tuple[DataScope, bool]]:
    """Every data scope of the incident's tenant, and whether the incident touches it: what
    ``mimamori.share.infoclass`` counts as holdings next to its own tags."""
    scopes = session.scalars(select(DataScope).where(DataScope.tenant_id == inc.tenant_id)).all()
    if not scopes:
        return []
    names = incident_names(_alerts(session, inc), [k.key for k in inc.keys])
    return [(sc, scope_matches(sc, names)) for sc in scopes]


# ------------------------------------------------------------------------------ CLI

app = typer.Typer(no_args_is_help=True, help="Systems holding personal or card data (PPC report duties).")


@app.command("add")
def cli_add(
    tenant: str,
    system: Annotated[str, typer.Argument(help="address, host/site name, URL prefix or mailbox")],
    name: Annotated[str | None, typer.Option(help="what the system is")] = None,
    card: Annotated[bool, typer.Option("--card", help="holds card numbers")] = False,
    sensitive: Annotated[bool, typer.Option("--sensitive", help="holds sensitive personal data")] = False,
    persons: Annotated[int | None, typer.Option(help="about how many people")] = None,
    encrypted: Annotated[bool, typer.Option("--encrypted", help="strongly encrypted (exempt)")] = False,
    data_dir: DataDir = None,
) -> None:
    """Tag a system of a tenant as holding personal data (and card / sensitive data)."""
    from mimamori.db.models import Tenant

    with session(data_dir) as s:
        if s.get(Tenant, tenant) is None:
            typer.echo(f"error: unknown tenant {tenant!r}", err=True)
            raise typer.Exit(2)
        scope = s.scalar(select(DataScope).where(DataScope.tenant_id == tenant, DataScope.system == system))
        if scope is None:
            scope = DataScope(tenant_id=tenant, system=system)
            s.add(scope)
        scope.name, scope.card_data, scope.sensitive_data = name, card, sensitive
        scope.persons, scope.encrypted, scope.personal_data = persons, encrypted, True
    typer.echo(f"{tenant}: {system} tagged as holding personal data" + (" and card data" if card else ""))


@app.command("list")
def cli_list(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t")] = None, data_dir: DataDir = None
) -> None:
    """Tagged systems."""
    with session(data_dir) as s:
        stmt = select(DataScope).order_by(DataScope.tenant_id, DataScope.id)
        if tenant:
            stmt = stmt.where(DataScope.tenant_id == tenant)
        for d in s.scalars(stmt):
            flags = ",".join(f for f, on in (("card", d.card_data), ("sensitive", d.sensitive_data),
                                               ("encrypted", d.encrypted)) if on)  # fmt: skip
            typer.echo(f"{d.tenant_id}\t{d.system}\t{d.name or '-'}\t{d.persons or '-'}\t{flags or '-'}")


__all__ = ["TRIGGERS", "WRONGFUL_KINDS", "app", "incident_personal_data", "ppc_obligations"]
