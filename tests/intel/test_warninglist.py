"""The warning list: what never alerts, why, and the tenant opt-in for private ranges."""

from __future__ import annotations

import polars as pl
import pytest

from mimamori.intel import INDICATOR_SCHEMA, FeedConfigError, WarningList


@pytest.fixture(scope="module")
def wl() -> WarningList:
    return WarningList.default()


def frame(pairs: list[tuple[str, str]]) -> pl.DataFrame:
    base = {k: None for k in INDICATOR_SCHEMA} | {"tags": [], "source": "test"}
    return pl.DataFrame([base | {"type": k, "value": v} for k, v in pairs], schema=INDICATOR_SCHEMA)


CASES: list[tuple[str, str, str | None, str | None]] = [
    # type, value, reason by default, reason with allow_private
    ("ip", "10.1.2.3", "private range (RFC 1918), 10.0.0.0/8", None),
    ("ip", "172.31.255.255", "private range (RFC 1918), 172.16.0.0/12", None),
    ("ip", "172.32.0.1", None, None),
    ("ip", "192.168.0.1", "private range (RFC 1918), 192.168.0.0/16", None),
    ("ip", "100.64.0.1", "carrier-grade NAT shared range (RFC 6598), 100.64.0.0/10", None),
    ("ip", "fd00::1", "IPv6 unique local range (RFC 4193), fc00::/7", None),
    ("ip", "127.0.0.1", "loopback range (RFC 1122), 127.0.0.0/8", "loopback range (RFC 1122), 127.0.0.0/8"),
    ("ip", "::1", "IPv6 loopback (RFC 4291), ::1/128", "IPv6 loopback (RFC 4291), ::1/128"),
    (
        "ip",
        "169.254.1.1",
        "link-local range (RFC 3927), 169.254.0.0/16",
        "link-local range (RFC 3927), 169.254.0.0/16",
    ),
    (
        "ip",
        "fe80::1",
        "IPv6 link-local range (RFC 4291), fe80::/10",
        "IPv6 link-local range (RFC 4291), fe80::/10",
    ),
    (
        "ip",
        "239.255.255.250",
        "multicast range (RFC 5771), 224.0.0.0/4",
        "multicast range (RFC 5771), 224.0.0.0/4",
    ),
    (
        "ip",
        "0.0.0.0",
        "unspecified / this-network range (RFC 1122), 0.0.0.0/8",
        "unspecified / this-network range (RFC 1122), 0.0.0.0/8",
    ),
    (
        "ip",
        "255.255.255.255",
        "reserved range and limited broadcast (RFC 1112, RFC 919), 240.0.0.0/4",
        "reserved range and limited broadcast (RFC 1112, RFC 919), 240.0.0.0/4",
    ),
    ("ip", "8.8.8.8", "public DNS resolver (Google Public DNS)", "public DNS resolver (Google Public DNS)"),
    ("ip", "1.1.1.1", "public DNS resolver (Cloudflare DNS)", "public DNS resolver (Cloudflare DNS)"),
    (
        "ip",
        "2606:4700:4700::1111",
        "public DNS resolver (Cloudflare DNS)",
        "public DNS resolver (Cloudflare DNS)",
    ),
    ("ip", "208.67.222.222", "public DNS resolver (OpenDNS)", "public DNS resolver (OpenDNS)"),
    # Documentation ranges stay matchable: the demo data uses them as attacker addresses.
    ("ip", "192.0.2.10", None, None),
    ("ip", "198.51.100.7", None, None),
    ("ip", "203.0.113.5", None, None),
    ("ip", "2001:db8::5", None, None),
    ("cidr", "10.20.0.0/16", "private range (RFC 1918), overlaps 10.0.0.0/8", None),
    (
        "cidr",
        "8.8.8.0/24",
        "contains a public DNS resolver (Google Public DNS) 8.8.8.8",
        "contains a public DNS resolver (Google Public DNS) 8.8.8.8",
    ),
    ("cidr", "0.0.0.0/1", "network broader than /8", "network broader than /8"),
    ("cidr", "223.166.0.0/15", None, None),
    ("domain", "google.com", "common domain: Google", "common domain: Google"),
    (
        "domain",
        "update.windowsupdate.com",
        "subdomain of common domain windowsupdate.com",
        "subdomain of common domain windowsupdate.com",
    ),
    (
        "domain",
        "a.b.amazonaws.com",
        "subdomain of common domain amazonaws.com",
        "subdomain of common domain amazonaws.com",
    ),
    ("domain", "notgoogle.com", None, None),
    ("domain", "google.com.evil.example", None, None),
    ("domain", "evil.workers.dev", None, None),
    ("url", "https://google.com/", None, None),  # exact URLs are specific enough
    ("md5", "d41d8cd98f00b204e9800998ecf8427e", "MD5 of the empty file", "MD5 of the empty file"),
    (
        "sha256",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "SHA-256 of the empty file",
        "SHA-256 of the empty file",
    ),
    ("sha256", "ef537f25c895bfa782526529a9b63d97aa631564d5d789c2b765448c8635fb6c", None, None),
]


@pytest.mark.parametrize(("kind", "value", "default", "opted_in"), CASES)
def test_check(wl: WarningList, kind: str, value: str, default: str | None, opted_in: str | None) -> None:
    assert wl.check(kind, value) == default
    assert wl.check(kind, value, allow_private=True) == opted_in


@pytest.mark.parametrize("allow_private", [False, True])
def test_vectorised_filter_agrees_with_check(wl: WarningList, allow_private: bool) -> None:
    df = frame([(k, v) for k, v, _, _ in CASES])
    result = wl.filter(df, allow_private=allow_private)
    expected = [(k, v, (o if allow_private else d)) for k, v, d, o in CASES]
    assert result.dropped.select("type", "value", "reason").rows() == [
        e for e in expected if e[2] is not None
    ]
    assert result.kept.select("type", "value").rows() == [(k, v) for k, v, r in expected if r is None]
    assert result.dropped["source"].unique().to_list() == ["test"]
    assert result.kept.schema == INDICATOR_SCHEMA


def test_custom_list_and_errors() -> None:
    wl = WarningList.from_dict({"domains": [{"domain": "Example.ORG.", "reason": "ours"}]})
    assert wl.check("domain", "www.example.org") == "subdomain of common domain example.org"
    assert wl.check("ip", "10.0.0.1") is None
    with pytest.raises(FeedConfigError, match="resolverz"):
        WarningList.from_dict({"resolverz": []})
    with pytest.raises(FeedConfigError, match=r"networks\.public"):
        WarningList.from_dict({"networks": {"public": []}})
