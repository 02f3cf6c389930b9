"""abuse.ch readers on the real exports (counts and one indicator's exact fields) and on broken copies."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from mimamori.intel import READERS, ReadResult
from mimamori.intel.base import INDICATOR_SCHEMA

from .conftest import DATA

pytestmark = pytest.mark.corpus

Read = Callable[[str, str], ReadResult]
FEODO_CSV = "abusech/feodotracker/ipblocklist.csv"
FEODO_JSON = "abusech/feodotracker/ipblocklist_recommended.json"
URLHAUS_CSV = "abusech/urlhaus/urlhaus_csv_online.excerpt.csv"
URLHAUS_JSON = "abusech/urlhaus/elastic-test-abusechurl-dump.log"
THREATFOX_JSON = "abusech/threatfox/threatfox_api.excerpt.ndjson"


def one(res: ReadResult, value: str) -> dict[str, object]:
    rows = res.indicators.filter(pl.col("value") == value).to_dicts()
    assert len(rows) == 1, rows
    return rows[0]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_feodo_csv(read_feed: Read) -> None:
    res = read_feed("feodo_csv", FEODO_CSV)
    assert res.indicators.schema == INDICATOR_SCHEMA
    # 28 rows, matching the file's own "# END 28 entries" (checked by the reader).
    assert (res.indicators.height, len(res.issues), res.skipped) == (28, 0, 0)
    assert res.indicators["type"].unique().to_list() == ["ip"]
    assert one(res, "213.199.41.33") == {
        "type": "ip",
        "value": "213.199.41.33",
        "threat": "Pikabot",
        "source": "abuse.ch Feodo Tracker",
        "reference": "https://feodotracker.abuse.ch/browse/host/213.199.41.33/",
        "confidence": 90,  # c2_status online
        "first_seen": utc(2024, 3, 26, 23, 30, 7),
        "last_seen": utc(2024, 4, 4),
        "expires_at": None,
        "tags": ["botnet_cc", "port:13721"],
    }
    assert one(res, "85.239.243.155")["confidence"] == 75  # offline


def test_feodo_csv_last_online_same_day_is_not_before_first_seen(read_feed: Read) -> None:
    # Last row: first seen 2024-04-04 07:03:03, last_online the date 2024-04-04.
    row = one(read_feed("feodo_csv", FEODO_CSV), "172.233.221.61")
    assert row["first_seen"] == row["last_seen"] == utc(2024, 4, 4, 7, 3, 3)


def test_feodo_json(read_feed: Read) -> None:
    res = read_feed("feodo_json", FEODO_JSON)
    assert (res.indicators.height, len(res.issues)) == (222, 0)
    assert res.indicators.group_by("threat").len().sort("threat").rows() == [
        ("Dridex", 11),
        ("Emotet", 1),
        ("Pikabot", 11),
        ("QakBot", 199),
    ]
    assert one(res, "192.99.150.39") == {
        "type": "ip",
        "value": "192.99.150.39",
        "threat": "Dridex",
        "source": "abuse.ch Feodo Tracker",
        "reference": "https://feodotracker.abuse.ch/browse/host/192.99.150.39/",
        "confidence": 90,
        "first_seen": utc(2021, 8, 27, 4, 48, 12),
        "last_seen": utc(2023, 6, 14),
        "expires_at": None,
        "tags": ["botnet_cc", "port:7443"],
    }


def test_urlhaus_csv(read_feed: Read) -> None:
    res = read_feed("urlhaus_csv", URLHAUS_CSV)
    assert (res.indicators.height, len(res.issues)) == (18, 0)
    assert one(res, "http://176.65.139.212/eclipse.sh4") == {
        "type": "url",
        "value": "http://176.65.139.212/eclipse.sh4",
        "threat": "malware_download",
        "source": "abuse.ch URLhaus",
        "reference": "https://urlhaus.abuse.ch/url/3905435/",
        "confidence": 80,
        "first_seen": utc(2026, 8, 18, 16, 5, 19),
        "last_seen": utc(2026, 8, 18, 16, 5, 19),
        "expires_at": None,
        "tags": ["176-65-139-212", "elf", "mirai", "ua-wget"],
    }
    # "None" in the tags column means no tags.
    assert one(res, "http://120.84.215.27:44835/i")["tags"] == []


def test_urlhaus_csv_older_layout_without_last_online(tmp_path: Path, ti: Path) -> None:
    lines = (ti / URLHAUS_CSV).read_text().splitlines()
    old = []
    for line in lines:
        if line.startswith("# id,"):
            old.append(line.replace("url_status,last_online,", "url_status,"))
        elif line.startswith('"'):
            fields = line.split('","')
            old.append('","'.join(fields[:4] + fields[5:]))
        else:
            old.append(line)
    path = tmp_path / "csv_recent.csv"
    path.write_text("\n".join(old) + "\n")
    res = READERS["urlhaus_csv"].read(path)
    assert (res.indicators.height, len(res.issues)) == (18, 0)
    row = one(res, "http://61.53.133.115:54046/i")
    assert row["first_seen"] == row["last_seen"] == utc(2026, 8, 18, 12, 57, 6)


def test_urlhaus_json_lines(read_feed: Read) -> None:
    res = read_feed("urlhaus_json", URLHAUS_JSON)
    assert (res.indicators.height, len(res.issues)) == (2, 0)
    assert one(res, "http://115.55.244.160:41619/Mozi.m") == {
        "type": "url",
        "value": "http://115.55.244.160:41619/Mozi.m",
        "threat": "malware_download",
        "source": "abuse.ch URLhaus",
        "reference": "https://urlhaus.abuse.ch/url/2786904/",
        "confidence": 80,
        "first_seen": utc(2024, 3, 19, 11, 34, 9),
        "last_seen": utc(2024, 3, 19, 11, 34, 9),
        "expires_at": None,
        "tags": ["elf", "Mozi"],
    }


def test_urlhaus_json_export_shape(tmp_path: Path) -> None:
    # The json_recent export is {"<id>": [record]} with the id as key.
    path = tmp_path / "json_recent.json"
    path.write_text(
        '{"2786904": [{"dateadded": "2024-03-19 11:34:09 UTC", "url": "http://115.55.244.160:41619/Mozi.m",'
        ' "url_status": "offline", "last_online": null, "threat": "malware_download",'
        ' "tags": ["elf", "Mozi"], "urlhaus_link": "https://urlhaus.abuse.ch/url/2786904/",'
        ' "reporter": "x"}]}'
    )
    res = READERS["urlhaus_json"].read(path)
    assert res.indicators.select("value", "confidence", "reference").rows() == [
        ("http://115.55.244.160:41619/Mozi.m", 60, "https://urlhaus.abuse.ch/url/2786904/")
    ]


def test_threatfox_json_api_records(read_feed: Read) -> None:
    res = read_feed("threatfox_json", THREATFOX_JSON)
    assert (res.indicators.height, len(res.issues)) == (8, 0)
    assert res.indicators.group_by("type").len().sort("type").rows() == [("ip", 5), ("url", 3)]
    # Four ip:port records share 81.2.69.142 (Elastic replaced the real IPs); ports are dropped.
    assert res.indicators.filter(pl.col("value") == "81.2.69.142").height == 4
    assert one(res, "2a02:cf40:1::5") == {
        "type": "ip",
        "value": "2a02:cf40:1::5",
        "threat": "RedLine Stealer",
        "source": "abuse.ch ThreatFox",
        "reference": "https://threatfox.abuse.ch/ioc/841508/",
        "confidence": 100,
        "first_seen": utc(2022, 8, 5, 11, 40, 15),
        "last_seen": utc(2022, 8, 5, 11, 40, 15),
        "expires_at": None,
        "tags": ["RedLineStealer", "botnet_cc"],
    }
    assert one(res, "http://malaikahlowry33.top/")["threat"] == "Hydra"


@pytest.mark.parametrize("name", ["threatfox_full.excerpt.csv", "threatfox_recent_15col.csv"])
def test_threatfox_csv_both_layouts(name: str) -> None:
    res = READERS["threatfox_csv"].read(DATA / name)
    assert (res.indicators.height, len(res.issues)) == (5, 0)
    assert one(res, "8.134.12.90") == {
        "type": "ip",
        "value": "8.134.12.90",
        "threat": "Cobalt Strike",
        "source": "abuse.ch ThreatFox",
        "reference": "https://threatfox.abuse.ch/ioc/1301610/",  # reference "None" -> the IOC page
        "confidence": 100,
        "first_seen": utc(2024, 7, 16, 5, 25, 36),
        "last_seen": utc(2024, 7, 16, 5, 25, 36),
        "expires_at": None,
        "tags": ["CobaltStrike", "cs-watermark-987654321", "botnet_cc"],
    }
    url = one(res, "http://rocheholding.top/rudolph/five/fre.php")
    assert url["last_seen"] == utc(2024, 7, 16, 8, 11, 39)
    assert str(url["reference"]).startswith("https://bazaar.abuse.ch/sample/d5a6b19e")


def test_threatfox_csv_without_header_uses_column_count(tmp_path: Path) -> None:
    rows = [ln for ln in (DATA / "threatfox_recent_15col.csv").read_text().splitlines() if ln.startswith('"')]
    path = tmp_path / "rows.csv"
    path.write_text("\n".join(rows) + "\n")
    assert READERS["threatfox_csv"].read(path).indicators.height == 5


def test_threatfox_csv_ioc_types(tmp_path: Path) -> None:
    # Synthetic rows (documentation values) for the types the excerpt lacks.
    head = (DATA / "threatfox_recent_15col.csv").read_text().splitlines()[:9]
    body = [
        '"2024-07-16 05:00:00", "1", "C2.Example.COM", "domain", "botnet_cc", "x", "None", "X", "", "50",'
        ' "False", "None", "None", "0", "r"',
        f'"2024-07-16 05:00:00", "2", "{"A" * 32}", "md5_hash", "payload", "x", "None", "X", "", "50",'
        ' "False", "None", "None", "0", "r"',
        f'"2024-07-16 05:00:00", "3", "{"b" * 64}", "sha256_hash", "payload", "x", "None", "X", "", "50",'
        ' "False", "None", "None", "0", "r"',
        '"2024-07-16 05:00:00", "4", "[2001:db8::1]:443", "ip:port", "botnet_cc", "x", "None", "X", "", "50",'
        ' "False", "None", "None", "0", "r"',
        '"2024-07-16 05:00:00", "5", "abc", "sha3_384_hash", "payload", "x", "None", "X", "", "50",'
        ' "False", "None", "None", "0", "r"',
    ]
    path = tmp_path / "tf.csv"
    path.write_text("\n".join(head + body) + "\n")
    res = READERS["threatfox_csv"].read(path)
    assert res.indicators.select("type", "value").rows() == [
        ("domain", "c2.example.com"),
        ("md5", "a" * 32),
        ("sha256", "b" * 64),
        ("ip", "2001:db8::1"),
    ]
    assert [(i.line, i.reason) for i in res.issues] == [(14, "unsupported ioc_type 'sha3_384_hash'")]


# ---------------------------------------------------------------------------- broken inputs


def test_truncated_csv_row_is_an_issue(tmp_path: Path, ti: Path) -> None:
    text = (ti / FEODO_CSV).read_text()
    cut = text[: text.index('"2024-03-26 23:30:07","213.199.41.33"') + 30]  # mid-row, download cut
    path = tmp_path / "ipblocklist.csv"
    path.write_text(cut)
    res = READERS["feodo_csv"].read(path)
    assert res.indicators.height == 23
    assert [(i.line, i.reason) for i in res.issues] == [(33, "expected 6 fields, found 2")]
    assert res.issues[0].raw == '"2024-03-26 23:30:07","213.199'


def test_declared_count_mismatch_is_an_issue(tmp_path: Path, ti: Path) -> None:
    lines = (ti / FEODO_CSV).read_text().splitlines()
    path = tmp_path / "ipblocklist.csv"
    path.write_text("\n".join(lines[:20] + lines[-1:]) + "\n")  # rows lost, footer kept
    res = READERS["feodo_csv"].read(path)
    assert res.indicators.height == 11
    assert [i.reason for i in res.issues] == ["file declares 28 entries but has 11 (truncated download?)"]


def test_bad_values_are_issues_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "ipblocklist.csv"
    path.write_text(
        '"first_seen_utc","dst_ip","dst_port","c2_status","last_online","malware"\n'
        '"2024-01-01 00:00:00","192.0.2.300","443","online","2024-01-02","X"\n'
        '"not a date","192.0.2.3","443","online","2024-01-02","X"\n'
        '"2024-01-01 00:00:00","192.0.2.4","443","online","2024-01-02","X"\n'
    )
    res = READERS["feodo_csv"].read(path)
    assert res.indicators["value"].to_list() == ["192.0.2.3", "192.0.2.4"]
    assert [(i.line, i.reason) for i in res.issues] == [
        (2, "not an IP address: '192.0.2.300'"),
        (3, "bad first_seen timestamp 'not a date'; left empty"),
    ]


def test_invalid_json_is_an_issue(tmp_path: Path, ti: Path) -> None:
    path = tmp_path / "ipblocklist.json"
    path.write_text((ti / FEODO_JSON).read_text()[:1000])  # cut mid-document, on line 37
    res = READERS["feodo_json"].read(path)
    assert res.indicators.height == 0
    assert len(res.issues) == 1
    assert res.issues[0].line == 37 and res.issues[0].reason.startswith("invalid JSON")


def test_invalid_json_line_in_ndjson(tmp_path: Path, ti: Path) -> None:
    lines = (ti / THREATFOX_JSON).read_text().splitlines()
    lines[2] = lines[2][:40]
    path = tmp_path / "tf.ndjson"
    path.write_text("\n".join(lines))
    res = READERS["threatfox_json"].read(path)
    assert res.indicators.height == 7
    assert [(i.line, i.reason[:12]) for i in res.issues] == [(3, "invalid JSON")]
