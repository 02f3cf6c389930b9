"""Sigma matching semantics, one inline rule per modifier or condition form.

Each case states the events it matches; the same rule then runs on pySigma's SQLite backend
over the same events, and the two engines must agree — except where a case says why the
SQLite result is wrong (those pins are the only accepted differences).
"""

from __future__ import annotations

import base64

import pytest

from mimamori.sigma.reference import run_reference
from tests.sigma.helpers import events, matches, rule, ruleset

E = events(
    {"CommandLine": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\PowerShell.exe -enc SQBFAFgA", "Image":
     "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe", "ParentImage":
     "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE", "User": "taro"},  # 1
    {"CommandLine": "cmd.exe /c vssadmin delete shadows /all /quiet",
     "Image": "C:\\Windows\\System32\\cmd.exe",
     "ParentImage": "C:\\Windows\\explorer.exe", "User": "hanako"},  # 2
    {"CommandLine": "notepad.exe", "Image": "C:\\Windows\\notepad.exe", "User": "", "LogonType": "10",
     "IpAddress": "192.168.10.23"},  # 3
    {"CommandLine": "wmic shadowcopy delete", "Image": "C:\\Windows\\System32\\wbem\\WMIC.exe",
     "ParentImage": "C:\\Windows\\System32\\wbem\\WMIC.exe", "LogonType": "3", "IpAddress": "10.1.2.3"},  # 4
    {"CommandLine": "ping –n 1 host", "Image": "C:\\Windows\\System32\\PING.EXE", "Count": "250"},  # 5
    {"ScriptBlockText": base64.b64encode(b"Invoke-Mimikatz -DumpCreds").decode(),
     "Image": "İSTANBUL.exe"},  # 6
)  # fmt: skip

B64_WIDE = base64.b64encode("IEX (New-Object Net.WebClient)".encode("utf-16-le")).decode()
E_B64 = events(
    {"CommandLine": f"powershell -e {B64_WIDE}"},  # 1: wide + base64offset of "New-Object"
    {"CommandLine": "powershell -e " + base64.b64encode(b"xx New-Object yy").decode()},  # 2: ascii
)

CASES: list[tuple[str, str, object, list[int]]] = [
    ("plain value is whole-value, case-insensitive", "sel:\n  User: TARO\ncondition: sel", E, [1]),
    ("contains", "sel:\n  CommandLine|contains: ' -ENC '\ncondition: sel", E, [1]),
    ("startswith", "sel:\n  CommandLine|startswith: 'CMD.EXE'\ncondition: sel", E, [2]),
    ("endswith", "sel:\n  Image|endswith: '\\wmic.exe'\ncondition: sel", E, [4]),
    ("wildcards * and ?", "sel:\n  CommandLine: 'wmic*cop? delete'\ncondition: sel", E, [4]),
    ("escaped wildcard is literal", "sel:\n  CommandLine: 'notepad\\*'\ncondition: sel", E, []),
    ("list is OR", "sel:\n  User:\n    - taro\n    - HANAKO\ncondition: sel", E, [1, 2]),
    (
        "contains|all is AND",
        "sel:\n  CommandLine|contains|all:\n    - vssadmin\n    - shadows\ncondition: sel",
        E,
        [2],
    ),
    ("re is case-sensitive", "sel:\n  CommandLine|re: 'powershell\\.exe'\ncondition: sel", E, []),
    ("re|i ignores case", "sel:\n  CommandLine|re|i: 'powershell\\.exe'\ncondition: sel", E, [1]),
    ("re searches (unanchored)", "sel:\n  CommandLine|re: 'shadow(s|copy)'\ncondition: sel", E, [2, 4]),
    ("cidr", "sel:\n  IpAddress|cidr: 192.168.0.0/16\ncondition: sel", E, [3]),
    ("cidr /8", "sel:\n  IpAddress|cidr: 10.0.0.0/8\ncondition: sel", E, [4]),
    ("empty value matches empty text", "sel:\n  User: ''\ncondition: sel", E, [3]),
    ("null matches a missing field", "sel:\n  ParentImage: null\ncondition: sel", E, [3, 5, 6]),
    ("exists true", "sel:\n  LogonType|exists: true\ncondition: sel", E, [3, 4]),
    ("exists false", "sel:\n  LogonType|exists: false\ncondition: sel", E, [1, 2, 5, 6]),
    (
        "fieldref equality",
        "sel:\n  ParentImage|fieldref: Image\ncondition: sel",
        E,
        [4],
    ),
    ("number equality", "sel:\n  LogonType: 10\ncondition: sel", E, [3]),
    ("gte", "sel:\n  Count|gte: 100\ncondition: sel", E, [5]),
    ("lt", "sel:\n  LogonType|lt: 5\ncondition: sel", E, [4]),
    (
        "not on a missing field is true",
        "sel:\n  Image|endswith: '.exe'\nf:\n  ParentImage|contains: explorer\ncondition: sel and not f",
        E,
        [1, 3, 4, 5, 6],
    ),
    (
        "1 of with wildcard",
        "sel_a:\n  User: taro\nsel_b:\n  User: hanako\nother:\n  User: x\ncondition: 1 of sel_*",
        E,
        [1, 2],
    ),
    (
        "all of with wildcard",
        "sel_a:\n  CommandLine|contains: shadow\nsel_b:\n  Image|contains: wmic\ncondition: all of sel_*",
        E,
        [4],
    ),
    (
        "parentheses and precedence",
        "a:\n  User: taro\nb:\n  User: hanako\nc:\n  CommandLine|contains: vssadmin\n"
        "condition: a or b and not c",
        E,
        [1],
    ),
    ("windash", "sel:\n  CommandLine|windash|contains: ' -n '\ncondition: sel", E, [5]),
    ("base64", "sel:\n  ScriptBlockText|base64: 'Invoke-Mimikatz -DumpCreds'\ncondition: sel", E, [6]),
    (
        "wide|base64offset|contains",
        "sel:\n  CommandLine|wide|base64offset|contains: 'New-Object'\ncondition: sel",
        E_B64,
        [1],
    ),
    (
        "base64offset|contains",
        "sel:\n  CommandLine|base64offset|contains: 'New-Object'\ncondition: sel",
        E_B64,
        [2],
    ),
    ("cased", "sel:\n  CommandLine|cased|contains: 'PowerShell.exe'\ncondition: sel", E, [1]),
    (
        "cased rejects other case",
        "sel:\n  CommandLine|cased|contains: 'powershell.exe'\ncondition: sel",
        E,
        [],
    ),
]

