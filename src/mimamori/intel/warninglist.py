"""The warning list: indicator values that must never alert, each with the reason why.

Loaded from ``warninglist.yaml`` (packaged; see the comments there for what is listed and
why TEST-NET ranges are not). Private ranges are dropped unless the caller passes
``allow_private=True`` (a tenant that opted in); reserved ranges, public resolvers,
very common domains (with their subdomains) and empty-file hashes are always dropped.
Filtering returns both the kept indicators and the dropped values with their reason.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from mimamori import yamlio
from mimamori.intel import _vector
from mimamori.intel.base import FeedConfigError
from mimamori.intel.normalize import CIDR, DOMAIN, HASH_LENGTHS, IP, NormalizeError, normalize_domain

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Columns of the dropped-values frame.
DROPPED_SCHEMA: dict[str, pl.DataType] = {
    "type": pl.String(),
    "value": pl.String(),
    "source": pl.String(),
    "reason": pl.String(),
}


@dataclass(frozen=True)
class ListedNetwork:
    network: Network
    reason: str
    private: bool  # dropped only for tenants that did not opt in


@dataclass
class FilterResult:
    kept: pl.DataFrame  # the input rows that may alert
    dropped: pl.DataFrame  # DROPPED_SCHEMA, one row per dropped input row


class WarningList:
    """Networks, resolver addresses, domains and hashes that never alert."""

    def __init__(
        self,
        networks: list[ListedNetwork],
        resolvers: dict[str, str],
        domains: dict[str, str],
        hashes: dict[str, str],
        min_prefix: dict[int, int] | None = None,
    ) -> None:
        self.networks = networks
        self.resolvers = resolvers
        self.domains = domains
        self.hashes = hashes
        self.min_prefix = min_prefix or {}

    # -------------------------------------------------------------------- loading

    @classmethod
    def default(cls) -> WarningList:
        """The packaged list (``intel/warninglist.yaml``)."""
        return _default()

    @classmethod
    def from_yaml(cls, path: str | Path) -> WarningList:
        path = Path(path)
        try:
            data = yamlio.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise FeedConfigError(str(path), None, f"cannot read warning list: {exc}") from exc
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: Any, where: str = "<warning list>") -> WarningList:
        if not isinstance(data, dict):
            raise FeedConfigError(where, None, "a warning list is a mapping")
        unknown = set(data) - {"networks", "resolvers", "domains", "hashes", "min_prefix"}
        if unknown:
            raise FeedConfigError(where, sorted(unknown)[0], "unknown key")
        networks: list[ListedNetwork] = []
        for group, entries in (data.get("networks") or {}).items():
            if group not in {"private", "reserved"}:
                raise FeedConfigError(where, f"networks.{group}", "groups are 'private' and 'reserved'")
            for entry in entries or []:
                try:
                    net = ipaddress.ip_network(str(entry["cidr"]), strict=False)
                except (KeyError, TypeError, ValueError) as exc:
                    raise FeedConfigError(where, f"networks.{group}", f"bad entry {entry!r}") from exc
                networks.append(ListedNetwork(net, str(entry.get("reason", group)), group == "private"))
        try:
            resolvers = {
                str(ipaddress.ip_address(str(e["ip"]))): f"public DNS resolver ({e.get('name', 'unnamed')})"
                for e in data.get("resolvers") or []
            }
            domains = {normalize_domain(str(e["domain"])): str(e.get("reason", "common domain"))
                       for e in data.get("domains") or []}  # fmt: skip
            hashes = {
                str(e["value"]).lower(): str(e.get("reason", "listed hash")) for e in data.get("hashes") or []
            }
            min_prefix = {int(k): int(v) for k, v in (data.get("min_prefix") or {}).items()}
        except (KeyError, TypeError, ValueError, NormalizeError) as exc:
            raise FeedConfigError(where, None, f"bad warning list entry: {exc}") from exc
        return cls(networks, resolvers, domains, hashes, min_prefix)

    # -------------------------------------------------------------------- checks

    def _network_reason(
        self, addr: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_private: bool
    ) -> str | None:
        for listed in self.networks:
            if listed.private and allow_private:
                continue
            if addr.version == listed.network.version and addr in listed.network:
                return f"{listed.reason}, {listed.network}"
        return None

    def check(self, kind: str, value: str, *, allow_private: bool = False) -> str | None:
        """Why ``value`` (already normalised) must not alert, or ``None`` if it may."""
        if kind == IP:
            if value in self.resolvers:
                return self.resolvers[value]
            try:
                addr = ipaddress.ip_address(value)
            except ValueError:
                return None
            return self._network_reason(addr, allow_private)
        if kind == CIDR:
            try:
                net = ipaddress.ip_network(value, strict=False)
            except ValueError:
                return None
            floor = self.min_prefix.get(net.version)
            if floor is not None and net.prefixlen < floor:
                return f"network broader than /{floor}"
            for listed in self.networks:
                if listed.private and allow_private:
                    continue
                if net.version == listed.network.version and net.overlaps(listed.network):
                    return f"{listed.reason}, overlaps {listed.network}"
            for ip, reason in self.resolvers.items():
                if ipaddress.ip_address(ip) in net:
                    return f"contains {reason.replace('public DNS resolver', 'a public DNS resolver')} {ip}"
            return None
        if kind == DOMAIN:
            labels = value.split(".")
            for i in range(len(labels) - 1):
                why = self.domains.get(".".join(labels[i:]))
                if why is not None:
                    return (
                        f"common domain: {why}"
                        if i == 0
                        else f"subdomain of common domain {'.'.join(labels[i:])}"
                    )
            return None
        if kind in HASH_LENGTHS:
            return self.hashes.get(value)
        return None

    # -------------------------------------------------------------------- frames

    def _reason_expr(self, allow_private: bool) -> pl.Expr:
        """Vectorised reasons for IPv4 addresses, domains and hashes; null elsewhere."""
        kind, value = pl.col("type"), pl.col("value")
        reason: pl.Expr = pl.lit(None, dtype=pl.String)
        v4 = _vector.ipv4_int(value)
        for listed in reversed(self.networks):
            if listed.network.version != 4 or (listed.private and allow_private):
                continue
            lo, hi = int(listed.network.network_address), int(listed.network.broadcast_address)
            text = f"{listed.reason}, {listed.network}"
            reason = pl.when((kind == IP) & (v4 >= lo) & (v4 <= hi)).then(pl.lit(text)).otherwise(reason)
        for ip, why in self.resolvers.items():
            reason = pl.when((kind == IP) & (value == ip)).then(pl.lit(why)).otherwise(reason)
        for name, why in self.domains.items():
            reason = (
                pl.when((kind == DOMAIN) & (value == name))
                .then(pl.lit(f"common domain: {why}"))
                .when((kind == DOMAIN) & value.str.ends_with("." + name))
                .then(pl.lit(f"subdomain of common domain {name}"))
                .otherwise(reason)
            )
        for digest, why in self.hashes.items():
            reason = pl.when(value == digest).then(pl.lit(why)).otherwise(reason)
        return reason

    def reasons(self, frame: pl.DataFrame, *, allow_private: bool = False) -> pl.Series:
        """One reason (or null) per row of an indicator frame."""
        if frame.height == 0:
            return pl.Series("reason", [], dtype=pl.String)
        out = frame.select(self._reason_expr(allow_private).alias("reason"))["reason"]
        slow = frame.select(
            (
                (pl.col("type") == CIDR)
                | ((pl.col("type") == IP) & pl.col("value").str.contains(":", literal=True))
            ).alias("slow")
        )["slow"]
        if slow.any():
            pairs = frame.filter(slow).select("type", "value").unique()
            mapping = {
                f"{k}\x00{v}": self.check(k, v, allow_private=allow_private) for k, v in pairs.iter_rows()
            }
            keyed = frame.select(pl.concat_str([pl.col("type"), pl.lit("\x00"), pl.col("value")]).alias("k"))[
                "k"
            ]
            python = keyed.replace_strict(mapping, default=None, return_dtype=pl.String)
            out = pl.select(pl.coalesce(out, python).alias("reason"))["reason"]
        return out

    def filter(self, frame: pl.DataFrame, *, allow_private: bool = False) -> FilterResult:
        """Split an indicator frame into rows that may alert and dropped values with reasons."""
        if frame.height == 0:
            return FilterResult(frame, pl.DataFrame(schema=DROPPED_SCHEMA))
        reason = self.reasons(frame, allow_private=allow_private)
        tagged = frame.with_columns(reason.alias("__reason"))
        kept = tagged.filter(pl.col("__reason").is_null()).drop("__reason")
        dropped_rows = tagged.filter(pl.col("__reason").is_not_null())
        source = pl.col("source") if "source" in frame.columns else pl.lit(None, dtype=pl.String)
        dropped = dropped_rows.select(
            pl.col("type"), pl.col("value"), source.alias("source"), pl.col("__reason").alias("reason")
        ).cast(DROPPED_SCHEMA)  # type: ignore[arg-type]
        return FilterResult(kept, dropped)


@cache
def _default() -> WarningList:
    text = resources.files("mimamori.intel").joinpath("warninglist.yaml").read_text(encoding="utf-8")
    return WarningList.from_dict(yamlio.safe_load(text), "mimamori/intel/warninglist.yaml")
