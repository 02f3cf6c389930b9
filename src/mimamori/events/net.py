"""Vectorised IP helpers over Polars string columns: IPv4 to integers, CIDR membership."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterable

import polars as pl

DEFAULT_INTERNAL = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fe80::/10")


def ipv4_to_int(expr: pl.Expr) -> pl.Expr:
    """Dotted-quad text -> UInt32 (null for anything that is not a valid IPv4 address)."""
    parts = expr.str.split_exact(".", 3)
    octets = [parts.struct.field(f"field_{i}").cast(pl.UInt32, strict=False) for i in range(4)]
    valid = pl.all_horizontal([(o.is_not_null() & (o <= 255)) for o in octets]) & expr.str.count_matches(
        r"\."
    ).eq(3)
    value = (octets[0] * 16777216) + (octets[1] * 65536) + (octets[2] * 256) + octets[3]
    return pl.when(valid).then(value.cast(pl.UInt32)).otherwise(None)


def in_networks(expr: pl.Expr, cidrs: Iterable[str]) -> pl.Expr:
    """True where the address lies in any of the networks (IPv4 by integer range, IPv6 by prefix).

    Addresses repeat heavily in network logs (a few thousand hosts behind a million
    connections), and the test itself is string work: each distinct address is classified
    once and the answer spread back with a hash lookup.
    """
    nets = tuple(cidrs)
    return expr.map_batches(
        lambda s: _in_networks_distinct(s, nets), return_dtype=pl.Boolean, is_elementwise=True
    )


def _in_networks_distinct(values: pl.Series, cidrs: tuple[str, ...]) -> pl.Series:
    values = values.cast(pl.String)
    distinct = values.drop_nulls().unique()
    if distinct.len() * 2 > values.len():  # mostly distinct: classify every row directly
        inside_all = values.to_frame("v").select(_in_networks_expr(pl.col("v"), cidrs))
        return inside_all.to_series().alias(values.name)
    inside = _CLASSIFIED.inside(distinct, cidrs)
    return values.is_in(inside.implode()).fill_null(False).alias(values.name)


class _Classified:
    """Addresses already classified, per network list: batches after the first repeat most
    of their addresses, so only the new ones are tested. Bounded (addresses per list, and
    lists: one per tenant network set); safe across threads."""

    MAX_VALUES = 200_000  # the cache is hashed on every call: keep it small
    MAX_LISTS = 64

    def __init__(self) -> None:
        # per network list: (every address seen, the ones inside)
        self._known: dict[tuple[str, ...], tuple[pl.Series, pl.Series]] = {}
        self._lock = threading.Lock()

    def inside(self, distinct: pl.Series, cidrs: tuple[str, ...]) -> pl.Series:
        """The values of ``distinct`` (unique, non-null text) that lie in ``cidrs``."""
        with self._lock:
            known = self._known.get(cidrs)
        if known is None or known[0].len() + distinct.len() > self.MAX_VALUES:
            new, seen, inside = distinct, distinct.clear(), distinct.clear()
        else:
            seen, inside = known
            new = distinct.filter(~distinct.is_in(seen.implode()))
        if new.len() == 0:
            return inside
        inside = pl.concat(
            [inside, new.filter(new.to_frame("v").select(_in_networks_expr(pl.col("v"), cidrs)).to_series())]
        )
        seen = pl.concat([seen, new])
        with self._lock:
            self._known.pop(cidrs, None)
            self._known[cidrs] = (seen, inside)  # newest last: the oldest list goes first
            while len(self._known) > self.MAX_LISTS:
                del self._known[next(iter(self._known))]
        return inside


_CLASSIFIED = _Classified()


def _in_networks_expr(expr: pl.Expr, cidrs: Iterable[str]) -> pl.Expr:
    v4: list[tuple[int, int]] = []
    v6: list[ipaddress.IPv6Network] = []
    for c in cidrs:
        net = ipaddress.ip_network(c, strict=False)
        if isinstance(net, ipaddress.IPv4Network):
            v4.append((int(net.network_address), int(net.broadcast_address)))
        else:
            v6.append(net)
    as_int = ipv4_to_int(expr)
    cond: pl.Expr = pl.lit(False)
    for lo, hi in v4:
        cond = cond | as_int.is_between(lo, hi)
    if v6:
        # IPv6: compare on the normalised prefix text of the network's leading hextets.
        for net in v6:
            cond = cond | _v6_prefix_match(expr, net)
    return cond.fill_null(False)


def _v6_prefix_match(expr: pl.Expr, net: ipaddress.IPv6Network) -> pl.Expr:
    lower = expr.str.to_lowercase()
    if net.prefixlen % 16 == 0:
        hextets = net.exploded.split("/")[0].split(":")[: net.prefixlen // 16]
        prefix = ":".join(h.lstrip("0") or "0" for h in hextets) + ":"
        return lower.str.contains(":", literal=True) & lower.str.starts_with(prefix)
    # prefix not on a hextet boundary (fc00::/7, fe80::/10): compare the first hextet numerically
    first = lower.str.split(":").list.first()
    value = first.str.to_integer(base=16, strict=False)
    width = 16 - min(net.prefixlen, 16)
    top = int(net.network_address) >> 112
    return lower.str.contains(":", literal=True) & ((value.cast(pl.Int64) // (1 << width)) == (top >> width))


def validate_cidrs(cidrs: Iterable[str]) -> list[str]:
    """Canonical CIDR strings; raises ValueError naming the bad entry."""
    out = []
    for c in cidrs:
        try:
            out.append(str(ipaddress.ip_network(c.strip(), strict=False)))
        except ValueError as exc:
            raise ValueError(f"not a network in CIDR notation: {c!r}") from exc
    return out
