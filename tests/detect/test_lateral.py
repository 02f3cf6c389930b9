"""Lateral movement: one host reaching many new internal peers over SMB/RDP/WinRM/RPC."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from mimamori.detect import DETECTORS
from mimamori.detect.base import DetectContext
from mimamori.detect.lateral import LateralMovementDetector
from mimamori.events.schema import conform
from mimamori.sources import get_parser, read_batches
from tests.detect.util import T0, events

PC = "192.168.10.23"


def ctx(**kw: Any) -> DetectContext:
    return DetectContext(tenant="t1", batch_id="b1", **kw)


def hop(t: timedelta, dst: str, port: int = 445, src: str = PC, **extra: Any) -> dict[str, Any]:
    row = {
        "@timestamp": T0 + t,
        "event.id": f"C{int(t.total_seconds())}{src}{dst}{port}",
        "event.category": "network",
        "event.type": "connection",
        "event.dataset": "zeek.conn",
        "event.action": "SF",
        "event.outcome": "success",
        "source.ip": src,
        "destination.ip": dst,
        "destination.port": port,
    }
    row.update(extra)
    return row


def spread(n: int, at: timedelta = timedelta(0), port: int = 445, src: str = PC) -> list[dict[str, Any]]:
    return [hop(at + timedelta(seconds=i), f"192.168.10.{100 + i}", port, src) for i in range(n)]


def routine(days: int = 2) -> list[dict[str, Any]]:
    """A file server reached by every PC, and the PC's own usual peers, for ``days`` days."""
    rows = []
    for d in range(days):
        for h in range(0, 24, 2):
            at = timedelta(days=d, hours=h)
            rows += [hop(at, "192.168.10.5", 445, src=f"192.168.10.{30 + k}") for k in range(8)]
            rows += [hop(at + timedelta(minutes=1), f"192.168.10.{100 + k}", 3389) for k in range(3)]
    return rows


def load(paths: list[Path]) -> pl.DataFrame:
    out = []
    for p in paths:
        parser, pctx = get_parser("zeek"), {}
        out += [conform(parser.parse(b, pctx).events) for b in read_batches(p)]
    return pl.concat(out)


def test_registered() -> None:
    assert DETECTORS["lateral"] is LateralMovementDetector


def test_new_peers_over_smb_after_a_learned_routine() -> None:
    det, c = LateralMovementDetector(), ctx()
    assert det.detect(events(routine()), c) == []
    attack = spread(8, at=timedelta(days=2, hours=3))
    attack += [hop(timedelta(days=2, hours=3, minutes=5), "192.168.10.120", 5985)]
    (a,) = det.detect(events(attack), c)
    assert (a.kind, a.severity, a.host, a.keys) == ("lateral_movement", "high", PC, [f"host:{PC}"])
    ev = a.evidence
    # 192.168.10.100-102 are its usual RDP peers, so 6 of the 9 are new
    assert (ev["peers"], ev["new_peers"], ev["services"], ev["baseline"]) == (
        9,
        6,
        ["smb", "winrm"],
        "learned",
    )
    assert ev["sample_new_peers"][0] == "192.168.10.103"
    assert ev["window_start"] == "2025-04-17T12:00:00+00:00"
    assert a.title == f"{PC} reached 6 new internal hosts over SMB/WINRM in 1h"


def test_usual_peers_are_not_new() -> None:
    """A backup server reaching the same 8 PCs every night is its pattern, not an attack."""
    backup = "192.168.10.9"
    rows = routine(days=3)
    rows += [
        hop(timedelta(days=d, hours=1, seconds=i), f"192.168.10.{40 + i}", src=backup)
        for d in range(3)
        for i in range(8)
    ]
    frame = events(rows).sort("@timestamp")
    det, c = LateralMovementDetector(), ctx()
    days = frame.with_columns(pl.col("@timestamp").dt.date().alias("day")).partition_by(
        "day", include_key=False
    )
    assert [a for day in days for a in det.detect(day, c)] == []
    assert c.state["peers"].filter(pl.col("src") == backup).height == 8


def test_cold_start_needs_more_peers() -> None:
    # no history yet: 9 peers is not enough, 10 is
    assert LateralMovementDetector().detect(events(spread(9)), ctx()) == []
    (a,) = LateralMovementDetector().detect(events(spread(10)), ctx())
    assert a.evidence["baseline"] == "learning (history < 24h)"


def test_remote_service_creation_and_admin_shares_are_evidence() -> None:
    rows = [
        hop(
            timedelta(seconds=i),
            f"192.168.10.{100 + i}",
            445,
            **{"event.dataset": "zeek.dce_rpc", "event.action": "CreateServiceW", "event.outcome": None},
        )
        for i in range(3)
    ]
    rows += [
        hop(
            timedelta(seconds=9),
            "192.168.10.100",
            445,
            **{"event.dataset": "zeek.smb_mapping", "url.path": r"\\HOST\ADMIN$"},
        )
    ]
    (a,) = LateralMovementDetector().detect(events(rows), ctx())
    assert a.evidence["remote_exec_operations"] == ["CreateServiceW"]
    assert (a.evidence["remote_exec_peers"], a.evidence["admin_shares"]) == (3, ["\\ADMIN$"])


