"""The demo: a provider with SME tenants, generated telemetry for the scenarios, the whole
pipeline run on it, and a summary of what was caught.

The demo owns its data directory: it is recreated on every run (a marker file guards
against wiping a directory the demo did not create).
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mimamori.config import Settings
from mimamori.db import repo
from mimamori.db.models import Asset
from mimamori.db.session import session_scope
from mimamori.demo import endpoint as endpoint_demo
from mimamori.demo import internet as internet_demo
from mimamori.pipeline import PipelineError, Platform

MARKER = ".mimamori-demo"


def _fresh_dir(path: Path) -> None:
    if path.exists() and any(path.iterdir()) and not (path / MARKER).exists():
        raise PipelineError(f"{path} is not empty and was not made by the demo; choose another --data-dir")
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / MARKER).write_text("made by `mimamori demo`; deleted and recreated on each run\n")


def run_demo(settings: Settings, *, seed: int = 7, progress: Console | None = None) -> dict[str, Any]:
    from mimamori.demo.generate import generate
    from mimamori.intel import import_paths

    _fresh_dir(settings.data_dir)
    start = (datetime.now(UTC) - timedelta(hours=24)).replace(minute=0, second=0, microsecond=0)
    manifest = generate(settings.data_dir / "telemetry", seed=seed, start=start, hours=24)
    internet_demo.extend_manifest(settings.data_dir / "telemetry", seed=seed, start=start, hours=24)
    endpoint_demo.extend_manifest(settings.data_dir / "telemetry", seed=seed, start=start, hours=24)
    man: dict[str, Any] = json.loads((settings.data_dir / "telemetry" / "manifest.json").read_text("utf-8"))
    del manifest

    platform = Platform(settings)
    with session_scope(platform.engine) as s:
        for t in man["tenants"]:
            repo.add_tenant(
                s,
                t["id"],
                t["name"],
                networks=t.get("networks") or [],
                service_level=t.get("service_level", "standard"),
                contact_name=t.get("contact_name"),
                contact_email=t.get("contact_email"),
                contact_phone=t.get("contact_phone"),
                sites=t.get("sites") or [],
                actor="demo",
            )
        s.flush()
        for a in man.get("assets", []):  # devices the provider already knows (e.g. an isolated PC)
            s.add(
                Asset(
                    tenant_id=a["tenant"],
                    mac=a.get("mac"),
                    ip=a.get("ip"),
                    hostname=a.get("hostname"),
                    os_name=a.get("os_name"),
                    isolated=bool(a.get("isolated", False)),
                    has_antimalware=a.get("has_antimalware"),
                    has_endpoint_agent=a.get("has_endpoint_agent"),
                    notes=a.get("note"),
                )
            )
    telemetry = settings.data_dir / "telemetry"
    intel_files = [telemetry / p for p in man.get("intel", [])] or sorted((telemetry / "intel").iterdir())
    with session_scope(platform.engine) as s:
        intel_report = import_paths(s, intel_files)
    platform.refresh_indicators()

    files = man["files"]
    stats = {"files": len(files), "lines": 0, "events": 0, "quarantined": 0, "alerts": 0}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=progress,
        transient=True,
        disable=progress is None or not progress.is_terminal,
    ) as bar:
        task = bar.add_task("running the pipeline", total=len(files))
        for f in files:
            r = platform.ingest(f["tenant"], f["source"], telemetry / f["path"])
            stats["lines"] += r.lines_read
            stats["events"] += r.stored
            stats["quarantined"] += r.quarantined
            stats["alerts"] += r.alerts
            bar.advance(task)
    internet_demo.after_ingest(platform.engine, telemetry)  # scenario 11's page check, data tags

    with session_scope(platform.engine) as s:
        incidents = [
            {
                "id": i.id,
                "tenant": i.tenant_id,
                "kind": i.kind,
                "severity": i.severity,
                "state": i.state,
                "alerts": i.alert_count,
                "title": i.title,
            }
            for i in repo.list_incidents(s, None)
        ]
        tenants = [repo.tenant_dict(t) for t in repo.list_tenants(s)]
    scenarios = []
    for sc in man.get("scenarios", []):
        found = [
            i["id"] for i in incidents if i["tenant"] == sc["tenant"] and i["kind"] == sc["expected_kind"]
        ]
        related = [
            i["id"]
            for i in incidents
            if i["tenant"] == sc["tenant"]
            and i["kind"] in sc.get("also_expected", [])
            and i["id"] not in found
        ]
        scenarios.append(
            {
                "scenario": sc["scenario"],
                "tenant": sc["tenant"],
                "expected_kind": sc["expected_kind"],
                "detected": bool(found),
                "incidents": found,
                "related_incidents": related,
            }
        )
    from mimamori.demo.share import warn_partners  # supply-chain warnings (mimamori.share)

    warnings = warn_partners(platform.engine, man, scenarios, settings.data_dir / "outbox")
    from mimamori.demo.web import add_demo_sensors, add_demo_users  # the web console's accounts

    silent = add_demo_sensors(platform.engine)
    users = add_demo_users(platform.engine, [t["id"] for t in tenants])
    return {
        "data_dir": str(settings.data_dir),
        "warnings": warnings,
        "users": users,
        "silent_sensors": silent,
        "tenants": tenants,
        "incidents": incidents,
        "scenarios": scenarios,
        "stats": stats,
        "intel": {"indicators_new": intel_report.new, "issues": len(intel_report.issues)},
    }
