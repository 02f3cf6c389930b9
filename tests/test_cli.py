"""The command line as a person or a script uses it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from mimamori.cli import app

runner = CliRunner()


def run(home: Path, *args: str) -> str:
    result = runner.invoke(app, [*args, "--data-dir", str(home)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_tenant_ingest_incident_query_flow(tmp_path):
    home = tmp_path / "home"
    out = json.loads(
        run(
            home,
            "tenants",
            "add",
            "yamada",
            "--name",
            "山田製作所",
            "--networks",
            "192.168.10.0/24",
            "--json",
        )
    )
    assert out["networks"] == ["192.168.10.0/24"]
    assert [t["id"] for t in json.loads(run(home, "tenants", "list", "--json"))] == ["yamada"]

    intel = tmp_path / "list.txt"
    intel.write_text("198.51.100.50\nevil-update.example\n")
    imported = json.loads(run(home, "intel", "import", str(intel), "--json"))
    assert imported["retro_hunt"] == {}
    listed = json.loads(run(home, "intel", "list", "--json"))
    assert {i["value"] for i in listed} == {"198.51.100.50", "evil-update.example"}

    dns = tmp_path / "dns.log"
    dns.write_text(
        json.dumps(
            {
                "ts": 1744700000.5,
                "uid": "Cx1",
                "id.orig_h": "192.168.10.7",
                "id.orig_p": 5353,
                "id.resp_h": "192.168.10.1",
                "id.resp_p": 53,
                "proto": "udp",
                "query": "cdn.evil-update.example",
                "qtype_name": "A",
                "rcode_name": "NOERROR",
                "answers": ["198.51.100.50"],
            }
        )
        + "\n"
    )
    reports = json.loads(run(home, "ingest", "--tenant", "yamada", "--source", "auto", str(dns), "--json"))
    assert reports[0]["source"] == "zeek" and reports[0]["stored"] == 1 and reports[0]["alerts"] == 1

    incidents = json.loads(run(home, "incidents", "list", "--json"))
    assert [(i["tenant"], i["kind"], i["state"]) for i in incidents] == [
        ("yamada", "malicious_destination", "new")
    ]
    inc_id = str(incidents[0]["id"])
    moved = json.loads(
        run(home, "incidents", "transition", inc_id, "triage", "--actor", "analyst1", "--json")
    )
    assert moved["state"] == "triage"
    detail = json.loads(run(home, "incidents", "show", inc_id, "--json"))
    assert detail["timeline"][-1]["actor"] == "analyst1" and detail["tasks"]
    alerts = json.loads(run(home, "alerts", "list", "--json"))
    assert alerts[0]["indicator"] == "evil-update.example"

    rows = json.loads(
        run(home, "query", "--tenant", "yamada", 'SELECT "dns.question.name" AS q FROM events', "--json")
    )
    assert rows == [{"q": "cdn.evil-update.example"}]

    opened = json.loads(
        run(
            home,
            "incidents",
            "open",
            "--tenant",
            "yamada",
            "--title",
            "PCが遅い",
            "--reporter",
            "山田",
            "--json",
        )
    )
    assert opened["kind"] == "helpdesk_report"

    # the event is from April 2025: older than the default 13 months, so retention removes it
    removed = json.loads(run(home, "retention", "--json"))
    assert removed == {"days_removed": {"yamada": 1}, "leases_removed": {"yamada": 0}}
    assert json.loads(
        run(home, "query", "--tenant", "yamada", "SELECT count(*) AS n FROM events", "--json")
    ) == [{"n": 0}]


def test_errors_are_shown_without_traceback_and_exit_2(tmp_path):
    home = str(tmp_path / "home")
    cmd = [sys.executable, "-m", "mimamori.cli"]
    p = subprocess.run(
        [*cmd, "ingest", "--tenant", "nobody", "--data-dir", home, __file__], capture_output=True, text=True
    )
    assert p.returncode == 2 and "unknown tenant" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run(
        [*cmd, "incidents", "transition", "99", "triage", "--data-dir", home], capture_output=True, text=True
    )
    assert p.returncode == 2 and "not found" in p.stderr
    p = subprocess.run(
        [*cmd, "query", "--tenant", "x", "SELEKT", "--data-dir", home], capture_output=True, text=True
    )
    assert p.returncode == 2 and "error" in p.stderr


def test_ingest_passes_parser_options(tmp_path):
    root = Path(__file__).resolve().parents[1]
    home = tmp_path / "home"
    run(home, "tenants", "add", "acme", "--name", "Acme")
    out = json.loads(
        run(
            home,
            "ingest",
            "--tenant",
            "acme",
            "--source",
            "ndjson",
            "--option",
            f"field_map={root / 'src/mimamori/sources/maps/example.yaml'}",
            str(root / "tests/data/acme_proxy.ndjson"),
            "--json",
        )
    )
    assert (out[0]["stored"], out[0]["quarantined"], out[0]["skipped"]) == (3, 3, 1)
    bad = runner.invoke(
        app,
        [
            "ingest",
            "--tenant",
            "acme",
            "--source",
            "zeek",
            "--option",
            "nope=1",
            str(root / "tests/data/acme_proxy.ndjson"),
            "--data-dir",
            str(home),
        ],
    )
    assert bad.exit_code != 0


def test_a_file_that_cannot_be_ingested_is_reported_and_the_rest_go_on(tmp_path):
    home = tmp_path / "home"
    run(home, "tenants", "add", "acme", "--name", "Acme")
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "a_notes.txt").write_text("just some notes\n")
    (folder / "b_conn.log").write_text(
        json.dumps(
            {
                "ts": 1744700000.0,
                "uid": "C1",
                "id.orig_h": "10.0.0.1",
                "id.orig_p": 1,
                "id.resp_h": "10.0.0.2",
                "id.resp_p": 80,
                "proto": "tcp",
            }
        )
        + "\n"
    )
    result = runner.invoke(
        app, ["ingest", "--tenant", "acme", str(folder), "--json", "--data-dir", str(home)]
    )
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert [("error" in r, Path(r["path"]).name) for r in out] == [
        (False, "b_conn.log"),
        (True, "a_notes.txt"),
    ]
    assert out[0]["stored"] == 1 and "not recognised" in out[1]["error"]
