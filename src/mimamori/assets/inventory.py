"""Passive device inventory per tenant: DHCP, connection MACs, user agents and software logs.

``DeviceInventoryObserver`` aggregates each batch with Polars (per MAC, per address, per DHCP
tenure), then upserts the tenant's ``Asset`` rows (by MAC; by address when no MAC is known)
and its ``DhcpLease`` history, and raises alerts about devices:

- ``new_device`` — a MAC not seen before, after the tenant's baseline (the first
  ``baseline`` of its data, 24 hours by default, only builds the inventory: every device of
  an office would otherwise alert on the first day). Low; medium when the device looks
  private (a randomised MAC or a phone/tablet), seed cases ② ④. A device known only by its
  address (no MAC in the data) alerts only when it is a phone or tablet.
- ``rogue_router`` — one address showing several OS families (at least
  ``rogue_min_families``) or many user agents (``rogue_max_user_agents``) within
  ``rogue_window``: a router brought in, with devices behind it (case ③).
- ``isolated_asset_external`` (high) — traffic to outside the tenant's networks from an
  asset marked isolated (case ①).
- ``eol_os`` — medium when a device's OS is found to be past end of life (``eol.py``); high
  when such a device talks to the internet (Windows XP online, case ①).

Every alert carries the device (asset row), the DHCP lease that held the address at the time
and the fingerprint that identified the device. Dedup keys derive from the tenant, the device
and the day, so re-ingesting a file raises nothing new. State is bounded: the fingerprint
keeps the newest ``max_fingerprint_items`` entries of each kind; lease history grows by one
row per tenure (a device holding an address while renewals continue).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import polars as pl
from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from mimamori.assets.base import InventoryObserver
from mimamori.assets.eol import (
    EolTable,
    OsGuess,
    default_table,
    guess_from_dhcp_vendor,
    guess_from_hostname,
    guess_from_os_name,
    guess_from_software,
    guess_from_user_agent,
)
from mimamori.assets.oui import RANDOMISED, is_randomised, normalise_mac, vendor
from mimamori.db.models import Asset, DhcpLease, Tenant, utcnow
from mimamori.detect.base import AlertDraft
from mimamori.events.net import DEFAULT_INTERNAL, in_networks

__all__ = ["DeviceInventoryObserver", "InventorySettings", "lease_at"]

TS = "@timestamp"
#: destinations that are neither the tenant's nor "the internet" (broadcast, multicast, ...)
NOT_INTERNET = ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/3", "ff00::/8", "::1/128")
PRIVATE_CLASSES = frozenset({"phone", "tablet"})
#: words in a user agent or software name that show an anti-malware product / an EDR agent
_ANTIMALWARE = re.compile(
    r"MpCommunication|Windows Defender|McAfee|Symantec|Norton|Trend ?Micro|TMUFE|ESET|"
    r"Kaspersky|Sophos|Avast|AVG|Bitdefender|F-Secure|Malwarebytes|Avira|Webroot",
    re.IGNORECASE,
)
_EDR = re.compile(
    r"CrowdStrike|SentinelOne|Carbon ?Black|Cybereason|Cortex XDR|Elastic[- ]Agent|osquery|"
    r"Wazuh|Velociraptor|Tanium|MsSense|Defender for Endpoint",
    re.IGNORECASE,
)
_CHUNK = 500


@dataclass
class InventorySettings:
    """Thresholds of the inventory observer (see the module docstring)."""

    baseline: timedelta = timedelta(hours=24)
    lease_hold: timedelta = timedelta(hours=24)  # presumed lease length after a renewal
    rogue_window: timedelta = timedelta(hours=24)
    rogue_min_families: int = 2
    rogue_max_user_agents: int = 30
    conn_mac_max_ips: int = 4  # a MAC behind more addresses in one batch is a gateway's
    max_fingerprint_items: int = 64


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat()


def _from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


def _keep_newest(items: dict[str, Any], limit: int, stamp: Callable[[Any], str]) -> dict[str, Any]:
    if len(items) <= limit:
        return items
    return dict(sorted(items.items(), key=lambda kv: stamp(kv[1]), reverse=True)[:limit])


def lease_at(session: Session, tenant_id: str, ip: str, when: datetime) -> DhcpLease | None:
    """The DHCP tenure that held ``ip`` at ``when`` (the latest to start before it), or None."""
    stmt = (
        select(DhcpLease)
        .where(
            DhcpLease.tenant_id == tenant_id,
            DhcpLease.ip == ip,
            DhcpLease.start <= when,
            DhcpLease.ends_at >= when,
        )
        .order_by(DhcpLease.start.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def prune_leases(session: Session, tenant_id: str, keep_days: int, now: datetime | None = None) -> int:
    """Delete a tenant's DHCP tenures that ended more than ``keep_days`` ago (the events they
    explain are gone by then); returns how many were deleted."""
    cutoff = (now or utcnow()) - timedelta(days=keep_days)
    stmt = delete(DhcpLease).where(DhcpLease.tenant_id == tenant_id, DhcpLease.ends_at < cutoff)
    result = session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)  # a CursorResult for DML


def _os_label(asset: Asset) -> str:
    return " ".join(p for p in (asset.os_name, asset.os_version) if p) or "unknown OS"


def lease_evidence(lease: DhcpLease | None) -> dict[str, Any] | None:
    if lease is None:
        return None
    return {
        "mac": lease.mac,
        "ip": lease.ip,
        "hostname": lease.hostname,
        "start": _iso(lease.start),
        "last_seen": _iso(lease.last_seen),
        "ends_at": _iso(lease.ends_at),
    }


def asset_evidence(asset: Asset) -> dict[str, Any]:
    return {
        "mac": asset.mac,
        "ip": asset.ip,
        "hostname": asset.hostname,
        "vendor": asset.vendor,
        "os_name": asset.os_name,
        "os_version": asset.os_version,
        "device_class": asset.device_class,
        "end_of_life": asset.end_of_life,
        "isolated": asset.isolated,
        "has_antimalware": asset.has_antimalware,
        "has_endpoint_agent": asset.has_endpoint_agent,
        "first_seen": _iso(asset.first_seen) if asset.first_seen else None,
        "last_seen": _iso(asset.last_seen) if asset.last_seen else None,
    }


@dataclass
class _Touched:
    asset: Asset
    new: bool = False
    eol_before: bool | None = None
    families: set[str] = field(default_factory=set)
    printed: bool = False  # user agents / software seen for it in this batch


class DeviceInventoryObserver(InventoryObserver):
    name: ClassVar[str] = "inventory"

    def __init__(
        self,
        settings: InventorySettings | None = None,
        eol: EolTable | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings or InventorySettings()
        self.eol = eol or default_table()
        self.clock = clock

    # ------------------------------------------------------------------ entry point
    def observe(
        self, session: Session, tenant: Tenant, events: pl.DataFrame, batch_id: str
    ) -> list[AlertDraft]:
        if events.height == 0:
            return []
        networks = tuple(tenant.networks or ()) or DEFAULT_INTERNAL
        frame = self._prepare(events, networks)
        dhcp = self._dhcp(frame)
        macs = self._per_mac(frame, dhcp)
        prints = self._per_ip_fingerprints(frame)
        external = self._external(frame, networks)
        if macs.height == 0 and prints.height == 0 and external.height == 0:
            return []

        ips = set(macs["ip"].drop_nulls().to_list()) | set(prints["ip"].to_list())
        ips |= set(external["ip"].to_list())
        assets = self._load_assets(session, tenant.id, macs["mac"].to_list(), sorted(ips))
        touched: dict[int, _Touched] = {}
        self._upsert_macs(session, tenant.id, macs, assets, touched)
        self._upsert_fingerprints(session, tenant.id, prints, assets, touched)
        self._upsert_leases(session, tenant.id, self._tenures(dhcp))
        session.flush()

        alerts: list[AlertDraft] = []
        alerts += self._new_device_alerts(session, tenant.id, touched)
        alerts += self._rogue_router_alerts(session, tenant.id, touched)
        alerts += self._eol_alerts(session, tenant.id, touched)
        alerts += self._external_alerts(session, tenant.id, external, assets)
        return alerts

    # ------------------------------------------------------------------ aggregation
    @staticmethod
    def _prepare(events: pl.DataFrame, networks: tuple[str, ...]) -> pl.DataFrame:
        raw = events["source.mac"].drop_nulls().unique().to_list()
        mapping = {m: normalise_mac(m) for m in raw}
        mac = pl.col("source.mac").replace_strict(mapping, default=None, return_dtype=pl.String)
        src = pl.col("source.ip")
        internal = events.select(src.drop_nulls().unique()).filter(in_networks(src, networks))
        return events.filter(pl.col(TS).is_not_null()).with_columns(
            mac.alias("_mac"),
            pl.col("source.ip")
            .is_in(internal["source.ip"].implode())
            .fill_null(False)
            .alias("_src_internal"),
            (
                (pl.col("network.protocol") == "dhcp").fill_null(False)
                | pl.col("event.dataset").str.ends_with(".dhcp").fill_null(False)
            ).alias("_dhcp"),
        )

    @staticmethod
    def _dhcp(frame: pl.DataFrame) -> pl.DataFrame:
        ip = pl.coalesce(pl.col("host.ip"), pl.col("source.ip"))
        hostname = pl.col("host.name").str.strip_chars()
        return (
            frame.filter(pl.col("_dhcp") & pl.col("_mac").is_not_null())
            .select(
                pl.col(TS).alias("ts"),
                pl.col("_mac").alias("mac"),
                ip.alias("ip"),
                pl.when(hostname.is_in(["", "-"])).then(None).otherwise(hostname).alias("hostname"),
                pl.col("user_agent.original").alias("vendor_class"),
            )
            .filter(pl.col("ip").is_not_null() & ~pl.col("ip").is_in(["0.0.0.0", "::"]))
            .unique()
        )

    def _per_mac(self, frame: pl.DataFrame, dhcp: pl.DataFrame) -> pl.DataFrame:
        """One row per MAC: first/last seen, the address and host name it had last."""
        conn = frame.filter(~pl.col("_dhcp") & pl.col("_mac").is_not_null() & pl.col("_src_internal"))
        conn = conn.select(
            pl.col(TS).alias("ts"),
            pl.col("_mac").alias("mac"),
            pl.col("source.ip").alias("ip"),
            pl.lit(None, pl.String).alias("hostname"),
            pl.lit(None, pl.String).alias("vendor_class"),
        )
        gateways = (
            conn.group_by("mac")
            .agg(pl.col("ip").n_unique().alias("n"))
            .filter(pl.col("n") > self.settings.conn_mac_max_ips)["mac"]
        )
        both = pl.concat([dhcp, conn.filter(~pl.col("mac").is_in(gateways.implode()))])
        return (
            both.sort("ts")
            .group_by("mac")
            .agg(
                pl.col("ts").min().alias("first"),
                pl.col("ts").max().alias("last"),
                pl.col("ip").drop_nulls().last().alias("ip"),
                pl.col("hostname").drop_nulls().last().alias("hostname"),
                pl.col("vendor_class").drop_nulls().last().alias("vendor_class"),
            )
            .sort("first", "mac")
        )

    @staticmethod
    def _per_ip_fingerprints(frame: pl.DataFrame) -> pl.DataFrame:
        """One row per (address, user agent / software / reported OS) with its time span."""
        client = frame.filter(
            pl.col("_src_internal")
            & ~pl.col("_dhcp")
            & (
                pl.col("user_agent.original").is_not_null()
                | pl.col("package.name").is_not_null()
                | pl.col("host.os.name").is_not_null()
            )
        )
        is_software = pl.col("event.dataset").str.ends_with(".software").fill_null(False)
        return (
            client.select(
                pl.col("source.ip").alias("ip"),
                pl.col(TS).alias("ts"),
                pl.col("user_agent.original").alias("ua"),
                pl.when(is_software).then(pl.col("package.name")).alias("pkg"),
                pl.when(is_software).then(pl.col("package.version")).alias("pkg_version"),
                pl.when(is_software).then(pl.col("event.action")).alias("sw_type"),
                pl.col("host.os.name").alias("os_name"),
                pl.col("host.os.version").alias("os_version"),
            )
            .group_by("ip", "ua", "pkg", "pkg_version", "sw_type", "os_name", "os_version")
            .agg(pl.col("ts").min().alias("first"), pl.col("ts").max().alias("last"), pl.len().alias("n"))
            .sort("ip", "first", "ua", "pkg", nulls_last=True)
        )

    @staticmethod
    def _external(frame: pl.DataFrame, networks: tuple[str, ...]) -> pl.DataFrame:
        """Per internal address: traffic to the internet in this batch."""
        dst = pl.col("destination.ip")
        # classify each distinct destination once, not every row (CIDR tests are string work)
        targets = frame.select(dst.drop_nulls().unique()).filter(
            ~in_networks(dst, networks) & ~in_networks(dst, NOT_INTERNET)
        )
        outside = dst.is_in(targets["destination.ip"].implode())
        return (  # lazy: only the columns read below are gathered for the kept rows
            frame.lazy()
            .filter(pl.col("_src_internal") & ~pl.col("_dhcp") & outside)
            .group_by(pl.col("source.ip").alias("ip"))
            .agg(
                pl.len().alias("n"),
                pl.col(TS).min().alias("first"),
                pl.col(TS).max().alias("last"),
                dst.unique().sort().head(10).alias("destinations"),
                pl.col("destination.domain").drop_nulls().unique().sort().head(10).alias("domains"),
            )
            .sort("ip")
            .collect()
        )

    def _tenures(self, dhcp: pl.DataFrame) -> pl.DataFrame:
        """DHCP messages cut into tenures: same address, same MAC, no gap beyond the lease."""
        if dhcp.height == 0:
            return dhcp.select(
                "mac", "ip", "hostname", pl.col("ts").alias("start"), pl.col("ts").alias("last")
            )
        hold = self.settings.lease_hold
        cut = (
            (pl.col("ip") != pl.col("ip").shift(1))
            | (pl.col("mac") != pl.col("mac").shift(1))
            | ((pl.col("ts") - pl.col("ts").shift(1)) > hold)
        ).fill_null(True)
        return (
            dhcp.sort("ip", "ts", "mac")
            .with_columns(cut.cum_sum().alias("_tenure"))
            .group_by("_tenure")
            .agg(
                pl.col("mac").first(),
                pl.col("ip").first(),
                pl.col("hostname").drop_nulls().last(),
                pl.col("ts").min().alias("start"),
                pl.col("ts").max().alias("last"),
            )
            .drop("_tenure")
            .sort("start", "ip")
        )

    # ------------------------------------------------------------------ upserts
    @staticmethod
    def _load_assets(session: Session, tenant_id: str, macs: list[str], ips: list[str]) -> list[Asset]:
        found: dict[int, Asset] = {}
        for chunk in _chunks(macs):
            for a in session.scalars(select(Asset).where(Asset.tenant_id == tenant_id, Asset.mac.in_(chunk))):
                found[a.id] = a
        for chunk in _chunks(ips):
            stmt = select(Asset).where(Asset.tenant_id == tenant_id, or_(Asset.ip.in_(chunk)))
            for a in session.scalars(stmt):
                found[a.id] = a
        return sorted(found.values(), key=lambda a: a.id)

    @staticmethod
    def _by_ip(assets: list[Asset], ip: str) -> Asset | None:
        """The asset that has this address now (the most recently seen one)."""
        holders = [a for a in assets if a.ip == ip]
        if not holders:
            return None
        epoch = datetime.min.replace(tzinfo=UTC)
        return max(holders, key=lambda a: (a.last_seen or epoch, a.id or 0))

    @staticmethod
    def _touch(touched: dict[int, _Touched], asset: Asset, new: bool = False) -> _Touched:
        key = id(asset)
        if key not in touched:
            touched[key] = _Touched(asset, new=new, eol_before=asset.end_of_life)
        return touched[key]

    def _upsert_macs(
        self,
        session: Session,
        tenant_id: str,
        macs: pl.DataFrame,
        assets: list[Asset],
        touched: dict[int, _Touched],
    ) -> None:
        for row in macs.iter_rows(named=True):
            mac, ip, first, last = row["mac"], row["ip"], row["first"], row["last"]
            asset = next((a for a in assets if a.mac == mac), None)
            new = False
            if asset is None:
                # a device known so far only by its address gets its MAC
                anon = self._by_ip([a for a in assets if a.mac is None], ip) if ip else None
                if anon is not None:
                    asset = anon
                    asset.mac = mac
                else:
                    asset = Asset(tenant_id=tenant_id, mac=mac, ip=ip, first_seen=first, last_seen=last)
                    asset.fingerprint = {}
                    session.add(asset)
                    assets.append(asset)
                    new = True
            self._touch(touched, asset, new)
            newer = asset.last_seen is None or last >= asset.last_seen
            asset.first_seen = min(asset.first_seen or first, first)
            asset.last_seen = max(asset.last_seen or last, last)
            if newer and ip:
                asset.ip = ip
            if row["hostname"] and (newer or not asset.hostname):
                asset.hostname = row["hostname"]
            if asset.vendor is None:
                asset.vendor = vendor(mac)
            for hint in (guess_from_dhcp_vendor(row["vendor_class"]), guess_from_hostname(asset.hostname)):
                if hint is not None:
                    self._apply_os(asset, hint, last)

    def _upsert_fingerprints(
        self,
        session: Session,
        tenant_id: str,
        prints: pl.DataFrame,
        assets: list[Asset],
        touched: dict[int, _Touched],
    ) -> None:
        if prints.height == 0:
            return
        limit = self.settings.max_fingerprint_items
        for (ip,), group in prints.group_by(["ip"], maintain_order=True):
            asset = self._by_ip(assets, str(ip))
            first, last = group["first"].min(), group["last"].max()
            assert isinstance(first, datetime) and isinstance(last, datetime)
            new = False
            if asset is None:
                asset = Asset(tenant_id=tenant_id, ip=str(ip), first_seen=first, last_seen=last)
                asset.fingerprint = {}
                session.add(asset)
                assets.append(asset)
                new = True
            state = self._touch(touched, asset, new)
            state.printed = True
            asset.first_seen = min(asset.first_seen or first, first)
            asset.last_seen = max(asset.last_seen or last, last)
            fp = dict(asset.fingerprint or {})
            uas: dict[str, str] = dict(fp.get("user_agents", {}))
            families: dict[str, dict[str, str]] = dict(fp.get("os", {}))
            software: dict[str, str] = dict(fp.get("software", {}))
            best: tuple[int, int, OsGuess, datetime] | None = None
            for row in group.iter_rows(named=True):
                seen = _iso(row["last"])
                ua, pkg = row["ua"], row["pkg"]
                guess = self._guess(row)
                client = row["sw_type"] is None or str(row["sw_type"]).endswith("BROWSER")
                if ua and client:
                    uas[ua] = max(uas.get(ua, seen), seen)
                if pkg:
                    label = f"{pkg}/{row['pkg_version']}" if row["pkg_version"] else str(pkg)
                    software[label] = max(software.get(label, seen), seen)
                text = " ".join(t for t in (ua, pkg) if t)
                if _ANTIMALWARE.search(text):
                    asset.has_antimalware = True
                if _EDR.search(text):
                    asset.has_endpoint_agent = True
                if guess is None:
                    continue
                fam = families.get(guess.family, {})
                if seen >= fam.get("last", ""):
                    fam = {"label": guess.label, "last": seen}
                families[guess.family] = fam
                state.families.add(guess.family)
                rank = (guess.confidence, int(row["n"]))
                if best is None or rank > best[:2]:
                    best = (*rank, guess, row["last"])
            fp["user_agents"] = _keep_newest(uas, limit, str)
            fp["os"] = _keep_newest(families, limit, lambda v: v["last"])
            fp["software"] = _keep_newest(software, limit, str)
            asset.fingerprint = fp
            if best is not None:  # after the fingerprint is stored: it writes to it too
                self._apply_os(asset, best[2], best[3])

    @staticmethod
    def _guess(row: dict[str, Any]) -> OsGuess | None:
        if row["os_name"]:
            return guess_from_os_name(row["os_name"], row["os_version"])
        if row["pkg"] is not None:
            return guess_from_software(row["pkg"], row["pkg_version"], row["ua"])
        return guess_from_user_agent(row["ua"])

    def _apply_os(self, asset: Asset, guess: OsGuess, seen: datetime) -> None:
        fp = dict(asset.fingerprint or {})
        held = int(fp.get("os_confidence", 0))
        if guess.confidence < held:
            return
        if guess.confidence == held and guess.version is None and asset.os_version is not None:
            return
        asset.os_name, asset.os_version = guess.name, guess.version
        if guess.device_class != "unknown" or asset.device_class is None:
            asset.device_class = guess.device_class
        asset.end_of_life = self.eol.is_eol(guess.product, guess.cycles, max(seen, self.clock()))
        fp["os_confidence"] = guess.confidence
        fp["os_product"] = guess.product
        fp["os_cycles"] = list(guess.cycles)
        asset.fingerprint = fp

    def _upsert_leases(self, session: Session, tenant_id: str, tenures: pl.DataFrame) -> None:
        if tenures.height == 0:
            return
        hold = self.settings.lease_hold
        ips = sorted(set(tenures["ip"].to_list()))
        lo, hi = tenures["start"].min(), tenures["last"].max()
        assert isinstance(lo, datetime) and isinstance(hi, datetime)
        leases: list[DhcpLease] = []
        for chunk in _chunks(ips):
            stmt = select(DhcpLease).where(
                DhcpLease.tenant_id == tenant_id,
                DhcpLease.ip.in_(chunk),
                DhcpLease.start <= hi + hold,
                DhcpLease.last_seen >= lo - hold,
            )
            leases.extend(session.scalars(stmt))
        for row in tenures.iter_rows(named=True):
            mac, ip, start, last = row["mac"], row["ip"], row["start"], row["last"]
            same_ip = [x for x in leases if x.ip == ip]
            match = None
            for lease in same_ip:
                if lease.mac != mac or lease.start > last + hold or lease.last_seen < start - hold:
                    continue
                gap_lo, gap_hi = min(lease.last_seen, last), max(lease.start, start)
                # another device held the address in between: a new tenure, not an extension
                between = any(
                    o.mac != mac and o.start <= gap_hi and o.last_seen >= gap_lo and gap_lo < gap_hi
                    for o in same_ip
                )
                if not between:
                    match = lease
                    break
            if match is None:
                match = DhcpLease(
                    tenant_id=tenant_id, mac=mac, ip=ip, start=start, last_seen=last, ends_at=last + hold
                )
                session.add(match)
                leases.append(match)
            match.start = min(match.start, start)
            if last >= match.last_seen:
                match.last_seen = last
                if row["hostname"]:
                    match.hostname = row["hostname"]
            match.hostname = match.hostname or row["hostname"]
            match.ends_at = match.last_seen + hold
            leases += self._split_enclosing(session, match, same_ip)

    @staticmethod
    def _split_enclosing(session: Session, tenure: DhcpLease, same_ip: list[DhcpLease]) -> list[DhcpLease]:
        """Another device's tenure spanning this one (batches out of order) is cut in two.

        Its messages inside the span are no longer known, so the first part ends when this
        device took the address and the second is only the other's last sighting (it held the
        address again by then): the answer an in-order ingest of two sightings would give.
        """
        added = []
        for other in same_ip:
            if other.mac == tenure.mac or not (
                other.start < tenure.start and other.last_seen > tenure.last_seen
            ):
                continue
            later = DhcpLease(
                tenant_id=other.tenant_id,
                mac=other.mac,
                ip=other.ip,
                hostname=other.hostname,
                start=other.last_seen,
                last_seen=other.last_seen,
                ends_at=other.ends_at,
            )
            session.add(later)
            added.append(later)
            other.last_seen = tenure.start
            other.ends_at = tenure.start
        return added

    # ------------------------------------------------------------------ alerts
    def _evidence(self, session: Session, tenant_id: str, asset: Asset, when: datetime) -> dict[str, Any]:
        lease = lease_at(session, tenant_id, asset.ip, when) if asset.ip else None
        current = lease is not None
        if lease is None and asset.mac:  # no tenure covers the moment: the device's last one
            stmt = (
                select(DhcpLease)
                .where(DhcpLease.tenant_id == tenant_id, DhcpLease.mac == asset.mac, DhcpLease.start <= when)
                .order_by(DhcpLease.start.desc())
                .limit(1)
            )
            lease = session.scalars(stmt).first()
        lease_info = lease_evidence(lease)
        if lease_info is not None:
            lease_info["covers_the_moment"] = current
        fp = asset.fingerprint or {}
        uas = sorted(fp.get("user_agents", {}).items(), key=lambda kv: kv[1], reverse=True)
        return {
            "device": asset_evidence(asset),
            "lease": lease_info,
            "fingerprint": {
                "os": fp.get("os", {}),
                "user_agents": [ua for ua, _ in uas[:10]],
                "software": sorted(fp.get("software", {}))[:10],
            },
        }

    @staticmethod
    def _keys(asset: Asset) -> list[str]:
        keys = [f"host:{asset.ip}"] if asset.ip else []
        return keys + ([f"mac:{asset.mac}"] if asset.mac else [])

    @staticmethod
    def _identity(asset: Asset) -> str:
        return f"mac:{asset.mac}" if asset.mac else f"ip:{asset.ip}"

    @staticmethod
    def _name(asset: Asset) -> str:
        parts = [asset.hostname or asset.ip or asset.mac or "?"]
        if asset.mac and asset.mac != parts[0]:
            parts.append(asset.mac)
        return " / ".join(parts)

    def _new_device_alerts(
        self, session: Session, tenant_id: str, touched: dict[int, _Touched]
    ) -> list[AlertDraft]:
        new = [t.asset for t in touched.values() if t.new]
        if not new:
            return []
        origin = session.scalar(select(func.min(Asset.first_seen)).where(Asset.tenant_id == tenant_id))
        out = []
        for asset in new:
            assert asset.first_seen is not None and asset.last_seen is not None
            if origin is not None and asset.first_seen < origin + self.settings.baseline:
                continue  # the tenant's baseline period: learning its devices
            private = asset.device_class in PRIVATE_CLASSES
            randomised = asset.mac is not None and is_randomised(asset.mac)
            if asset.mac is None and not private:
                continue
            reasons = (["randomised MAC"] if randomised else []) + ([asset.device_class] if private else [])
            evidence = self._evidence(session, tenant_id, asset, asset.first_seen)
            evidence["private_device_signs"] = reasons
            what = f"{asset.vendor} " if asset.vendor and asset.vendor != RANDOMISED else ""
            title = f"New device on the network: {what}{self._name(asset)}"
            if reasons:
                title += f" ({', '.join(str(r) for r in reasons)}: likely a private device)"
            draft = AlertDraft(
                detector=self.name,
                kind="new_device",
                severity="medium" if reasons else "low",
                title=title,
                first_seen=asset.first_seen,
                last_seen=asset.last_seen,
                keys=self._keys(asset),
                host=asset.ip,
                indicator=asset.mac,
                evidence=evidence,
            )
            out.append(draft.with_dedup(tenant_id, self._identity(asset)))
        return out

    def _rogue_router_alerts(
        self, session: Session, tenant_id: str, touched: dict[int, _Touched]
    ) -> list[AlertDraft]:
        s = self.settings
        out = []
        for t in touched.values():
            asset, fp = t.asset, t.asset.fingerprint or {}
            if not t.printed or asset.ip is None or asset.last_seen is None:
                continue
            since = _iso(asset.last_seen - s.rogue_window)
            families = {f: v["label"] for f, v in fp.get("os", {}).items() if v["last"] >= since}
            uas = [ua for ua, seen in fp.get("user_agents", {}).items() if seen >= since]
            if len(families) < s.rogue_min_families and len(uas) < s.rogue_max_user_agents:
                continue
            evidence = self._evidence(session, tenant_id, asset, asset.last_seen)
            evidence.update(os_families=dict(sorted(families.items())), user_agents=sorted(uas)[:20])
            evidence["user_agent_count"] = len(uas)
            labels = ", ".join(sorted(families.values()))
            draft = AlertDraft(
                detector=self.name,
                kind="rogue_router",
                severity="medium",
                title=f"{asset.ip} behaves like several devices ({labels}; {len(uas)} user agents)",
                first_seen=min(_from_iso(fp["os"][f]["last"]) for f in families)
                if families
                else asset.last_seen,
                last_seen=asset.last_seen,
                keys=self._keys(asset),
                host=asset.ip,
                evidence=evidence,
            )
            out.append(draft.with_dedup(tenant_id, asset.ip, asset.last_seen.date()))
        return out

    def _eol_alerts(self, session: Session, tenant_id: str, touched: dict[int, _Touched]) -> list[AlertDraft]:
        out = []
        for t in touched.values():
            asset = t.asset
            if asset.end_of_life is not True or t.eol_before is True:
                continue
            assert asset.first_seen is not None and asset.last_seen is not None
            draft = AlertDraft(
                detector=self.name,
                kind="eol_os",
                severity="medium",
                title=f"End-of-life OS {_os_label(asset)} on {self._name(asset)}",
                first_seen=asset.first_seen,
                last_seen=asset.last_seen,
                keys=self._keys(asset),
                host=asset.ip,
                evidence=self._evidence(session, tenant_id, asset, asset.last_seen),
            )
            out.append(draft.with_dedup(tenant_id, self._identity(asset), asset.os_name, asset.os_version))
        return out

    def _external_alerts(
        self, session: Session, tenant_id: str, external: pl.DataFrame, assets: list[Asset]
    ) -> list[AlertDraft]:
        out = []
        for row in external.iter_rows(named=True):
            asset = self._by_ip(assets, row["ip"])
            if asset is None or not (asset.isolated or asset.end_of_life):
                continue
            evidence = self._evidence(session, tenant_id, asset, row["first"])
            evidence["external"] = {
                "connections": row["n"],
                "destinations": row["destinations"],
                "domains": row["domains"],
            }
            common: dict[str, Any] = {
                "detector": self.name,
                "severity": "high",
                "first_seen": row["first"],
                "last_seen": row["last"],
                "keys": self._keys(asset),
                "host": row["ip"],
                "indicator": row["destinations"][0] if row["destinations"] else None,
                "event_count": row["n"],
                "evidence": evidence,
            }
            day = row["first"].date()
            if asset.isolated:
                title = f"Device marked isolated talks to the internet: {self._name(asset)}"
                draft = AlertDraft(kind="isolated_asset_external", title=title, **common)
                out.append(draft.with_dedup(tenant_id, self._identity(asset), day))
            if asset.end_of_life:
                title = f"End-of-life OS {asset.os_name} {asset.os_version or ''} talks to the internet: "
                # An unpatched PC on the internet (Windows XP) is the high-severity case; an old
                # phone or tablet is worth a word with its owner, not an emergency.
                mobile = asset.device_class in ("phone", "tablet")
                draft = AlertDraft(
                    kind="eol_os",
                    title=title.replace("  ", " ") + self._name(asset),
                    **{**common, "severity": "medium" if mobile else "high"},
                )
                out.append(draft.with_dedup(tenant_id, self._identity(asset), "internet", day))
        return out
