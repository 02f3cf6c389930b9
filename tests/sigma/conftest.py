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
