"""The passive inventory observer: assets and lease history from real and crafted events."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mimamori.assets import OBSERVERS, default_observers
from mimamori.assets.inventory import DeviceInventoryObserver, InventorySettings, lease_at, prune_leases
from mimamori.assets.oui import RANDOMISED
from mimamori.db.models import Asset, DhcpLease, Tenant
from mimamori.detect.base import AlertDraft
from tests.assets.conftest import NOW, events, zeek_batches

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PC_MAC, XP_MAC, PHONE_MAC = "f4:8e:38:00:00:01", "f4:8e:38:00:00:02", "da:a1:19:00:00:01"
WIN10 = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
ANDROID = "Mozilla/5.0 (Linux; Android 14; SH-M26) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


def observer() -> DeviceInventoryObserver:
    return DeviceInventoryObserver(clock=lambda: NOW)


def dhcp(ts: datetime, mac: str, ip: str, host: str | None = None) -> dict[str, object]:
    return {
        "@timestamp": ts,
        "event.dataset": "zeek.dhcp",
        "network.protocol": "dhcp",
        "source.ip": ip,
        "host.ip": ip,
        "source.mac": mac,
        "host.name": host,
        "destination.ip": "255.255.255.255",
    }


def http(ts: datetime, ip: str, ua: str, dst: str = "192.168.1.1") -> dict[str, object]:
    return {
        "@timestamp": ts,
        "event.dataset": "zeek.http",
        "network.protocol": "http",
        "source.ip": ip,
        "destination.ip": dst,
        "destination.port": 80,
        "user_agent.original": ua,
    }


def run(
    session: Session, rows: list[dict[str, object]], obs: DeviceInventoryObserver | None = None
) -> list[AlertDraft]:
    tenant = session.get(Tenant, "acme")
    assert tenant is not None
    alerts = (obs or observer()).observe(session, tenant, events(rows), "batch")
    session.commit()
    return alerts


def baseline(session: Session) -> None:
    """Day one of the tenant's data: an office PC (builds the baseline, no alert)."""
    assert run(session, [dhcp(T0, PC_MAC, "192.168.1.10", "DESKTOP-1A2B3C4")]) == []


def test_registered() -> None:
    assert OBSERVERS["inventory"] is DeviceInventoryObserver
    assert any(isinstance(o, DeviceInventoryObserver) for o in default_observers())


# ------------------------------------------------------------------ real data


def test_rita_dhcp_and_software_logs(session: Session, corpus: Path) -> None:
    proxy = corpus / "zeek-rita-testdata" / "test_data" / "proxy"
    tenant = session.get(Tenant, "acme")
    assert tenant is not None
    tenant.networks = []  # the default private ranges: the captures use 10/8 and 192.168/16
    obs, alerts = observer(), []
    for name in ("dhcp.log", "software.log"):
        for batch in zeek_batches(proxy / name):
            alerts += obs.observe(session, tenant, batch, name)
    session.commit()
    # dhcp.log: 57 messages, all from one Dell client keeping 192.168.0.15 (no host_name field)
    dell = session.scalars(select(Asset).where(Asset.mac == "f4:8e:38:8b:b6:03")).one()
    assert (dell.ip, dell.vendor, dell.hostname) == ("192.168.0.15", "Dell Inc.", None)
    first, last = (
        datetime.fromtimestamp(1610645141.523272, UTC),
        datetime.fromtimestamp(1610658339.016596, UTC),
    )
    assert (dell.first_seen, dell.last_seen) == (first, last)
    leases = session.scalars(select(DhcpLease)).all()
    assert [(x.mac, x.ip, x.start, x.last_seen) for x in leases] == [
        ("f4:8e:38:8b:b6:03", "192.168.0.15", first, last)
    ]
    # software.log: 10.136.0.18 sends "Modzilla/-2.0 (Atari 7800)" and curl: known by address only
    other = session.scalars(select(Asset).where(Asset.ip == "10.136.0.18")).one()
    assert other.mac is None and other.os_name is None
    assert set(other.fingerprint["user_agents"]) == {"Modzilla/-2.0 (Atari 7800)", "curl/7.58.0"}
    assert alerts == []  # the first day of a tenant's data is its baseline


