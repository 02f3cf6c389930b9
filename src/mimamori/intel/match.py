"""Match ECS event batches against indicators, vectorised: joins, never a loop per event.

Each event field is turned into a long ``(row, field, key)`` frame, the distinct keys are
matched, and hits are joined back to rows. IPs match exactly (IPv6 canonicalised once
per distinct value); IPv4 networks match by integer prefix: for every prefix length
present among the indicators the address is shifted to its network number and joined,
so nested and overlapping networks all match. Domains match themselves and every parent
(``a.b.evil.com`` -> ``b.evil.com`` -> ``evil.com``), label by label, so ``evil.com``
never matches ``notevil.com``. URLs match exactly after normalisation; hashes exactly.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import polars as pl

from mimamori.intel import _vector
from mimamori.intel.normalize import CIDR, DOMAIN, HASH_LENGTHS, IP, MD5, SHA1, SHA256, URL
from mimamori.intel.warninglist import WarningList

#: Columns of ``IndicatorSet.match`` output.
MATCH_SCHEMA: dict[str, pl.DataType] = {
    "row": pl.UInt32(),  # index of the event in the batch
    "field": pl.String(),  # event column that matched
    "indicator.type": pl.String(),
    "indicator.value": pl.String(),
    "threat": pl.String(),
    "confidence": pl.Int32(),
    "source": pl.String(),
}

IP_FIELDS: tuple[str, ...] = ("source.ip", "destination.ip")
DOMAIN_FIELDS: tuple[str, ...] = (
    "destination.domain",
    "dns.question.name",
    "url.domain",
    "tls.client.server_name",
)
URL_FIELDS: tuple[str, ...] = ("url.full",)
HASH_FIELDS: dict[str, str] = {"file.hash.md5": MD5, "file.hash.sha1": SHA1, "file.hash.sha256": SHA256}

_ID = pl.UInt32
_META = ("type", "value", "threat", "confidence", "source")


def _empty_hits() -> pl.DataFrame:
    return pl.DataFrame(schema={"key": pl.String, "id": _ID})


class IndicatorSet:
    """Indicators ready for matching, built from an indicator frame (``INDICATOR_SCHEMA``).

    Only ``type``, ``value``, ``threat``, ``confidence`` and ``source`` are used; duplicate
    ``(type, value)`` rows keep the most confident one.
    """

    def __init__(self, frame: pl.DataFrame) -> None:
        cols = {
            "type": pl.col("type").cast(pl.String),
            "value": pl.col("value").cast(pl.String),
            "threat": pl.col("threat").cast(pl.String)
            if "threat" in frame.columns
            else pl.lit(None, pl.String),
            "confidence": pl.col("confidence").cast(pl.Int32)
            if "confidence" in frame.columns
            else pl.lit(50, pl.Int32),
            "source": pl.col("source").cast(pl.String)
            if "source" in frame.columns
            else pl.lit(None, pl.String),
        }
        meta = (
            frame.select([e.alias(n) for n, e in cols.items()])
            .drop_nulls(["type", "value"])
            .sort("confidence", descending=True, nulls_last=True, maintain_order=True)
            .unique(["type", "value"], keep="first", maintain_order=True)
            .with_row_index("id")
        )
        self.frame = meta.select(_META)
        self._meta = meta.select(
            "id", *[pl.col(c).alias(f"indicator.{c}" if c in {"type", "value"} else c) for c in _META]
        )
        by_type = {
            k: meta.filter(pl.col("type") == k).select("value", "id")
            for k in (IP, DOMAIN, URL, *HASH_LENGTHS)
        }
        self._exact = by_type
        self._domain_depth = (
            int(
                by_type[DOMAIN].select(pl.col("value").str.count_matches(".", literal=True).max()).item() or 0
            )
            + 1
        )
        # IPv4 networks: prefix length -> (network number, id)
        cidrs = meta.filter(pl.col("type") == CIDR).select("value", "id")
        self._cidr4: dict[int, pl.DataFrame] = {}
        self._cidr6: dict[int, dict[int, list[int]]] = {}
        v4 = cidrs.filter(~pl.col("value").str.contains(":", literal=True)).with_columns(
            _vector.ipv4_int(pl.col("value").str.split("/").list.first()).alias("addr"),
            pl.col("value").str.split("/").list.last().cast(pl.Int64, strict=False).alias("plen"),
        )
        for (plen,), group in v4.drop_nulls(["addr", "plen"]).group_by(["plen"]):
            shift = 1 << (32 - int(plen))
            self._cidr4[int(plen)] = group.select((pl.col("addr") // shift).alias("net"), pl.col("id"))
        for value, ident in cidrs.filter(pl.col("value").str.contains(":", literal=True)).iter_rows():
            net = ipaddress.ip_network(value, strict=False)
            key = int(net.network_address) >> (128 - net.prefixlen)
            self._cidr6.setdefault(net.prefixlen, {}).setdefault(key, []).append(ident)

    def __len__(self) -> int:
        return self.frame.height

    def counts(self) -> dict[str, int]:
        return {str(k): int(n) for k, n in self.frame.group_by("type").len().iter_rows()}

    def filtered(
        self, warninglist: WarningList | None = None, *, allow_private: bool = False
    ) -> IndicatorSet:
        """A copy without the values of the warning list (per tenant: ``allow_private``)."""
        wl = warninglist or WarningList.default()
        return IndicatorSet(wl.filter(self.frame, allow_private=allow_private).kept)

    # ------------------------------------------------------------------ matching

    def match(self, events: pl.DataFrame) -> pl.DataFrame:
        """One row per (event row, matched indicator), see ``MATCH_SCHEMA``."""
        if events.height == 0 or self.frame.height == 0:
            return pl.DataFrame(schema=MATCH_SCHEMA)
        rows = events.with_row_index("row")
        parts: list[pl.DataFrame] = []
        parts.append(self._match_fields(rows, IP_FIELDS, lambda e: e.str.strip_chars(), self._ip_hits))
        parts.append(self._match_fields(rows, DOMAIN_FIELDS, _vector.domain, self._domain_hits))
        parts.append(self._match_fields(rows, URL_FIELDS, _vector.url, self._exact_hits(URL)))
        for field, kind in HASH_FIELDS.items():
            norm: Callable[[pl.Expr], pl.Expr] = lambda e: e.str.strip_chars().str.to_lowercase()  # noqa: E731
            parts.append(self._match_fields(rows, (field,), norm, self._exact_hits(kind)))
        hits = (
            pl.concat([p for p in parts if p.height], how="vertical")
            if any(p.height for p in parts)
            else None
        )
        if hits is None:
            return pl.DataFrame(schema=MATCH_SCHEMA)
        out = hits.join(self._meta, on="id", how="inner").select(list(MATCH_SCHEMA))
        return out.unique(maintain_order=False).sort(["row", "field", "indicator.type", "indicator.value"])

    def _match_fields(
        self,
        rows: pl.DataFrame,
        fields: tuple[str, ...],
        norm: Callable[[pl.Expr], pl.Expr],
        hits_for: Callable[[pl.Series], pl.DataFrame],
    ) -> pl.DataFrame:
        present = [f for f in fields if f in rows.columns and rows[f].null_count() < rows.height]
        empty = pl.DataFrame(schema={"row": pl.UInt32, "field": pl.String, "id": _ID})
        if not present:
            return empty
        # Normalise and match each distinct value once (batches repeat values a lot), then
        # pick out the few rows whose value matched.
        raw = pl.concat([rows[f].cast(pl.String).unique() for f in present]).unique().drop_nulls()
        distinct = pl.DataFrame({"raw": raw}).with_columns(norm(pl.col("raw")).alias("key"))
        distinct = distinct.drop_nulls("key")
        if distinct.height == 0:
            return empty
        hits = hits_for(distinct["key"].unique())
        if hits.height == 0:
            return empty
        raw_hits = distinct.join(hits, on="key", how="inner").select("raw", "id")
        matched = raw_hits["raw"].unique()
        long = pl.concat(
            [
                rows.select(
                    "row", pl.lit(f, dtype=pl.String).alias("field"), pl.col(f).cast(pl.String).alias("raw")
                ).filter(pl.col("raw").is_in(matched))
                for f in present
            ],
            how="vertical",
        )
        return long.join(raw_hits, on="raw", how="inner").select("row", "field", "id")

    def _exact_hits(self, kind: str) -> Callable[[pl.Series], pl.DataFrame]:
        table = self._exact[kind]

        def hits(keys: pl.Series) -> pl.DataFrame:
            if table.height == 0:
                return _empty_hits()
            return pl.DataFrame({"key": keys}).join(table, left_on="key", right_on="value", how="inner")

        return hits

    def _ip_hits(self, keys: pl.Series) -> pl.DataFrame:
        canon = pl.DataFrame({"key": keys, "ip": _vector.canonical_ips(keys)}).drop_nulls("ip")
        found: list[pl.DataFrame] = []
        table = self._exact[IP]
        if table.height:
            found.append(canon.join(table, left_on="ip", right_on="value", how="inner").select("key", "id"))
        if self._cidr4:
            v4 = canon.with_columns(_vector.ipv4_int(pl.col("ip")).alias("addr")).drop_nulls("addr")
            for plen, nets in self._cidr4.items():
                shift = 1 << (32 - plen)
                keyed = v4.select("key", (pl.col("addr") // shift).alias("net"))
                found.append(keyed.join(nets, on="net", how="inner").select("key", "id"))
        if self._cidr6:
            found.append(self._cidr6_hits(canon))
        found = [f for f in found if f.height]
        return pl.concat(found) if found else _empty_hits()

    def _cidr6_hits(self, canon: pl.DataFrame) -> pl.DataFrame:
        keys: list[str] = []
        ids: list[int] = []
        for key, ip in canon.filter(pl.col("ip").str.contains(":", literal=True)).iter_rows():
            number = int(ipaddress.IPv6Address(ip))
            for plen, nets in self._cidr6.items():
                for ident in nets.get(number >> (128 - plen), ()):
                    keys.append(key)
                    ids.append(ident)
        return pl.DataFrame({"key": keys, "id": ids}, schema={"key": pl.String, "id": _ID})

    def _domain_hits(self, keys: pl.Series) -> pl.DataFrame:
        table = self._exact[DOMAIN]
        if table.height == 0:
            return _empty_hits()
        labels = pl.DataFrame({"key": keys}).with_columns(pl.col("key").str.split(".").alias("labels"))
        # Only suffixes as long as some indicator can match: the last j labels, j = 2..depth.
        suffixes = pl.concat(
            [
                labels.filter(pl.col("labels").list.len() >= j).select(
                    "key", pl.col("labels").list.slice(-j, j).list.join(".").alias("suffix")
                )
                for j in range(2, self._domain_depth + 1)
            ],
            how="vertical",
        )
        return suffixes.join(table, left_on="suffix", right_on="value", how="inner").select("key", "id")
