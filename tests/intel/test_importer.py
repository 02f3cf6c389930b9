"""import_paths over the whole threat-intel corpus: detection, per-file report, dedup, store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mimamori.db.models import Indicator, IntelSource
from mimamori.intel import ReadResult, import_paths

from .conftest import NOW

pytestmark = pytest.mark.corpus

#: indicators read per recognised file (see the reader tests for how each was derived).
PER_FILE = {
    "abusech/feodotracker/ipblocklist.csv": ("feodo_csv", 28),
    "abusech/feodotracker/ipblocklist_recommended.json": ("feodo_json", 222),
    "abusech/threatfox/threatfox_api.excerpt.ndjson": ("threatfox_json", 8),
    "abusech/urlhaus/elastic-test-abusechurl-dump.log": ("urlhaus_json", 2),
    "abusech/urlhaus/urlhaus_csv_online.excerpt.csv": ("urlhaus_csv", 18),
    "misp-events-circl/tests/57c4445b-c548-4654-af0b-4be3950d210f.json": ("misp_event", 3),
    "misp-events-circl/tests/mispevent_testfiles/existing_event.json": ("misp_event", 68),
    "misp-events-circl/tests/reportlab_testfiles/galaxy_1.json": ("misp_event", 4),
    "misp-events-circl/tests/reportlab_testfiles/long_event.json": ("misp_event", 245),
    "misp-events-circl/tests/reportlab_testfiles/mainly_objects_1.json": ("misp_event", 17),
    "misp-events-circl/tests/reportlab_testfiles/sighting_1.json": ("misp_event", 5),
    "misp-feed-certfr": ("misp_feed", 1722),
}


def test_import_whole_corpus(session: Session, ti: Path, read_feed: Callable[[str, str], ReadResult]) -> None:
    report = import_paths(session, [ti], now=NOW)
    session.commit()
    files = {str(Path(f.path).relative_to(ti)): f for f in report.files}
    for rel, (reader, n) in PER_FILE.items():
        assert (files[rel].reader, files[rel].indicators) == (reader, n), rel
    # The MISP feed directory is one unit: its event files are not read twice.
    assert not any(rel.startswith("misp-feed-certfr/") for rel in files)
    assert files["cisa-kev/known_exploited_vulnerabilities.json"].reader is None
    assert files["cisa-kev/known_exploited_vulnerabilities.json"].issues == []  # walked, not an error
    assert (
        sum(f.indicators for f in report.files if f.reader == "stix21")
        == 10 + 64 + 1 + 1 + 1 + 1 + 1 + 1 + 2 + 10 + 64
    )

    # 10.0.0.0 from four OASIS examples is dropped by the warning list, with the reason.
    assert report.dropped.select("value", "reason").unique().rows() == [
        ("10.0.0.0", "private range (RFC 1918), 10.0.0.0/8")
    ]
    assert report.dropped.height == 4
    assert sum(f.dropped for f in report.files) == 4

    # Independent count: the distinct values of every recognised file (read once per session).
    frames = [read_feed(f.reader, rel).indicators for rel, f in files.items() if f.reader]
    distinct = pl.concat(frames).filter(pl.col("value") != "10.0.0.0").select("type", "value").unique().height
    assert report.new == distinct == report.new_indicators.height
    assert session.scalar(select(func.count()).select_from(Indicator)) == distinct
    assert "CERT-FR" in session.scalars(select(IntelSource.name)).all()
    assert len(report.issues) == 2 + 3 + 1 + 2 + 2 + 3 + 5  # STIX parts + MISP long_event urls
    assert f"{report.new} new" in report.summary()

    # Re-importing (the small feeds; the ATT&CK bundles are not loaded again) changes nothing.
    again = import_paths(session, [ti / "abusech", ti / "misp-feed-certfr"], now=NOW)
    assert (again.new, again.updated) == (0, 0)
    assert again.unchanged == again.stored > 0


def test_source_name_and_forced_reader(session: Session, ti: Path) -> None:
    path = ti / "abusech/feodotracker/ipblocklist.csv"
    report = import_paths(session, [path], "my feodo mirror", reader="feodo_csv", now=NOW)
    assert [(f.reader, f.sources, f.indicators) for f in report.files] == [
        ("feodo_csv", ["my feodo mirror"], 28)
    ]
    src = session.scalars(select(IntelSource)).one()
    assert (src.name, src.kind) == ("my feodo mirror", "feodo_csv")


def test_unreadable_explicit_paths_are_reported(session: Session, ti: Path, tmp_path: Path) -> None:
    report = import_paths(session, [ti / "SOURCES.md", tmp_path / "missing.csv"], now=NOW)
    assert [(f.reader, [i.reason for i in f.issues]) for f in report.files] == [
        (None, ["not a known threat-intel feed format"]),
        (None, ["no such file or directory"]),
    ]
    assert report.stored == 0


def test_allow_private_keeps_private_ranges(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "internal.txt"
    path.write_text("10.1.2.3\n8.8.8.8\n192.0.2.1\n")
    report = import_paths(session, [path], allow_private=True, now=NOW)
    assert report.new_indicators["value"].sort().to_list() == ["10.1.2.3", "192.0.2.1"]
    assert report.dropped.select("value", "reason").rows() == [
        ("8.8.8.8", "public DNS resolver (Google Public DNS)")
    ]