def test_wrccdc_software_log(session: Session, corpus: Path) -> None:
    path = corpus / "zeek-wrccdc-2018" / "zeek-default" / "software.log.gz"
    tenant = session.get(Tenant, "acme")
    assert tenant is not None
    tenant.networks = []  # the default private ranges: the captures use 10/8 and 192.168/16
    obs, alerts = observer(), []
    for batch in zeek_batches(path):
        alerts += obs.observe(session, tenant, batch, "wrccdc")
    session.commit()
    assert session.query(Asset).count() == 169  # distinct hosts in the file
    # 10.47.8.19: "Microsoft-CryptoAPI/6.1", IE 11 and Chrome on "Windows NT 6.1"
    win7 = session.scalars(select(Asset).where(Asset.ip == "10.47.8.19")).one()
    assert (win7.os_name, win7.os_version, win7.device_class, win7.end_of_life) == (
        "Windows",
        "7",
        "pc",
        True,
    )
    # 10.47.8.152: "MpCommunication" is Microsoft Defender talking home
    defender = session.scalars(select(Asset).where(Asset.ip == "10.47.8.152")).one()
    assert defender.has_antimalware is True
    iis = session.scalars(select(Asset).where(Asset.ip == "10.47.8.208")).one()
    assert (iis.os_name, iis.os_version) == ("Windows Server", "2008")
    counts = Counter(a.kind for a in alerts)
    # false positives of a router detector: three red-team hosts rotating spoofed user agents
    # (10.128.0.19, .202, .214); no new_device (one day: the baseline, and no MACs in the log)
    assert counts["rogue_router"] == 3
    assert counts["new_device"] == 0
    assert {a.host for a in alerts if a.kind == "rogue_router"} == {
        "10.128.0.19",
        "10.128.0.202",
        "10.128.0.214",
    }


# ------------------------------------------------------------------ crafted scenarios


def test_private_iphone_with_randomised_mac_is_a_medium_new_device(session: Session) -> None:
    baseline(session)
    at = T0 + timedelta(days=2)
    alerts = run(
        session,
        [
            dhcp(at, PHONE_MAC, "192.168.1.50", "Hanakos-iPhone"),
            http(at + timedelta(minutes=1), "192.168.1.50", IPHONE),
        ],
    )
    [alert] = alerts
    assert (alert.kind, alert.severity, alert.host, alert.indicator) == (
        "new_device",
        "medium",
        "192.168.1.50",
        PHONE_MAC,
    )
    assert alert.keys == ["host:192.168.1.50", f"mac:{PHONE_MAC}"]
    device = alert.evidence["device"]
    assert (device["vendor"], device["device_class"], device["os_name"]) == (RANDOMISED, "phone", "iOS")
    assert alert.evidence["lease"]["mac"] == PHONE_MAC
    assert alert.evidence["lease"]["hostname"] == "Hanakos-iPhone"
    assert alert.evidence["lease"]["covers_the_moment"] is True
    assert alert.evidence["private_device_signs"] == ["randomised MAC", "phone"]
    assert IPHONE in alert.evidence["fingerprint"]["user_agents"]
    # the same batch again: nothing new
    again = run(session, [dhcp(at, PHONE_MAC, "192.168.1.50", "Hanakos-iPhone")])
    assert again == []


def test_baseline_is_configurable(session: Session) -> None:
    obs = DeviceInventoryObserver(InventorySettings(baseline=timedelta(0)), clock=lambda: NOW)
    [alert] = run(session, [dhcp(T0, PC_MAC, "192.168.1.10")], obs)
    assert (alert.kind, alert.severity) == ("new_device", "low")
    assert alert.evidence["device"]["vendor"] == "Dell Inc."


def test_isolated_xp_pc_talking_outside(session: Session) -> None:
    baseline(session)
    run(session, [dhcp(T0 + timedelta(hours=1), XP_MAC, "192.168.1.20", "XP-SCANNER")])
    xp = session.scalars(select(Asset).where(Asset.mac == XP_MAC)).one()
    xp.isolated = True
    xp.has_antimalware = False
    session.commit()
    at = T0 + timedelta(days=3)
    alerts = run(
        session,
        [
            http(at, "192.168.1.20", "Microsoft-CryptoAPI/5.1", dst="192.168.1.5"),  # the printer
            http(at + timedelta(seconds=5), "192.168.1.20", "Microsoft-CryptoAPI/5.1", dst="203.0.113.7"),
            http(at + timedelta(seconds=9), "192.168.1.20", "Microsoft-CryptoAPI/5.1", dst="203.0.113.8"),
        ],
    )
    by_kind = {(a.kind, a.severity): a for a in alerts}
    assert set(by_kind) == {("eol_os", "medium"), ("isolated_asset_external", "high"), ("eol_os", "high")}
    isolated = by_kind["isolated_asset_external", "high"]
    assert isolated.keys == ["host:192.168.1.20", f"mac:{XP_MAC}"]
    assert isolated.event_count == 2
    assert isolated.evidence["external"]["destinations"] == ["203.0.113.7", "203.0.113.8"]
    assert isolated.evidence["device"]["os_version"] == "XP"
    assert isolated.evidence["device"]["has_antimalware"] is False
    lease = isolated.evidence["lease"]  # taken two days before: the last one it had
    assert (lease["hostname"], lease["covers_the_moment"]) == ("XP-SCANNER", False)
    assert "Windows XP talks to the internet" in by_kind["eol_os", "high"].title
    assert len({a.dedup_key for a in alerts}) == 3


