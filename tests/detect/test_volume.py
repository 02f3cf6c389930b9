"""Data-volume spikes: outbound bytes per host and hour against the host's own baseline."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from mimamori.detect import DETECTORS
from mimamori.detect.base import DetectContext
from mimamori.detect.volume import VolumeSpikeDetector
from mimamori.events.schema import conform
from mimamori.sources import get_parser, read_batches
from tests.detect.util import T0, events

PC = "192.168.3.14"
MB = 1_000_000


def ctx(**kw: Any) -> DetectContext:
    return DetectContext(tenant="t1", batch_id="b1", **kw)


def flow(hour: int, minute: int, nbytes: int, dst: str = "198.51.100.10", src: str = PC) -> dict[str, Any]:
    return {
        "@timestamp": T0 + timedelta(hours=hour, minutes=minute),
        "event.id": f"C{hour}-{minute}-{dst}-{src}",
        "event.category": "network",
        "event.type": "connection",
        "event.dataset": "zeek.conn",
        "source.ip": src,
        "destination.ip": dst,
        "destination.port": 443,
        "source.bytes": nbytes,
    }


def usual(hours: int, nbytes: int = 20 * MB, src: str = PC) -> list[dict[str, Any]]:
    """Steady traffic: two flows an hour, slightly varying."""
    return [flow(h, m, nbytes // 2 + (h % 5) * MB // 10, src=src) for h in range(hours) for m in (10, 40)]


def load(paths: list[Path]) -> pl.DataFrame:
    out = []
    for p in paths:
        parser, pctx = get_parser("zeek"), {}
        out += [conform(parser.parse(b, pctx).events) for b in read_batches(p)]
    return pl.concat(out)


def test_registered() -> None:
    assert DETECTORS["volume_spike"] is VolumeSpikeDetector


def test_an_hour_far_above_the_baseline_is_a_spike_with_top_destinations() -> None:
    det, c = VolumeSpikeDetector(), ctx()
    assert det.detect(events(usual(30)), c) == []
    exfil = [flow(30, 5, 900 * MB, dst="203.0.113.50"), flow(30, 20, 300 * MB, dst="203.0.113.51")]
    exfil += [flow(30, 30, 10 * MB)]
    (a,) = det.detect(events(exfil), c)
    assert (a.kind, a.host, a.keys) == ("data_volume_spike", PC, [f"host:{PC}"])
    ev = a.evidence
    assert (ev["hour"], ev["bytes"], ev["baseline_hours"]) == ("2025-04-16T15:00:00+00:00", 1210 * MB, 30)
    assert ev["baseline_median"] == 20.4 * MB
    assert [d["ip"] for d in ev["top_destinations"]] == ["203.0.113.50", "203.0.113.51", "198.51.100.10"]
    assert ev["top_destinations"][0]["bytes"] == 900 * MB
    assert a.title == f"{PC} sent 1,210.0 MB outside in one hour (usually 20.4 MB)"


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param([flow(30, 5, 150 * MB)], id="below-min-bytes"),
        pytest.param([flow(30, 5, 900 * MB, src="192.168.3.99")], id="no-history-for-this-host"),
        pytest.param([flow(30, 5, 900 * MB, dst="192.168.3.1")], id="internal-destination"),
    ],
)
def test_no_spike(extra: list[dict[str, Any]]) -> None:
    det, c = VolumeSpikeDetector(), ctx()
    assert det.detect(events(usual(30)), c) == []
    assert det.detect(events(extra), c) == []


def test_a_busy_host_is_judged_against_its_own_baseline() -> None:
    det, c = VolumeSpikeDetector(), ctx()
    server = "192.168.3.2"
    assert det.detect(events(usual(30) + usual(30, nbytes=2000 * MB, src=server)), c) == []
    assert det.detect(events([flow(30, 5, 3000 * MB, src=server)]), c) == []


def test_too_little_history_does_not_alert() -> None:
    det, c = VolumeSpikeDetector(), ctx()
    assert det.detect(events(usual(10)), c) == []
    assert det.detect(events([flow(10, 5, 900 * MB)]), c) == []
    assert VolumeSpikeDetector(min_history_hours=10).detect(
        events([*usual(10), flow(10, 5, 900 * MB)]), ctx()
    )


def test_duplicates_out_of_order_and_repeats_count_once() -> None:
    det, c = VolumeSpikeDetector(), ctx()
    rows = usual(30)
    det.detect(events(rows[30:]), c)  # later hours first
    det.detect(events(rows[:30] + rows[:10]), c)
    assert c.state["hourly"].height == 30
    part = [flow(30, 5, 60 * MB), flow(30, 6, 60 * MB)]
    assert det.detect(events(part + part + part), c) == []  # 120 MB once, not 360 MB
    (a,) = det.detect(events([flow(30, 7, 200 * MB)]), c)
    assert a.evidence["bytes"] == 320 * MB
    assert det.detect(events([flow(30, 8, 200 * MB)]), c) == []  # same hour: already reported
    assert det.detect(events(part), c) == []


def test_late_rows_of_a_closed_hour_do_not_shrink_it() -> None:
    det, c = VolumeSpikeDetector(late=timedelta(hours=2)), ctx()
    det.detect(events(usual(30)), c)
    before = c.state["hourly"].filter(pl.col("hour") == T0 + timedelta(hours=25))["bytes"].item()
    det.detect(events([flow(25, 41, 1 * MB)]), c)  # older than the recent window: ignored or added
    after = c.state["hourly"].filter(pl.col("hour") == T0 + timedelta(hours=25))["bytes"].item()
    assert after >= before


def test_missing_fields_clock_jump_and_bounded_state() -> None:
    det, c = VolumeSpikeDetector(max_rows=40, max_hours=50, history=timedelta(days=2)), ctx()
    rows = usual(3)
    rows[0]["source.bytes"] = None
    rows[1]["source.ip"] = None
    rows[2]["@timestamp"] = None
    rows[3]["destination.ip"] = None
    assert det.detect(events(rows), c) == []
    assert det.detect(events([]), c) == []
    for jump in (0, 24 * 400, 5):
        assert (
            det.detect(
                events([{**r, "@timestamp": r["@timestamp"] + timedelta(hours=jump)} for r in usual(60)]), c
            )
            == []
        )
        assert c.state["recent"].height <= 40 and c.state["hourly"].height <= 50
    assert all(isinstance(v, pl.DataFrame) for v in c.state.values())


# ------------------------------------------------------------------------ real data


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
            det, c = VolumeSpikeDetector(), ctx(**kw)
            assert [a for part in frame.iter_slices(40_000) for a in det.detect(part, c)] == []
    # even with no minimum volume and six hours of history, the public server's steady
    # outbound DNS/NTP/TLS never reaches ten times its median
    det, c = VolumeSpikeDetector(min_bytes=0, min_history_hours=6), ctx(networks=("64.225.56.201/32",))
    assert [a for part in frames[0].iter_slices(5_000) for a in det.detect(part, c)] == []
    assert c.state["hourly"].height == 72


def test_state_survives_a_restart(tmp_path: Path) -> None:
    from mimamori.detect.state import StateStore

    store = StateStore(tmp_path)
    assert VolumeSpikeDetector().detect(events(usual(30)), ctx(state=store.get("t1", "volume_spike"))) == []
    store.save_all()
    again = StateStore(tmp_path).get("t1", "volume_spike")
    assert len(VolumeSpikeDetector().detect(events([flow(30, 5, 900 * MB)]), ctx(state=again))) == 1


def test_one_batch_of_three_days_is_counted_whole() -> None:
    det, c = VolumeSpikeDetector(), ctx()
    assert det.detect(events([*usual(72), flow(72, 5, 900 * MB)]), c) != []
    assert c.state["hourly"].height == 73
