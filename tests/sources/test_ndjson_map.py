"""MappedNdjsonParser: the example map on tests/data/acme_proxy.ndjson, map validation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mimamori.sources import ParseResult, SourceConfigError, get_parser, read_batches
from mimamori.sources.ndjson_map import MappedNdjsonParser
from tests.sources.util import check_invariant, fields, parse_merged

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_MAP = ROOT / "src/mimamori/sources/maps/example.yaml"
SAMPLE = ROOT / "tests/data/acme_proxy.ndjson"

MINIMAL: dict[str, Any] = {"dataset": "acme.thing", "timestamp": {"field": "ts"}}


def parse(source: Path | bytes, parser: Any) -> ParseResult:
    return parse_merged(parser, source, "t.ndjson")


def test_example_map_on_sample() -> None:
    result = parse(SAMPLE, get_parser("ndjson", field_map=EXAMPLE_MAP))
    assert (result.events.height, result.quarantine.height, result.skipped) == (3, 3, 1)
    reasons = dict(zip(result.quarantine["log.file.line"], result.quarantine["reason"], strict=True))
    assert reasons[3] == "field time: missing or invalid"  # no "time"
    assert reasons[4] == "field time: missing or invalid"  # "yesterday"
    assert reasons[5].startswith("invalid JSON")
    assert fields(result.events, 1) == {
        "@timestamp": datetime(2024, 5, 1, 0, 15, tzinfo=UTC),  # 09:15 +09:00
        "event.kind": "event",
        "event.category": "web",
        "event.action": "allowed",
        "event.dataset": "acme.proxy",
        "event.module": "acme",
        "source.ip": "192.168.10.5",
        "source.bytes": 512,
        "destination.ip": "203.0.113.7",
        "destination.port": 443,
        "destination.domain": "example.com",
        "destination.bytes": 20480,
        "url.full": "https://example.com/index.html",
        "http.request.method": "GET",
        "http.response.status_code": 200,
        "user_agent.original": "Mozilla/5.0",
        "user.name": "tanaka",
        "observer.vendor": "Acme",
        "observer.product": "Acme Proxy",
        "log.file.path": str(SAMPLE),
        "log.file.line": 1,
    }
    assert fields(result.events, 2)["user.name"] == "山田"
    # a time without offset is read in the map's zone (Asia/Tokyo)
    assert fields(result.events, 7)["@timestamp"] == datetime(2024, 5, 1, 0, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fmt", "value", "expected"),
    [
        ("epoch_s", 1714521600.5, datetime(2024, 5, 1, 0, 0, 0, 500000, tzinfo=UTC)),
        ("epoch_ms", "1714521600123", datetime(2024, 5, 1, 0, 0, 0, 123000, tzinfo=UTC)),
        ("epoch_ns", 1714521600123456789, datetime(2024, 5, 1, 0, 0, 0, 123457, tzinfo=UTC)),
        ("%d/%m/%Y %H:%M", "01/05/2024 09:30", datetime(2024, 5, 1, 0, 30, tzinfo=UTC)),
        ("%Y-%m-%d %H:%M:%S%z", "2024-05-01 09:30:00+0200", datetime(2024, 5, 1, 7, 30, tzinfo=UTC)),
        ("iso8601", "2024-05-01T09:30:00.250Z", datetime(2024, 5, 1, 9, 30, 0, 250000, tzinfo=UTC)),
    ],
)
def test_timestamp_formats(fmt: str, value: Any, expected: datetime) -> None:
    fmap = {
        "dataset": "acme.thing",
        "timestamp": {"field": "meta.when", "format": fmt, "timezone": "Asia/Tokyo"},
        "fields": {"source.ip": "src", "dns.answers": "answers"},
        "constants": {"event.kind": "event", "event.severity": 3, "source.ip": "0.0.0.0"},
    }
    line = json.dumps({"meta": {"when": value}, "answers": ["192.0.2.1", "192.0.2.2"]})
    result = parse((line + "\n").encode(), MappedNdjsonParser(field_map=fmap))
    assert result.quarantine.height == 0
    ev = fields(result.events, 1)
    assert ev["@timestamp"] == expected
    assert ev["dns.answers"] == "192.0.2.1,192.0.2.2"
    assert (ev["event.severity"], ev["event.kind"]) == (3, "event")
    assert ev["source.ip"] == "0.0.0.0"  # the constant fills in for the missing field


def test_wrong_timestamp_type_is_quarantined() -> None:
    parser = MappedNdjsonParser(field_map={**MINIMAL, "timestamp": {"field": "ts", "format": "iso8601"}})
    result = parse(b'{"ts": 1714521600}\n{"ts": ["2024-05-01T00:00:00Z"]}\n[1, 2]\n', parser)
    assert result.events.height == 0
    reasons = result.quarantine.sort("log.file.line")["reason"].to_list()
    assert reasons[:2] == ["field ts: missing or invalid"] * 2
    assert reasons[2] == "JSON value is a list, not an object"


@pytest.mark.parametrize(
    ("fmap", "needle"),
    [
        ({**MINIMAL, "fields": {"source.address": "src"}}, "'fields.source.address'"),
        ({**MINIMAL, "constants": {"observer.colour": "red"}}, "'constants.observer.colour'"),
        ({**MINIMAL, "feilds": {}}, "unknown key 'feilds'"),
        ({**MINIMAL, "timestamp": {"field": "ts", "fromat": "iso8601"}}, "'timestamp.fromat'"),
        ({**MINIMAL, "timestamp": {"field": "ts", "format": "rfc822"}}, "'timestamp.format'"),
        ({**MINIMAL, "timestamp": {"field": "ts", "timezone": "Mars/Olympus"}}, "'timestamp.timezone'"),
        ({"dataset": "acme.thing"}, "'timestamp'"),
        ({"timestamp": {"field": "ts"}}, "'dataset'"),
        ({**MINIMAL, "fields": {"@timestamp": "ts"}}, "'fields.@timestamp'"),
        ({**MINIMAL, "fields": {"source.ip": ["a", "b"]}}, "'fields.source.ip'"),
    ],
)
def test_bad_maps(fmap: dict[str, Any], needle: str) -> None:
    with pytest.raises(SourceConfigError) as info:
        MappedNdjsonParser(field_map=fmap)
    assert needle in str(info.value)
    assert info.value.path == "<field_map>"


def test_bad_map_file_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "vendor.yaml"
    path.write_text("dataset: a.b\ntimestamp: {field: t}\nfields:\n  destination.ipaddr: dst\n")
    with pytest.raises(SourceConfigError) as info:
        get_parser("ndjson", field_map=str(path))
    assert info.value.path == str(path)
    assert str(path) in str(info.value) and "destination.ipaddr" in str(info.value)
    path.write_text("dataset: [unclosed\n")
    with pytest.raises(SourceConfigError, match="invalid YAML"):
        MappedNdjsonParser(field_map=path)
    with pytest.raises(SourceConfigError, match="cannot read"):
        MappedNdjsonParser(field_map=tmp_path / "missing.yaml")


def test_no_map() -> None:
    parser = MappedNdjsonParser()
    assert not parser.sniff(['{"a": 1}'])
    batch = next(read_batches(b'{"a": 1}\n'))
    with pytest.raises(SourceConfigError, match="field_map"):
        parser.parse(batch, {})


# --------------------------------------------------------------------------- properties

_PARSER = MappedNdjsonParser(field_map=EXAMPLE_MAP)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes(data: bytes) -> None:
    check_invariant(_PARSER, data, "h.ndjson")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "time": st.text(max_size=25) | st.integers() | _JSON,
                "src": _JSON,
                "dst": st.dictionaries(st.sampled_from(["ip", "port", "host"]), _JSON),
                "bytes": _JSON,
            },
        ).map(json.dumps)
        | st.sampled_from(SAMPLE.read_text(encoding="utf-8").splitlines()),
        max_size=6,
    )
)
def test_mapped_json_shapes(lines: list[str]) -> None:
    check_invariant(_PARSER, "\n".join(lines).encode(), "h.ndjson")


def test_json_keys_that_look_like_patterns() -> None:
    """Keys are data: ``*`` or ``^x$`` (found by the property test below) are column names,
    not a wildcard or a regex, at the top level and nested."""
    import polars as pl

    from mimamori.sources.base import json_lines
    from mimamori.sources.reader import LINE, TEXT

    texts = ['{"*": 1, "dst": {"*": {"^x$": 2}, "host": "h"}, "e": {}}', '{"*": null, "dst.host": "g"}']
    df, bad = json_lines(pl.DataFrame({LINE: [1, 2], TEXT: texts}), "t.ndjson")
    assert bad.height == 0
    assert df.to_dicts() == [
        {"*": 1, "dst.*.^x$": 2, "dst.host": "h", LINE: 1},
        {"*": None, "dst.*.^x$": None, "dst.host": "g", LINE: 2},
    ]
