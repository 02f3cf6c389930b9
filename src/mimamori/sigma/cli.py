"""``mimamori sigma ...``: hunt with Sigma rules over EVTX/JSON files, no database needed.

``scan`` prints one line per detection (rule id, title, level, ATT&CK tags, file,
EventRecordID, time, computer): JSON lines with ``--json``, otherwise a Rich table and a
summary (rules loaded and failed, files, events, unreadable records). ``update`` installs
the SigmaHQ rule release into the data directory: from the network only with ``--online``
(off by default), or from a release archive already downloaded (``--archive``).
Errors for the user exit with status 2 and no traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mimamori.cliutil import console, err
from mimamori.cliutil import fail as _fail
from mimamori.sigma.cache import rules_cache_dir
from mimamori.sigma.errors import SigmaEngineError
from mimamori.sigma.rules import LEVELS, level_rank, load_rules

sigma_app = typer.Typer(no_args_is_help=True, help="Sigma rules on Windows event logs (EVTX, JSON).")
out = console

RELEASE_URL = "https://github.com/SigmaHQ/sigma/releases/latest/download/sigma_all_rules.zip"


def _tactics(tags: list[str] | None) -> str:
    return ", ".join(t.removeprefix("attack.") for t in (tags or []) if t.startswith("attack."))


@sigma_app.command("scan")
def scan(
    paths: Annotated[list[Path], typer.Argument(help="EVTX/JSON files or folders")],
    rules: Annotated[list[Path], typer.Option("--rules", "-r", help="Sigma rules folder or file")],
    min_level: Annotated[str | None, typer.Option("--min-level", help=" | ".join(LEVELS))] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per detection")] = False,
    cache: Annotated[
        bool, typer.Option("--cache/--no-cache", help="keep compiled rules in <data dir>/cache/sigma")
    ] = True,
    data_dir: Annotated[Path | None, typer.Option("--data-dir")] = None,
) -> None:
    """Scan files or folders with Sigma rules and print the detections."""
    from mimamori.config import Settings
    from mimamori.sigma.scan import ScanStats, event_files, scan_paths

    if min_level is not None and min_level not in LEVELS:
        _fail(f"--min-level must be one of {', '.join(LEVELS)}")
    missing = [str(p) for p in [*paths, *rules] if not p.exists()]
    if missing:
        _fail(f"not found: {', '.join(missing)}")
    cache_dir = rules_cache_dir(Settings.load(data_dir)) if cache else None
    try:
        ruleset = load_rules(rules, min_level=min_level, cache_dir=cache_dir)
    except SigmaEngineError as exc:
        _fail(str(exc))
    if not ruleset.rules:
        _fail(f"no usable Windows Sigma rule under {', '.join(map(str, rules))}")
    files = event_files(paths)
    stats = ScanStats()
    rows: list[dict[str, Any]] = []
    show_bar = not as_json and err.is_terminal and len(files) > 1
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, transient=True, disable=not show_bar,
    ) as bar:  # fmt: skip
        task = bar.add_task("scanning", total=len(files))
        for found in scan_paths(ruleset, files, stats, progress=lambda _p: bar.advance(task)):
            for d in _records(found):
                if as_json:
                    sys.stdout.write(json.dumps(d, ensure_ascii=False) + "\n")
                else:
                    rows.append(d)
    if as_json:
        sys.stdout.flush()
        for issue in stats.issues:
            err.print(f"{issue.path}: {issue.reason}", markup=False, highlight=False)
        return
    rows.sort(key=lambda d: (-level_rank(d["level"]), d["time"] or "", d["file"], d["record_id"] or 0))
    table = Table(title=f"Sigma detections ({len(rows)})")
    for col in ("level", "rule", "ATT&CK", "computer", "time", "file", "record"):
        table.add_column(col, overflow="fold")
    for d in rows:
        table.add_row(
            d["level"], f"{d['title']}\n[dim]{d['rule_id']}[/dim]", _tactics(d["tags"]), d["computer"] or "",
            d["time"] or "", Path(d["file"]).name, str(d["record_id"] or ""),
        )  # fmt: skip
    out.print(table)
    s = ruleset.summary()
    out.print(
        f"{s['rules']} rules loaded ({s['failed']} failed, {s['skipped']} skipped); {stats.files} files, "
        f"{stats.events} events, {stats.bad_records} unreadable records; {len(rows)} detections"
    )
    for issue in stats.issues[:20]:
        out.print(f"[yellow]{issue.path}[/yellow]: {issue.reason}", highlight=False)


def _records(found: pl.DataFrame) -> list[dict[str, Any]]:
    recs = []
    for r in found.iter_rows(named=True):
        ts = r.get("@timestamp")
        recs.append(
            {
                "rule_id": r["rule.id"],
                "title": r["rule.name"],
                "level": r["rule.level"],
                "tags": r["rule.tags"] or [],
                "file": r["log.file.path"],
                "record_id": r["winlog.record_id"],
                "time": ts.isoformat().replace("+00:00", "Z") if ts is not None else None,
                "computer": r.get("Computer"),
                "channel": r.get("Channel"),
                "event_id": r.get("EventID"),
            }
        )
    return recs


@sigma_app.command("rules")
def list_failed(
    rules: Annotated[list[Path], typer.Option("--rules", "-r", help="Sigma rules folder or file")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Load a rule folder and list the rules that could not be used, with the reason."""
    try:
        ruleset = load_rules(rules)
    except SigmaEngineError as exc:
        _fail(str(exc))
    if as_json:
        out.print_json(data={"summary": ruleset.summary(), "issues": [i.as_dict() for i in ruleset.failed]})
        return
    s = ruleset.summary()
    out.print(f"{s['rules']} rules compiled, {s['failed']} failed, {s['skipped']} skipped (not Windows)")
    for i in ruleset.failed:
        out.print(f"[yellow]{i.path}[/yellow]: {i.reason}", highlight=False)


@sigma_app.command("update")
def update(
    online: Annotated[bool, typer.Option("--online", help="download the SigmaHQ release")] = False,
    archive: Annotated[
        Path | None, typer.Option("--archive", help="a release zip already downloaded")
    ] = None,
    url: Annotated[str, typer.Option("--url")] = RELEASE_URL,
    data_dir: Annotated[Path | None, typer.Option("--data-dir")] = None,
) -> None:
    """Install the SigmaHQ rules into <data dir>/sigma-rules (network only with --online)."""
    from mimamori.config import Settings
    from mimamori.sigma.update import install_archive, rules_dir

    settings = Settings.load(data_dir)
    target = rules_dir(settings)
    try:
        if archive is not None:
            n = install_archive(archive.read_bytes(), target, source=str(archive))
        elif online:
            from mimamori.sigma.update import fetch

            n = install_archive(fetch(url), target, source=url)
        else:
            _fail("offline by default: pass --online to download the SigmaHQ release, or --archive ZIP")
            return
    except (SigmaEngineError, OSError) as exc:
        _fail(str(exc))
    out.print(f"{n} rule files installed in {target}")
