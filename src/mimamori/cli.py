"""The `mimamori` command line (Typer + Rich). Errors are shown here, at the edge."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mimamori.cliutil import DataDir, JsonOut, console, err
from mimamori.cliutil import print_json as _print_json
from mimamori.cliutil import session as _session
from mimamori.collect.cli import collect_app
from mimamori.config import Settings
from mimamori.incidents.personal_data import app as datascope_app
from mimamori.pipeline import PipelineError, UnknownTenantError
from mimamori.share.cli import share_app
from mimamori.sigma.cli import sigma_app
from mimamori.sources import SourceError
from mimamori.web.cli import tokens_app, users_app
from mimamori.webcheck import app as webcheck_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help="mimamori: watch over small businesses.")
intel_app = typer.Typer(no_args_is_help=True, help="Threat intelligence: import, update, list.")
alerts_app = typer.Typer(no_args_is_help=True, help="Alerts raised by detectors.")
incidents_app = typer.Typer(no_args_is_help=True, help="Incidents: list, show, move through states.")
tenants_app = typer.Typer(no_args_is_help=True, help="SME customers (tenants).")
app.add_typer(intel_app, name="intel")
app.add_typer(alerts_app, name="alerts")
app.add_typer(incidents_app, name="incidents")
app.add_typer(tenants_app, name="tenants")
app.add_typer(share_app, name="share")  # mimamori.share: supply-chain sharing
app.add_typer(sigma_app, name="sigma")  # mimamori.sigma: Sigma rules on Windows event logs
app.add_typer(webcheck_app, name="webcheck")
app.add_typer(datascope_app, name="datascope")
app.add_typer(users_app, name="users")  # mimamori.web: console accounts
app.add_typer(tokens_app, name="tokens")
app.add_typer(collect_app, name="collect")  # mimamori.collect: sensors, syslog senders, spool

TenantOpt = Annotated[str, typer.Option("--tenant", "-t", help="tenant id")]


class CliError(Exception):
    """An error for the user: printed without a traceback, exit status 2."""


def pl_concat(frames: list[Any]) -> Any:
    import polars as pl

    return pl.concat(frames, how="vertical_relaxed")


def _settings(data_dir: Path | None) -> Settings:
    return Settings.load(data_dir)


def _platform(data_dir: Path | None) -> Any:
    from mimamori.pipeline import Platform

    return Platform(_settings(data_dir))


def _progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


# ---------------------------------------------------------------------------- tenants


@tenants_app.command("add")
def tenants_add(
    tenant_id: Annotated[str, typer.Argument(help="short id: lowercase letters, digits, - and _")],
    name: Annotated[str, typer.Option(help="company name")],
    networks: Annotated[str, typer.Option(help="internal networks, comma-separated CIDRs")] = "",
    service_level: Annotated[str, typer.Option(help="standard or premium")] = "standard",
    contact_name: Annotated[str | None, typer.Option()] = None,
    contact_email: Annotated[str | None, typer.Option()] = None,
    contact_phone: Annotated[str | None, typer.Option()] = None,
    retention_days: Annotated[int, typer.Option(help="days of events kept")] = 396,
    data_dir: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Add an SME customer."""
    from mimamori.db.repo import add_tenant, tenant_dict

    with _session(data_dir) as s:
        t = add_tenant(
            s,
            tenant_id,
            name,
            networks=[n for n in networks.split(",") if n.strip()],
            service_level=service_level,
            contact_name=contact_name,
            contact_email=contact_email,
            contact_phone=contact_phone,
            retention_days=retention_days,
        )
        out = tenant_dict(t)
    if as_json:
        _print_json(out)
    else:
        console.print(f"added tenant [bold]{tenant_id}[/] ({name})")


@tenants_app.command("list")
def tenants_list(data_dir: DataDir = None, as_json: JsonOut = False) -> None:
    """List tenants."""
    from mimamori.db.repo import list_tenants, tenant_dict

    with _session(data_dir) as s:
        rows = [tenant_dict(t) for t in list_tenants(s)]
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "name", "networks", "service level")
    for r in rows:
        table.add_row(r["id"], r["name"], ", ".join(r["networks"]), r["service_level"])
    console.print(table)