def test_two_os_families_behind_one_address(session: Session) -> None:
    baseline(session)
    at = T0 + timedelta(days=1, hours=2)
    assert [a.kind for a in run(session, [http(at, "192.168.1.77", WIN10)])] == []
    [alert] = run(session, [http(at + timedelta(hours=3), "192.168.1.77", ANDROID)])
    assert (alert.kind, alert.severity, alert.host) == ("rogue_router", "medium", "192.168.1.77")
    assert alert.evidence["os_families"] == {"android": "Android 14", "windows": "Windows 10/11"}
    assert sorted(alert.evidence["user_agents"]) == sorted([WIN10, ANDROID])
    assert alert.keys == ["host:192.168.1.77"]


def test_families_outside_the_window_do_not_count(session: Session) -> None:
    baseline(session)
    run(session, [http(T0, "192.168.1.78", WIN10)])
    assert run(session, [http(T0 + timedelta(days=3), "192.168.1.78", ANDROID)]) == []


def test_lease_history_names_the_device_at_each_moment(session: Session) -> None:
    ip = "192.168.1.40"
    run(
        session,
        [
            dhcp(T0, PC_MAC, ip, "office-pc"),
            dhcp(T0 + timedelta(minutes=30), PC_MAC, ip, "office-pc"),
            dhcp(T0 + timedelta(hours=5), PHONE_MAC, ip, "guest-phone"),
        ],
    )
    early = lease_at(session, "acme", ip, T0 + timedelta(minutes=45))
    late = lease_at(session, "acme", ip, T0 + timedelta(hours=6))
    assert early is not None and (early.mac, early.hostname) == (PC_MAC, "office-pc")
    assert late is not None and (late.mac, late.hostname) == (PHONE_MAC, "guest-phone")
    assert lease_at(session, "acme", ip, T0 - timedelta(minutes=1)) is None
    assert lease_at(session, "acme", ip, T0 + timedelta(days=3)) is None  # past the presumed lease


def _state(session: Session) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    assets = sorted((a.mac, a.ip, a.first_seen, a.last_seen) for a in session.scalars(select(Asset)))
    leases = sorted((x.mac, x.ip, x.start, x.last_seen) for x in session.scalars(select(DhcpLease)))
    return assets, leases


BATCH_1 = [dhcp(T0, PC_MAC, "192.168.1.10"), dhcp(T0 + timedelta(hours=1), PC_MAC, "192.168.1.10")]
BATCH_2 = [
    dhcp(T0 + timedelta(hours=2), PC_MAC, "192.168.1.10"),
    dhcp(T0 + timedelta(hours=3), XP_MAC, "192.168.1.11"),
]


@pytest.mark.parametrize(
    "order", [[BATCH_1, BATCH_2], [BATCH_2, BATCH_1], [BATCH_1, BATCH_2, BATCH_2, BATCH_1]]
)
def test_duplicates_and_out_of_order_batches(session: Session, order: list[list[dict[str, object]]]) -> None:
    for batch in order:
        run(session, batch)
    assets, leases = _state(session)
    assert assets == [
        (PC_MAC, "192.168.1.10", T0, T0 + timedelta(hours=2)),
        (XP_MAC, "192.168.1.11", T0 + timedelta(hours=3), T0 + timedelta(hours=3)),
    ]
    assert leases == [
        (PC_MAC, "192.168.1.10", T0, T0 + timedelta(hours=2)),
        (XP_MAC, "192.168.1.11", T0 + timedelta(hours=3), T0 + timedelta(hours=3)),
    ]


