"""Incident kinds, playbooks and service levels, loaded from YAML data and validated.

The packaged files are the defaults; ``MIMAMORI_CATALOG`` may name a directory holding
``kinds.yaml``, ``service_levels.yaml`` and ``playbooks/*.yaml`` that add to or override
them. A malformed entry is reported with its file and key, not silently ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from mimamori import yamlio

PHASES = ("triage", "containment", "eradication", "recovery", "sharing", "closure")


class CatalogError(Exception):
    def __init__(self, file: str, reason: str) -> None:
        super().__init__(f"{file}: {reason}")
        self.file = file
        self.reason = reason


@dataclass(frozen=True)
class Task:
    key: str
    phase: str
    ja: str
    en: str


@dataclass(frozen=True)
class Playbook:
    name: str
    title_ja: str
    title_en: str
    tasks: tuple[Task, ...]


@dataclass(frozen=True)
class IncidentKind:
    key: str
    title_ja: str
    title_en: str
    severity: str
    window_hours: float
    playbook: str
    scenarios: tuple[int, ...]
    absorbs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Catalog:
    kinds: dict[str, IncidentKind]
    playbooks: dict[str, Playbook]
    service_levels: dict[str, dict[str, dict[str, int]]]

    def kind(self, key: str) -> IncidentKind:
        """The kind, or a generic one for a key not in the catalog (kinds are an open set)."""
        if key in self.kinds:
            return self.kinds[key]
        return IncidentKind(key, key, key.replace("_", " "), "medium", 24, "generic", ())

    def related(self, key: str) -> tuple[set[str], set[str]]:
        """(kinds this kind absorbs, kinds that absorb this kind)."""
        absorbs = set(self.kind(key).absorbs)
        absorbed_by = {k.key for k in self.kinds.values() if key in k.absorbs}
        return absorbs, absorbed_by

    def playbook_for(self, kind: str) -> Playbook:
        return self.playbooks.get(self.kind(kind).playbook) or self.playbooks["generic"]

    def sla_minutes(self, level: str, severity: str) -> tuple[int, int]:
        sl = self.service_levels.get(level) or self.service_levels["standard"]
        return sl["ack"][severity], sl["response"][severity]


def _load_yaml(text: str, file: str) -> dict[str, Any]:
    try:
        data = yamlio.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(file, f"invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise CatalogError(file, "expected a mapping at the top level")
    return data


def _only(d: dict[str, Any], allowed: set[str], file: str, where: str) -> None:
    unknown = set(d) - allowed
    if unknown:
        raise CatalogError(file, f"{where}: unknown key(s) {', '.join(sorted(unknown))}")


def parse_playbook(data: dict[str, Any], file: str) -> Playbook:
    _only(data, {"name", "title", "tasks"}, file, "playbook")
    tasks = []
    for i, t in enumerate(data.get("tasks") or []):
        if not isinstance(t, dict):
            raise CatalogError(file, f"task {i + 1}: expected a mapping")
        _only(t, {"key", "phase", "ja", "en"}, file, f"task {i + 1}")
        missing = {"key", "phase", "ja", "en"} - set(t)
        if missing:
            raise CatalogError(file, f"task {i + 1}: missing {', '.join(sorted(missing))}")
        if t["phase"] not in PHASES:
            raise CatalogError(file, f"task {t['key']}: unknown phase {t['phase']!r}")
        tasks.append(Task(str(t["key"]), t["phase"], str(t["ja"]), str(t["en"])))
    title = data.get("title") or {}
    return Playbook(
        str(data["name"]), title.get("ja", data["name"]), title.get("en", data["name"]), tuple(tasks)
    )


def _parse_kinds(data: dict[str, Any], file: str) -> dict[str, IncidentKind]:
    _only(data, {"kinds"}, file, "top level")
    out = {}
    for key, k in (data.get("kinds") or {}).items():
        if not isinstance(k, dict):
            raise CatalogError(file, f"kind {key}: expected a mapping")
        _only(
            k, {"scenarios", "title", "severity", "window_hours", "playbook", "absorbs"}, file, f"kind {key}"
        )
        sev = k.get("severity", "medium")
        if sev not in ("low", "medium", "high", "critical"):
            raise CatalogError(file, f"kind {key}: unknown severity {sev!r}")
        title = k.get("title") or {}
        out[key] = IncidentKind(
            key,
            title.get("ja", key),
            title.get("en", key),
            sev,
            float(k.get("window_hours", 24)),
            str(k.get("playbook", "generic")),
            tuple(int(s) for s in k.get("scenarios") or ()),
            tuple(str(a) for a in k.get("absorbs") or ()),
        )
    return out


def _parse_levels(data: dict[str, Any], file: str) -> dict[str, dict[str, dict[str, int]]]:
    _only(data, {"service_levels"}, file, "top level")
    levels = data.get("service_levels") or {}
    for name, level in levels.items():
        _only(level, {"ack", "response"}, file, f"service level {name}")
        for clock in ("ack", "response"):
            for sev in ("low", "medium", "high", "critical"):
                if not isinstance((level.get(clock) or {}).get(sev), int):
                    raise CatalogError(file, f"service level {name}: {clock}.{sev} must be minutes")
    return levels


@cache
def load_catalog(override_dir: str | None = None) -> Catalog:
    pkg = resources.files("mimamori.incidents")
    kinds = _parse_kinds(
        _load_yaml(pkg.joinpath("kinds.yaml").read_text("utf-8"), "kinds.yaml"), "kinds.yaml"
    )
    levels = _parse_levels(
        _load_yaml(pkg.joinpath("service_levels.yaml").read_text("utf-8"), "service_levels.yaml"),
        "service_levels.yaml",
    )
    playbooks: dict[str, Playbook] = {}
    for item in pkg.joinpath("playbooks").iterdir():
        if item.name.endswith(".yaml"):
            pb = parse_playbook(_load_yaml(item.read_text("utf-8"), item.name), item.name)
            playbooks[pb.name] = pb
    extra = override_dir or os.environ.get("MIMAMORI_CATALOG")
    if extra:
        root = Path(extra)
        if (root / "kinds.yaml").is_file():
            f = str(root / "kinds.yaml")
            kinds.update(_parse_kinds(_load_yaml((root / "kinds.yaml").read_text("utf-8"), f), f))
        if (root / "service_levels.yaml").is_file():
            f = str(root / "service_levels.yaml")
            levels.update(_parse_levels(_load_yaml((root / "service_levels.yaml").read_text("utf-8"), f), f))
        for p in sorted((root / "playbooks").glob("*.yaml")):
            pb = parse_playbook(_load_yaml(p.read_text("utf-8"), str(p)), str(p))
            playbooks[pb.name] = pb
    for k in kinds.values():
        if k.playbook not in playbooks:
            raise CatalogError("kinds.yaml", f"kind {k.key}: playbook {k.playbook!r} not found")
    if "standard" not in levels:
        raise CatalogError("service_levels.yaml", "a 'standard' service level is required")
    return Catalog(kinds, playbooks, levels)
