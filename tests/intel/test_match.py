"""Matcher correctness on a small ECS batch, and a scale run (100k indicators x 200k events)."""

from __future__ import annotations

import random

import polars as pl
import pytest

from mimamori.events.schema import conform
from mimamori.intel import INDICATOR_SCHEMA, MATCH_SCHEMA, IndicatorSet


def indicators(*rows: tuple[str, str, str]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {"type": k, "value": v, "threat": t, "source": "test", "confidence": 80, "tags": []}
            for k, v, t in rows
        ],
        schema=INDICATOR_SCHEMA,
    )


@pytest.fixture(scope="module")
def matcher() -> IndicatorSet:
    return IndicatorSet(
        indicators(
            ("ip", "203.0.113.5", "ip-exact"),
            ("ip", "2001:db8::5", "ip6-exact"),
            ("cidr", "198.51.100.0/24", "net24"),
            ("cidr", "198.51.0.0/16", "net16"),
            ("cidr", "2001:db8:bad::/48", "net6"),
            ("domain", "evil.com", "dom"),
            ("domain", "deep.sub.bad.example", "dom-deep"),
            ("url", "http://evil.example/payload.exe", "url"),
            ("md5", "0123456789abcdef0123456789abcdef", "md5"),
            ("sha1", "0123456789abcdef0123456789abcdef01234567", "sha1"),
            ("sha256", "ab" * 32, "sha256"),
        )
    )


def hits(matcher: IndicatorSet, events: dict[str, list[object]]) -> list[tuple[int, str, str]]:
    out = matcher.match(conform(pl.DataFrame(events)))
    assert out.schema == MATCH_SCHEMA
    return [(r["row"], r["field"], r["threat"]) for r in out.iter_rows(named=True)]


def test_ip_exact_and_ipv6(matcher: IndicatorSet) -> None:
    events = {
        "source.ip": ["203.0.113.5", "10.0.0.1", "2001:0DB8:0::5", "::ffff:203.0.113.5", None],
        "destination.ip": ["192.0.2.1", "203.0.113.5", "2001:db8::6", "203.0.113.50", "203.0.113.5"],
    }
    assert hits(matcher, events) == [
        (0, "source.ip", "ip-exact"),
        (1, "destination.ip", "ip-exact"),
        (2, "source.ip", "ip6-exact"),  # written uncompressed in the event
        (3, "source.ip", "ip-exact"),  # IPv4-mapped IPv6
        (4, "destination.ip", "ip-exact"),
    ]


def test_cidr_boundaries_and_nesting(matcher: IndicatorSet) -> None:
    events = {
        "destination.ip": [
            "198.51.100.0",  # first address of the /24 (and the /16)
            "198.51.100.255",  # last address of the /24
            "198.51.101.0",  # just past the /24, still in the /16
            "198.51.255.255",  # last of the /16
            "198.52.0.0",  # just past the /16
            "198.50.255.255",  # just before the /16
            "2001:db8:bad:ffff::1",
            "2001:db8:bae::1",
        ]
    }
    assert hits(matcher, events) == [
        (0, "destination.ip", "net16"),
        (0, "destination.ip", "net24"),
        (1, "destination.ip", "net16"),
        (1, "destination.ip", "net24"),
        (2, "destination.ip", "net16"),
        (3, "destination.ip", "net16"),
        (6, "destination.ip", "net6"),
    ]


def test_domains_match_parents_by_label(matcher: IndicatorSet) -> None:
    events = {
        "dns.question.name": [
            "evil.com",
            "www.EVIL.com.",
            "a.b.c.evil.com",
            "notevil.com",
            "evil.com.au",
            "sub.bad.example",
            "x.deep.sub.bad.example",
        ],
        "tls.client.server_name": [None, None, None, None, None, None, "evil.com"],
    }
    assert hits(matcher, events) == [
        (0, "dns.question.name", "dom"),
        (1, "dns.question.name", "dom"),
        (2, "dns.question.name", "dom"),
        (6, "dns.question.name", "dom-deep"),
        (6, "tls.client.server_name", "dom"),
    ]


def test_domain_fields(matcher: IndicatorSet) -> None:
    events = {
        "destination.domain": ["cdn.evil.com"],
        "url.domain": ["evil.com"],
        "dns.question.name": ["evil.com"],
        "tls.client.server_name": ["evil.com"],
    }
    assert {f for _, f, _ in hits(matcher, events)} == {
        "destination.domain",
        "url.domain",
        "dns.question.name",
        "tls.client.server_name",
    }


