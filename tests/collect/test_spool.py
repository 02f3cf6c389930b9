"""The spool: durable appends, in-order consumption, crash recovery, quotas."""

from __future__ import annotations

import os

import pytest

from mimamori.collect import QuotaExceeded
from mimamori.collect.spool import Spool


def meta(i: int, tenant: str = "acme") -> dict[str, object]:
    return {"batch_id": f"b{i}", "tenant": tenant, "source": "syslog-raw"}


def test_records_come_back_in_order_and_survive_reopening(tmp_path):
    spool = Spool(tmp_path, segment_bytes=200)
    spool.append([(meta(i), f"line {i}\n".encode() * 10) for i in range(5)])
    first = spool.next(timeout=0)
    assert first is not None and first.batch_id == "b0"
    spool.commit(first)
    second = spool.next(timeout=0)
    assert second is not None and second.batch_id == "b1"
    spool.close()  # "crash" before b1 was committed
    again = Spool(tmp_path, segment_bytes=200)
    got = []
    while (rec := again.next(timeout=0)) is not None:
        got.append(rec.batch_id)
        assert rec.payload == f"line {rec.batch_id[1:]}\n".encode() * 10
        again.commit(rec)
    assert got == ["b1", "b2", "b3", "b4"]  # b0 not again, b1 not lost
    assert again.pending_records == 0
    again.close()


def test_segments_rotate_and_consumed_ones_are_deleted(tmp_path):
    spool = Spool(tmp_path, segment_bytes=100)
    for i in range(6):
        spool.append([(meta(i), b"x" * 80 + b"\n")])
    assert len(list(tmp_path.glob("*.seg"))) >= 3
    while (rec := spool.next(timeout=0)) is not None:
        spool.commit(rec)
    assert len(list(tmp_path.glob("*.seg"))) == 1
    spool.close()


def test_a_torn_record_at_the_end_is_cut_off(tmp_path, caplog):
    spool = Spool(tmp_path)
    spool.append([(meta(1), b"kept\n")])
    spool.append([(meta(2), b"also kept\n")])
    spool.close()
    seg = sorted(tmp_path.glob("*.seg"))[-1]
    with open(seg, "ab") as f:  # a crash in the middle of an append that never returned
        f.write(b"MSP1\x00\x00\x00\x10\x00\x00")
    again = Spool(tmp_path)
    assert "torn record" in caplog.text
    ids = []
    while (rec := again.next(timeout=0)) is not None:
        ids.append(rec.batch_id)
        again.commit(rec)
    assert ids == ["b1", "b2"]
    again.append([(meta(3), b"after the crash\n")])
    rec = again.next(timeout=0)
    assert rec is not None and rec.payload == b"after the crash\n"
    again.close()


def test_disk_and_tenant_quotas(tmp_path):
    spool = Spool(tmp_path, max_bytes=4000, tenant_max_bytes=1500)
    spool.append([(meta(1, "a"), b"a" * 1000)])
    with pytest.raises(QuotaExceeded) as tenant_full:
        spool.append([(meta(2, "a"), b"a" * 1000)])
    assert tenant_full.value.scope == "tenant"
    spool.append([(meta(3, "b"), b"b" * 1000)])
    spool.append([(meta(4, "c"), b"c" * 1000)])
    with pytest.raises(QuotaExceeded) as disk_full:
        spool.append([(meta(5, "d"), b"d" * 1000)])
    assert disk_full.value.scope == "disk" and disk_full.value.retry_after > 0
    # nothing refused was written: what was accepted comes back, nothing else
    ids = []
    while (rec := spool.next(timeout=0)) is not None:
        ids.append(rec.batch_id)
        spool.commit(rec)
    assert ids == ["b1", "b3", "b4"]
    spool.append([(meta(6, "a"), b"a" * 1000)])  # room again once consumed
    spool.close()


def test_append_is_fsynced(tmp_path, monkeypatch):
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    spool = Spool(tmp_path)
    calls.clear()
    spool.append([(meta(1), b"x\n")])
    assert calls, "append returned without fsync"
    spool.close()
