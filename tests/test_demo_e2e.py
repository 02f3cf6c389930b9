"""The demo end to end: generated telemetry through the whole pipeline, scenarios caught."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mimamori.config import Settings
from mimamori.demo.run import run_demo

REQUIRED = {
    1: "isolated_asset_external",
    2: "malicious_destination",
    3: "rogue_router",
    4: "outbound_attack",
    5: "emotet",
    6: "malware_mail_campaign",
    7: "banking_malware",
    8: "account_takeover",
    9: "ransomware",
    10: "member_data_enumeration",
    11: "card_skimming",
}


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    return run_demo(Settings.load(tmp_path_factory.mktemp("demo")), seed=7)


def test_required_scenarios_end_in_incidents_in_different_tenants(summary):
    by_scenario = {s["scenario"]: s for s in summary["scenarios"]}
    for number, kind in REQUIRED.items():
        sc = by_scenario[number]
        assert sc["expected_kind"] == kind
        assert sc["detected"], f"scenario {number} ({kind}) not detected"
    assert len({by_scenario[n]["tenant"] for n in REQUIRED}) == len(REQUIRED)


def test_mail_burst_is_one_incident_not_a_hundred(summary):
    tenant = next(s["tenant"] for s in summary["scenarios"] if s["scenario"] == 6)
    campaign = [
        i for i in summary["incidents"] if i["tenant"] == tenant and i["kind"] == "malware_mail_campaign"
    ]
    assert len(campaign) == 1


def test_emotet_chain_and_ransomware_precursors_are_one_incident_each(summary):
    """Scenarios 5 and 9 (Sigma rules on Sysmon/PowerShell events): every step of the chain is
    an alert, and the steps on one computer form one incident."""
    for number, kind, steps in ((5, "emotet", 4), (9, "ransomware", 4)):
        tenant = next(s["tenant"] for s in summary["scenarios"] if s["scenario"] == number)
        found = [i for i in summary["incidents"] if i["tenant"] == tenant and i["kind"] == kind]
        assert len(found) == 1 and found[0]["alerts"] == steps, (number, found)
        assert found[0]["severity"] == ("critical" if kind == "ransomware" else "high")


def test_banking_malware_on_two_pcs_is_one_incident(summary):
    tenant = next(s["tenant"] for s in summary["scenarios"] if s["scenario"] == 7)
    banking = [i for i in summary["incidents"] if i["tenant"] == tenant and i["kind"] == "banking_malware"]
    assert len(banking) == 1 and banking[0]["alerts"] >= 2


def test_no_serious_incident_outside_what_the_scenarios_explain(summary):
    """False positives: a high or critical incident must be one the tenant's scenario explains."""
    manifest = json.loads((Path(summary["data_dir"]) / "telemetry" / "manifest.json").read_text("utf-8"))
    explained: dict[str, set[str]] = {}
    for sc in manifest["scenarios"]:
        explained.setdefault(sc["tenant"], set()).update([sc["expected_kind"], *sc.get("also_expected", [])])
    unexplained = [
        (i["tenant"], i["kind"], i["title"])
        for i in summary["incidents"]
        if i["severity"] in ("high", "critical")
        and i["alerts"]
        and i["kind"] not in explained.get(i["tenant"], set())
    ]
    assert unexplained == []


def test_nothing_quarantined_from_well_formed_demo_data(summary):
    assert summary["stats"]["quarantined"] == 0
    assert summary["stats"]["events"] == summary["stats"]["lines"]


def cli_demo(data_dir) -> dict:
    cmd = [sys.executable, "-m", "mimamori.cli", "demo", "--no-serve", "--json", "--data-dir", str(data_dir)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_cli_demo_no_serve_json(tmp_path):
    out = cli_demo(tmp_path / "d")
    assert len(out["tenants"]) >= 5
    for i in out["incidents"]:
        assert {"tenant", "kind", "severity", "state", "alerts"} <= set(i)
    assert {i["kind"] for i in out["incidents"]} >= set(REQUIRED.values())
    # a second run recreates its own directory and gives the same incidents
    again = cli_demo(tmp_path / "d")
    assert sorted((i["tenant"], i["kind"], i["alerts"]) for i in again["incidents"]) == sorted(
        (i["tenant"], i["kind"], i["alerts"]) for i in out["incidents"]
    )


def test_demo_refuses_to_wipe_a_foreign_directory(tmp_path):
    from mimamori.pipeline import PipelineError

    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(PipelineError):
        run_demo(Settings.load(tmp_path))
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_hacked_partner_and_mail_stealer_incidents_warn_their_partners(summary):
    """Scenario 6: the hacked partner hears that its server sends malware; scenarios 5
    (Emotet stole the address book) and 7 (mail-stealing banking malware): every partner is
    warned of mail in the tenant's name."""
    by = {w["scenario"]: w for w in summary["warnings"]}
    assert by[6]["partners"] == ["金田部品工業株式会社"] and by[6]["reasons"] == ["source"]
    assert by[7]["partners"] == sorted(["株式会社北陸精密", "東和ロジスティクス"])
    assert by[7]["reasons"] == ["impersonation"] and by[6]["tlp"] == "AMBER"
    assert by[5]["partners"] == sorted(["加賀鋳造株式会社", "能登テクノサービス"])
    assert by[5]["reasons"] == ["impersonation"]
    outbox = sorted((Path(summary["data_dir"]) / "outbox").glob("*.eml"))
    assert len(outbox) == 5
    text = "".join(p.read_text("utf-8", errors="replace") for p in outbox)
    assert "X-TLP: TLP:AMBER" in text


def test_demo_has_console_users_and_a_silent_sensor(summary):
    users = {u["username"]: u for u in summary["users"]}
    assert {u["role"] for u in users.values()} == {
        "provider_admin",
        "analyst",
        "tenant_owner",
        "tenant_viewer",
        "partner_viewer",
    }
    assert users["analyst"]["totp_secret"] and users["analyst"]["totp_now"].isdigit()
    assert users["owner"]["totp_secret"] is None and users["owner"]["tenant"]
    assert len(summary["silent_sensors"]) == 1
