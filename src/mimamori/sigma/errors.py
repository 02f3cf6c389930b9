"""The Sigma engine's errors and the issue record a rule load collects instead of stopping."""

from __future__ import annotations

from dataclasses import dataclass


class SigmaEngineError(Exception):
    """Root of the errors of ``mimamori.sigma``."""


class SigmaCompileError(SigmaEngineError):
    """A rule (or one of its values) has no Polars form; the reason says which part."""


class RulesNotFoundError(SigmaEngineError):
    def __init__(self, path: str) -> None:
        super().__init__(f"{path}: no Sigma rules folder or file here")
        self.path = path


class UpdateError(SigmaEngineError):
    """Fetching the SigmaHQ release failed (offline, refused, or a bad archive)."""


@dataclass(frozen=True)
class RuleIssue:
    """A rule that was not loaded (or a file that held no rule), with the reason."""

    path: str
    reason: str
    rule_id: str | None = None
    title: str | None = None
    kind: str = "error"  # error (YAML/model/compile) | skipped (not a Windows rule)

    def as_dict(self) -> dict[str, str | None]:
        return {"path": self.path, "rule_id": self.rule_id, "title": self.title, "kind": self.kind,
                "reason": self.reason}  # fmt: skip