def test_gateway_macs_in_conn_logs_are_not_devices(session: Session) -> None:
    router = "00:1b:21:00:00:99"
    rows = [
        {"@timestamp": T0, "event.dataset": "zeek.conn", "source.ip": f"192.168.1.{i}", "source.mac": router,
         "destination.ip": "192.168.1.1"}
        for i in range(100, 110)
    ]  # fmt: skip
    run(session, rows)
    assert session.scalars(select(Asset).where(Asset.mac == router)).first() is None


def test_reported_os_and_security_software(session: Session) -> None:
    baseline(session)
    at = T0 + timedelta(hours=2)
    fortigate = {
        **http(at, "192.168.1.10", "", dst="192.168.1.1"),
        "event.dataset": "fortigate.traffic",
        "user_agent.original": None,
        "host.os.name": "Windows",
        "host.os.version": "XP",
    }
    edr = http(at, "192.168.1.10", "CrowdStrike Falcon Sensor/7.1")
    av = http(at, "192.168.1.10", "Mozilla/4.0 (compatible; TMUFE)")  # Trend Micro's URL filter
    [alert] = run(session, [fortigate, edr, av])
    assert (alert.kind, alert.severity) == ("eol_os", "medium")
    pc = session.scalars(select(Asset).where(Asset.mac == PC_MAC)).one()
    assert (pc.os_name, pc.os_version, pc.end_of_life) == ("Windows", "XP", True)
    assert (pc.has_antimalware, pc.has_endpoint_agent) == (True, True)
    assert pc.fingerprint["os_confidence"] == 3


def test_empty_batch(session: Session) -> None:
    assert run(session, []) == []
    assert run(session, [{"@timestamp": T0, "event.dataset": "zeek.dns", "source.ip": "192.168.1.9"}]) == []
    assert isinstance(events([]), pl.DataFrame)


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 0, 1, 0, 1, 2]])
def test_lease_history_with_a_device_in_between(session: Session, order: list[int]) -> None:
    ip = "192.168.1.40"
    rows = [
        dhcp(T0, PC_MAC, ip),
        dhcp(T0 + timedelta(hours=5), PHONE_MAC, ip),
        dhcp(T0 + timedelta(hours=8), PC_MAC, ip),
    ]
    for i in order:  # one message per batch, out of order and repeated in the second case
        run(session, [rows[i]])
    for hours, mac in ((1, PC_MAC), (6, PHONE_MAC), (9, PC_MAC)):
        lease = lease_at(session, "acme", ip, T0 + timedelta(hours=hours))
        assert lease is not None and lease.mac == mac, hours


def test_dhcp_vendor_class_names_the_os(session: Session) -> None:
    """Option 60 (Zeek's client_software, in user_agent.original of a DHCP event) is an OS hint:
    an Android phone says its major version before it ever browses."""
    baseline(session)
    at = T0 + timedelta(hours=30)
    phone = {
        **dhcp(at, "3c:28:6d:00:00:01", "192.168.1.40", "Pixel-7"),
        "user_agent.original": "android-dhcp-9",
    }
    pc = {**dhcp(at, "00:1b:21:00:00:02", "192.168.1.41"), "user_agent.original": "MSFT 5.0"}
    run(session, [phone, pc])
    by_mac = {a.mac: a for a in session.scalars(select(Asset).where(Asset.tenant_id == "acme"))}
    android = by_mac["3c:28:6d:00:00:01"]
    assert (android.os_name, android.os_version, android.device_class) == ("Android", "9", "phone")
    assert android.end_of_life is True  # Android 9 left support in 2022
    assert (by_mac["00:1b:21:00:00:02"].os_name, by_mac["00:1b:21:00:00:02"].os_version) == ("Windows", None)


def test_lease_history_follows_the_tenant_retention(session: Session) -> None:
    baseline(session)
    run(session, [dhcp(T0 + timedelta(days=3), "00:1b:21:00:00:09", "192.168.1.50")])
    count = select(func.count()).select_from(DhcpLease).where(DhcpLease.tenant_id == "acme")
    assert session.scalar(count) == 2
    assert prune_leases(session, "acme", 396, now=T0 + timedelta(days=100)) == 0
    # a year and a month on, the first lease has aged out and the second has not
    assert prune_leases(session, "acme", 396, now=T0 + timedelta(days=399)) == 1
    assert prune_leases(session, "other-tenant", 0, now=T0 + timedelta(days=999)) == 0
    assert session.scalar(count) == 1
