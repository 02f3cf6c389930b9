"""``mimamori share ...``: partners, trust groups, TLP permissions, warnings, check requests,
STIX/MISP exchange, information classes and disclosure, from the command line.

Errors for the user (unknown partner, TLP forbids, mail server unreachable) are printed
without a traceback and exit with status 2. Listings take ``--json``.
"""

from __future__ import annotations

import json
import sys
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from mimamori.cliutil import DataDir, JsonOut, console, err, print_table, session
from mimamori.cliutil import print_json as _print_json

share_app = typer.Typer(
    no_args_is_help=True, help="Supply-chain sharing: partners, warnings, TLP, STIX/TAXII/MISP."
)
partner_app = typer.Typer(no_args_is_help=True, help="A tenant's trading partners and their contacts.")
group_app = typer.Typer(no_args_is_help=True, help="Trust groups: members, roles, consent, TAXII keys.")
perm_app = typer.Typer(
    no_args_is_help=True, help="Originators' permissions to pass AMBER to another provider."
)
warn_app = typer.Typer(no_args_is_help=True, help="Warnings to partners: draft, send, chase, who knows.")
check_app = typer.Typer(no_args_is_help=True, help="Check-and-report requests to a trust group.")
info_app = typer.Typer(no_args_is_help=True, help="Information classes and the authority reports they bring.")
disc_app = typer.Typer(no_args_is_help=True, help="Disclosure decision aid and public statement draft.")
block_app = typer.Typer(no_args_is_help=True, help="Block lists UTMs pull (approval, expiry, feed tokens).")
share_app.add_typer(partner_app, name="partner")
share_app.add_typer(group_app, name="group")
share_app.add_typer(perm_app, name="permission")
share_app.add_typer(warn_app, name="warn")
share_app.add_typer(check_app, name="check")
share_app.add_typer(info_app, name="infoclass")
share_app.add_typer(disc_app, name="disclosure")
share_app.add_typer(block_app, name="block")

TlpOpt = Annotated[str, typer.Option("--tlp", help="CLEAR, GREEN, AMBER, AMBER+STRICT or RED")]
SmtpHost = Annotated[str, typer.Option("--smtp-host", envvar="MIMAMORI_SMTP_HOST")]
SmtpPort = Annotated[int, typer.Option("--smtp-port", envvar="MIMAMORI_SMTP_PORT")]
SmtpFrom = Annotated[str, typer.Option("--smtp-from", envvar="MIMAMORI_SMTP_FROM")]
SmtpTls = Annotated[bool, typer.Option("--smtp-starttls", envvar="MIMAMORI_SMTP_STARTTLS")]
AckBase = Annotated[
    str,
    typer.Option("--link-base", envvar="MIMAMORI_SHARE_BASE_URL", help="base URL of the ack/answer links"),
]


def _session(data_dir: Path | None) -> AbstractContextManager[Any]:
    """A migrated session; sharing, TLP and incident errors become a message and exit 2."""
    from mimamori.incidents.engine import IncidentError
    from mimamori.share.partners import ShareError
    from mimamori.share.tlp import TlpViolation

    return session(data_dir, errors=(ShareError, TlpViolation, IncidentError, ValueError))


def _tlp(text: str) -> Any:
    from mimamori.share.tlp import TLP

    try:
        return TLP.parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _smtp(host: str, port: int, sender: str, starttls: bool, base: str) -> Any:
    from mimamori.share.partner_warnings import SmtpConfig

    return SmtpConfig(host=host, port=port, sender=sender, starttls=starttls, ack_base_url=base)


# ------------------------------------------------------------------------------ partners