# ---------------------------------------------------------------------------- ingest


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="files to import (plain or gzip)")],
    tenant: TenantOpt,
    source: Annotated[str, typer.Option("--source", "-s", help="parser name, or 'auto'")] = "auto",
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            "-o",
            help="parser option KEY=VALUE, repeatable (field_map=map.yaml, timezone=Asia/Tokyo, year=2025)",
        ),
    ] = None,
    data_dir: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Import log files for a tenant: parse, archive, detect, group into incidents."""
    options: dict[str, Any] = {}
    for kv in option or []:
        key, sep, value = kv.partition("=")
        if not sep or not key:
            raise CliError(f"--option {kv!r}: expected KEY=VALUE")
        options[key] = int(value) if value.isdigit() else value
    platform = _platform(data_dir)
    reports: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    files = _expand(paths)
    with _progress() as progress:
        task = progress.add_task("ingesting", total=len(files))
        for path in files:
            progress.update(task, description=f"ingesting {path.name}")
            try:
                reports.append(platform.ingest(tenant, source, path, options=options).as_dict())
            except (PipelineError, SourceError, OSError) as exc:
                if isinstance(exc, UnknownTenantError):
                    raise
                failed.append({"path": str(path), "error": str(exc)})
            progress.advance(task)
    if as_json:
        _print_json([*reports, *failed])  # a failed file is {"path", "error"}
    else:
        table = Table(
            "file", "source", "lines", "stored", "quarantined", "skipped", "alerts", "new incidents"
        )
        for r in reports:
            table.add_row(
                r["path"],
                r["source"],
                str(r["lines_read"]),
                str(r["stored"]),
                str(r["quarantined"]),
                str(r["skipped"]),
                str(r["alerts"]),
                str(len(r["incidents_opened"])),
            )
        console.print(table)
        for r in reports:
            for q in r["quarantine_sample"][:5]:
                err.print(f"[yellow]quarantined[/] {r['path']}:{q['log.file.line']}: {q['reason']}")
        for f in failed:
            err.print(f"[red]not ingested[/] {f['path']}: {f['error']}")
    if failed:
        raise SystemExit(1)


def _expand(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file()))
        elif p.is_file():
            out.append(p)
        else:
            raise CliError(f"{p}: no such file or directory")
    return out


# ---------------------------------------------------------------------------- query


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help='DuckDB SQL over tables "events" and "quarantine"')],
    tenant: TenantOpt,
    data_dir: DataDir = None,
    as_json: JsonOut = False,
    limit: Annotated[int, typer.Option(help="rows shown in the table view")] = 50,
) -> None:
    """Run SQL over one tenant's archived events (and only that tenant's)."""
    from mimamori.archive import Archive

    settings = _settings(data_dir)
    df = Archive(settings.archive_dir).query(tenant, sql)
    if as_json:
        _print_json(df.to_dicts())
        return
    table = Table(*df.columns)
    for row in df.head(limit).iter_rows():
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)
    console.print(f"{df.height} rows")


# ---------------------------------------------------------------------------- intel


@intel_app.command("import")
def intel_import(
    paths: Annotated[list[Path], typer.Argument(help="feed files or MISP feed directories")],
    source: Annotated[str | None, typer.Option(help="source name (default: from the file)")] = None,
    retro_days: Annotated[int, typer.Option(help="retro-hunt new indicators over this many days")] = 30,
    data_dir: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Import threat-intel files offline, then retro-hunt the new indicators."""
    from mimamori.db.session import session_scope
    from mimamori.intel import import_paths

    platform = _platform(data_dir)
    for p in paths:
        if not p.exists():
            raise CliError(f"{p}: no such file or directory")
    with session_scope(platform.engine) as s:
        report = import_paths(s, paths, source_name=source)
    platform.refresh_indicators()
    retro = platform.retro_hunt(report.new_indicators, days=retro_days) if retro_days > 0 else {}
    out = _import_dict(report)
    out["retro_hunt"] = {
        t: {"alerts": r.alerts_new, "incidents_opened": r.incidents_opened} for t, r in retro.items()
    }
    if as_json:
        _print_json(out)
        return
    console.print(report.summary())
    for issue in report.issues[:20]:
        err.print(f"[yellow]issue[/] {issue}")
    for tenant_id, r in out["retro_hunt"].items():
        console.print(
            f"retro-hunt: {tenant_id}: {r['alerts']} alerts, {len(r['incidents_opened'])} new incidents"
        )


def _import_dict(report: Any) -> dict[str, Any]:
    return {
        "new": report.new,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "dropped_by_warning_list": report.dropped.height,
        "files": [
            {
                "path": f.path,
                "reader": f.reader,
                "indicators": f.indicators,
                "dropped": f.dropped,
                "skipped": f.skipped,
                "issues": [{"file": i.file, "line": i.line, "reason": i.reason} for i in f.issues],
            }
            for f in report.files
        ],
    }


