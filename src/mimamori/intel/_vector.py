"""Vectorised (Polars expression) forms of the normalisation rules, for event batches.

These mirror ``intel.normalize`` closely enough that a value normalised there and the same
value seen in an event meet in a join: IPv4 text to integers, domain lowercasing, URL
scheme/host lowercasing. IPv6 canonicalisation needs ``ipaddress`` and is done on the
distinct values only (see ``canonical_ips``).
"""

from __future__ import annotations

import ipaddress

import polars as pl

_IPV4 = r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$"
_URL_HEAD = r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*"


def ipv4_int(expr: pl.Expr) -> pl.Expr:
    """IPv4 dotted quad -> Int64 (null for anything else, including octets above 255)."""
    groups = expr.str.extract_groups(_IPV4)
    octets = [groups.struct.field(str(i)).cast(pl.Int64, strict=False) for i in range(1, 5)]
    valid = pl.all_horizontal([o <= 255 for o in octets])
    value = octets[0] * 16777216 + octets[1] * 65536 + octets[2] * 256 + octets[3]
    return pl.when(valid).then(value).otherwise(None)


def domain(expr: pl.Expr) -> pl.Expr:
    """Lowercase, trimmed, without the root dot; empty becomes null."""
    out = expr.str.strip_chars().str.to_lowercase().str.strip_chars_end(".")
    return pl.when(out.str.len_bytes() > 0).then(out).otherwise(None)


def url(expr: pl.Expr) -> pl.Expr:
    """Scheme and host lowercased, empty path as ``/``; null when not an absolute URL."""
    text = expr.str.strip_chars()
    head = text.str.extract(_URL_HEAD, 0)
    rest = text.str.slice(head.str.len_chars())
    rest = pl.when(rest.str.len_bytes() > 0).then(rest).otherwise(pl.lit("/"))
    ok = head.is_not_null() & ~head.str.ends_with("://")
    return pl.when(ok).then(pl.concat_str([head.str.to_lowercase(), rest])).otherwise(None)


def canonical_ips(values: pl.Series) -> pl.Series:
    """Canonical text of each IP in ``values`` (IPv6 compressed, mapped IPv4 unwrapped).

    IPv4 text passes through untouched (it is canonical already in every log we read);
    the distinct IPv6 values go through ``ipaddress`` once each. Invalid values -> null.
    """
    v6 = values.filter(values.str.contains(":", literal=True)).unique()
    if v6.len() == 0:
        return values
    mapping: dict[str, str | None] = {}
    for text in v6.to_list():
        try:
            addr = ipaddress.ip_address(text.strip().strip("[]"))
        except ValueError:
            mapping[text] = None
            continue
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            mapping[text] = str(addr.ipv4_mapped)
        else:
            mapping[text] = str(addr)
    return values.replace(mapping)
