"""`make bench` scripts run the way the Makefile runs them (``python bench/X.py``, so the
script's folder comes first on ``sys.path``) on small inputs, and report what they measured.
The figures themselves are not asserted (timings are machine-dependent); what they found is."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str, timeout: float = 600) -> str:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_ingest_bench() -> None:
    out = json.loads(_run("run.py", "--events", "20000", "--indicators", "2000", "--repeat", "2", "--json"))
    assert out["events"] == 20_000
    assert [len(out["runs"][k]) for k in ("parse_only", "foundation_path")] == [2, 2]
    for key in ("parse_only", "foundation_path"):  # the best run is reported
        assert out[key]["cpu_s"] == min(r["cpu_s"] for r in out["runs"][key])
    for path in ("foundation_path", "whole_platform"):
        assert out[path]["alerts"] > 0  # the planted known-bad destinations were matched
        assert out[path]["quarantined"] == 0
        assert out[path]["events_per_s_per_core"] > 0 and out[path]["ratio_to_parse_cpu"] > 0


def test_beacon_bench() -> None:
    out = _run("beacon.py", "--records", "300000", "--batch", "100000")
    assert "planted beacons found: 5/5" in out
    assert "fast-poll found: True" in out
    assert re.search(r"detector wall=[\d.]+ s cpu=[\d.]+ s peak_rss=[\d.]+ GB", out)


@pytest.mark.parametrize("script", ["false_positives.py", "collect.py", "internet.py", "sigma_scan.py"])
def test_other_bench_scripts_start(script: str) -> None:
    """The slower ones (a minute or more each) are only started here: imports and options."""
    assert "usage:" in _run(script, "--help")