#: cases where pySigma's SQLite backend is wrong, and why ours is right
SQLITE_WRONG: dict[str, str] = {
    # SQLite compares a TEXT column with a number as text: '250' >= '100' holds, but
    # '3' < '5' and '10' < '5' both hold lexically (ours: 3 < 5 only).
    "lt": "lexical comparison of text with a number in SQLite",
}


@pytest.mark.parametrize(("name", "detection", "frame", "expected"), CASES, ids=[c[0] for c in CASES])
def test_semantics(name: str, detection: str, frame, expected: list[int]) -> None:
    text = rule(detection)
    assert matches(text, frame) == expected
    ref = run_reference(ruleset(text), [frame])
    assert ref.not_converted == {}
    got = sorted(r for _rid, _f, r in ref.matches)
    if name in SQLITE_WRONG:
        assert got != expected, f"SQLite now agrees on {name!r}: drop the pin"
    else:
        assert got == expected


def test_lt_pin_is_lexical_in_sqlite() -> None:
    """The pinned difference: SQLite's TEXT affinity makes '10' < '5' true."""
    text = rule("sel:\n  LogonType|lt: 5\ncondition: sel")
    ref = run_reference(ruleset(text), [E])
    assert sorted(r for _rid, _f, r in ref.matches) == [3, 4]  # LogonType 10 and 3
    assert matches(text, E) == [4]


def test_unicode_case_folding_goes_beyond_ascii() -> None:
    """Sigma is case-insensitive; SQLite's NOCASE and LIKE fold ASCII only. Pinned: we fold
    Unicode (the Turkish dotted capital I lower-cases to 'i' + combining dot)."""
    text = rule("sel:\n  Image|startswith: 'i̇stanbul'\ncondition: sel")
    assert matches(text, E) == [6]
    ref = run_reference(ruleset(text), [E])
    assert ref.matches == set()


def test_keywords_search_every_field() -> None:
    text = rule("keywords:\n  - 'vssadmin delete'\n  - 'MIMIKATZ'\ncondition: keywords")
    assert matches(text, E) == [2]
    text = rule("keywords:\n  - '*shadows /all*'\ncondition: keywords")
    assert matches(text, E) == [2]
    # the other engine cannot run keyword rules at all
    assert run_reference(ruleset(text), [E]).not_converted