@partner_app.command("add")
def partner_add(
    tenant: str,
    name: str,
    relation: Annotated[
        str, typer.Option(help="supplier, customer, logistics, outsourcer, site, ...")
    ] = "supplier",
    domain: Annotated[list[str] | None, typer.Option("--domain", help="the partner's mail domain")] = None,
    customer_tenant: Annotated[
        str | None, typer.Option(help="the partner's tenant id, if a customer")
    ] = None,
    language: str = "ja",
    data_dir: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Add a trading partner of a tenant."""
    from mimamori.share.partners import add_partner, partner_dict

    with _session(data_dir) as s:
        out = partner_dict(
            add_partner(
                s,
                tenant,
                name,
                relation=relation,
                domains=domain or [],
                partner_tenant_id=customer_tenant,
                language=language,
            )
        )
    _print_json(out) if as_json else console.print(f"added partner {out['id']} {name}")


@partner_app.command("contact")
def partner_contact(
    tenant: str,
    partner: str,
    name: str,
    email: str,
    phone: str | None = None,
    role: str | None = None,
    kind: Annotated[str, typer.Option(help="staff, or provider (the partner's security provider)")] = "staff",
    data_dir: DataDir = None,
) -> None:
    """Add a contact to a partner."""
    from mimamori.share.partners import add_contact

    with _session(data_dir) as s:
        c = add_contact(s, tenant, partner, name, email, phone=phone, role=role, kind=kind)
        console.print(f"added contact {c.id} to partner {partner}")


@partner_app.command("list")
def partner_list(tenant: str, data_dir: DataDir = None, as_json: JsonOut = False) -> None:
    """List a tenant's partners."""
    from mimamori.share.partners import list_partners, partner_dict

    with _session(data_dir) as s:
        rows = [partner_dict(p) for p in list_partners(s, tenant)]
    if as_json:
        _print_json(rows)
        return
    for r in rows:
        r["contacts"] = ", ".join(c["email"] for c in r["contacts"])
        r["domains"] = ", ".join(r["domains"])
    print_table(rows, ["id", "name", "relation", "domains", "customer_tenant", "contacts"])


# ------------------------------------------------------------------------------ groups


@group_app.command("add")
def group_add(
    slug: str,
    name: str,
    kind: Annotated[str, typer.Option(help="supply_chain or industry")] = "supply_chain",
    lead: Annotated[str | None, typer.Option(help="lead company's tenant id")] = None,
    data_dir: DataDir = None,
) -> None:
    """Create a trust group (a lead company and its suppliers, or an industry group)."""
    from mimamori.share.partners import add_group

    with _session(data_dir) as s:
        g = add_group(s, slug, name, kind=kind, lead_tenant_id=lead)
        console.print(f"created trust group {slug} (TAXII collection {g.collection_id})")


@group_app.command("member")
def group_member(
    slug: str,
    tenant: Annotated[str | None, typer.Option(help="a tenant that joins")] = None,
    partner_of: Annotated[str | None, typer.Option(help="the tenant whose partner joins")] = None,
    partner: Annotated[str | None, typer.Option(help="the partner (id or name) that joins")] = None,
    role: Annotated[str, typer.Option(help="lead, supplier, site, member, provider")] = "member",
    consent: Annotated[bool, typer.Option(help="the member has consented to sharing")] = False,
    by: Annotated[str | None, typer.Option(help="who gave the consent")] = None,
    data_dir: DataDir = None,
) -> None:
    """Add a member (a tenant, or a tenant's partner) to a trust group."""
    from mimamori.share.partners import add_member

    with _session(data_dir) as s:
        m = add_member(
            s,
            slug,
            tenant_id=tenant,
            partner_of=partner_of,
            partner=partner,
            role=role,
            consent=consent,
            consent_by=by,
        )
        console.print(f"member {m.id} added to {slug} as {role}" + (" (consented)" if consent else ""))


@group_app.command("consent")
def group_consent(
    slug: str,
    member: int,
    by: Annotated[str, typer.Option(help="who gave or withdrew consent")],
    withdraw: Annotated[bool, typer.Option(help="withdraw the consent")] = False,
    data_dir: DataDir = None,
) -> None:
    """Record a member's consent (or its withdrawal)."""
    from mimamori.share.partners import set_consent

    with _session(data_dir) as s:
        set_consent(s, slug, member, not withdraw, by=by)
    console.print(f"member {member} of {slug}: consent {'withdrawn' if withdraw else 'given'} by {by}")


@group_app.command("list")
def group_list(
    tenant: Annotated[str | None, typer.Option(help="only groups this tenant belongs to")] = None,
    data_dir: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """List trust groups with their members."""
    from mimamori.share.partners import group_dict, list_groups

    with _session(data_dir) as s:
        rows = [group_dict(s, g) for g in list_groups(s, tenant)]
    if as_json:
        _print_json(rows)
        return
    for r in rows:
        r["members"] = ", ".join(
            f"{m['member']}:{m['name']}({m['role']}{'' if m['consent'] else ', no consent'})"
            for m in r["members"]
        )
    print_table(rows, ["id", "name", "kind", "lead", "collection", "members"])


@group_app.command("key")
def group_key(
    label: str,
    group: Annotated[str | None, typer.Option(help="the trust group (none: provider analyst key)")] = None,
    member: Annotated[int | None, typer.Option(help="the member the key acts for")] = None,
    write: Annotated[bool, typer.Option(help="may add and delete objects")] = False,
    data_dir: DataDir = None,
) -> None:
    """Issue a TAXII bearer token (shown once)."""
    from mimamori.share.partners import add_api_key

    with _session(data_dir) as s:
        _key, token = add_api_key(s, label, group=group, member_id=member, can_write=write)
    sys.stdout.write(token + "\n")


# ------------------------------------------------------------------------------ permissions


@perm_app.command("grant")
def perm_grant(
    tenant: str,
    provider: str,
    by: Annotated[str, typer.Option(help="who at the originator gave permission")],
    max_tlp: Annotated[str, typer.Option(help="AMBER or AMBER+STRICT")] = "AMBER+STRICT",
    incident: Annotated[int | None, typer.Option(help="only this incident")] = None,
    evidence: Annotated[str | None, typer.Option(help="how it was given (mail, contract)")] = None,
    data_dir: DataDir = None,
) -> None:
    """Record the originator's permission to pass its AMBER information to another provider."""
    from mimamori.share.partners import grant_provider_permission

    with _session(data_dir) as s:
        p = grant_provider_permission(
            s, tenant, provider, granted_by=by, max_tlp=_tlp(max_tlp), incident_id=incident, evidence=evidence
        )
        console.print(f"permission {p.id}: {tenant} -> {provider} up to TLP:{p.max_tlp}")


@perm_app.command("revoke")
def perm_revoke(tenant: str, permission: int, data_dir: DataDir = None) -> None:
    """Revoke a permission."""
    from mimamori.share.partners import revoke_provider_permission

    with _session(data_dir) as s:
        revoke_provider_permission(s, tenant, permission)
    console.print(f"permission {permission} revoked")


@perm_app.command("list")
def perm_list(tenant: str, data_dir: DataDir = None, as_json: JsonOut = False) -> None:
    """List a tenant's permissions."""
    from mimamori.share.partners import list_permissions, permission_dict

    with _session(data_dir) as s:
        rows = [permission_dict(p) for p in list_permissions(s, tenant)]
    _print_json(rows) if as_json else print_table(
        rows, ["id", "provider", "max_tlp", "incident", "granted_by", "revoked_at"]
    )


# ------------------------------------------------------------------------------ warnings


@warn_app.command("draft")
def warn_draft(
    tenant: str,
    incident: int,
    tlp: TlpOpt = "AMBER",
    partner: Annotated[list[str] | None, typer.Option("--partner", help="override the recipients")] = None,
    by: Annotated[str, typer.Option(help="the analyst")] = "analyst",
    data_dir: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Draft a warning from an incident to the partners it may reach."""
    from mimamori.share.partner_warnings import draft_warning, warning_dict

    with _session(data_dir) as s:
        out = warning_dict(
            draft_warning(s, tenant, incident, tlp=_tlp(tlp), partners=list(partner or []), created_by=by)
        )
    if as_json:
        _print_json(out)
        return
    console.print(f"warning {out['id']} ({out['tlp']}) to {len(out['recipients'])} contact(s)")
    console.print(out["subject_ja"], markup=False)
    console.print(out["body_ja"], markup=False)


@warn_app.command("send")
def warn_send(
    tenant: str,
    warning: int,
    smtp_host: SmtpHost = "127.0.0.1",
    smtp_port: SmtpPort = 25,
    smtp_from: SmtpFrom = "mimamori@localhost",
    smtp_starttls: SmtpTls = False,
    link_base: AckBase = "http://127.0.0.1:8765",
    data_dir: DataDir = None,
) -> None:
    """Mail a drafted warning (TLP checked per recipient)."""
    from mimamori.share.partner_warnings import send_warning, who_knows

    with _session(data_dir) as s:
        w = send_warning(s, tenant, warning, _smtp(smtp_host, smtp_port, smtp_from, smtp_starttls, link_base))
        rows = [r for r in who_knows(s, tenant, w.incident_id) if r["warning"] == w.id]
    print_table(rows, ["partner", "email", "state", "error"])


@warn_app.command("chase")
def warn_chase(
    after_hours: Annotated[float, typer.Option(help="chase when unacknowledged this long")] = 24.0,
    tenant: Annotated[str | None, typer.Option()] = None,
    max_chases: int = 3,
    smtp_host: SmtpHost = "127.0.0.1",
    smtp_port: SmtpPort = 25,
    smtp_from: SmtpFrom = "mimamori@localhost",
    smtp_starttls: SmtpTls = False,
    link_base: AckBase = "http://127.0.0.1:8765",
    data_dir: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Re-send warnings not acknowledged after the configured time."""
    from mimamori.share.partner_warnings import chase

    with _session(data_dir) as s:
        done = chase(
            s,
            _smtp(smtp_host, smtp_port, smtp_from, smtp_starttls, link_base),
            after=timedelta(hours=after_hours),
            tenant_id=tenant,
            max_chases=max_chases,
        )
        rows = [{"warning": r.warning_id, "email": r.email, "chases": r.chase_count} for r in done]
    _print_json(rows) if as_json else console.print(f"chased {len(rows)} recipient(s)")


@warn_app.command("status")
def warn_status(tenant: str, incident: int, data_dir: DataDir = None, as_json: JsonOut = False) -> None:
    """Who knows: every recipient of the incident's warnings and whether they acknowledged."""
    from mimamori.share.partner_warnings import who_knows

    with _session(data_dir) as s:
        rows = who_knows(s, tenant, incident)
    _print_json(rows) if as_json else print_table(
        rows, ["warning", "partner", "email", "state", "acknowledged_at", "chases"]
    )


# ------------------------------------------------------------------------------ checks


@check_app.command("create")
def check_create(
    group: str,
    title: Annotated[str, typer.Option()],
    instructions: Annotated[str, typer.Option()],
    by: Annotated[str, typer.Option(help="who asks")],
    deadline_hours: Annotated[float, typer.Option(help="answers due in this many hours")] = 48.0,
    indicator: Annotated[list[str] | None, typer.Option("--indicator")] = None,
    requester: Annotated[
        str | None, typer.Option(help="the lead company's tenant id (none: provider)")
    ] = None,
    tlp: TlpOpt = "AMBER",
    data_dir: DataDir = None,
) -> None:
    """Ask a trust group's members to check for a threat and report by a deadline."""
    from mimamori.share.checks import create_request

    with _session(data_dir) as s:
        req = create_request(
            s,
            group,
            title=title,
            instructions=instructions,
            requested_by=by,
            deadline=datetime.now(UTC) + timedelta(hours=deadline_hours),
            indicators=list(indicator or []),
            requester_tenant_id=requester,
            tlp=_tlp(tlp),
        )
        console.print(f"check request {req.id}: {len(req.responses)} member(s) asked")


@check_app.command("send")
def check_send(
    request: int,
    smtp_host: SmtpHost = "127.0.0.1",
    smtp_port: SmtpPort = 25,
    smtp_from: SmtpFrom = "mimamori@localhost",
    smtp_starttls: SmtpTls = False,
    link_base: AckBase = "http://127.0.0.1:8765",
    data_dir: DataDir = None,
) -> None:
    """Mail a check request to the members not yet asked."""
    from mimamori.share.checks import send_request

    with _session(data_dir) as s:
        n = send_request(s, request, _smtp(smtp_host, smtp_port, smtp_from, smtp_starttls, link_base))
    console.print(f"asked {n} member(s)")


@check_app.command("chase")
def check_chase(
    every_hours: Annotated[float, typer.Option(help="re-ask silent members this often")] = 24.0,
    smtp_host: SmtpHost = "127.0.0.1",
    smtp_port: SmtpPort = 25,
    smtp_from: SmtpFrom = "mimamori@localhost",
    smtp_starttls: SmtpTls = False,
    link_base: AckBase = "http://127.0.0.1:8765",
    data_dir: DataDir = None,
) -> None:
    """Chase members who have not answered."""
    from mimamori.share.checks import chase_requests

    with _session(data_dir) as s:
        n = len(
            chase_requests(
                s,
                _smtp(smtp_host, smtp_port, smtp_from, smtp_starttls, link_base),
                every=timedelta(hours=every_hours),
            )
        )
    console.print(f"chased {n} member(s)")


@check_app.command("summary")
def check_summary(request: int, data_dir: DataDir = None, as_json: JsonOut = False) -> None:
    """The combined answers of a check request."""
    from mimamori.share.checks import summary

    with _session(data_dir) as s:
        out = summary(s, request)
    if as_json:
        _print_json(out)
        return
    console.print(f"{out['title']}: {out['answered']}/{out['asked']} answered, counts {out['counts']}")
    print_table(out["members"], ["member", "role", "status", "answered_at", "late", "chases", "findings"])


# ------------------------------------------------------------------------------ exchange


@share_app.command("export")
def export(
    tenant: str,
    incident: int,
    to: Annotated[str, typer.Option(help="public, group:ID, org:NAME, provider:NAME, person:MAIL")],
    tlp: TlpOpt = "AMBER",
    out: Annotated[Path | None, typer.Option(help="write the bundle here (default stdout)")] = None,
    data_dir: DataDir = None,
) -> None:
    """Export an incident as a STIX 2.1 bundle (TLP 2.0 marked, validated)."""
    from mimamori.share.partners import has_provider_permission
    from mimamori.share.stix_export import audience_of, export_incident, validate_bundle
    from mimamori.share.tlp import Reach

    with _session(data_dir) as s:
        aud = audience_of(to)
        label = _tlp(tlp)
        perm = aud.reach is Reach.PROVIDER and has_provider_permission(
            s, tenant, to.partition(":")[2], label, incident
        )
        bundle = export_incident(s, tenant, incident, tlp=label, audience=aud, provider_permission=perm)
    problems = validate_bundle(bundle)
    text = json.dumps(bundle, ensure_ascii=False, indent=1)
    if out:
        out.write_text(text)
        err.print(f"wrote {len(bundle['objects'])} objects to {out}")
    else:
        sys.stdout.write(text + "\n")
    if problems:
        for p in problems:
            err.print(f"[red]stix2-validator:[/] {p}", markup=True)
        raise typer.Exit(1)


@share_app.command("publish")
def publish(tenant: str, incident: int, group: str, tlp: TlpOpt = "AMBER", data_dir: DataDir = None) -> None:
    """Share an incident into a trust group's collection (TAXII and MISP feed)."""
    from mimamori.share.exchange import publish_incident

    with _session(data_dir) as s:
        st = publish_incident(s, tenant, incident, group, tlp=_tlp(tlp))
        console.print(f"published {st.success_count} object(s), {st.failure_count} refused")


@share_app.command("import")
def import_cmd(
    path: Path,
    share_to: Annotated[str | None, typer.Option(help="also pass it on to this trust group")] = None,
    assume_tlp: Annotated[str, typer.Option(help="TLP of unmarked content")] = "AMBER",
    data_dir: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Import a STIX 2.1 bundle's indicators (and optionally pass it on to a group)."""
    from mimamori.share.exchange import import_bundle

    with _session(data_dir) as s:
        res = import_bundle(s, path, share_to=share_to, assume=_tlp(assume_tlp))
        out = {
            "tlp": res.tlp.value if res.tlp else None,
            "stored": res.intel.stored,
            "issues": [str(i) for i in res.intel.issues],
            "shared": res.shared.success_count if res.shared else None,
        }
    _print_json(out) if as_json else console.print(res.intel.summary(), markup=False)


@share_app.command("misp-feed")
def misp_feed(
    group: str,
    out_dir: Path,
    public: Annotated[bool, typer.Option(help="the feed is published openly: TLP:CLEAR only")] = False,
    data_dir: DataDir = None,
) -> None:
    """Write a trust group's MISP feed directory (manifest.json, hashes.csv, events)."""
    from mimamori.share.exchange import write_misp_feed

    with _session(data_dir) as s:
        res = write_misp_feed(s, group, out_dir, public=public)
    console.print(f"{res.events} event(s), {res.attributes} attribute(s) in {out_dir}")
    for w in res.withheld:
        err.print(f"withheld: {w}", markup=False)


# ------------------------------------------------------------------------------ info classes


@info_app.command("tag")
def info_tag(
    tenant: str,
    info_class: Annotated[str, typer.Argument(help="personal_data, card_data or export_controlled")],
    asset: Annotated[int | None, typer.Option(help="asset id")] = None,
    host: Annotated[str | None, typer.Option(help="address or CIDR")] = None,
    store: Annotated[str | None, typer.Option(help="data store name")] = None,
    records: Annotated[int | None, typer.Option(help="rough number of records / people")] = None,
    note: str | None = None,
    data_dir: DataDir = None,
) -> None:
    """Tag an asset, host or data store with an information class."""
    from mimamori.share.infoclass import tag

    with _session(data_dir) as s:
        t = tag(s, tenant, info_class, asset_id=asset, host=host, store=store, records=records, note=note)
        console.print(f"tag {t.id}: {info_class}")


@info_app.command("reports")
def info_reports(tenant: str, incident: int, data_dir: DataDir = None, as_json: JsonOut = False) -> None:
    """Which authority reports may apply to an incident."""
    from mimamori.share.infoclass import reports_for_incident

    with _session(data_dir) as s:
        out = reports_for_incident(s, tenant, incident)
    if as_json:
        _print_json(out)
        return
    reached, held = ", ".join(out["reached"]) or "-", ", ".join(out["held_elsewhere"]) or "-"
    console.print(f"reached: {reached}; held elsewhere: {held}")
    print_table(out["reports"], ["authority_ja", "obligation", "deadline_ja", "because"])


# ------------------------------------------------------------------------------ disclosure


@disc_app.command("assess")
def disc_assess(
    tenant: str,
    incident: int,
    yes: Annotated[list[str] | None, typer.Option("--yes", help="a factor that holds")] = None,
    no: Annotated[list[str] | None, typer.Option("--no", help="a factor that does not hold")] = None,
    affected_people: int | None = None,
    data_dir: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Should the incident be made public? (severe_damage, scope_unknown, many_parties,
    small_group_insufficient)"""
    from mimamori.share.disclosure import FACTORS, assess

    answers = {f: True for f in yes or []} | {f: False for f in no or []}
    bad = set(answers) - set(FACTORS)
    if bad:
        raise typer.BadParameter(f"unknown factor(s) {sorted(bad)}; known: {', '.join(FACTORS)}")
    with _session(data_dir) as s:
        out = assess(s, tenant, incident, answers=answers, affected_people=affected_people).as_dict()
    if as_json:
        _print_json(out)
        return
    console.print(f"recommendation: [bold]{out['recommendation']}[/]")
    for f in FACTORS:
        console.print(f"  {'x' if out['factors'][f] else ' '} {f}: {out['evidence'][f]}", markup=False)
    for r in out["reasons_ja"]:
        console.print(f"  ・{r}", markup=False)


@disc_app.command("draft")
def disc_draft(
    tenant: str,
    incident: int,
    contact: Annotated[str, typer.Option(help="the public contact desk")],
    affected: Annotated[str | None, typer.Option(help="what may be affected, in your words")] = None,
    data_dir: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Draft a public statement (TLP:CLEAR) that leaves out what would help attackers."""
    from mimamori.share.disclosure import draft_statement

    with _session(data_dir) as s:
        out = draft_statement(s, tenant, incident, contact=contact, affected=affected)
    if as_json:
        _print_json(out)
        return
    console.print(out["body_ja"], markup=False)
    console.print("\n" + out["body_en"], markup=False)
    for h in out["attacker_help"]:
        err.print(f"remove before publishing: {h}", markup=False)


# ------------------------------------------------------------------------------ block lists


@block_app.command("add")
def block_add(
    tenant: str,
    kind: Annotated[str, typer.Argument(help="ip, domain or url")],
    value: str,
    by: Annotated[str, typer.Option(help="the analyst")],
    reason: str | None = None,
    days: Annotated[float, typer.Option(help="expires after this many days")] = 30.0,
    data_dir: DataDir = None,
) -> None:
    """Add a live entry to a tenant's block list."""
    from mimamori.share.blocklist import add_entry

    with _session(data_dir) as s:
        e = add_entry(s, tenant, kind, value, by=by, reason=reason, ttl=timedelta(days=days))
        console.print(f"entry {e.id}: {e.value} ({e.state}, expires {e.expires_at:%Y-%m-%d})")


@block_app.command("propose")
def block_propose(
    tenant: str,
    partner_tenant: str,
    incident: int,
    by: Annotated[str, typer.Option(help="the analyst")],
    tlp: TlpOpt = "AMBER",
    data_dir: DataDir = None,
) -> None:
    """Pending entries from a partner's incident (live only after approval)."""
    from mimamori.share.blocklist import propose_from_partner_incident

    with _session(data_dir) as s:
        n = len(propose_from_partner_incident(s, tenant, partner_tenant, incident, by=by, tlp=_tlp(tlp)))
    console.print(f"{n} entr{'y' if n == 1 else 'ies'} pending approval")


@block_app.command("approve")
def block_approve(
    tenant: str,
    entry: int,
    by: Annotated[str, typer.Option(help="the approving analyst")],
    reject: Annotated[bool, typer.Option(help="reject instead")] = False,
    data_dir: DataDir = None,
) -> None:
    """Approve (or reject) a pending entry."""
    from mimamori.share.blocklist import decide_entry

    with _session(data_dir) as s:
        e = decide_entry(s, tenant, entry, approve=not reject, by=by)
        console.print(f"entry {e.id}: {e.state}")


@block_app.command("list")
def block_list(
    tenant: str,
    state: Annotated[str | None, typer.Option(help="pending, active, rejected, expired")] = None,
    data_dir: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """A tenant's block-list entries."""
    from mimamori.share.blocklist import entry_dict, list_entries

    with _session(data_dir) as s:
        rows = [entry_dict(e) for e in list_entries(s, tenant, state)]
    cols = ["id", "type", "value", "state", "source", "expires_at"]
    _print_json(rows) if as_json else print_table(rows, cols)


@block_app.command("expire")
def block_expire(data_dir: DataDir = None) -> None:
    """Mark entries past their expiry."""
    from mimamori.share.blocklist import expire

    with _session(data_dir) as s:
        n = expire(s)
    console.print(f"{n} entr{'y' if n == 1 else 'ies'} expired")


@block_app.command("token")
def block_token(tenant: str, label: str, data_dir: DataDir = None) -> None:
    """A token for a UTM to pull /feeds/<tenant>/<ip|domain|url>.txt (shown once)."""
    from mimamori.share.blocklist import add_feed_token

    with _session(data_dir) as s:
        token = add_feed_token(s, tenant, label)
    sys.stdout.write(token + "\n")
