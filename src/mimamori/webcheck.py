"""Payment-page integrity check (card skimming): the scripts a checkout page loads, against a baseline.

A tenant's checkout pages are registered (``checkout_page`` table) with an approved baseline:
each ``<script src>`` (resolved to an absolute URL) with the SHA-256 of the script it
serves, and each inline ``<script>`` by the SHA-256 of its text. A check fetches the page
and every external script again (httpx) and compares:

- a script that is new (an unknown ``src`` or an unknown inline text) or changed (a known
  ``src`` now serving other bytes) is a ``card_skimming`` alert, severity high, grouped by
  page into one incident;
- a script that went away is reported in the result but is no alert (sites remove things);
- a page or script that cannot be fetched is an ``error`` result (no baseline change).

``check_pages`` is the function the platform schedules; ``mimamori webcheck`` is the CLI
(register, approve, list, check). Japanese sites often serve Shift_JIS pages: the page is
decoded by httpx from its headers / meta, scripts are hashed as raw bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Annotated, Any
from urllib.parse import urljoin, urlsplit

import httpx
import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from mimamori.cliutil import DataDir, session
from mimamori.db.models import Tenant
from mimamori.db.models_internet import CheckoutPage
from mimamori.detect.base import AlertDraft

USER_AGENT = "mimamori-webcheck/1 (payment page integrity check)"


@dataclass(frozen=True)
class Script:
    kind: str  # external | inline
    src: str | None
    sha256: str | None  # None: an external script that could not be fetched
    error: str | None = None

    def ident(self) -> str:
        return f"src:{self.src}" if self.kind == "external" else f"inline:{self.sha256}"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "src": self.src, "sha256": self.sha256}


class _ScriptParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str | None, str]] = []  # (src, inline text)
        self._inline: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "script":
            return
        src = dict(attrs).get("src")
        if src:
            self.found.append((src.strip(), ""))
            self._inline = None
        else:
            self._inline = []

    def handle_data(self, data: str) -> None:
        if self._inline is not None:
            self._inline.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._inline is not None:
            text = "".join(self._inline)
            if text.strip():
                self.found.append((None, text))
            self._inline = None


def page_scripts(html: str, base_url: str) -> list[tuple[str | None, str]]:
    """(absolute src or None, inline text) of every script of a page, in order."""
    parser = _ScriptParser()
    parser.feed(html)
    parser.close()
    return [(urljoin(base_url, src) if src else None, text) for src, text in parser.found]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def snapshot(url: str, client: httpx.Client) -> list[Script]:
    """Fetch a page and its external scripts; raises ``httpx.HTTPError`` if the page fails."""
    resp = client.get(url)
    resp.raise_for_status()
    out: list[Script] = []
    seen: set[str] = set()
    for src, text in page_scripts(resp.text, str(resp.url)):
        if src is None:
            script = Script("inline", None, _sha(text.strip().encode("utf-8")))
        else:
            try:
                r = client.get(src)
                r.raise_for_status()
                script = Script("external", src, _sha(r.content))
            except httpx.HTTPError as exc:
                script = Script("external", src, None, f"{type(exc).__name__}: {exc}")
        if script.ident() not in seen:
            seen.add(script.ident())
            out.append(script)
    return out


@dataclass
class CheckResult:
    tenant: str
    url: str
    status: str  # ok | changed | error | no_baseline
    added: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    unverifiable: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "url": self.url,
            "status": self.status,
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "unverifiable": self.unverifiable,
            "error": self.error,
        }


def compare(baseline: list[dict[str, Any]], current: list[Script]) -> tuple[list[Any], list[Any], list[Any]]:
    """(added, changed, removed) scripts of ``current`` against ``baseline``."""
    base_ext = {b["src"]: b for b in baseline if b.get("kind") == "external"}
    base_inline = {b["sha256"] for b in baseline if b.get("kind") == "inline"}
    added: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    now_ext: set[str] = set()
    now_inline: set[str] = set()
    for s in current:
        if s.kind == "external":
            assert s.src is not None
            now_ext.add(s.src)
            old = base_ext.get(s.src)
            if old is None:
                added.append(s.as_dict())
            elif s.sha256 is not None and old.get("sha256") != s.sha256:
                changed.append({**s.as_dict(), "baseline_sha256": old.get("sha256")})
        else:
            assert s.sha256 is not None
            now_inline.add(s.sha256)
            if s.sha256 not in base_inline:
                added.append(s.as_dict())
    removed = [
        b
        for b in baseline
        if (b.get("src") not in now_ext if b.get("kind") == "external" else b.get("sha256") not in now_inline)
    ]
    return added, changed, removed


def _client() -> httpx.Client:
    return httpx.Client(timeout=15.0, follow_redirects=True, headers={"User-Agent": USER_AGENT})


def register_page(
    session: Session,
    tenant_id: str,
    url: str,
    *,
    name: str | None = None,
    client: httpx.Client | None = None,
    approved_by: str = "cli",
    now: datetime | None = None,
) -> CheckoutPage:
    """Register (or re-approve) a checkout page with its current scripts as the baseline."""
    if session.get(Tenant, tenant_id) is None:
        raise ValueError(f"unknown tenant {tenant_id!r}")
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {url!r}")
    own = client is None
    client = client or _client()
    try:
        scripts = snapshot(url, client)
    finally:
        if own:
            client.close()
    broken = [s for s in scripts if s.sha256 is None]
    if broken:
        raise ValueError(
            f"cannot approve a baseline with unreachable scripts: {broken[0].src} ({broken[0].error})"
        )
    page = session.scalar(
        select(CheckoutPage).where(CheckoutPage.tenant_id == tenant_id, CheckoutPage.url == url)
    )
    if page is None:
        page = CheckoutPage(tenant_id=tenant_id, url=url)
        session.add(page)
    page.name = name or page.name
    page.baseline = [s.as_dict() for s in scripts]
    page.approved_at = now or datetime.now(UTC)
    page.approved_by = approved_by
    page.last_status = "ok"
    session.flush()
    return page


def check_pages(
    session: Session,
    tenant_id: str | None = None,
    *,
    client: httpx.Client | None = None,
    now: datetime | None = None,
) -> list[CheckResult]:
    """Check every registered page (of one tenant, or all); changed pages open card-skimming incidents.

    This is the function to schedule (e.g. every 15 minutes). Alerts are deduplicated by page
    and script hash, so a page left tampered with is one incident, not one per check.
    """
    from mimamori.incidents.engine import ingest_alerts

    now = now or datetime.now(UTC)
    stmt = select(CheckoutPage).order_by(CheckoutPage.id)
    if tenant_id is not None:
        stmt = stmt.where(CheckoutPage.tenant_id == tenant_id)
    own = client is None
    client = client or _client()
    results: list[CheckResult] = []
    try:
        for page in session.scalars(stmt).all():
            result = _check_one(page, client)
            page.last_checked_at = now
            page.last_status = result.status
            page.last_result = result.as_dict()
            results.append(result)
            if result.status == "changed":
                tenant = session.get(Tenant, page.tenant_id)
                assert tenant is not None
                ingest_alerts(session, tenant, [_alert(page, result, now)], now=now)
    finally:
        if own:
            client.close()
    session.flush()
    return results


def _check_one(page: CheckoutPage, client: httpx.Client) -> CheckResult:
    if not page.baseline:
        return CheckResult(page.tenant_id, page.url, "no_baseline")
    try:
        scripts = snapshot(page.url, client)
    except httpx.HTTPError as exc:
        return CheckResult(page.tenant_id, page.url, "error", error=f"{type(exc).__name__}: {exc}")
    added, changed, removed = compare(page.baseline, scripts)
    unverifiable = [{"src": s.src, "error": s.error} for s in scripts if s.sha256 is None]
    status = "changed" if added or changed else "ok"
    return CheckResult(page.tenant_id, page.url, status, added, changed, removed, unverifiable)


def _alert(page: CheckoutPage, result: CheckResult, now: datetime) -> AlertDraft:
    site = urlsplit(page.url).hostname or page.url
    what = [f"new script {a['src'] or '(inline)'}" for a in result.added]
    what += [f"changed script {c['src']}" for c in result.changed]
    hashes = sorted(str(x["sha256"]) for x in (*result.added, *result.changed))
    return AlertDraft(
        detector="webcheck",
        kind="card_skimming",
        severity="high",
        title=f"Payment page {page.url} changed: {'; '.join(what)[:300]}",
        first_seen=now,
        last_seen=now,
        keys=[f"page:{page.url}", f"site:{site}"],
        indicator=(result.added or result.changed)[0].get("src"),
        event_count=len(result.added) + len(result.changed),
        evidence={
            "page": page.url,
            "site": site,
            "added": result.added,
            "changed": result.changed,
            "removed": result.removed,
            "baseline_approved_at": page.approved_at.isoformat() if page.approved_at else None,
        },
    ).with_dedup(page.tenant_id, page.url, *hashes)


# ------------------------------------------------------------------------------ CLI

app = typer.Typer(
    no_args_is_help=True, help="Payment-page integrity (card skimming): register, approve, check."
)


@app.command("register")
def cli_register(
    tenant: str,
    url: str,
    name: Annotated[str | None, typer.Option(help="a name for the page")] = None,
    data_dir: DataDir = None,
) -> None:
    """Register a checkout page; its current scripts become the approved baseline."""
    with session(data_dir) as s:
        try:
            page = register_page(s, tenant, url, name=name)
        except (ValueError, httpx.HTTPError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        typer.echo(f"registered {page.url} for {tenant}: {len(page.baseline)} scripts in the baseline")


@app.command("approve")
def cli_approve(tenant: str, url: str, data_dir: DataDir = None) -> None:
    """Approve the page's current scripts as the new baseline (after a legitimate change)."""
    cli_register(tenant, url, None, data_dir)