@intel_app.command("update")
def intel_update(
    feeds: Annotated[Path | None, typer.Option(help="feeds YAML (default: the packaged list)")] = None,
    data_dir: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Download the configured feeds (needs network) and import them."""
    from mimamori.db.session import session_scope
    from mimamori.intel import load_feeds, update

    platform = _platform(data_dir)
    with session_scope(platform.engine) as s:
        result = update(s, load_feeds(feeds), cache_dir=platform.settings.data_dir / "feeds")
    platform.refresh_indicators()
    new = [f.report.new_indicators for f in result.feeds if f.report is not None]
    retro = platform.retro_hunt(pl_concat(new)) if new else {}
    out = {
        "feeds": [
            {
                "name": f.name,
                "url": f.url,
                "ok": f.ok,
                "error": f.error,
                "bytes": f.bytes,
                "import": _import_dict(f.report) if f.report is not None else None,
            }
            for f in result.feeds
        ],
        "retro_hunt": {
            t: {"alerts": r.alerts_new, "incidents_opened": r.incidents_opened} for t, r in retro.items()
        },
    }
    if as_json:
        _print_json(out)
    else:
        for f in out["feeds"]:
            status = "[green]ok[/]" if f["ok"] else f"[red]failed[/]: {f['error']}"
            console.print(f"{f['name']}: {status}")
    if result.failed:
        raise SystemExit(1)


@intel_app.command("list")
def intel_list(
    kind: Annotated[
        str | None, typer.Option("--type", help="ip, cidr, domain, url, md5, sha1, sha256")
    ] = None,
    limit: Annotated[int, typer.Option()] = 50,
    data_dir: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """List stored indicators."""
    from sqlalchemy import select

    from mimamori.db.models import Indicator

    with _session(data_dir) as s:
        stmt = select(Indicator).order_by(Indicator.id).limit(limit)
        if kind:
            stmt = stmt.where(Indicator.type == kind)
        rows = [
            {
                "type": i.type,
                "value": i.value,
                "threat": i.threat,
                "confidence": i.confidence,
                "first_seen": i.first_seen,
                "last_seen": i.last_seen,
                "expires_at": i.expires_at,
            }
            for i in s.scalars(stmt)
        ]
    if as_json:
        _print_json(rows)
        return
    table = Table("type", "value", "threat", "confidence", "last seen", "expires")
    for r in rows:
        table.add_row(
            r["type"],
            r["value"],
            r["threat"] or "",
            str(r["confidence"]),
            str(r["last_seen"] or ""),
            str(r["expires_at"] or ""),
        )
    console.print(table)


# ---------------------------------------------------------------------------- alerts / incidents


@alerts_app.command("list")
def alerts_list(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t")] = None,
    limit: Annotated[int, typer.Option()] = 100,
    data_dir: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """List alerts, newest first."""
    from mimamori.db.repo import alert_dict, list_alerts

    with _session(data_dir) as s:
        rows = [alert_dict(a) for a in list_alerts(s, tenant, limit)]
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "tenant", "incident", "severity", "kind", "title", "events")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["tenant"],
            str(r["incident"]),
            r["severity"],
            r["kind"],
            r["title"],
            str(r["events"]),
        )
    console.print(table)


@incidents_app.command("list")
def incidents_list(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t")] = None,
    state: Annotated[str | None, typer.Option()] = None,
    open_only: Annotated[bool, typer.Option("--open", help="only incidents not yet closed")] = False,
    data_dir: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """List incidents."""
    from mimamori.db.repo import incident_summary, list_incidents

    with _session(data_dir) as s:
        rows = [incident_summary(i) for i in list_incidents(s, tenant, state=state, open_only=open_only)]
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "tenant", "severity", "state", "kind", "alerts", "title")
    for r in rows:
        table.add_row(
            str(r["id"]), r["tenant"], r["severity"], r["state"], r["kind"], str(r["alerts"]), r["title"]
        )
    console.print(table)


@incidents_app.command("show")
def incidents_show(
    incident_id: int,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t")] = None,
    data_dir: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Show an incident: timeline, playbook tasks, alerts."""
    from mimamori.db.repo import incident_detail

    with _session(data_dir) as s:
        d = incident_detail(s, tenant, incident_id)
    if as_json:
        _print_json(d)
        return
    console.print(
        f"[bold]#{d['id']} {d['title']}[/]  {d['tenant']}  {d['kind']}  {d['severity']}  {d['state']}"
    )
    console.print(f"SLA: {d['sla']}")
    if d.get("personal_data"):
        pd = d["personal_data"]
        console.print(
            f"[bold red]個人情報 / personal data[/]: {', '.join(x['system'] for x in pd['systems'])}"
        )
        for trig in pd["triggers"]:
            console.print(f"  報告義務 / report trigger: {trig['ja']} / {trig['en']}")
        for dl in (pd["deadlines"] or {}).values():
            console.print(
                f"  {dl['ja']} / {dl['en']}" + (f"  (due {dl['due_by']})" if "due_by" in dl else "")
            )
    t = Table("at", "actor", "entry", "text", title="timeline")
    for e in d["timeline"]:
        t.add_row(e["at"], e["actor"], e["entry"] + (f" → {e['to']}" if e["to"] else ""), e["text"] or "")
    console.print(t)
    p = Table("done", "phase", "task", title="playbook")
    for task in d["tasks"]:
        p.add_row("✔" if task["done"] else "", task["phase"], f"{task['ja']}\n{task['en']}")
    console.print(p)


@incidents_app.command("transition")
def incidents_transition(
    incident_id: int,
    to_state: Annotated[str, typer.Argument(help="new state")],
    actor: Annotated[str, typer.Option(help="who makes the change")] = "cli",
    note: Annotated[str | None, typer.Option()] = None,
    not_security: Annotated[bool, typer.Option(help="closing: this was not a security incident")] = False,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t")] = None,
    data_dir: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Move an incident to a new state (recorded with time and actor)."""
    from mimamori.db.repo import audit, incident_summary
    from mimamori.incidents.engine import get_incident, transition

    with _session(data_dir) as s:
        inc = get_incident(s, tenant, incident_id)
        before = inc.state
        transition(s, inc, to_state, actor, note, not_security=not_security)
        audit(s, actor, "incident.transition", inc.tenant_id, incident=inc.id, frm=before, to=to_state)
        out = incident_summary(inc)
    if as_json:
        _print_json(out)
    else:
        console.print(f"incident {incident_id}: {before} → {to_state}")


@incidents_app.command("open")
def incidents_open(
    tenant: TenantOpt,
    title: Annotated[str, typer.Option(help="what was reported, in the reporter's words")],
    reporter: Annotated[str, typer.Option(help="who reported it")],
    origin: Annotated[
        str, typer.Option(help="helpdesk (a call or mail) or notice (an outside party)")
    ] = "helpdesk",
    kind: Annotated[str | None, typer.Option(help="incident kind, if already known")] = None,
    actor: Annotated[str, typer.Option()] = "cli",
    data_dir: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Open an incident by hand from a help-desk call or an outside notice."""
    from mimamori.db.models import Tenant
    from mimamori.db.repo import audit, incident_summary
    from mimamori.incidents.engine import open_manual

    with _session(data_dir) as s:
        t = s.get(Tenant, tenant)
        if t is None:
            raise CliError(f"unknown tenant {tenant!r}")
        inc = open_manual(s, t, origin=origin, title=title, reporter=reporter, actor=actor, kind=kind)
        audit(s, actor, "incident.open", tenant, incident=inc.id, origin=origin)
        out = incident_summary(inc)
    if as_json:
        _print_json(out)
    else:
        console.print(f"opened incident {out['id']} ({out['kind']})")


# ---------------------------------------------------------------------------- retention


@app.command()
def retention(data_dir: DataDir = None, as_json: JsonOut = False) -> None:
    """Delete archived events, and the DHCP lease history that explains them, older than each
    tenant's retention period (alerts and incidents are kept until deleted)."""
    from mimamori.assets.inventory import prune_leases
    from mimamori.db.repo import list_tenants
    from mimamori.db.session import session_scope

    platform = _platform(data_dir)
    days: dict[str, int] = {}
    leases: dict[str, int] = {}
    with session_scope(platform.engine) as s:
        for t in list_tenants(s):
            days[t.id] = platform.archive.apply_retention(t.id, t.retention_days)
            leases[t.id] = prune_leases(s, t.id, t.retention_days)
    if as_json:
        _print_json({"days_removed": days, "leases_removed": leases})
    else:
        for tenant in days:
            console.print(f"{tenant}: {days[tenant]} days of events, {leases[tenant]} DHCP leases removed")


# ---------------------------------------------------------------------------- demo / serve


@app.command()
def demo(
    data_dir: DataDir = None,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="run the pipeline and exit")] = False,
    as_json: JsonOut = False,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8765,
    seed: Annotated[int, typer.Option()] = 7,
) -> None:
    """Generate a provider with SME tenants and the incident scenarios, run everything, serve."""
    from mimamori.demo.run import run_demo

    settings = _settings(data_dir or Path(".mimamori/demo"))
    summary = run_demo(settings, seed=seed, progress=None if as_json else err)
    if as_json:
        _print_json(summary)
    else:
        _print_demo(summary)
    if not no_serve:
        from mimamori.serve import serve

        err.print(f"serving the console on http://{host}:{port}/  (API: /api/v1/, Ctrl-C to stop)")
        serve(settings, host=host, port=port)