@pytest.mark.parametrize(
    "rows",
    [
        pytest.param(spread(20, port=443), id="not-an-admin-protocol"),
        pytest.param(
            [{**r, "destination.ip": f"203.0.113.{i}"} for i, r in enumerate(spread(20))], id="external"
        ),
        pytest.param([{**r, "destination.ip": PC} for r in spread(20)], id="self"),
        pytest.param(spread(20, src="203.0.113.7"), id="from-outside"),
    ],
)
def test_no_alert(rows: list[dict[str, Any]]) -> None:
    assert LateralMovementDetector().detect(events(rows), ctx()) == []


def test_out_of_order_duplicates_and_repeats() -> None:
    det, c = LateralMovementDetector(), ctx()
    rows = spread(12)
    assert det.detect(events(rows[6:] + rows[6:]), c) == []
    (a,) = det.detect(events(rows[:6] + rows[:2]), c)
    assert (a.evidence["new_peers"], a.event_count) == (12, 12)
    assert det.detect(events(rows), c) == []
    assert det.detect(events(spread(3, at=timedelta(minutes=30))), c) == []  # same window: reported
    again = LateralMovementDetector().detect(events(rows), ctx())
    assert [x.dedup_key for x in again] == [a.dedup_key]


def test_missing_fields_clock_jumps_and_bounded_state() -> None:
    det, c = LateralMovementDetector(max_rows=50, max_peers=30), ctx()
    rows = spread(5)
    rows[0]["source.ip"] = None
    rows[1]["destination.port"] = None
    rows[2]["event.dataset"] = None
    rows[3]["@timestamp"] = None
    assert det.detect(events(rows), c) == []
    assert det.detect(events([]), c) == []
    for d in range(4):
        many = [
            hop(timedelta(days=d * 30, seconds=i), f"192.168.{d}.{i}", 3389, src=f"192.168.9.{i % 3}")
            for i in range(40)
        ]
        det.detect(events(many), c)
        assert c.state["conns"].height <= 50 and c.state["peers"].height <= 30
    assert det.detect(events(spread(3)), c) == []  # far in the past now
    assert all(isinstance(v, pl.DataFrame) for v in c.state.values())


# ------------------------------------------------------------------------ real data


@pytest.mark.corpus
@pytest.mark.parametrize("fmt, ext", [("zeek-default", "log.gz"), ("zeek-json", "json.gz")])
def test_wrccdc_red_team_spreading_is_found(corpus: Path, fmt: str, ext: str) -> None:
    """WRCCDC 2018: the red team's 10.164.94.120 maps shares and opens RDP on 22 servers; two
    more red hosts create and start services over the svcctl pipe (PsExec-style) on several
    teams' servers, which Zeek's dce_rpc and smb_files logs show."""
    logs = ("smb_mapping", "smb_files", "dce_rpc", "rdp", "ntlm")
    frame = load([corpus / "zeek-wrccdc-2018" / fmt / f"{n}.{ext}" for n in logs])
    det, c = LateralMovementDetector(), ctx()
    alerts = [a for part in frame.iter_slices(1000) for a in det.detect(part, c)]
    # reported once, when 20 of its 22 peers had been seen (file order, not time order)
    assert sorted((a.host, a.evidence["new_peers"]) for a in alerts) == [
        ("10.128.0.214", 7),
        ("10.150.0.20", 4),
        ("10.164.94.120", 20),
    ]
    by_host = {a.host: a.evidence for a in alerts}
    for red in ("10.128.0.214", "10.150.0.20"):
        assert {"CreateServiceW", "StartServiceW", "pipe \\svcctl"} <= set(
            by_host[red]["remote_exec_operations"]
        )
        assert "\\ADMIN$" in by_host[red]["admin_shares"]
    assert by_host["10.164.94.120"]["services"] == ["rdp", "rpc", "smb"]


@pytest.mark.corpus
def test_false_positives_on_real_benign_traffic(corpus: Path) -> None:
    rita = corpus / "zeek-rita-testdata" / "test_data"
    frames = [
        load(sorted((rita / "missing_host").glob("*/conn.*.log.gz"))),
        load([rita / "proxy" / "conn.log", *sorted((rita / "proxy_rolling").glob("conn.*.log.gz"))]),
    ]
    for networks in ((), ("64.225.56.201/32",)):
        kw = {"networks": networks} if networks else {}
        for frame in frames:
            det, c = LateralMovementDetector(), ctx(**kw)
            assert [a for part in frame.iter_slices(40_000) for a in det.detect(part, c)] == []


def test_state_survives_a_restart(tmp_path: Path) -> None:
    from mimamori.detect.state import StateStore

    store = StateStore(tmp_path)
    assert LateralMovementDetector().detect(events(routine()), ctx(state=store.get("t1", "lateral"))) == []
    store.save_all()
    again = StateStore(tmp_path).get("t1", "lateral")
    (a,) = LateralMovementDetector().detect(
        events(spread(8, at=timedelta(days=2, hours=3))), ctx(state=again)
    )
    assert (a.evidence["new_peers"], a.evidence["baseline"]) == (5, "learned")
