"""Canonical indicator values: one spelling per observable, or a reason why not."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimamori.intel import _vector
from mimamori.intel.base import parse_time, split_tags
from mimamori.intel.normalize import (
    INDICATOR_TYPES,
    NormalizeError,
    detect,
    normalize,
    split_ip_port,
)


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("ip", " 192.0.2.1 ", ("ip", "192.0.2.1")),
        ("ip", "192.0.2.1:8080", ("ip", "192.0.2.1")),
        ("ip", "[2001:DB8::1]:443", ("ip", "2001:db8::1")),
        ("ip", "2001:0db8:0000::0001", ("ip", "2001:db8::1")),
        ("ip", "::ffff:192.0.2.7", ("ip", "192.0.2.7")),
        ("ip", "198.51.100.0/24", ("cidr", "198.51.100.0/24")),
        ("ip", "198.51.100.9/32", ("ip", "198.51.100.9")),
        ("cidr", "203.0.113.77/24", ("cidr", "203.0.113.0/24")),
        ("domain", "Evil.Example.COM.", ("domain", "evil.example.com")),
        ("domain", "evil[.]example[.]com", ("domain", "evil.example.com")),
        ("domain", "*.evil.example", ("domain", "evil.example")),
        ("domain", "bücher.example", ("domain", "xn--bcher-kva.example")),
        ("url", "HTTP://Evil.Example/Path?Q=1", ("url", "http://evil.example/Path?Q=1")),
        ("url", "hxxps://evil.example", ("url", "https://evil.example/")),
        ("md5", "D41D8CD98F00B204E9800998ECF8427E", ("md5", "d41d8cd98f00b204e9800998ecf8427e")),
    ],
)
def test_normalize(kind: str, raw: str, expected: tuple[str, str]) -> None:
    assert normalize(kind, raw) == expected


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        ("ip", "999.1.1.1"),
        ("ip", "fe80::1%eth0"),
        ("domain", "localhost"),
        ("domain", "domain autuo.xicp.net"),
        ("domain", "-bad-.example"),
        ("domain", "1.2.3.4"),
        ("url", "www.example.com/path"),
        ("url", "http:///nohost"),
        ("sha256", "abc"),
        ("sha1", "z" * 40),
        ("ssdeep", "whatever"),
    ],
)
def test_normalize_rejects(kind: str, raw: str) -> None:
    with pytest.raises(NormalizeError):
        normalize(kind, raw)


def test_threatfox_ipv6_port_without_brackets() -> None:
    # ThreatFox writes ip:port for IPv6 without brackets (threatfox_api.excerpt.ndjson, line 1).
    assert split_ip_port("2a02:cf40:1::5:40669") == "2a02:cf40:1::5"
    assert split_ip_port("81.2.69.142:8808") == "81.2.69.142"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("192.0.2.1", ("ip", "192.0.2.1")),
        ("192.0.2.0/24", ("cidr", "192.0.2.0/24")),
        ("evil.example", ("domain", "evil.example")),
        ("http://evil.example/x", ("url", "http://evil.example/x")),
        ("a" * 32, ("md5", "a" * 32)),
        ("B" * 40, ("sha1", "b" * 40)),
        ("c" * 64, ("sha256", "c" * 64)),
    ],
)
def test_detect(raw: str, expected: tuple[str, str]) -> None:
    assert detect(raw) == expected


def test_parse_time_shapes() -> None:
    assert str(parse_time("2024-03-19 11:34:09 UTC")) == "2024-03-19 11:34:09+00:00"
    assert str(parse_time("2014-06-29T13:49:37.079Z")) == "2014-06-29 13:49:37.079000+00:00"
    assert str(parse_time("1580821022")) == "2020-02-04 12:57:02+00:00"
    assert str(parse_time("2024-04-01")) == "2024-04-01 00:00:00+00:00"
    assert parse_time("") is None and parse_time("None") is None
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_split_tags() -> None:
    assert split_tags("elf,Mozi,None,elf") == ["elf", "Mozi"]
    assert split_tags(["a", None, " b "]) == ["a", "b"]
    assert split_tags("None") == []


@given(st.text(max_size=80), st.sampled_from(INDICATOR_TYPES))
def test_any_text_is_normalised_or_rejected(text: str, kind: str) -> None:
    try:
        final_type, value = normalize(kind, text)
    except NormalizeError:
        return
    assert final_type in INDICATOR_TYPES
    assert normalize(final_type, value) == (final_type, value)  # idempotent


@given(st.text(max_size=80))
def test_detect_never_crashes(text: str) -> None:
    try:
        kind, value = detect(text)
    except NormalizeError:
        return
    assert normalize(kind, value) == (kind, value)


@given(
    st.sampled_from(["http", "HTTPS", "hTtP"]),
    st.from_regex(r"[A-Za-z0-9-]{1,10}(\.[A-Za-z0-9-]{1,10}){1,3}", fullmatch=True),
    st.from_regex(r"(/[A-Za-z0-9._~%-]{0,8}){0,3}(\?[A-Za-z0-9=&]{0,8})?", fullmatch=True),
)
def test_vector_url_agrees_with_python(scheme: str, host: str, rest: str) -> None:
    raw = f"{scheme}://{host}{rest}"
    vector = pl.DataFrame({"u": [raw]}).select(_vector.url(pl.col("u"))).item()
    try:
        python = normalize("url", raw)[1]
    except NormalizeError:
        return
    assert vector == python


def test_vector_ipv4_int() -> None:
    s = pl.Series(["0.0.0.0", "255.255.255.255", "10.0.0.1", "256.1.1.1", "1.2.3", "::1", None])
    assert pl.DataFrame({"v": s}).select(_vector.ipv4_int(pl.col("v"))).to_series().to_list() == [
        0,
        4294967295,
        167772161,
        None,
        None,
        None,
        None,
    ]


def test_vector_canonical_ips() -> None:
    s = pl.Series(["2001:DB8:0::1", "::ffff:192.0.2.1", "192.0.2.9", "nonsense:"])
    assert _vector.canonical_ips(s).to_list() == ["2001:db8::1", "192.0.2.1", "192.0.2.9", None]
