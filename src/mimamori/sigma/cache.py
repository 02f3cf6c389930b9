"""The compiled-rule cache: a loaded ``RuleSet`` kept on disk so a run skips pySigma parsing.

The key is a hash of every rule file's path and bytes, the load options and the versions of
mimamori, pySigma, the pipelines and Polars (the pickled expressions are Polars'), so editing,
adding or removing a rule, or upgrading, makes a new entry. A file that cannot be read back
(truncated, corrupt, from another format) is ignored, removed and rebuilt. The folder is safe
to delete at any time. It is a pickle: keep it in a folder only you can write (the data dir).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import tempfile
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

import mimamori

if TYPE_CHECKING:
    from mimamori.sigma.rules import RuleSet


def rules_cache_dir(settings: Any) -> Path:
    """Where ``sigma scan`` and the platform keep compiled rule sets (safe to delete)."""
    return Path(settings.data_dir) / "cache" / "sigma"


#: bump when RuleSet or its parts change shape
FORMAT = 1
PREFIX = "rules-"
SUFFIX = ".pickle"
KEEP = 4  # entries kept per folder (a few rule folders in use at once)


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "-"


def cache_key(files: list[Path], min_level: str | None) -> str:
    h = hashlib.sha256()
    versions = [_version(d) for d in ("pysigma", "pysigma-pipeline-windows", "pysigma-pipeline-sysmon")]
    h.update(repr((FORMAT, mimamori.__version__, pl.__version__, versions, min_level)).encode())
    for f in files:
        h.update(str(f).encode() + b"\x00")
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:32]


def cached_ruleset(
    folder: Path, files: list[Path], min_level: str | None, build: Callable[[], RuleSet]
) -> tuple[RuleSet, bool]:
    """The rule set from ``folder`` when its entry is there and sound, else ``build()`` stored
    there; the flag says whether it came from the cache."""
    from mimamori.sigma.rules import RuleSet

    path = folder / f"{PREFIX}{cache_key(files, min_level)}{SUFFIX}"
    try:
        with open(path, "rb") as fh:
            got = pickle.load(fh)
        if isinstance(got, RuleSet):
            return got, True
    except FileNotFoundError:
        pass
    except Exception:  # a damaged entry of any kind (unpickling raises anything) is rebuilt
        with contextlib.suppress(OSError):
            path.unlink()
    ruleset = build()
    _store(path, ruleset)
    return ruleset, False


def _store(path: Path, ruleset: RuleSet) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=SUFFIX)
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(ruleset, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)  # readers see the whole file or none
    except (
        OSError,
        pickle.PicklingError,
        TypeError,
        AttributeError,
        RuntimeError,
        pl.exceptions.PolarsError,
    ):
        # a folder that cannot be written, or a rule calling Python (Polars pickles those only
        # with cloudpickle): not cached, which only costs time
        with contextlib.suppress(OSError, UnboundLocalError):
            os.unlink(tmp)
        return
    entries = sorted(path.parent.glob(f"{PREFIX}*{SUFFIX}"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[KEEP:]:
        with contextlib.suppress(OSError):
            old.unlink()
