"""Every sample of SigmaHQ's regression_data triggers the rule its info.yml names."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml

from mimamori.sigma.scan import scan_paths
from tests.conftest import corpus_dir

pytestmark = pytest.mark.corpus


def _samples() -> list[tuple[str, str, str]]:
    root = corpus_dir() / "sigma"
    out = []
    for info in sorted((root / "regression_data").rglob("info.yml")):
        doc = yaml.safe_load(info.read_text(encoding="utf-8"))
        rule = doc["rule_metadata"][0]
        for test in doc.get("regression_tests_info") or []:  # one sample has its test commented out
            out.append((rule["id"], rule["title"], test["path"]))
    return out


SAMPLES = _samples()


@pytest.fixture(scope="module")
def hits(sigmahq, corpus: Path) -> set[tuple[str, str]]:
    paths = [corpus / "sigma" / p for _r, _t, p in SAMPLES]
    found = pl.concat(list(scan_paths(sigmahq, paths)))
    return set(found.select("rule.id", "log.file.path").iter_rows())


@pytest.mark.parametrize(("rule_id", "title", "path"), SAMPLES, ids=[s[2].split("/")[-2] for s in SAMPLES])
def test_sample_triggers_its_rule(sigmahq, corpus: Path, hits, rule_id: str, title: str, path: str) -> None:
    loaded = {r.id for r in sigmahq.rules}
    if rule_id not in loaded:
        # the corpus ships SigmaHQ's rules/ only; these samples belong to rules-emerging-threats
        # and rules-threat-hunting, whose rules are not in it (checked, not assumed)
        assert path.startswith(
            ("regression_data/rules-emerging-threats/", "regression_data/rules-threat-hunting/")
        )
        assert not any(rule_id in p.read_text(encoding="utf-8") for p in _rule_files(corpus, path))
        pytest.xfail(f"rule {rule_id} ({title}) is not in the corpus rules folder")
    assert (rule_id, str(corpus / "sigma" / path)) in hits


def _rule_files(corpus: Path, path: str) -> list[Path]:
    name = path.split("/")[-2]
    return list((corpus / "sigma" / "rules").rglob(f"{name}.yml"))


def test_regression_samples_are_all_there() -> None:
    assert len(SAMPLES) == 202


def test_json_renderings_trigger_the_same_rules(sigmahq, corpus: Path) -> None:
    """The evtx_dump-style JSON next to each EVTX sample goes through the JSON reader."""
    loaded = {r.id for r in sigmahq.rules}
    want = {
        (r, str(corpus / "sigma" / p).removesuffix(".evtx") + ".json") for r, _t, p in SAMPLES if r in loaded
    }
    paths = [Path(j) for _r, j in want if Path(j).exists()]
    assert len(paths) >= 190
    found = pl.concat(list(scan_paths(sigmahq, paths)))
    got = set(found.select("rule.id", "log.file.path").iter_rows())
    assert {w for w in want if Path(w[1]).exists()} <= got