@app.command("list")
def cli_list(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t")] = None, data_dir: DataDir = None
) -> None:
    """Registered checkout pages and the result of their last check."""
    with session(data_dir) as s:
        stmt = select(CheckoutPage).order_by(CheckoutPage.id)
        if tenant:
            stmt = stmt.where(CheckoutPage.tenant_id == tenant)
        for p in s.scalars(stmt):
            checked = p.last_checked_at or "-"
            typer.echo(
                f"{p.tenant_id}\t{p.url}\t{len(p.baseline)} scripts\t{p.last_status or '-'}\t{checked}"
            )


@app.command("check")
def cli_check(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t")] = None,
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    every: Annotated[
        int, typer.Option(help="repeat every N seconds (0: check once); or schedule with cron/systemd")
    ] = 0,
) -> None:
    """Check registered pages now; exit 1 when a page changed or could not be checked."""
    import json
    import time

    while every > 0:  # a simple scheduler: never returns; each round is its own transaction
        with session(data_dir) as s:
            for r in check_pages(s, tenant):
                if r.status != "ok":
                    typer.echo(f"{datetime.now(UTC).isoformat()}\t{r.status}\t{r.tenant}\t{r.url}")
        time.sleep(every)
    with session(data_dir) as s:
        results = check_pages(s, tenant)
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in results], ensure_ascii=False))
    else:
        for r in results:
            extra = f" added={len(r.added)} changed={len(r.changed)}" if r.status == "changed" else ""
            typer.echo(f"{r.status}\t{r.tenant}\t{r.url}{extra}{' ' + r.error if r.error else ''}")
    if any(r.status in ("changed", "error") for r in results):
        raise typer.Exit(1)


__all__ = ["CheckResult", "app", "check_pages", "compare", "page_scripts", "register_page", "snapshot"]