def test_url_and_hashes(matcher: IndicatorSet) -> None:
    events = {
        "url.full": [
            "HTTP://Evil.Example/payload.exe",
            "http://evil.example/Payload.exe",
            "http://evil.example/",
        ],
        "file.hash.md5": ["0123456789ABCDEF0123456789ABCDEF", None, None],
        "file.hash.sha1": [None, "0123456789abcdef0123456789abcdef01234567", None],
        "file.hash.sha256": [None, None, "AB" * 32],
    }
    assert hits(matcher, events) == [
        (0, "file.hash.md5", "md5"),
        (0, "url.full", "url"),  # scheme and host are case-insensitive, the path is not
        (1, "file.hash.sha1", "sha1"),
        (2, "file.hash.sha256", "sha256"),
    ]


def test_output_columns(matcher: IndicatorSet) -> None:
    out = matcher.match(conform(pl.DataFrame({"source.ip": ["1.1.1.1", "203.0.113.5"]})))
    assert out.to_dicts() == [
        {
            "row": 1,
            "field": "source.ip",
            "indicator.type": "ip",
            "indicator.value": "203.0.113.5",
            "threat": "ip-exact",
            "confidence": 80,
            "source": "test",
        }
    ]


def test_empty_and_partial_batches(matcher: IndicatorSet) -> None:
    assert (
        matcher.match(conform(pl.DataFrame({"source.ip": []}, schema={"source.ip": pl.String}))).height == 0
    )
    # A frame that is not conformed and has only some columns still works.
    assert matcher.match(pl.DataFrame({"dns.question.name": ["x.evil.com"]})).height == 1
    assert IndicatorSet(indicators()).match(pl.DataFrame({"source.ip": ["203.0.113.5"]})).height == 0


def test_duplicates_keep_the_most_confident() -> None:
    df = pl.concat(
        [
            indicators(("ip", "203.0.113.5", "low")).with_columns(confidence=pl.lit(10, pl.Int32)),
            indicators(("ip", "203.0.113.5", "high")),
        ]
    )
    s = IndicatorSet(df)
    assert len(s) == 1
    assert s.match(pl.DataFrame({"source.ip": ["203.0.113.5"]}))["threat"].to_list() == ["high"]


def test_filtered_per_tenant() -> None:
    s = IndicatorSet(indicators(("ip", "10.0.0.5", "internal"), ("ip", "8.8.8.8", "resolver")))
    events = pl.DataFrame({"destination.ip": ["10.0.0.5", "8.8.8.8"]})
    assert s.filtered().match(events).height == 0
    assert s.filtered(allow_private=True).match(events)["threat"].to_list() == ["internal"]


def test_scale_100k_indicators_200k_events() -> None:
    rng = random.Random(7)

    def ip() -> str:
        return f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}"

    ips = [ip() for _ in range(60_000)]
    nets = [f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.0/24" for _ in range(10_000)]
    doms = [f"h{i}.evil{i % 997}.example" for i in range(20_000)]
    urls = [f"http://u{i}.bad.example/x" for i in range(6_000)]
    sha = [f"{rng.getrandbits(256):064x}" for _ in range(4_000)]
    rows = [("ip", v) for v in ips] + [("cidr", v) for v in nets] + [("domain", v) for v in doms]
    rows += [("url", v) for v in urls] + [("sha256", v) for v in sha]
    frame = pl.DataFrame({"type": [k for k, _ in rows], "value": [v for _, v in rows]}).with_columns(
        threat=pl.lit("t"), source=pl.lit("s"), confidence=pl.lit(70, pl.Int32)
    )
    s = IndicatorSet(frame)
    assert len(s) == len(set(rows))

    n = 200_000
    pool = pl.Series([ip() for _ in range(50_000)] + ips[:500])
    names = pl.Series(
        [f"a.h{i}.evil{i % 997}.example" for i in range(0, 20_000, 10)] + ["benign.example"] * 8_000
    )
    events = conform(
        pl.DataFrame(
            {
                "source.ip": pool.sample(n, with_replacement=True, seed=1),
                "destination.ip": pool.sample(n, with_replacement=True, seed=2),
                "dns.question.name": names.sample(n, with_replacement=True, seed=3),
                "url.full": pl.Series(urls[:100] + [None] * 900).sample(n, with_replacement=True, seed=4),
                "file.hash.sha256": pl.Series(sha[:5] + [None] * 995).sample(
                    n, with_replacement=True, seed=5
                ),
            }
        )
    )
    out = s.match(events)
    by_field = dict(out.group_by("field").len().rows())
    assert set(by_field) == {
        "source.ip",
        "destination.ip",
        "dns.question.name",
        "url.full",
        "file.hash.sha256",
    }
    # Every matched domain is a subdomain of an indicator; every hashed event row matched.
    assert by_field["file.hash.sha256"] == events["file.hash.sha256"].is_not_null().sum()
    assert by_field["url.full"] == events["url.full"].is_not_null().sum()
    assert by_field["dns.question.name"] == (events["dns.question.name"] != "benign.example").sum()
