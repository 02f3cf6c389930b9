"""Fixtures for the Sigma tests: the SigmaHQ rules of the corpus, loaded once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from mimamori.sigma.rules import RuleSet, load_rules


@pytest.fixture(scope="session")
def sigmahq(corpus: Path) -> RuleSet:
    return load_rules([corpus / "sigma" / "rules"])


@pytest.fixture(scope="session")
def corpus_evtx(corpus: Path) -> list[Path]:
    """Every EVTX file in the corpus (attack samples, chainsaw, Sigma regression data)."""
    return sorted(corpus.rglob("*.evtx"))


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's data dir (and its rule cache) in the test's own folder, never the checkout."""
    monkeypatch.setenv("MIMAMORI_HOME", str(tmp_path / "home"))
