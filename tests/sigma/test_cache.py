"""The compiled-rule cache: reused while the rule files are unchanged, rebuilt otherwise."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from mimamori.sigma.cache import PREFIX, SUFFIX, cached_ruleset
from mimamori.sigma.engine import SigmaEngine
from mimamori.sigma.rules import _load_files, load_rules, rule_files
from mimamori.sources.evtx import read_evtx
from tests.sigma.helpers import events, rule

WHOAMI = rule("sel:\n    NewProcessName|endswith: '\\whoami.exe'\ncondition: sel")
NET = rule("sel:\n    NewProcessName|endswith: '\\net.exe'\ncondition: sel")
FRAME = events(
    {"NewProcessName": "C:\\Windows\\System32\\whoami.exe"},
    {"NewProcessName": "C:\\Windows\\System32\\net.exe"},
)


def _load(rules: Path, cache: Path):
    files = rule_files([rules])
    return cached_ruleset(cache, files, None, lambda: _load_files(files, None))


def _hits(rs) -> list[int]:
    return sorted(SigmaEngine(rs).evaluate(FRAME)["winlog.record_id"].to_list())


def _entries(cache: Path) -> list[Path]:
    return sorted(cache.glob(f"{PREFIX}*{SUFFIX}"))


def test_second_load_comes_from_the_cache(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yml").write_text(WHOAMI, encoding="utf-8")
    cold, hit = _load(tmp_path / "rules", tmp_path / "cache")
    assert not hit and _hits(cold) == [1]
    warm, hit = _load(tmp_path / "rules", tmp_path / "cache")
    assert hit and _hits(warm) == [1]
    assert warm.summary() == cold.summary() and warm.rules == cold.rules
    assert len(_entries(tmp_path / "cache")) == 1


def test_a_changed_rule_file_is_not_served_from_the_cache(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yml").write_text(WHOAMI, encoding="utf-8")
    _load(rules, tmp_path / "cache")
    (rules / "r.yml").write_text(NET, encoding="utf-8")
    changed, hit = _load(rules, tmp_path / "cache")
    assert not hit and _hits(changed) == [2]
    (rules / "s.yml").write_text(WHOAMI, encoding="utf-8")  # a file added
    added, hit = _load(rules, tmp_path / "cache")
    assert not hit and _hits(added) == [1, 2]
    (rules / "s.yml").unlink()  # and removed again: the earlier entry is still good
    again, hit = _load(rules, tmp_path / "cache")
    assert hit and _hits(again) == [2]


@pytest.mark.parametrize("damage", [b"", b"not a pickle", b"\x80\x05\x95garbage"])
def test_a_corrupt_cache_entry_is_ignored_and_rebuilt(tmp_path: Path, damage: bytes) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yml").write_text(WHOAMI, encoding="utf-8")
    _load(rules, tmp_path / "cache")
    [entry] = _entries(tmp_path / "cache")
    entry.write_bytes(damage)
    rebuilt, hit = _load(rules, tmp_path / "cache")
    assert not hit and _hits(rebuilt) == [1]
    assert entry.stat().st_size > 1000  # written again, whole
    _, hit = _load(rules, tmp_path / "cache")
    assert hit


def test_an_unwritable_cache_folder_only_costs_time(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yml").write_text(WHOAMI, encoding="utf-8")
    (tmp_path / "cache").write_text("a file, not a folder", encoding="utf-8")
    rs = load_rules([tmp_path / "rules"], cache_dir=tmp_path / "cache")
    assert _hits(rs) == [1]


@pytest.mark.corpus
def test_the_cached_sigmahq_rule_set_finds_the_same_detections(sigmahq, corpus_evtx, tmp_path: Path) -> None:
    files: list[Path] = []  # any file list: here the key only names the entry
    cached_ruleset(tmp_path, files, None, lambda: sigmahq)
    warm, hit = cached_ruleset(tmp_path, files, None, lambda: pytest.fail("not from the cache"))
    assert hit and warm.summary() == sigmahq.summary()
    wide = pl.concat([b.wide for f in corpus_evtx for b in read_evtx(f)], how="diagonal_relaxed")
    ours = SigmaEngine(sigmahq).evaluate(wide)
    again = SigmaEngine(warm).evaluate(wide)
    assert ours.height > 500
    assert (
        ours.select("rule", "__row")
        .sort("rule", "__row")
        .equals(again.select("rule", "__row").sort("rule", "__row"))
    )


def test_a_rule_calling_python_is_loaded_but_not_cached(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    lookahead = rule("sel:\n    NewProcessName|re: 'who(?=ami)'\ncondition: sel")
    (tmp_path / "rules" / "r.yml").write_text(lookahead, encoding="utf-8")
    rs, hit = _load(tmp_path / "rules", tmp_path / "cache")
    assert not hit and rs.variants[0].needs.python_regex and _hits(rs) == [1]
    assert _entries(tmp_path / "cache") == []
    assert list((tmp_path / "cache").iterdir()) == []  # no temporary file left either
