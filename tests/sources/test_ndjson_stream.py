"""Zeek JSON read by DuckDB from the file (``ndjson_stream``) against the same bytes read by
Polars from memory: the events, quarantine and line numbers must be the same, whatever the
file holds and wherever the blocks fall. Real RITA lines throughout."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mimamori.sources import read_batches, reader
from mimamori.sources.ndjson_stream import NdjsonStream, rows_agree
from mimamori.sources.zeek import ZeekParser
from tests.sources.util import parse_file

RITA_JSON = "zeek-rita-testdata/test_data/json_with_all_fields"


def _parse(source: Path | bytes, name: str) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    ctx: dict[str, Any] = {}
    parser = ZeekParser()
    events, quarantine = [], []
    for batch in read_batches(source, name if isinstance(source, bytes) else None):
        result = parser.parse(batch, ctx)
        events.append(result.events)
        quarantine += [result.quarantine, batch.quarantine]
    return pl.concat(events), pl.concat(quarantine), ctx


def _streamed(ctx: dict[str, Any]) -> bool:
    """True when the file's last block still came from the DuckDB stream."""
    state = ctx.get("zeek")
    return state is not None and isinstance(state.stream, NdjsonStream)


def _assert_alike(path: Path) -> dict[str, Any]:
    events, quarantine, ctx = _parse(path, str(path))
    expected_events, expected_quarantine, bytes_ctx = _parse(path.read_bytes(), str(path))
    assert not _streamed(bytes_ctx)  # bytes in memory: Polars read them
    assert events.equals(expected_events)
    assert quarantine.equals(expected_quarantine)
    return ctx


def _json_files(corpus: Path) -> list[Path]:
    found = []
    for path in sorted((corpus / "zeek-rita-testdata").rglob("*.log")):
        with path.open("rb") as fh:
            if fh.read(1) == b"{":
                found.append(path)
    return found


@pytest.mark.corpus
def test_real_json_logs_read_alike(corpus: Path) -> None:
    files = _json_files(corpus)
    assert len(files) >= 8
    streamed = [p.name for p in files if _streamed(_assert_alike(p))]
    assert {"conn.log", "dns.log", "http.log", "ssl.log"} <= set(streamed)


@pytest.fixture
def lines(corpus: Path) -> dict[str, list[str]]:
    return {
        name: (corpus / RITA_JSON / f"{name}.log").read_text().splitlines()[:40]
        for name in ("conn", "dns", "http")
    }


def _write(tmp_path: Path, lines: list[str], name: str = "conn.log") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.corpus
@pytest.mark.parametrize(
    "change",
    ["blank line", "spaces", "bad JSON", "two objects", "other log type", "nested id", "count as text"],
)
def test_a_later_block_unlike_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lines: dict[str, list[str]], change: str
) -> None:
    """Small blocks; line 31 is something the stream cannot read as the first blocks.
    The stream stops there and Polars reads the rest, with the same results."""
    monkeypatch.setattr(reader, "BLOCK_BYTES", 2048)
    out = lines["conn"] * 3
    obj = json.loads(out[30])
    replacement = {
        "blank line": "",
        "spaces": "   ",
        "bad JSON": out[30][:-5],
        "two objects": out[30] + out[31],
        "other log type": lines["dns"][0],
        "nested id": json.dumps(
            {**{k: v for k, v in obj.items() if not k.startswith("id.")}, "id": {"orig_h": obj["id.orig_h"]}}
        ),
        "count as text": json.dumps({**obj, "orig_bytes": str(obj.get("orig_bytes", 1))}),
    }[change]
    out[30] = replacement
    path = _write(tmp_path, out, "all.log" if change == "other log type" else "conn.log")
    ctx = _assert_alike(path)
    # DuckDB reads "123" as the count 123, which Polars's careful path also ends with
    assert (ctx["zeek"].stream is False) is (change != "count as text")
    parsed = parse_file(ZeekParser(), path)  # checks events + quarantined + skipped per batch
    assert parsed.lines == len(out)
    assert sum(parsed.counts) == len(out)


