"""CIDR membership over address columns, and its cache of addresses already classified."""

from __future__ import annotations

import ipaddress

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mimamori.events import net
from mimamori.events.net import in_networks

NETS = ("10.0.0.0/8", "192.168.1.0/24", "fc00::/7", "2001:db8::/32")
ADDRS = [
    "10.1.2.3", "10.255.255.255", "11.0.0.1", "192.168.1.7", "192.168.2.7", "8.8.8.8",
    "fd12::1", "fe80::1", "2001:db8::5", "2001:db9::5", "not-an-ip", "", "999.1.1.1",
]  # fmt: skip


def _expected(value: str | None, nets: tuple[str, ...]) -> bool:
    try:
        addr = ipaddress.ip_address(value or "")
    except ValueError:
        return False
    return any(addr in ipaddress.ip_network(n) for n in nets)


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(
        st.lists(st.sampled_from([*ADDRS, None]), min_size=3, max_size=40), min_size=1, max_size=5
    ),
    nets=st.sampled_from([NETS, NETS[:2], ("192.168.0.0/16",)]),
)
def test_matches_ipaddress_across_batches(batches: list[list[str | None]], nets: tuple[str, ...]) -> None:
    """The same answers as the standard library, batch after batch (the cache in between)."""
    for values in batches:
        values = values * 3  # repeated addresses: the distinct-value path
        got = pl.DataFrame({"ip": values}, schema={"ip": pl.String}).select(in_networks(pl.col("ip"), nets))
        assert got["ip"].to_list() == [_expected(v, nets) for v in values]


def test_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(net, "_CLASSIFIED", net._Classified())
    monkeypatch.setattr(net._Classified, "MAX_VALUES", 5)
    monkeypatch.setattr(net._Classified, "MAX_LISTS", 2)
    for i, nets in enumerate([("10.0.0.0/8",), ("11.0.0.0/8",), ("12.0.0.0/8",)]):
        values = [f"{10 + i}.0.0.{k}" for k in range(4)] * 3 + ["8.8.8.8"] * 12
        got = pl.Series("ip", values).to_frame().select(in_networks(pl.col("ip"), nets))["ip"]
        assert got.to_list() == [_expected(v, nets) for v in values]
    known = net._CLASSIFIED._known
    assert list(known) == [("11.0.0.0/8",), ("12.0.0.0/8",)]  # the oldest list went
    assert all(seen.len() <= 5 for seen, _ in known.values())