def test_regex_flags_m_and_s() -> None:
    frame = events({"ScriptBlockText": "line one\nsecond LINE"})
    assert matches(rule("sel:\n  ScriptBlockText|re|m: '^second'\ncondition: sel"), frame) == [1]
    assert matches(rule("sel:\n  ScriptBlockText|re: '^second'\ncondition: sel"), frame) == []
    assert matches(rule("sel:\n  ScriptBlockText|re|s: 'one.second'\ncondition: sel"), frame) == [1]
    assert matches(rule("sel:\n  ScriptBlockText|re: 'one.second'\ncondition: sel"), frame) == []


def test_regex_with_lookahead_falls_back_to_python() -> None:
    frame = events({"CommandLine": "net user admin /add"}, {"CommandLine": "net user"})
    text = rule("sel:\n  CommandLine|re: 'net user(?= \\w+ /add)'\ncondition: sel")
    assert matches(text, frame) == [1]


def test_channel_index_keeps_rules_off_other_logs() -> None:
    frame = events({"User": "taro", "Channel": "System"})
    assert matches(rule("sel:\n  User: taro\ncondition: sel"), frame) == []
    assert matches(rule("sel:\n  User: taro\ncondition: sel", service="system"), frame) == [1]


def test_process_creation_maps_to_sysmon_1_and_security_4688() -> None:
    text = """
title: office spawns powershell
id: 00000000-0000-0000-0000-0000000000aa
logsource: {product: windows, category: process_creation}
detection:
    sel:
        ParentImage|endswith: '\\winword.exe'
        Image|endswith: '\\powershell.exe'
    condition: sel
level: high
"""
    frame = events(
        {"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1, "ParentImage": "C:\\o\\WINWORD.EXE",
         "Image": "C:\\w\\powershell.exe"},
        {"Channel": "Security", "EventID": 4688, "ParentProcessName": "C:\\o\\WINWORD.EXE",
         "NewProcessName": "C:\\w\\powershell.exe"},
        {"Channel": "Security", "EventID": 4688, "ParentImage": "C:\\o\\WINWORD.EXE",
         "Image": "C:\\w\\powershell.exe"},  # Sysmon names in a Security event: not a 4688 field
        {"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 3, "ParentImage": "C:\\o\\WINWORD.EXE",
         "Image": "C:\\w\\powershell.exe"},  # a network event
    )  # fmt: skip
    assert matches(text, frame) == [1, 2]
    rs = ruleset(text)
    assert sorted(v.variant for v in rs.variants) == ["audit", "sysmon"]
    assert {v.event_ids for v in rs.variants} == {frozenset({"1"}), frozenset({"4688"})}
    ref = run_reference(rs, [frame])
    assert sorted(r for _a, _b, r in ref.matches) == [1, 2]


def test_bad_rules_are_listed_and_the_load_goes_on(tmp_path) -> None:
    from mimamori.sigma.rules import load_rules

    good = rule("sel:\n  User: taro\ncondition: sel")
    (tmp_path / "good.yml").write_text(good)
    (tmp_path / "yaml_error.yml").write_text("title: [unclosed\n")
    (tmp_path / "unknown_modifier.yml").write_text(
        rule("sel:\n  User|sparkles: taro\ncondition: sel").replace("0001", "0002")
    )
    (tmp_path / "bad_condition.yml").write_text(
        rule("sel:\n  User: taro\ncondition: sel and missing").replace("0001", "0003")
    )
    (tmp_path / "linux.yml").write_text(good.replace("product: windows", "product: linux"))
    rs = load_rules([tmp_path])
    assert [r.path.split("/")[-1] for r in rs.rules] == ["good.yml"]
    reasons = {i.path.split("/")[-1]: i.reason for i in rs.failed}
    assert set(reasons) == {"yaml_error.yml", "unknown_modifier.yml", "bad_condition.yml"}
    assert "YAML" in reasons["yaml_error.yml"]
    assert "sparkles" in reasons["unknown_modifier.yml"]
    assert "missing" in reasons["bad_condition.yml"]
    assert rs.skipped == 1


def test_unmapped_log_source_is_an_issue_not_a_match_everything() -> None:
    text = """
title: no channel for this
id: 00000000-0000-0000-0000-0000000000bb
logsource: {product: windows, category: file_access}
detection:
    sel: {FileName|endswith: '.pst'}
    condition: sel
level: medium
"""
    rs = ruleset(text)
    assert rs.rules == [] and len(rs.failed) == 1
    assert "not mapped" in rs.failed[0].reason