@pytest.mark.corpus
def test_clean_file_streams_to_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lines: dict[str, list[str]]
) -> None:
    monkeypatch.setattr(reader, "BLOCK_BYTES", 2048)
    path = _write(tmp_path, lines["conn"] * 3)
    assert len(list(read_batches(path))) > 5
    ctx = _assert_alike(path)
    assert _streamed(ctx)


@pytest.mark.corpus
def test_reads_the_open_file_not_its_replacement(tmp_path: Path, lines: dict[str, list[str]]) -> None:
    """Log rotation between opening a file and parsing it: DuckDB reads the file the reader
    has open (``/proc/self/fd/N``), not whatever now has its name."""
    path = _write(tmp_path, lines["conn"])
    expected = parse_file(ZeekParser(), path.read_bytes(), str(path)).events
    batches = read_batches(path)
    first = next(batches)  # the file is open and mapped
    os.rename(path, tmp_path / "conn.log.1")
    _write(tmp_path, lines["conn"][::-1])
    ctx: dict[str, Any] = {}
    events = ZeekParser().parse(first, ctx).events
    assert _streamed(ctx)
    assert events.equals(expected)
    assert list(batches) == []


def test_rows_agree_checks_first_and_last_lines() -> None:
    first, last = b'{"a": 1, "s": "x", "n": 5}', b'{"a": 2, "s": "y"}'
    df = pl.DataFrame({"a": [1, 2], "s": ["x", "y"], "n": ["5", None]})
    assert rows_agree(df, first, last)  # a number in a text column is not compared
    assert not rows_agree(df.reverse(), first, last)
    assert not rows_agree(df.with_columns(pl.Series("a", [1, 3])), first, last)
    assert not rows_agree(df.head(0), first, last)
    assert not rows_agree(df, first, b"[2]")
    assert not rows_agree(df, first, b'{"a": 2')


def test_unsupported_type_gives_no_stream(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"a": 1}\n')
    assert NdjsonStream.open(str(path), {"a": pl.Int8()}) is None
    stream = NdjsonStream.open(str(path), {"a": pl.Int64()})
    assert stream is not None
    taken = stream.take(1)
    assert taken is not None and taken.to_dicts() == [{"a": 1}]
    assert stream.take(1) is None  # past the end: the stream closes
    assert stream.take(1) is None


@st.composite
def files(draw: st.DrawFn, lines: dict[str, list[str]]) -> list[str]:
    kinds = st.sampled_from(["conn", "conn", "conn", "dns", "blank", "bad", "text count"])
    out = []
    for kind in draw(st.lists(kinds, min_size=1, max_size=60)):
        if kind in lines:
            out.append(draw(st.sampled_from(lines[kind])))
        elif kind == "blank":
            out.append("")
        elif kind == "bad":
            out.append(draw(st.sampled_from(lines["conn"]))[: draw(st.integers(0, 40))])
        else:
            obj = json.loads(draw(st.sampled_from(lines["conn"])))
            out.append(json.dumps({**obj, "id.resp_p": str(obj["id.resp_p"])}))
    return out


@pytest.mark.corpus
def test_any_mixture_reads_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, corpus: Path) -> None:
    sample = {
        name: (corpus / RITA_JSON / f"{name}.log").read_text().splitlines()[:20] for name in ("conn", "dns")
    }

    outcomes: set[bool] = set()

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(content=files(sample), block=st.integers(200, 6000), name=st.sampled_from(["conn.log", "x.json"]))
    def check(content: list[str], block: int, name: str) -> None:
        monkeypatch.setattr(reader, "BLOCK_BYTES", block)
        outcomes.add(_streamed(_assert_alike(_write(tmp_path, content, name))))

    check()
    assert outcomes == {True, False}  # files streamed to the end and files that fell back
