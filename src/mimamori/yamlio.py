"""YAML reading with libyaml's C parser when PyYAML has it (several times faster than the
pure-Python one; the same safe subset of YAML)."""

from __future__ import annotations

from typing import Any

import yaml

try:
    Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    Loader = yaml.SafeLoader


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` with the C loader; raises ``yaml.YAMLError`` on invalid YAML."""
    return yaml.load(text, Loader=Loader)
