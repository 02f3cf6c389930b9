"""Windows event logs in: EVTX files (the ``evtx`` package) and JSON exports.

``read_evtx`` and ``read_winlog_json`` stream a file as ``WinlogBatch`` frames (wide:
Sigma field names plus ECS core, see ``sources.winlog``). ``EvtxParser`` and
``WinlogJsonParser`` are the registered source parsers (``--source evtx|winlog_json``);
they are *record* parsers: the pipeline hands them the whole file (``read_records``)
instead of decoded lines, because EVTX is binary and JSON exports are often pretty-printed.

Nothing is lost silently: a record the ``evtx`` reader cannot decode (bad chunk checksum,
truncated file, broken template) is a quarantine row naming the file, the record's
position and the reader's reason, and reading goes on with the next record.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from mimamori.sources.base import ParseResult, SourceError, SourceParser
from mimamori.sources.reader import LineBatch
from mimamori.sources.winlog import RecordBuilder, WinlogBatch, parse_result

BATCH_RECORDS = 50_000
EVTX_MAGIC = b"ElfFile\x00"


class WinlogError(SourceError):
    """A Windows event file could not be opened at all (named with the reason)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def is_evtx(data: bytes) -> bool:
    return data[:8] == EVTX_MAGIC


def read_evtx(
    src: Path | str | bytes, *, path: str | None = None, batch_records: int = BATCH_RECORDS, threads: int = 1
) -> Iterator[WinlogBatch]:
    """Stream an EVTX file (path or bytes) as wide batches; bad records are quarantined."""
    import evtx

    label = path or (str(src) if not isinstance(src, bytes) else "<evtx>")
    target: Any = io.BytesIO(src) if isinstance(src, bytes) else str(src)
    try:
        parser = evtx.PyEvtxParser(target, number_of_threads=threads)
    except (OSError, RuntimeError, ValueError) as exc:
        raise WinlogError(label, f"not a readable EVTX file: {exc}") from exc
    it: Iterator[Any] = iter(parser.records_json())
    out = RecordBuilder(label)
    problem = _truncation(src)
    if problem:
        out.bad(0, problem)
    position = 0
    while True:
        position += 1
        try:
            rec: dict[str, Any] = next(it) or {}
        except StopIteration:
            break
        except (RuntimeError, OSError, ValueError) as exc:  # the reader's error for one record
            out.bad(position, f"EVTX record unreadable: {exc}")
            if out.rows + len(out.bad_no) >= batch_records:
                yield out.take()
            continue
        try:
            obj = json.loads(rec["data"])
        except ValueError as exc:
            out.bad(position, f"EVTX record is not valid JSON: {exc}", str(rec.get("data", ""))[:4000])
            continue
        out.add(obj, position, rec.get("event_record_id"))
        if out.rows + len(out.bad_no) >= batch_records:
            yield out.take()
    if out.rows or out.bad_no or position == 1:
        yield out.take()


CHUNK = 65536
HEADER_BLOCK = 4096


def _truncation(src: Path | str | bytes) -> str | None:
    """A reason when the file is shorter than its header says (the reader drops the tail)."""
    if isinstance(src, bytes):
        head, size = src[:HEADER_BLOCK], len(src)
    else:
        with open(src, "rb") as fh:
            head = fh.read(HEADER_BLOCK)
            size = fh.seek(0, 2)
    if len(head) < 44:
        return None
    declared = int.from_bytes(head[42:44], "little")
    body = max(size - HEADER_BLOCK, 0)
    whole, rest = divmod(body, CHUNK)
    if rest:
        return (
            f"EVTX file truncated: {whole} whole chunks and {rest} bytes of a partial one "
            f"(header declares {declared}); records in the partial chunk are not readable"
        )
    if whole < declared:
        return f"EVTX file truncated: header declares {declared} chunks, {whole} present"
    return None


