"""``mimamori sigma scan|rules|update`` end to end (Typer runner, real EVTX from the corpus)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mimamori.cli import app
from mimamori.detect.sigma import builtin_rules_dir

runner = CliRunner()
ATOMIC = "evtx-attack-samples/AutomatedTestingTools"


def _run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False, env={"COLUMNS": "250"})


@pytest.mark.corpus
def test_scan_json_lines_on_a_folder(corpus: Path) -> None:
    r = _run("sigma", "scan", "--rules", str(builtin_rules_dir()), "--json", str(corpus / ATOMIC))
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert rows, r.output
    keys = {"rule_id", "title", "level", "tags", "file", "record_id", "time", "computer"}
    assert all(keys <= set(d) for d in rows)
    shadow = [d for d in rows if d["title"] == "Shadow Copies or Backups Deleted"]
    assert {(Path(d["file"]).name, d["computer"]) for d in shadow} == {
        ("PanacheSysmon_vs_AtomicRedTeam01.evtx", "MSEDGEWIN10")
    }
    first = min(shadow, key=lambda d: d["record_id"])
    assert first["record_id"] == 3639 and first["time"] == "2019-07-19T14:47:40.706040Z"
    assert first["level"] == "critical" and "attack.t1490" in first["tags"]


@pytest.mark.corpus
def test_scan_table_and_min_level(corpus: Path) -> None:
    r = _run("sigma", "scan", "-r", str(builtin_rules_dir()), "--min-level", "critical", str(corpus / ATOMIC))
    assert r.exit_code == 0, r.output
    assert "Shadow Copies or Backups Deleted" in r.stdout
    assert "PowerShell With an Encoded" not in r.stdout  # high, below the floor
    assert "rules loaded" in r.stdout and "detections" in r.stdout


@pytest.mark.corpus
def test_scan_with_sigmahq_rules_gives_what_the_engine_gives(corpus: Path) -> None:
    from mimamori.sigma.rules import load_rules
    from mimamori.sigma.scan import scan_paths

    rules = corpus / "sigma/rules/windows/powershell"
    target = corpus / "evtx-attack-samples"
    r = _run("sigma", "scan", "-r", str(rules), "--json", str(target))
    assert r.exit_code == 0, r.output
    got = {(d["rule_id"], d["file"], d["record_id"]) for d in map(json.loads, r.stdout.splitlines())}
    want = set()
    for frame in scan_paths(load_rules([rules]), [target]):
        want |= set(frame.select("rule.id", "log.file.path", "winlog.record_id").iter_rows())
    assert got == want and len(got) >= 5


def test_scan_reports_bad_input_and_goes_on(tmp_path: Path) -> None:
    (tmp_path / "broken.evtx").write_bytes(b"ElfFile\x00" + b"\x00" * 100)
    (tmp_path / "bad.json").write_text('{"EventID": 4688, "Channel": "Security"}\n{oops\n', encoding="utf-8")
    r = _run("sigma", "scan", "-r", str(builtin_rules_dir()), "--json", str(tmp_path))
    assert r.exit_code == 0
    assert "broken.evtx" in r.stderr and "bad.json" in r.stderr


def test_scan_usage_errors(tmp_path: Path) -> None:
    r = runner.invoke(app, ["sigma", "scan", "-r", str(tmp_path / "nope"), str(tmp_path)])
    assert r.exit_code == 2 and "not found" in r.stderr
    r = runner.invoke(app, ["sigma", "scan", "-r", str(tmp_path), str(tmp_path)])
    assert r.exit_code == 2 and "no usable Windows Sigma rule" in r.stderr
    r = runner.invoke(app, ["sigma", "scan", "-r", str(tmp_path), "--min-level", "severe", str(tmp_path)])
    assert r.exit_code == 2


def test_rules_lists_failures(tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text("title: x\nlogsource: {product: windows, service: security}\n"
                                      "detection: {sel: {A|nosuch: 1}, condition: sel}\n")  # fmt: skip
    r = _run("sigma", "rules", "-r", str(tmp_path), "--json")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["summary"]["failed"] == 1 and "nosuch" in doc["issues"][0]["reason"]


def _zip(entries: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in entries.items():
            zf.writestr(name, text)
    return buf.getvalue()


def test_update_is_offline_unless_asked(tmp_path: Path) -> None:
    r = runner.invoke(app, ["sigma", "update", "--data-dir", str(tmp_path)])
    assert r.exit_code == 2 and "--online" in r.stderr
    rule = (builtin_rules_dir() / "shadow_copy_deletion.yml").read_text(encoding="utf-8")
    z = tmp_path / "sigma_all_rules.zip"
    z.write_bytes(_zip({"rules/windows/a.yml": rule, "README.md": "x"}))
    r = _run("sigma", "update", "--archive", str(z), "--data-dir", str(tmp_path))
    assert r.exit_code == 0 and "1 rule files installed" in r.stdout
    assert (tmp_path / "sigma-rules/rules/windows/a.yml").read_text(encoding="utf-8") == rule
    z.write_bytes(_zip({"../evil.yml": rule}))
    r = runner.invoke(app, ["sigma", "update", "--archive", str(z), "--data-dir", str(tmp_path)])
    assert r.exit_code == 2 and "unsafe path" in r.stderr
    assert (tmp_path / "sigma-rules/rules/windows/a.yml").exists()  # the old set is kept
    z.write_bytes(b"not a zip")
    r = runner.invoke(app, ["sigma", "update", "--archive", str(z), "--data-dir", str(tmp_path)])
    assert r.exit_code == 2 and "not a zip" in r.stderr
