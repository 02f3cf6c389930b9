"""The line reader: a file (memory-mapped) and the same bytes in memory give the same lines,
whatever the block size; every line is counted once."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mimamori.sources import read_batches, reader


def _lines(batches: list[reader.LineBatch]) -> tuple[list[tuple[int, str]], list[int]]:
    ok = pl.concat([b.lines for b in batches]).rows() if batches else []
    bad = [n for b in batches for n in b.quarantine["log.file.line"].to_list()]
    return ok, bad


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    parts=st.lists(
        st.sampled_from([b'{"a": 1}', b"", b"x\r", "日本語".encode(), "ｼﾌﾄ".encode("cp932"), b"\xff\xfe"]),
        max_size=30,
    ),
    final_newline=st.booleans(),
    block=st.integers(min_value=1, max_value=40),
)
def test_file_and_bytes_read_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parts: list[bytes], final_newline: bool, block: int
) -> None:
    data = b"\n".join(parts) + (b"\n" if final_newline and parts else b"")
    path = tmp_path / "in.log"
    path.write_bytes(data)
    monkeypatch.setattr(reader, "BLOCK_BYTES", block)
    from_file = _lines(list(read_batches(path)))
    from_bytes = _lines(list(read_batches(data, str(path))))
    assert from_file == from_bytes
    expected = data.removesuffix(b"\n").split(b"\n") if data else []
    numbers = sorted([n for n, _ in from_file[0]] + from_file[1])
    assert numbers == list(range(1, len(expected) + 1))  # every line once, in order
    for n, text in from_file[0]:
        raw = expected[n - 1].removesuffix(b"\r")
        assert text == (raw.decode() if raw.isascii() or raw == "日本語".encode() else raw.decode("cp932"))


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.log"
    path.write_bytes(b"")
    assert list(read_batches(path)) == []


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    block=st.binary(max_size=300)
    | st.lists(st.sampled_from([b"{}", b"{", b"", b"x{", b"\n", "{日本".encode()])).map(b"\n".join),
    piece=st.integers(min_value=1, max_value=9),
    pad=st.tuples(st.binary(max_size=5), st.binary(max_size=5)),
)
def test_scan_lines(
    monkeypatch: pytest.MonkeyPatch, block: bytes, piece: int, pad: tuple[bytes, bytes]
) -> None:
    """Newline count, the byte all lines begin with and whether all is ASCII, for a span of a
    buffer scanned in pieces of any size."""
    monkeypatch.setattr(reader, "_SCAN_BYTES", piece)
    lines = block.split(b"\n")
    leads = {ln[:1] for ln in lines}
    lead = leads.pop()[0] if len(leads) == 1 and lines[0] else None
    data = pad[0] + block + pad[1]
    scanned = reader._scan_lines(data, len(pad[0]), len(pad[0]) + len(block))
    assert scanned == (block.count(b"\n"), lead, block.isascii())