def _print_demo(summary: dict[str, Any]) -> None:
    table = Table("#", "tenant", "kind", "severity", "state", "alerts", "title", title="incidents")
    for i in summary["incidents"]:
        table.add_row(
            str(i["id"]), i["tenant"], i["kind"], i["severity"], i["state"], str(i["alerts"]), i["title"]
        )
    console.print(table)
    for sc in summary["scenarios"]:
        mark = "[green]caught[/]" if sc["detected"] else "[red]missed[/]"
        console.print(f"scenario {sc['scenario']} ({sc['expected_kind']}, {sc['tenant']}): {mark}")
    console.print(
        f"{len(summary['tenants'])} tenants, {summary['stats']['events']} events stored, "
        f"{summary['stats']['quarantined']} quarantined, {len(summary['incidents'])} incidents"
    )
    console.print("console users (demo passwords; provider users also need the TOTP code):")
    for u in summary.get("users", []):
        line = f"  {u['username']:<8} password {u['password']}  role {u['role']}"
        if u["tenant"]:
            line += f"  tenant {u['tenant']}"
        if u["totp_secret"]:
            line += f"  TOTP secret {u['totp_secret']} (code now {u['totp_now']})"
        console.print(line, soft_wrap=True, highlight=False, markup=False)
    console.print(
        'a current code: .venv/bin/python -c "import pyotp,sys; print(pyotp.TOTP(sys.argv[1]).now())" SECRET',
        soft_wrap=True,
        highlight=False,
        markup=False,
    )


