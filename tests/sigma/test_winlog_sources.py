"""Windows events in: EVTX and the JSON export flavours, on the corpus's real files."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import polars as pl
import pytest

from mimamori.sources import get_parser
from mimamori.sources.evtx import read_evtx, read_winlog_json
from mimamori.sources.winlog import from_events, to_events

pytestmark = pytest.mark.corpus

SAMPLE = "evtx-attack-samples/AutomatedTestingTools/PanacheSysmon_vs_AtomicRedTeam01.evtx"
MULTI_CHUNK = "evtx-attack-samples/Other/rdpcorets_148_mst120_bluekeep_rpdscan_full.evtx"


def test_every_corpus_evtx_reads_completely(corpus: Path) -> None:
    """Record counts match the corpus inventory (made with the same reader), none quarantined."""
    with open(corpus / "EVTX_INVENTORY.tsv", encoding="utf-8") as fh:
        inventory = {r["path"]: int(r["records"]) for r in csv.DictReader(fh, delimiter="\t")}
    assert len(inventory) >= 100
    for rel, records in inventory.items():
        batches = list(read_evtx(corpus / rel))
        assert sum(b.wide.height for b in batches) == records, rel
        assert sum(b.quarantine.height for b in batches) == 0, rel


def test_sysmon_event_has_sigma_and_ecs_fields(corpus: Path) -> None:
    wide = next(read_evtx(corpus / SAMPLE)).wide
    assert wide.height == 565
    first = wide.row(0, named=True)
    assert first["EventID"] == "1"
    assert first["Channel"] == "Microsoft-Windows-Sysmon/Operational"
    assert first["Provider_Name"] == "Microsoft-Windows-Sysmon"
    assert first["Computer"] == "MSEDGEWIN10"
    assert first["Image"] == "C:\\Windows\\System32\\consent.exe"
    assert first["CommandLine"] == "consent.exe 4516 288 0000023C0CA21C70"
    assert first["ParentImage"] == "C:\\Windows\\System32\\svchost.exe"
    assert first["RuleName"] == ""  # empty <Data> is empty text, not missing
    assert first["EventRecordID"] == "3572" and first["winlog.record_id"] == 3572
    assert first["host.name"] == "MSEDGEWIN10" and first["event.code"] == "1"
    assert str(first["@timestamp"]) == "2019-07-19 14:42:51.446280+00:00"
    assert first["log.file.path"] == str(corpus / SAMPLE)
    # the archive form keeps every Windows field, and gives the wide frame back
    events = to_events(wide, "windows")
    assert events.height == 565 and events["winlog.channel"][0] == first["Channel"]
    again = from_events(events)
    assert again["CommandLine"].to_list() == wide["CommandLine"].to_list()


def test_truncated_evtx_is_reported_and_the_rest_is_read(corpus: Path) -> None:
    data = (corpus / MULTI_CHUNK).read_bytes()
    cut = data[: 4096 + 65536 + 30000]
    batches = list(read_evtx(cut, path="cut.evtx"))
    assert sum(b.wide.height for b in batches) == 120  # the first, whole chunk
    reasons = [r for b in batches for r in b.quarantine["reason"].to_list()]
    assert len(reasons) == 1 and "truncated" in reasons[0] and "30000 bytes" in reasons[0]


def test_corrupt_chunk_is_reported_with_its_records_and_the_rest_is_read(corpus: Path) -> None:
    data = bytearray((corpus / MULTI_CHUNK).read_bytes())
    data[4096 + 65536 + 2000 : 4096 + 65536 + 2300] = b"\xff" * 300  # damage chunk 2
    batches = list(read_evtx(bytes(data), path="bad.evtx"))
    q = pl.concat([b.quarantine for b in batches])
    assert q.height == 1 and q["log.file.path"][0] == "bad.evtx"
    assert "record IDs 121..236" in q["reason"][0]
    assert sum(b.wide.height for b in batches) == 733 - 116


def test_not_an_evtx_file_is_one_reason_in_the_pipeline(tmp_path: Path) -> None:
    parser = get_parser("evtx")
    with pytest.raises(Exception, match="not an EVTX file"):
        list(parser.read_records(b"hello", "x.evtx"))  # type: ignore[attr-defined]


def test_evtx_dump_jsonl_and_pretty_json_read_like_the_evtx(corpus: Path, tmp_path: Path) -> None:
    import evtx

    rows = [r["data"] for r in evtx.PyEvtxParser(str(corpus / SAMPLE)).records_json()]
    jsonl = tmp_path / "dump.jsonl"
    jsonl.write_text("\n".join(json.dumps(json.loads(r)) for r in rows) + "\n", encoding="utf-8")
    pretty = tmp_path / "dump.json"
    pretty.write_text("\n".join(json.dumps(json.loads(r), indent=2) for r in rows), encoding="utf-8")
    want = next(read_evtx(corpus / SAMPLE)).wide.drop("log.file.path", "log.file.line")
    for f in (jsonl, pretty):
        got = next(read_winlog_json(f)).wide.drop("log.file.path", "log.file.line")
        assert got.select(sorted(got.columns)).equals(want.select(sorted(want.columns))), f


def test_bad_json_record_is_quarantined_with_its_line(tmp_path: Path) -> None:
    f = tmp_path / "x.jsonl"
    good = json.dumps({"EventID": 4688, "Channel": "Security", "Hostname": "PC1", "NewProcessName": "a.exe"})
    f.write_text(f"{good}\n{{broken\n{good}\n[1, 2]\n", encoding="utf-8")
    b = next(read_winlog_json(f))
    assert b.wide.height == 2
    assert b.quarantine["log.file.line"].to_list() == [2, 4]
    assert b.wide["Computer"].to_list() == ["PC1", "PC1"]


def test_otrf_host_dataset(corpus: Path, tmp_path: Path) -> None:
    z = (
        corpus
        / "otrf-security-datasets/datasets/atomic/windows/defense_evasion/host"
        / "cmd_bitsadmin_download_psh_script.zip"
    )
    with zipfile.ZipFile(z) as zf:
        name = zf.namelist()[0]
        data = zf.read(name)
    lines = [x for x in data.splitlines() if x.strip()]
    b = next(read_winlog_json(data, path=name))
    assert b.wide.height == len(lines) and b.quarantine.height == 0
    proc = b.wide.filter((pl.col("EventID") == "4688") & pl.col("CommandLine").str.contains("bitsadmin"))
    assert proc.height >= 1
    row = proc.row(0, named=True)
    assert row["Channel"] == "Security" and row["Computer"] == "WORKSTATION5"
    assert row["NewProcessName"] == "C:\\Windows\\System32\\bitsadmin.exe"
    assert row["Provider_Name"] == "Microsoft-Windows-Security-Auditing"


def test_winlogbeat_ecs_export() -> None:
    doc = {
        "@timestamp": "2024-05-01T01:02:03.000Z",
        "host": {"name": "pc-07"},
        "winlog": {
            "channel": "Microsoft-Windows-Sysmon/Operational",
            "event_id": 1,
            "provider_name": "Microsoft-Windows-Sysmon",
            "computer_name": "pc-07.example.local",
            "record_id": 991,
            "event_data": {"Image": "C:\\w\\powershell.exe", "CommandLine": "powershell -enc AAAA"},
        },
    }
    b = next(read_winlog_json(json.dumps(doc).encode(), path="beat.json"))
    row = b.wide.row(0, named=True)
    assert row["EventID"] == "1" and row["Channel"] == "Microsoft-Windows-Sysmon/Operational"
    assert row["Image"] == "C:\\w\\powershell.exe" and row["Computer"] == "pc-07.example.local"
    assert row["winlog.record_id"] == 991 and str(row["@timestamp"]) == "2024-05-01 01:02:03+00:00"


def test_platform_ingests_evtx_and_counts_every_record(corpus: Path, tmp_path: Path) -> None:
    from mimamori.config import Settings
    from mimamori.db import repo
    from mimamori.db.session import session_scope
    from mimamori.pipeline import Platform

    with Platform(Settings.load(tmp_path / "home"), detectors=[]) as p:
        with session_scope(p.engine) as s:
            repo.add_tenant(s, "t1", "T1", networks=[], actor="test")
        r = p.ingest("t1", "evtx", corpus / SAMPLE)
        assert (r.lines_read, r.stored, r.quarantined) == (565, 565, 0)
        data = (corpus / MULTI_CHUNK).read_bytes()[: 4096 + 65536 + 30000]
        r = p.ingest("t1", "auto", data, name="cut.evtx")
        assert r.source == "evtx" and r.stored == 120 and r.quarantined == 1
        r = p.ingest("t1", "evtx", b"not evtx at all", name="x.evtx")
        assert r.stored == 0 and r.quarantined == 1
        archived = from_events(p.archive.scan_events("t1").collect())
        assert archived.height == 685
        assert archived.filter(pl.col("EventID") == "1")["CommandLine"].null_count() == 0
