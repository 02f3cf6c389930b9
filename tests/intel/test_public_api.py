"""The public surface of mimamori.intel."""

from __future__ import annotations

import mimamori.intel as intel


def test_exports() -> None:
    required = {
        "IndicatorSet",
        "import_paths",
        "ImportReport",
        "update",
        "load_active",
        "WarningList",
        "READERS",
    }
    assert required <= set(intel.__all__)
    for name in intel.__all__:
        assert hasattr(intel, name), name
    assert len(set(intel.__all__)) == len(intel.__all__)
