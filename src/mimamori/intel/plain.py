"""Reader for plain lists: one value per line, ``#``/``;`` comments, type detected per line.

This is the shape of UTM external block lists (FortiGate threat feeds, Palo Alto EDLs,
pfSense URL tables), Feodo's ``ipblocklist.txt`` and hand-kept lists. A trailing comment
(``1.2.3.0/24 ; SBL123``, ``evil.com  # seen 2024``) is dropped; the first whitespace-free
token is the value. Lines that are no known indicator type are issues.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from mimamori.intel.base import IndicatorRows, ReadResult, read_head
from mimamori.intel.normalize import NormalizeError, detect

DEFAULT_CONFIDENCE = 50
_COMMENT = re.compile(r"\s+[#;].*$")
# Hosts-file lines ("0.0.0.0 evil.com", "127.0.0.1\tevil.com") list the second token.
_SINKHOLES = {"0.0.0.0", "127.0.0.1", "::", "::1"}


def _token(line: str) -> str | None:
    text = line.strip().lstrip("\ufeff")
    if not text or text[0] in "#;!":
        return None
    text = _COMMENT.sub("", text)
    parts = text.split()
    if len(parts) >= 2 and parts[0] in _SINKHOLES:
        return parts[1]
    return parts[0] if parts else None


class PlainListReader:
    """Bare values, one a line; the fallback reader, so its sniff is strict."""

    name: ClassVar[str] = "plain"
    description: ClassVar[str] = "plain list (IPs, networks, domains, URLs, hashes; one a line)"

    def sniff(self, path: Path) -> bool:
        head = read_head(path)
        if not head or "\x00" in head:
            return False
        lines = head.splitlines()
        if len(head) == 8192 and len(lines) > 1:
            lines = lines[:-1]  # the last line may be cut
        tokens = [t for t in (_token(line) for line in lines) if t is not None]
        if not tokens:
            return False
        ok = 0
        for token in tokens[:200]:
            try:
                detect(token)
                ok += 1
            except NormalizeError:
                pass
        return ok >= max(1, int(0.8 * min(len(tokens), 200)))

    def read(self, path: Path) -> ReadResult:
        rows = IndicatorRows(path, path.stem)
        try:
            fh = path.open(encoding="utf-8", errors="replace", newline="")
        except OSError as exc:
            rows.issue(None, f"cannot read file: {exc}")
            return rows.result()
        with fh:
            for no, line in enumerate(fh, 1):
                token = _token(line)
                if token is None:
                    continue
                try:
                    kind, value = detect(token)
                except NormalizeError as exc:
                    rows.issue(no, str(exc), line.rstrip("\r\n"))
                    continue
                rows.add_normalised(
                    kind,
                    value,
                    line=no,
                    threat=None,
                    reference=None,
                    confidence=DEFAULT_CONFIDENCE,
                    first_seen=None,
                    last_seen=None,
                    expires_at=None,
                    tags=(),
                    source=None,
                )
        return rows.result()