@app.command()
def serve(
    data_dir: DataDir = None,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8765,
    syslog_udp: Annotated[int | None, typer.Option(help="syslog over UDP on this port")] = None,
    syslog_tcp: Annotated[int | None, typer.Option(help="syslog over TCP (RFC 6587)")] = None,
    syslog_tls: Annotated[int | None, typer.Option(help="syslog over TLS (RFC 5425)")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate for --syslog-tls")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key for --syslog-tls")] = None,
) -> None:
    """Serve the web console, the REST and ingest APIs and the syslog receivers."""
    from mimamori.collect.config import CollectConfig
    from mimamori.serve import serve as run

    settings = _settings(data_dir)
    collect = CollectConfig.load(
        settings, host=host, syslog_udp=syslog_udp, syslog_tcp=syslog_tcp, syslog_tls=syslog_tls,
        tls_cert=tls_cert, tls_key=tls_key,
    )  # fmt: skip
    run(settings, host=host, port=port, collect=collect)


@app.command()
def worker(
    data_dir: DataDir = None,
    nats: Annotated[str | None, typer.Option(envvar="MIMAMORI_NATS_URL", help="NATS server URL(s)")] = None,
    ack_wait: Annotated[float, typer.Option(help="seconds before an unacked batch is redelivered")] = 30.0,
    name: Annotated[str, typer.Option(help="name in the log")] = "worker",
) -> None:
    """Store batches from NATS JetStream (scale-out mode; see docs/scale-out.md)."""
    from mimamori.collect.cli import run_worker_cli

    run_worker_cli(_settings(data_dir), nats, ack_wait=ack_wait, name=name)


def main() -> None:
    from mimamori.archive import ArchiveError
    from mimamori.db.repo import RepoError
    from mimamori.incidents.catalog import CatalogError
    from mimamori.incidents.engine import IncidentError
    from mimamori.pipeline import PipelineError
    from mimamori.sources import SourceError

    errors: tuple[type[Exception], ...] = (
        CliError,
        ArchiveError,
        RepoError,
        IncidentError,
        PipelineError,
        SourceError,
        CatalogError,
    )
    from mimamori.intel import IntelError

    errors = (*errors, IntelError)
    try:
        app(standalone_mode=False)
    except errors as exc:
        err.print(f"[red]error:[/] {exc}")
        raise SystemExit(2) from None
    except (typer.Abort, KeyboardInterrupt):
        raise SystemExit(130) from None
    except Exception as exc:
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        raise


if __name__ == "__main__":
    main()