def _json_objects(text: str) -> Iterator[tuple[int, Any, str | None]]:
    """(line, value, error) for each JSON value of a file: an array, NDJSON, or concatenated
    (pretty-printed) objects. A value that does not parse is reported with its line."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            arr = json.loads(text)
        except ValueError as exc:
            yield 1, None, f"invalid JSON array: {exc}"
            return
        if isinstance(arr, list):
            for i, v in enumerate(arr, 1):
                yield i, v, None
            return
    dec = json.JSONDecoder()
    pos, n = 0, len(text)
    line = 1
    while pos < n:
        while pos < n and text[pos] in " \t\r\n":
            if text[pos] == "\n":
                line += 1
            pos += 1
        if pos >= n:
            break
        start_line = line
        try:
            obj, end = dec.raw_decode(text, pos)
        except ValueError as exc:
            nl = text.find("\n", pos)
            end = n if nl == -1 else nl
            yield start_line, None, f"invalid JSON: {exc.args[0] if exc.args else exc}"
            pos = end
            continue
        line += text.count("\n", pos, end)
        pos = end
        yield start_line, obj, None


def read_winlog_json(
    src: Path | str | bytes, *, path: str | None = None, batch_records: int = BATCH_RECORDS
) -> Iterator[WinlogBatch]:
    """Stream a JSON export (evtx_dump JSON/JSONL, winlogbeat/ECS, OTRF) as wide batches."""
    label = path or (str(src) if not isinstance(src, bytes) else "<json>")
    data = src if isinstance(src, bytes) else Path(src).read_bytes()
    text = data.decode("utf-8-sig", errors="replace")
    out = RecordBuilder(label)
    seen = False
    for line, obj, err in _json_objects(text):
        seen = True
        if err is not None:
            out.bad(line, err, "")
        else:
            out.add(obj, line, flavour="flat")
        if out.rows + len(out.bad_no) >= batch_records:
            yield out.take()
    if out.rows or out.bad_no or not seen:
        yield out.take()


def read_windows_file(path: Path, *, batch_records: int = BATCH_RECORDS) -> Iterator[WinlogBatch]:
    """EVTX or JSON by content (the EVTX magic), for scanning folders."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if is_evtx(head):
        return read_evtx(path, batch_records=batch_records)
    return read_winlog_json(path, batch_records=batch_records)


class _RecordParser(SourceParser):
    """A parser fed the whole file (``read_records``), not decoded lines."""

    module: ClassVar[str] = "windows"

    def parse(self, batch: LineBatch, ctx: dict[str, Any]) -> ParseResult:
        """Line batches only reach here from a caller that does not know record parsers."""
        raise WinlogError(batch.path, f"the {self.name} parser reads whole files (read_records)")

    def read_records(self, data: bytes, path: str) -> Iterator[ParseResult]:
        raise NotImplementedError


class EvtxParser(_RecordParser):
    name = "evtx"
    description = "Windows EVTX files (Security, System, Sysmon, PowerShell, ...)"

    def sniff(self, head: list[str]) -> bool:
        return bool(head) and head[0].startswith("ElfFile")

    def read_records(self, data: bytes, path: str) -> Iterator[ParseResult]:
        if not is_evtx(data):
            raise WinlogError(path, "not an EVTX file (no 'ElfFile' signature)")
        for b in read_evtx(data, path=path):
            yield parse_result(b, "windows")


class WinlogJsonParser(_RecordParser):
    name = "winlog_json"
    description = "Windows events as JSON: evtx_dump JSON/JSONL, winlogbeat/ECS, OTRF exports"

    def sniff(self, head: list[str]) -> bool:
        text = "\n".join(head[:5])
        return ('"EventID"' in text or '"winlog"' in text or '"winlog.event_id"' in text) and (
            '"Channel"' in text or '"channel"' in text or '"winlog.channel"' in text
        )

    def read_records(self, data: bytes, path: str) -> Iterator[ParseResult]:
        for b in read_winlog_json(data, path=path):
            yield parse_result(b, "windows")
