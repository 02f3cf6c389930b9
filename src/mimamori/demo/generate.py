"""Demo telemetry: SME tenants' background traffic with six incidents hidden in it.

``generate`` writes, for every tenant of ``tenants.yaml``, Zeek JSON logs (conn, dns, http,
ssl, dhcp, software), Suricata EVE JSON and FortiGate key=value logs laid out as those
products write them, abuse.ch-style intel feeds under ``intel/`` (Feodo Tracker CSV, URLhaus
``csv_recent``, a plain block list), and ``manifest.json``: the tenants, every file, the
assets the provider already knows, and per scenario the ground truth an end-to-end test
checks detection against.

Scenarios (MISSION.md numbering), each in its own tenant:
 1. a Windows XP PC without anti-malware, on the asset list as isolated, is plugged in to
    print: XP user agents and software.log, a known C2 (Feodo) and a 300 s beacon;
 2. a private iPhone joins the office Wi-Fi and downloads from a malware-distribution host;
 3. a wireless router brought in by the owner's family: one LAN address with Windows 7,
    Android and iOS behind it, and WannaCry (kill-switch lookup, SMB scanning, ETERNALBLUE
    alerts in Suricata);
 4. an office PC used as a stepping stone: bursts of failed connections to many outside
    FTP/SSH/web servers and FortiGate IPS drops with it as the source; two private phones
    with randomised MACs join the open DHCP;
 6. a hacked trading partner's mail server sends ~100 Emotet invoice/bonus mails in an hour,
    blocked by the FortiGate anti-virus;
 7. Upatre/Dyre (and Dridex) banking malware on two PCs, seen by Suricata and Zeek.

Everything bad is fictional: external "bad" hosts are in the documentation ranges
(192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) and bad domains end in ``.example`` or
``.test``; the outside servers scanned in scenarios 3 and 4 are random public addresses
(victims, not indicators). The output depends only on ``seed``, ``start`` and ``hours``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import ipaddress
import itertools
import json
import random
import string
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from mimamori import yamlio

__all__ = [
    "SCENARIO_KINDS",
    "DemoError",
    "DemoFile",
    "DemoManifest",
    "DemoSite",
    "DemoTenant",
    "TenantTableError",
    "generate",
    "load_tenants",
    "read_manifest",
]

MANIFEST_FORMAT = "mimamori-demo/1"
JST = timezone(timedelta(hours=9))
SOURCES = ("zeek", "suricata", "fortigate")
SERVICE_LEVELS = ("standard", "premium")
SCENARIO_KINDS: dict[int, str] = {
    1: "isolated_asset_external",
    2: "malicious_destination",
    3: "rogue_router",
    4: "outbound_attack",
    6: "malware_mail_campaign",
    7: "banking_malware",
}
#: other kinds a scenario may legitimately raise besides its ``expected_kind``
#: (a phone's OS ages into end of life as the demo's date moves on: eol_os may appear)
SCENARIO_ALSO: dict[int, list[str]] = {
    1: ["beaconing", "eol_os", "malicious_destination", "new_device"],
    2: ["new_device", "eol_os"],
    3: [
        "ransomware",
        "new_device",
        "ids_alert",
        "malicious_destination",
        "outbound_attack",
        "lateral_movement",
        "eol_os",
    ],
    4: ["new_device", "ids_alert", "eol_os"],
}
#: the scenarios need room: a one-hour mail burst, two infections some time apart
MIN_HOURS = 3
ZEEK_LOGS = ("conn", "dns", "http", "ssl", "dhcp", "software")


class DemoError(Exception):
    """Root of the demo generator's errors."""


class TenantTableError(DemoError):
    """The tenant table is malformed; ``where`` names the tenant or key."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"tenant table: {where}: {reason}")
        self.where = where
        self.reason = reason


# ------------------------------------------------------------------------------ tenants


@dataclass(frozen=True)
class DemoSite:
    name: str
    name_en: str
    address: str
    network: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class DemoTenant:
    id: str
    name: str
    name_en: str
    industry: str
    contact_name: str
    contact_email: str
    contact_phone: str
    email_domain: str
    service_level: str
    sources: tuple[str, ...]
    pcs: int
    scenario: int | None
    sites: tuple[DemoSite, ...]

    @property
    def networks(self) -> list[str]:
        return [s.network for s in self.sites]

    def to_dict(self) -> dict[str, Any]:
        """The manifest's view (the scenario placement is ground truth, kept apart)."""
        return {
            "id": self.id,
            "name": self.name,
            "name_en": self.name_en,
            "industry": self.industry,
            "contact_name": self.contact_name,
            "contact_email": self.contact_email,
            "contact_phone": self.contact_phone,
            "email_domain": self.email_domain,
            "networks": self.networks,
            "sites": [s.to_dict() for s in self.sites],
            "service_level": self.service_level,
            "sources": list(self.sources),
        }


_TENANT_KEYS = {f for f in DemoTenant.__dataclass_fields__}
_SITE_KEYS = {f for f in DemoSite.__dataclass_fields__}


def load_tenants(path: Path | None = None) -> tuple[dict[str, str], list[DemoTenant]]:
    """The provider and tenants from ``tenants.yaml`` (or ``path``), validated."""
    try:
        if path is None:
            text = resources.files("mimamori.demo").joinpath("tenants.yaml").read_text("utf-8")
        else:
            text = path.read_text("utf-8")
        doc = yamlio.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise TenantTableError(str(path or "tenants.yaml"), f"cannot read: {exc}") from exc
    if not isinstance(doc, dict) or set(doc) - {"provider", "tenants"}:
        raise TenantTableError("top level", "expected exactly the keys 'provider' and 'tenants'")
    provider = doc.get("provider") or {}
    if not isinstance(provider, dict) or not {"name", "name_en"} <= set(provider):
        raise TenantTableError("provider", "needs 'name' and 'name_en'")
    tenants = [_tenant(i, raw) for i, raw in enumerate(doc.get("tenants") or [])]
    _check_table(tenants)
    return {"name": str(provider["name"]), "name_en": str(provider["name_en"])}, tenants


def _tenant(index: int, raw: Any) -> DemoTenant:
    where = f"tenants[{index}]"
    if not isinstance(raw, dict):
        raise TenantTableError(where, "not a mapping")
    where = str(raw.get("id") or where)
    unknown = sorted(set(raw) - _TENANT_KEYS)
    if unknown:
        raise TenantTableError(where, f"unknown key {unknown[0]!r}")
    missing = sorted(_TENANT_KEYS - set(raw))
    if missing:
        raise TenantTableError(where, f"missing key {missing[0]!r}")
    sites = []
    for s in raw["sites"] or []:
        if not isinstance(s, dict) or set(s) != _SITE_KEYS:
            raise TenantTableError(where, f"a site needs exactly the keys {sorted(_SITE_KEYS)}")
        net = ipaddress.ip_network(str(s["network"]), strict=True)
        if net.prefixlen != 24 or not net.is_private:
            raise TenantTableError(where, f"site network {net} is not a private /24")
        sites.append(DemoSite(str(s["name"]), str(s["name_en"]), str(s["address"]), str(net)))
    if not sites:
        raise TenantTableError(where, "needs at least one site")
    sources = tuple(str(x) for x in raw["sources"] or [])
    bad = [x for x in sources if x not in SOURCES]
    if bad or "zeek" not in sources:
        raise TenantTableError(where, f"sources must include 'zeek' and be among {SOURCES}")
    if raw["service_level"] not in SERVICE_LEVELS:
        raise TenantTableError(where, f"service_level must be one of {SERVICE_LEVELS}")
    scenario = raw["scenario"]
    if scenario is not None and scenario not in SCENARIO_KINDS:
        raise TenantTableError(where, f"unknown scenario {scenario!r}")
    return DemoTenant(
        id=str(raw["id"]),
        name=str(raw["name"]),
        name_en=str(raw["name_en"]),
        industry=str(raw["industry"]),
        contact_name=str(raw["contact_name"]),
        contact_email=str(raw["contact_email"]),
        contact_phone=str(raw["contact_phone"]),
        email_domain=str(raw["email_domain"]),
        service_level=str(raw["service_level"]),
        sources=sources,
        pcs=int(raw["pcs"]),
        scenario=scenario,
        sites=tuple(sites),
    )


def _check_table(tenants: list[DemoTenant]) -> None:
    if len(tenants) < 5:
        raise TenantTableError("tenants", "the demo needs at least five tenants")
    ids = [t.id for t in tenants]
    if len(set(ids)) != len(ids):
        raise TenantTableError("tenants", "duplicate tenant id")
    nets = [n for t in tenants for n in t.networks]
    if len(set(nets)) != len(nets):
        raise TenantTableError("tenants", "two sites share a network")
    placed = [t.scenario for t in tenants if t.scenario is not None]
    if sorted(placed) != sorted(SCENARIO_KINDS):
        raise TenantTableError("tenants", f"each of scenarios {sorted(SCENARIO_KINDS)} must be placed once")
    for t in tenants:
        if t.scenario == 6 and "fortigate" not in t.sources:
            raise TenantTableError(t.id, "scenario 6 needs a 'fortigate' source")
        if t.scenario in (3, 7) and "suricata" not in t.sources:
            raise TenantTableError(t.id, f"scenario {t.scenario} needs a 'suricata' source")
        if t.scenario == 4 and not {"suricata", "fortigate"} & set(t.sources):
            raise TenantTableError(t.id, "scenario 4 needs an IDS: a 'suricata' or 'fortigate' source")
        if not 3 <= t.pcs <= 60:
            raise TenantTableError(t.id, "pcs must be between 3 and 60")


# ------------------------------------------------------------------------------ manifest


@dataclass(frozen=True)
class DemoFile:
    tenant: str
    source: str  # a parser name: zeek, suricata, fortigate
    path: str  # relative to the output directory, "/"-separated
    scenario: int | None  # the scenario whose events the file holds; None: background only
    lines: int


@dataclass
class DemoManifest:
    """What ``generate`` wrote; ``to_dict`` is the layout of ``manifest.json``.

    ``format, seed, start, end, hours, provider{name, name_en}``;
    ``tenants[]``: ``DemoTenant.to_dict`` (id, name, name_en, industry, contact_name,
    contact_email, contact_phone, email_domain, networks, sites[{name, name_en, address,
    network}], service_level, sources);
    ``files[]``: ``{tenant, source, path, scenario, lines}`` (path relative to the output
    directory); ``intel[]``: relative paths of the feed files;
    ``scenarios[]``: ``{scenario, expected_kind, tenant, title, title_en, sources, hosts,
    indicators{ips, domains, urls, sha256, emails}, details{...}, events, events_by_file,
    first_seen, last_seen, expected_incidents, also_expected}`` (``also_expected``: other
    kinds the scenario may legitimately raise; possibly empty);
    ``assets[]``: devices the provider already knows (recorded before any telemetry):
    ``{tenant, mac, ip, hostname, os_name, isolated, has_antimalware, has_endpoint_agent,
    note}``.
    """

    root: Path
    seed: int
    start: datetime
    end: datetime
    hours: int
    provider: dict[str, str]
    tenants: list[dict[str, Any]]
    files: list[DemoFile]
    intel: list[str]
    scenarios: list[dict[str, Any]]
    assets: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "seed": self.seed,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "hours": self.hours,
            "provider": self.provider,
            "tenants": self.tenants,
            "files": [asdict(f) for f in self.files],
            "intel": self.intel,
            "scenarios": self.scenarios,
            "assets": self.assets,
        }

    def files_of(self, tenant: str, source: str | None = None) -> list[DemoFile]:
        return [f for f in self.files if f.tenant == tenant and source in (None, f.source)]

    def scenario(self, number: int) -> dict[str, Any]:
        for s in self.scenarios:
            if s["scenario"] == number:
                return s
        raise KeyError(number)


#: a scenario builder of the add-on modules: (out_dir, rng, start, hours) -> (files, truth)
ScenarioBuilder = Callable[[Path, random.Random, datetime, int], tuple[list[Any], dict[str, Any]]]


def add_to_manifest(
    out_dir: Path,
    tenants: list[dict[str, Any]],
    builders: Iterable[ScenarioBuilder],
    *,
    rng: random.Random,
    start: datetime,
    hours: int,
) -> None:
    """Add tenants and the files and scenarios the builders write to ``out_dir/manifest.json``
    (the add-on scenario modules ``demo.internet`` and ``demo.endpoint`` use it)."""
    start = start.astimezone(UTC)
    man = json.loads((out_dir / "manifest.json").read_text("utf-8"))
    files: list[Any] = []
    truths: list[dict[str, Any]] = []
    for build in builders:
        f, truth = build(out_dir, rng, start, hours)
        files += f
        truths.append(truth)
    known = {t["id"] for t in man["tenants"]}
    man["tenants"] += [t for t in tenants if t["id"] not in known]
    man["files"] += files
    man["scenarios"] = sorted([*man["scenarios"], *truths], key=lambda s: s["scenario"])
    (out_dir / "manifest.json").write_text(
        json.dumps(man, ensure_ascii=False, indent=2) + "\n", encoding="utf-8", newline="\n"
    )


def read_manifest(out_dir: Path) -> DemoManifest:
    """Load ``out_dir/manifest.json`` written by ``generate``."""
    path = out_dir / "manifest.json"
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise DemoError(f"{path}: cannot read the demo manifest: {exc}") from exc
    if doc.get("format") != MANIFEST_FORMAT:
        raise DemoError(f"{path}: not a {MANIFEST_FORMAT} manifest")
    return DemoManifest(
        root=out_dir,
        seed=doc["seed"],
        start=datetime.fromisoformat(doc["start"]),
        end=datetime.fromisoformat(doc["end"]),
        hours=doc["hours"],
        provider=doc["provider"],
        tenants=doc["tenants"],
        files=[DemoFile(**f) for f in doc["files"]],
        intel=doc["intel"],
        scenarios=doc["scenarios"],
        assets=doc.get("assets", []),
    )


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


def _iso_epoch(t: float) -> str:
    return _iso(datetime.fromtimestamp(round(t, 6), UTC))


# ------------------------------------------------------------------------------ catalogue

ISSUERS = {
    "google": "C=US, O=Google Trust Services, CN=WR2",
    "ms": "C=US, O=Microsoft Corporation, CN=Microsoft Azure RSA TLS Issuing CA 07",
    "digicert": "C=US, O=DigiCert Inc, CN=DigiCert Global G2 TLS RSA SHA256 2020 CA1",
    "cybertrust": "C=JP, O=Cybertrust Japan Co., Ltd., CN=Cybertrust Japan SureServer CA G4",
    "amazon": "C=US, O=Amazon, CN=Amazon RSA 2048 M02",
    "apple": "C=US, O=Apple Inc., CN=Apple Public Server RSA CA 12 - G1",
    "globalsign": "C=BE, O=GlobalSign nv-sa, CN=GlobalSign RSA OV SSL CA 2018",
}


@dataclass(frozen=True)
class _Site:
    domain: str
    ip: str
    country: str
    weight: int
    issuer: str


@dataclass(frozen=True)
class _HttpSite:
    domain: str
    ip: str
    country: str
    weight: int
    uri: str
    mime: str | None
    ua: str
    size: tuple[int, int]


WIN_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/123.0.0.0 Safari/537.36"
)
WIN_EDGE = WIN_CHROME + " Edg/123.0.2420.97"
IOS_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1"
)
CRYPTOAPI = "Microsoft-CryptoAPI/10.0"

HTTPS_SITES = (
    _Site("www.google.com", "142.250.196.100", "United States", 10, "google"),
    _Site("www.google.co.jp", "142.250.207.3", "United States", 5, "google"),
    _Site("fonts.gstatic.com", "142.250.196.131", "United States", 4, "google"),
    _Site("update.googleapis.com", "142.250.196.99", "United States", 2, "google"),
    _Site("outlook.office365.com", "52.98.152.178", "Japan", 10, "digicert"),
    _Site("login.microsoftonline.com", "20.190.141.38", "United States", 6, "ms"),
    _Site("teams.microsoft.com", "52.113.194.132", "Japan", 6, "ms"),
    _Site("officeclient.microsoft.com", "52.109.68.45", "Japan", 3, "ms"),
    _Site("www.bing.com", "13.107.21.200", "United States", 3, "ms"),
    _Site("edge.microsoft.com", "13.107.6.158", "United States", 2, "ms"),
    _Site("www.yahoo.co.jp", "183.79.250.123", "Japan", 8, "cybertrust"),
    _Site("news.yahoo.co.jp", "182.22.25.124", "Japan", 4, "cybertrust"),
    _Site("s.yimg.jp", "182.22.31.252", "Japan", 4, "cybertrust"),
    _Site("www.nikkei.com", "18.65.168.40", "Japan", 3, "amazon"),
    _Site("www.amazon.co.jp", "52.119.161.5", "United States", 3, "digicert"),
    _Site("www.rakuten.co.jp", "133.237.16.246", "Japan", 2, "globalsign"),
    _Site("obs.line-scdn.net", "147.92.150.196", "Japan", 3, "digicert"),
    _Site("www.dropbox.com", "162.125.84.18", "United States", 2, "digicert"),
    _Site("secure.freee.co.jp", "13.114.57.62", "Japan", 2, "amazon"),
    _Site("www.e-tax.nta.go.jp", "202.214.194.140", "Japan", 1, "globalsign"),
    _Site("www.jma.go.jp", "23.52.40.211", "Japan", 1, "digicert"),
)
HTTP_SITES = (
    _HttpSite(
        "www.msftconnecttest.com",
        "13.107.4.52",
        "United States",
        4,
        "/connecttest.txt",
        "text/plain",
        "Microsoft NCSI",
        (22, 22),
    ),
    _HttpSite(
        "ctldl.windowsupdate.com",
        "13.107.4.50",
        "United States",
        3,
        "/msdownload/update/v3/static/trustedr/en/authrootstl.cab?{hex}",
        "application/vnd.ms-cab-compressed",
        CRYPTOAPI,
        (5800, 6900),
    ),
    _HttpSite(
        "ocsp.digicert.com",
        "72.21.91.29",
        "United States",
        3,
        "/MFEwTzBNMEswSTAJBgUrDgMCGgUABBSAUQYBMq2awn1Rh6Doh%2FsBYgFV7gQUA95QNVbRTLtm8KPiGxvDl7I90VUC{hex}",
        "application/ocsp-response",
        CRYPTOAPI,
        (471, 1418),
    ),
    _HttpSite(
        "crl.globalsign.com",
        "104.18.21.226",
        "United States",
        1,
        "/gsrsaovsslca2018.crl",
        "application/pkix-crl",
        CRYPTOAPI,
        (1200, 32000),
    ),
    _HttpSite(
        "download.windowsupdate.com",
        "13.107.4.50",
        "United States",
        1,
        "/c/msdownload/update/software/defu/2024/04/am_delta_patch_1.409.{n}.0_{hex}.exe",
        "application/octet-stream",
        "Microsoft BITS/7.8",
        (200_000, 4_000_000),
    ),
)
PHONE_SITES = (
    _Site("gateway.icloud.com", "17.248.160.66", "United States", 5, "apple"),
    _Site("gsp-ssl.ls.apple.com", "17.253.85.201", "Japan", 2, "apple"),
    _Site("www.instagram.com", "157.240.199.174", "Japan", 4, "digicert"),
    _Site("obs.line-scdn.net", "147.92.150.196", "Japan", 4, "digicert"),
    _Site("news.yahoo.co.jp", "182.22.25.124", "Japan", 3, "cybertrust"),
    _Site("www.google.com", "142.250.196.100", "United States", 3, "google"),
)
CAPTIVE = _HttpSite(
    "captive.apple.com",
    "17.253.85.204",
    "Japan",
    1,
    "/hotspot-detect.html",
    "text/html",
    "CaptiveNetworkSupport-481.80.2 wispr",
    (68, 68),
)
NAS_UPDATE = _Site("global.synologydownload.com", "18.65.168.10", "Japan", 1, "amazon")
NAS_BACKUP = _Site("jp.c2.synology.com", "52.69.165.20", "Japan", 1, "amazon")
NTP_SERVERS = (
    ("ntp.nict.jp", "133.243.238.164", "Japan"),
    ("time.windows.com", "168.61.215.74", "United States"),
)
#: mail servers of well-known providers that deliver to an on-premises mail server
MAIL_PEERS = (("40.107.74.71", "Japan"), ("40.107.222.59", "Japan"), ("209.85.218.45", "United States"))

OUIS = {
    "pc": ("00:0b:5d", "f8:bc:12", "3c:52:82", "00:1b:21", "54:ee:75"),
    "nas": ("00:11:32",),
    "printer": ("00:80:77", "64:eb:8c"),
    "router": ("00:09:0f",),
    "mail": ("00:15:5d",),
}


# ------------------------------------------------------------------------------ scenario data

S2_DOMAIN = "cdn.photoviewer-update.example"
S2_IP = "203.0.113.45"
S2_LANDING = "/lp/coupon.html"
S2_PAYLOAD = "/dl/Installer_v2.zip"

S6_PARTNER_NAME = "金田部品工業株式会社"
S6_PARTNER_NAME_EN = "Kaneda Buhin Kogyo"
S6_PARTNER_DOMAIN = "kaneda-buhin.example"
S6_PARTNER_MTA = "198.51.100.25"
S6_SENDERS = ("keiri", "soumu", "eigyo", "k.tanaka", "m.suzuki", "jinji", "info")
S6_STAFF = ("sato", "takahashi", "ito", "watanabe", "keiri", "info", "yamamoto", "nakamura")
S6_DECOYS = (
    ("dl.free-pdf-tools.example", "192.0.2.201", "/setup/FreePDF_setup.exe", "Adware/OpenCandy"),
    ("files.game-cheats.test", "192.0.2.214", "/tools/crack_v3.zip", "Riskware/Crack"),
    ("img.bargain-shop.example", "192.0.2.227", "/banner/update.js", "JS/Agent.FAKEJQ!tr"),
)

S7_DOWNLOAD_IP = "203.0.113.88"
S7_DOWNLOAD_URI = "/images/kb4012598.jpg"
#: (ip, port, malware) of the C2 servers, all in the Feodo file
S7_C2 = (("198.51.100.23", 443, "Dyre"), ("198.51.100.77", 4443, "Dyre"), ("192.0.2.61", 8080, "Dridex"))


@dataclass(frozen=True)
class _Sig:
    sid: int
    rev: int
    msg: str
    category: str
    severity: int
    family: str | None = None


SIG_UPATRE = _Sig(
    9000101, 2, "ET TROJAN Upatre Downloader Requesting Payload", "A Network Trojan was detected", 1, "Upatre"
)
SIG_DYRE = _Sig(9000102, 3, "ET TROJAN Dyre/Upatre CnC Checkin", "A Network Trojan was detected", 1, "Dyre")
SIG_DRIDEX = _Sig(
    9000103, 2, "ET TROJAN Dridex CnC Checkin POST", "A Network Trojan was detected", 1, "Dridex"
)
POLICY_SIGS = {
    "www.dropbox.com": _Sig(
        9001001, 1, "ET POLICY Dropbox.com Offsite File Backup in Use", "Not Suspicious Traffic", 3
    ),
    "www.msftconnecttest.com": _Sig(9001002, 1, "ET INFO Microsoft Connection Test", "Misc activity", 3),
    "ctldl.windowsupdate.com": _Sig(
        9001003, 1, "ET POLICY Microsoft CryptoAPI Certificate Trust List Fetch", "Not Suspicious Traffic", 3
    ),
    "obs.line-scdn.net": _Sig(
        9001004, 1, "ET POLICY LINE Messenger Traffic Observed", "Not Suspicious Traffic", 3
    ),
}


# scenario 1: an isolated Windows XP PC plugged in to print
S1_HOST_NAME = "OLD-CAD-XP"
S1_OUI = "00:14:22"  # Dell Inc.: an XP-era OptiPlex
S1_OS = "Windows XP Professional SP3"
S1_VENDOR_CLASS = "MSFT 5.0"
XP_IE8 = "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 5.1; Trident/4.0)"
#: what XP's CryptoAPI sends (Zeek's windows-version-detection maps 5.131.2600 to XP)
XP_CRYPTOAPI = "Microsoft-CryptoAPI/5.131.2600"
#: (ip, port, malware) of the C2 server, in the Feodo file
S1_C2 = ("192.0.2.157", 8080, "Pikabot")
#: the beacon's destination: in no intel file; only its regularity gives it away
S1_BEACON_IP = "203.0.113.139"
S1_BEACON_URI = "/cgi-bin/stat.cgi?id={bot}"
S1_BEACON_INTERVAL = 300.0
S1_BEACON_JITTER = 4.0
XP_SITES = (
    _HttpSite(
        "go.microsoft.com",
        "13.107.4.52",
        "United States",
        1,
        "/fwlink/?LinkId=69157",
        "text/html",
        XP_IE8,
        (160, 180),
    ),
    _HttpSite(
        "crl.microsoft.com",
        "13.107.4.50",
        "United States",
        1,
        "/pki/crl/products/CodeSignPCA.crl",
        "application/pkix-crl",
        XP_CRYPTOAPI,
        (520, 560),
    ),
    _HttpSite(
        "ctldl.windowsupdate.com",
        "13.107.4.50",
        "United States",
        1,
        "/msdownload/update/v3/static/trustedr/en/authrootstl.cab",
        "application/vnd.ms-cab-compressed",
        XP_CRYPTOAPI,
        (5800, 6900),
    ),
    _HttpSite(
        "www.msn.com",
        "204.79.197.203",
        "United States",
        1,
        "/ja-jp/",
        "text/html",
        XP_IE8,
        (40_000, 90_000),
    ),
)

# scenario 3: a router brought in by the owner's family; WannaCry behind it
S3_OUI = "10:6f:3f"  # BUFFALO.INC
#: a kill-switch-style name (WannaCry's own is a long random .com); fictional: .test
S3_KILLSWITCH = "iuqerfsodp9ifjaposdfjhgosurijfaewrwergwea-demo.test"
WIN7_CHROME = (
    "Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/109.0.0.0 Safari/537.36"
)
WIN7_CRYPTOAPI = "Microsoft-CryptoAPI/6.1"
ANDROID_CHROME = (
    "Mozilla/5.0 (Linux; Android 13; SH-M24) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/123.0.6312.99 Mobile Safari/537.36"
)
ANDROID_DALVIK = "Dalvik/2.1.0 (Linux; U; Android 13; SH-M24 Build/S9271)"
IPAD_SAFARI = (
    "Mozilla/5.0 (iPad; CPU OS 16_7_7 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1"
)
IPAD_CAPTIVE = "CaptiveNetworkSupport-443.40.1 wispr"
#: the family's devices behind the router: (OS family, HTTP requests they make)
S3_FAMILY = (
    (
        "Windows 7",
        (
            _HttpSite(
                "www.msftncsi.com",
                "13.107.4.52",
                "United States",
                2,
                "/ncsi.txt",
                "text/plain",
                "Microsoft NCSI",
                (14, 14),
            ),
            _HttpSite(
                "ctldl.windowsupdate.com",
                "13.107.4.50",
                "United States",
                1,
                "/msdownload/update/v3/static/trustedr/en/disallowedcertstl.cab",
                "application/vnd.ms-cab-compressed",
                WIN7_CRYPTOAPI,
                (4200, 4300),
            ),
            _HttpSite(
                "neverssl.com",
                "34.223.124.45",
                "United States",
                1,
                "/",
                "text/html",
                WIN7_CHROME,
                (2500, 2600),
            ),
        ),
    ),
    (
        "Android",
        (
            _HttpSite(
                "connectivitycheck.gstatic.com",
                "142.250.196.99",
                "United States",
                3,
                "/generate_204",
                None,
                ANDROID_DALVIK,
                (0, 0),
            ),
            _HttpSite(
                "neverssl.com",
                "34.223.124.45",
                "United States",
                1,
                "/online",
                "text/html",
                ANDROID_CHROME,
                (2500, 2600),
            ),
        ),
    ),
    (
        "iOS",
        (
            _HttpSite(
                "captive.apple.com",
                "17.253.85.204",
                "Japan",
                3,
                "/hotspot-detect.html",
                "text/html",
                IPAD_CAPTIVE,
                (68, 68),
            ),
            _HttpSite(
                "neverssl.com",
                "34.223.124.45",
                "United States",
                1,
                "/",
                "text/html",
                IPAD_SAFARI,
                (2500, 2600),
            ),
        ),
    ),
)

# scenario 4: an office PC attacking outside servers; private phones on open DHCP
S4_UA = "Go-http-client/1.1"
S4_PORTS = (21, 22, 80, 443)
#: per port: (FortiGuard-style IPS name, attack id (demo values), request URI for HTTP)
S4_ATTACKS: dict[int, tuple[tuple[str, int, str], ...]] = {
    21: (("FTP.Login.Brute.Force", 19410, "/"),),
    22: (("SSH.Connection.Brute.Force", 19331, "/"),),
    80: (
        (
            "PHPUnit.Eval-stdin.PHP.Remote.Code.Execution",
            44938,
            "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
        ),
        (
            "ThinkPHP.Controller.Parameter.Remote.Code.Execution",
            47859,
            "/index.php?s=/Index/\\think\\app/invokefunction&function=call_user_func_array&vars[0]=md5"
            "&vars[1][]=Hello",
        ),
        ("Apache.HTTP.Server.cgi-bin.Path.Traversal", 50823, "/cgi-bin/.%2e/.%2e/.%2e/.%2e/bin/sh"),
        ("WordPress.Login.Brute.Force", 40123, "/wp-login.php"),
    ),
    443: (("OpenSSL.TLS.Heartbeat.Information.Disclosure", 38353, "/"),),
}
S4_SERVICES = {21: "ftp", 22: "ssh", 80: "http", 443: "ssl"}
S4_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 7a) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/123.0.6312.99 Mobile Safari/537.36"
)
S4_DALVIK = "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 7a Build/AP1A.240405.002)"
#: the private devices: (DHCP host name, browser user agent, captive-portal check)
S4_PHONES = (
    (
        "Pixel-7a",
        S4_ANDROID,
        _HttpSite(
            "connectivitycheck.gstatic.com",
            "142.250.196.99",
            "United States",
            1,
            "/generate_204",
            None,
            S4_DALVIK,
            (0, 0),
        ),
    ),
    ("iPhone", IOS_SAFARI, CAPTIVE),
)

SIG_ETERNALBLUE_ECHO = _Sig(
    9000301,
    2,
    "ET EXPLOIT Possible ETERNALBLUE MS17-010 Echo Request (set)",
    "Attempted Administrator Privilege Gain",
    1,
    "WannaCry",
)
SIG_ETERNALBLUE_PROBE = _Sig(
    9000302,
    2,
    "ET EXPLOIT Possible ETERNALBLUE Probe MS17-010 (Generic Flags)",
    "Attempted Administrator Privilege Gain",
    1,
    "WannaCry",
)
SIG_WANNACRY_DNS = _Sig(
    9000303,
    1,
    "ET TROJAN WannaCry Ransomware Kill Switch Domain Lookup",
    "A Network Trojan was detected",
    1,
    "WannaCry",
)
SIG_WANNACRY_SMB = _Sig(
    9000304,
    1,
    "ET TROJAN WannaCry Ransomware SMB Propagation Attempt",
    "A Network Trojan was detected",
    1,
    "WannaCry",
)
#: Suricata's view of scenario 4 (used when the tenant also runs Suricata)
S4_SIGS = {
    21: _Sig(
        9000401, 1, "ET SCAN Potential FTP Brute-Force attempt OUTBOUND", "Attempted Information Leak", 2
    ),
    22: _Sig(9000402, 1, "ET SCAN Potential SSH Scan OUTBOUND", "Attempted Information Leak", 2),
    80: _Sig(
        9000403,
        1,
        "ET WEB_SERVER PHP Remote Code Execution attempt OUTBOUND",
        "Attempted Administrator Privilege Gain",
        1,
    ),
    443: _Sig(9000404, 1, "ET EXPLOIT OpenSSL Heartbleed attempt OUTBOUND", "Attempted Information Leak", 2),
}

#: user agents -> what Zeek's software framework logs for them:
#: (software_type, name, version parts, version.addl)
SOFTWARE: dict[str, list[tuple[str, str, tuple[int, ...], str | None]]] = {
    WIN_CHROME: [("HTTP::BROWSER", "Chrome", (123, 0, 0, 0), None)],
    WIN_EDGE: [("HTTP::BROWSER", "Edge", (123, 0, 2420, 97), None)],
    IOS_SAFARI: [("HTTP::BROWSER", "Safari", (17, 4, 1), None)],
    CRYPTOAPI: [("OS::WINDOWS", "Windows", (10, 0), "10")],
    XP_IE8: [("HTTP::BROWSER", "MSIE", (8, 0), None)],
    XP_CRYPTOAPI: [("OS::WINDOWS", "Windows", (5, 1), "XP")],
    WIN7_CHROME: [("HTTP::BROWSER", "Chrome", (109, 0, 0, 0), None)],
    WIN7_CRYPTOAPI: [("OS::WINDOWS", "Windows", (6, 1), "7")],
    ANDROID_CHROME: [("HTTP::BROWSER", "Chrome", (123, 0, 6312, 99), None)],
    S4_ANDROID: [("HTTP::BROWSER", "Chrome", (123, 0, 6312, 99), None)],
    IPAD_SAFARI: [("HTTP::BROWSER", "Safari", (16, 6), None)],
}
_VERSION_KEYS = ("version.major", "version.minor", "version.minor2", "version.minor3")
#: every address the catalogue uses: random "Internet" targets stay clear of them
_CATALOGUE_IPS = frozenset(
    [s.ip for s in (*HTTPS_SITES, *HTTP_SITES, *PHONE_SITES, CAPTIVE, NAS_UPDATE, NAS_BACKUP, *XP_SITES)]
    + [s.ip for _, sites in S3_FAMILY for s in sites]
    + [ip for _, ip, _ in NTP_SERVERS]
    + [ip for ip, _ in MAIL_PEERS]
)


# ------------------------------------------------------------------------------ model


@dataclass
class _Dns:
    trans_id: int
    rtt: float
    query: str
    qtype: str
    rcode: str
    answers: list[str]
    ttls: list[float]


@dataclass
class _Http:
    method: str
    host: str
    uri: str
    ua: str
    status: int
    status_msg: str
    mime: str | None
    req_len: int
    resp_len: int
    fuid: str | None
    referrer: str | None = None


@dataclass
class _Tls:
    sni: str | None
    version: str  # Zeek spelling: TLSv12, TLSv13
    cipher: str
    curve: str | None
    resumed: bool
    subject: str | None = None
    issuer: str | None = None
    fingerprint: str | None = None  # sha256 of the leaf, hex
    serial: str | None = None
    validation: str = "ok"


@dataclass
class _Conn:
    ts: float
    uid: str
    flow_id: int
    src: str
    sport: int
    dst: str
    dport: int
    proto: str
    service: str | None
    duration: float
    ob: int
    rb: int
    state: str
    history: str
    opk: int
    rpk: int
    local_orig: bool
    local_resp: bool
    country: str
    scenario: int | None = None
    src_mac: str | None = None
    dns: _Dns | None = None
    http: list[_Http] = field(default_factory=list)
    tls: _Tls | None = None
    alerts: list[_Sig] = field(default_factory=list)
    fg_extra: list[tuple[str, Any]] = field(default_factory=list)  # FortiGate traffic extras
    fg_dnat: str | None = None  # inbound through a VIP: the internal address
    fg_session: int | None = None

    @property
    def end(self) -> float:
        return self.ts + self.duration


@dataclass
class _Device:
    ip: str
    mac: str
    name: str
    kind: str  # router, nas, printer, mail, pc, phone
    gateway: str
    dhcp: bool = False
    arrive: float = 8.5  # local hour the device comes online on working days
    leave: float = 18.0
    always_on: bool = False
    ua: str = WIN_CHROME
    srcintf: str = "internal"


@dataclass
class _Line:
    ts: float
    body: Any  # a dict (JSON sources) or the finished text (FortiGate)
    scenario: int | None


@dataclass
class _Fortigate:
    devname: str
    devid: str
    wan_ip: str
    session: int
    poluuid: str


_ALNUM = string.ascii_letters + string.digits


# ------------------------------------------------------------------------------ per tenant


class _TenantSim:
    """Background activity and (when placed here) a scenario for one tenant."""

    def __init__(self, tenant: DemoTenant, seed: int, start: float, end: float) -> None:
        self.t = tenant
        self.start = start
        self.end = end
        self.rng = random.Random(f"mimamori-demo:{seed}:{tenant.id}")
        self.nets = [ipaddress.ip_network(n) for n in tenant.networks]
        # every site is a /24 (checked when the table is loaded): a prefix test is enough
        self._prefixes = {n.rsplit(".", 1)[0] for n in tenant.networks}
        self.conns: list[_Conn] = []
        self.dhcp: list[_Line] = []
        self.fortigate_lines: list[_Line] = []
        self.truth: dict[str, Any] | None = None
        self.assets: list[dict[str, Any]] = []
        self.devices: list[_Device] = []
        self.fg: _Fortigate | None = None
        self._setup()

    # -------------------------------------------------------------- helpers

    def _u(self, lo: float, hi: float) -> float:
        """A time in [lo, hi), never at or past the window's end."""
        hi = min(hi, self.end - 0.001)
        return lo + (hi - lo) * self.rng.random()

    def _uid(self, prefix: str = "C") -> str:
        return prefix + "".join(self.rng.choices(_ALNUM, k=17))

    def _mac(self, kind: str) -> str:
        oui = self.rng.choice(OUIS[kind])
        return oui + "".join(f":{self.rng.randrange(256):02x}" for _ in range(3))

    def _local(self, ip: str) -> bool:
        return ip.rsplit(".", 1)[0] in self._prefixes

    def _size(self, mu: float, sigma: float, lo: int, hi: int) -> int:
        return max(lo, min(hi, int(self.rng.lognormvariate(mu, sigma))))

    def _office_time(self, lo: float, hi: float, share: float = 1.0) -> float:
        """A time in [lo, hi) inside Japanese office hours when the range has some.

        ``share`` < 1 picks among the earliest such share of the office-hour slots.
        """
        slots = []
        t = lo - lo % 600 + 600
        while t < hi - 600:
            d = datetime.fromtimestamp(t, JST)
            minute = d.hour * 60 + d.minute
            if 9 * 60 + 30 <= minute < 17 * 60:
                slots.append((d.weekday() < 5, t))
            t += 600
        weekday = [t for ok, t in slots if ok]
        pool = weekday or [t for _, t in slots]
        if pool:
            pool = pool[: max(1, int(len(pool) * share))]
            return self.rng.choice(pool) + self.rng.uniform(0, 599)
        return self._u(lo, hi)

    def _working(self, dev: _Device, t: float) -> bool:
        d = datetime.fromtimestamp(t, JST)
        hour = d.hour + d.minute / 60
        if d.weekday() < 5 and dev.arrive <= hour < dev.leave:
            return True
        return dev.always_on

    # -------------------------------------------------------------- devices

    def _setup(self) -> None:
        rng = self.rng
        prefix = self.t.id.split("-")[0].upper()
        for i, net in enumerate(self.nets):
            base = str(net.network_address).rsplit(".", 1)[0]
            gw = f"{base}.1"
            intf = "internal" if i == 0 else f"vpn-site{i + 1}"
            self.devices.append(_Device(gw, self._mac("router"), f"{prefix}-GW{i + 1}", "router", gw))
            self.devices.append(
                _Device(
                    f"{base}.20", self._mac("printer"), f"{prefix}-MFP{i + 1}", "printer", gw, srcintf=intf
                )
            )
            if i == 0:
                self.devices.append(
                    _Device(f"{base}.10", self._mac("nas"), f"{prefix}-NAS", "nas", gw, always_on=True)
                )
                if self.t.scenario == 6:
                    self.devices.append(
                        _Device(f"{base}.11", self._mac("mail"), "MAIL01", "mail", gw, always_on=True)
                    )
        per_site = [self.t.pcs - (len(self.nets) - 1) * (self.t.pcs // 4)] + [self.t.pcs // 4] * (
            len(self.nets) - 1
        )
        n = 0
        for i, (net, count) in enumerate(zip(self.nets, per_site, strict=True)):
            base = str(net.network_address).rsplit(".", 1)[0]
            for k in range(count):
                n += 1
                if rng.random() < 0.3:
                    name = "DESKTOP-" + "".join(rng.choices(string.ascii_uppercase + string.digits, k=7))
                else:
                    name = f"{prefix}-PC{n:02d}"
                self.devices.append(
                    _Device(
                        f"{base}.{101 + k}",
                        self._mac("pc"),
                        name,
                        "pc",
                        f"{base}.1",
                        dhcp=True,
                        arrive=rng.uniform(7.9, 9.4),
                        leave=rng.uniform(17.2, 20.5),
                        always_on=rng.random() < 0.15,
                        ua=WIN_EDGE if rng.random() < 0.5 else WIN_CHROME,
                        srcintf="internal" if i == 0 else f"vpn-site{i + 1}",
                    )
                )
        if "fortigate" in self.t.sources:
            model = "FGT60F" if self.t.service_level == "standard" else "FGT80F"
            self.fg = _Fortigate(
                devname=f"{prefix}-{model}",
                devid=f"{model}TK{rng.randrange(10**9, 10**10)}",
                wan_ip=f"100.64.{int(self.t.networks[0].split('.')[2])}.2",
                session=rng.randrange(10**6, 10**7),
                poluuid=_uuid(rng),
            )

    def pcs(self) -> list[_Device]:
        return [d for d in self.devices if d.kind == "pc"]

    def device(self, kind: str) -> _Device | None:
        return next((d for d in self.devices if d.kind == kind), None)

    # -------------------------------------------------------------- connections

    def conn(
        self,
        ts: float,
        src: str,
        dst: str,
        dport: int,
        *,
        proto: str = "tcp",
        service: str | None = None,
        ob: int = 0,
        rb: int = 0,
        duration: float | None = None,
        state: str = "SF",
        country: str = "Reserved",
        scenario: int | None = None,
        src_mac: str | None = None,
        sport: int | None = None,
    ) -> _Conn:
        rng = self.rng
        if sport is None:
            sport = rng.randrange(49152, 65535) if proto == "tcp" else rng.randrange(50000, 65535)
        if proto == "udp":
            opk, rpk = 1, (1 if rb else 0)
            history = "Dd" if rb else "D"
            state = "SF" if rb else "S0"
        elif state == "SF":
            opk = max(3, ob // 1100 + rng.randint(3, 7))
            rpk = max(2, rb // 1400 + rng.randint(2, 5))
            history = "ShADadFf"
        elif state == "REJ":  # the SYN answered by a reset: nothing listens there
            opk, rpk, ob, rb, history = 1, 1, 0, 0, "Sr"
        else:  # S0: an unanswered SYN
            opk, rpk, ob, rb, history = rng.randint(1, 3), 0, 0, 0, "S"
        if duration is None:
            duration = rng.uniform(0.05, 2.0) if proto == "tcp" else rng.uniform(0.002, 0.08)
        c = _Conn(
            ts=ts,
            uid=self._uid(),
            flow_id=rng.randrange(10**14, 2**51),
            src=src,
            sport=sport,
            dst=dst,
            dport=dport,
            proto=proto,
            service=service,
            duration=duration,
            ob=ob,
            rb=rb,
            state=state,
            history=history,
            opk=opk,
            rpk=rpk,
            local_orig=self._local(src),
            local_resp=self._local(dst),
            country=country,
            scenario=scenario,
            src_mac=src_mac,
        )
        self.conns.append(c)
        return c

    def lookup(
        self,
        dev: _Device,
        ts: float,
        domain: str,
        answers: list[str],
        *,
        qtype: str = "A",
        rcode: str = "NOERROR",
        scenario: int | None = None,
    ) -> _Conn | None:
        if ts < self.start:
            return None
        rng = self.rng
        rtt = rng.uniform(0.004, 0.06)
        size = 30 + len(domain)
        c = self.conn(
            ts,
            dev.ip,
            dev.gateway,
            53,
            proto="udp",
            service="dns",
            ob=size,
            rb=size + 16 * len(answers),
            duration=rtt,
            scenario=scenario,
            src_mac=dev.mac,
        )
        ttl = float(rng.choice((60, 300, 300, 600, 3600)))
        c.dns = _Dns(rng.randrange(1, 65535), rtt, domain, qtype, rcode, answers, [ttl] * len(answers))
        return c

    def https(self, dev: _Device, ts: float, site: _Site, *, scenario: int | None = None) -> _Conn:
        rng = self.rng
        if rng.random() < 0.45:
            self.lookup(dev, ts - rng.uniform(0.02, 0.4), site.domain, [site.ip], scenario=scenario)
        tls13 = rng.random() < 0.7
        c = self.conn(
            ts,
            dev.ip,
            site.ip,
            443,
            service="ssl",
            ob=self._size(7.3, 1.0, 600, 2_000_000),
            rb=self._size(9.2, 1.5, 2000, 40_000_000),
            duration=self._size(1.5, 1.6, 0, 3000) + rng.random(),
            country=site.country,
            scenario=scenario,
            src_mac=dev.mac,
        )
        c.tls = self._tls(site, tls13)
        return c

    def _tls(self, site: _Site, tls13: bool) -> _Tls:
        rng = self.rng
        if tls13:
            return _Tls(site.domain, "TLSv13", "TLS_AES_128_GCM_SHA256", "x25519", rng.random() < 0.2)
        digest = hashlib.sha256(site.domain.encode()).hexdigest()
        return _Tls(
            site.domain,
            "TLSv12",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "x25519",
            rng.random() < 0.2,
            subject=f"CN={site.domain}",
            issuer=ISSUERS[site.issuer],
            fingerprint=digest,
            serial=":".join(digest[i : i + 2].upper() for i in range(0, 32, 2)),
        )

    def http(self, dev: _Device, ts: float, site: _HttpSite) -> _Conn:
        rng = self.rng
        if rng.random() < 0.5:
            self.lookup(dev, ts - rng.uniform(0.02, 0.4), site.domain, [site.ip])
        uri = site.uri.format(hex="".join(rng.choices("0123456789abcdef", k=16)), n=rng.randint(100, 999))
        size = rng.randint(*site.size)
        c = self.conn(
            ts,
            dev.ip,
            site.ip,
            80,
            service="http",
            ob=rng.randint(150, 420),
            rb=size + rng.randint(180, 400),
            country=site.country,
            src_mac=dev.mac,
        )
        c.http.append(_Http("GET", site.domain, uri, site.ua, 200, "OK", site.mime, 0, size, self._uid("F")))
        return c

    # -------------------------------------------------------------- background

    def background(self) -> None:
        rng = self.rng
        nas = self.device("nas")
        mail = self.device("mail")
        t = self.start
        while t < self.end:
            hend = min(t + 3600, self.end)
            local = datetime.fromtimestamp(t, JST)
            for dev in self.pcs():
                if not self._working(dev, t + 1800):
                    continue
                office = dev.arrive <= local.hour + 0.5 < dev.leave and local.weekday() < 5
                for _ in range(rng.randint(6, 14) if office else rng.randint(0, 2)):
                    self._pc_session(dev, self._u(t, hend), office)
            if nas is not None:
                if local.hour == 2:
                    self.https(nas, self._u(t, t + 600), NAS_BACKUP).ob = self._size(19, 1.0, 10**7, 10**10)
                if rng.random() < 0.3:
                    self.https(nas, self._u(t, hend), NAS_UPDATE)
                self._ntp(nas, self._u(t, hend))
            if mail is not None:
                busy = 8 <= local.hour < 20 and local.weekday() < 5
                for _ in range(rng.randint(1, 4) if busy else rng.randint(0, 1)):
                    self._mail_in(mail, self._u(t, hend))
                for _ in range(rng.randint(0, 3) if busy else 0):
                    self._mail_out(mail, self._u(t, hend))
            t += 3600
        self._dhcp_morning()

    def _pc_session(self, dev: _Device, ts: float, office: bool) -> None:
        rng = self.rng
        r = rng.random()
        if not office:  # left on overnight: updates and time sync only
            if r < 0.6:
                self.http(dev, ts, rng.choice(HTTP_SITES[1:]))
            else:
                self._ntp(dev, ts)
            return
        if r < 0.62:
            site = rng.choices(HTTPS_SITES, weights=[s.weight for s in HTTPS_SITES])[0]
            self.https(dev, ts, site)
        elif r < 0.70:
            site_h = rng.choices(HTTP_SITES, weights=[s.weight for s in HTTP_SITES])[0]
            self.http(dev, ts, site_h)
        elif r < 0.86:
            nas = self.device("nas")
            if nas is not None:
                self.conn(
                    ts,
                    dev.ip,
                    nas.ip,
                    445,
                    service="smb",
                    ob=self._size(8, 1.5, 300, 10**8),
                    rb=self._size(9, 1.8, 300, 10**9),
                    duration=rng.uniform(0.5, 900),
                    src_mac=dev.mac,
                )
        elif r < 0.88:
            printer = next(d for d in self.devices if d.kind == "printer")
            self.conn(
                ts,
                dev.ip,
                printer.ip,
                9100,
                ob=self._size(11, 1.2, 2000, 5 * 10**7),
                rb=40,
                duration=rng.uniform(1, 40),
                src_mac=dev.mac,
            )
        elif r < 0.90:
            self._ntp(dev, ts)
        elif r < 0.95:
            mail = self.device("mail")
            if mail is not None:
                self.conn(
                    ts,
                    dev.ip,
                    mail.ip,
                    993,
                    service="ssl",
                    ob=self._size(7, 1, 200, 10**6),
                    rb=self._size(9, 2, 500, 10**8),
                    src_mac=dev.mac,
                )
            else:
                self.https(dev, ts, HTTPS_SITES[4])  # outlook.office365.com
        else:  # lookups with no connection after them
            domain = f"wpad.{self.t.id}.lan" if rng.random() < 0.5 else rng.choice(HTTPS_SITES).domain
            if domain.startswith("wpad."):
                self.lookup(dev, ts, domain, [], rcode="NXDOMAIN")
            else:
                self.lookup(dev, ts, domain, [], qtype="AAAA")

    def _ntp(self, dev: _Device, ts: float) -> None:
        name, ip, country = self.rng.choice(NTP_SERVERS)
        self.lookup(dev, ts - 0.05, name, [ip])
        self.conn(
            ts,
            dev.ip,
            ip,
            123,
            proto="udp",
            service="ntp",
            ob=48,
            rb=48,
            country=country,
            src_mac=dev.mac,
            sport=123 if dev.kind != "pc" else None,
        )

    def _mail_in(self, mail: _Device, ts: float, **kw: Any) -> _Conn:
        ip, country = self.rng.choice(MAIL_PEERS)
        c = self.conn(
            ts,
            ip,
            mail.ip,
            25,
            service="smtp",
            ob=self._size(9.5, 1.2, 1500, 3 * 10**7),
            rb=self._size(6.5, 0.3, 400, 2000),
            duration=self.rng.uniform(0.4, 6),
            country=country,
            **kw,
        )
        c.fg_dnat = mail.ip
        return c

    def _mail_out(self, mail: _Device, ts: float) -> None:
        ip, country = self.rng.choice(MAIL_PEERS)
        self.conn(
            ts,
            mail.ip,
            ip,
            25,
            service="smtp",
            ob=self._size(9.5, 1.2, 1500, 3 * 10**7),
            rb=self._size(6.5, 0.3, 400, 2000),
            duration=self.rng.uniform(0.4, 6),
            country=country,
            src_mac=mail.mac,
        )

    def _dhcp_morning(self) -> None:
        """Each DHCP client renews its lease when it first comes online on a day."""
        rng = self.rng
        for dev in self.pcs():
            day = datetime.fromtimestamp(self.start, JST).replace(hour=0, minute=0, second=0, microsecond=0)
            while day.timestamp() < self.end:
                at = day.timestamp() + dev.arrive * 3600 + rng.uniform(0, 300)
                if day.weekday() < 5 and self.start <= at < self.end:
                    self.dhcp_exchange(dev, at, renew=True)
                day += timedelta(days=1)

    def dhcp_exchange(
        self,
        dev: _Device,
        ts: float,
        *,
        renew: bool,
        scenario: int | None = None,
        client_software: str | None = None,
    ) -> None:
        rng = self.rng
        duration = rng.uniform(0.002, 0.02) if renew else rng.uniform(0.5, 3.0)
        if renew:
            c = self.conn(
                ts,
                dev.ip,
                dev.gateway,
                67,
                proto="udp",
                service="dhcp",
                ob=300,
                rb=300,
                duration=duration,
                scenario=scenario,
                src_mac=dev.mac,
                sport=68,
            )
        else:
            c = self.conn(
                ts,
                "0.0.0.0",
                "255.255.255.255",
                67,
                proto="udp",
                service="dhcp",
                ob=600,
                rb=600,
                duration=duration,
                scenario=scenario,
                sport=68,
            )
        rec: dict[str, Any] = {"ts": _zts(ts), "uids": [c.uid]}
        if renew:
            rec["client_addr"] = dev.ip
        rec["server_addr"] = dev.gateway
        rec["client_port"] = 68
        rec["server_port"] = 67
        rec["mac"] = dev.mac
        rec["host_name"] = dev.name
        rec["domain"] = f"{self.t.id}.lan"
        if not renew:
            rec["requested_addr"] = dev.ip
        rec["assigned_addr"] = dev.ip
        rec["lease_time"] = 86400.0
        if client_software:  # option 60, the vendor class ("MSFT 5.0" from Windows 2000 to 11)
            rec["client_software"] = client_software
        rec["msg_types"] = ["REQUEST", "ACK"] if renew else ["DISCOVER", "OFFER", "REQUEST", "ACK"]
        rec["duration"] = round(duration, 6)
        rec["_path"] = "dhcp"
        self.dhcp.append(_Line(ts, rec, scenario))

    # -------------------------------------------------------------- scenario 2

    def scenario2(self) -> None:
        """A private iPhone joins the Wi-Fi and fetches a payload from a malware host."""
        rng = self.rng
        t0 = self._office_time(self.start, self.end - 2 * 3600)
        used = {d.ip for d in self.devices}
        base = self.t.networks[0].rsplit(".", 1)[0]
        ip = next(f"{base}.{n}" for n in range(150 + rng.randrange(30), 200) if f"{base}.{n}" not in used)
        first = (rng.randrange(256) & 0xFC) | 0x02  # a locally administered ("private Wi-Fi") address
        mac = f"{first:02x}" + "".join(f":{rng.randrange(256):02x}" for _ in range(5))
        phone = _Device(ip, mac, "Taros-iPhone", "phone", f"{base}.1", dhcp=True, ua=IOS_SAFARI)
        self.devices.append(phone)
        self.dhcp_exchange(phone, t0, renew=False, scenario=2)

        # what any iPhone does on a new network, then apps in the background
        cap = self.conn(
            t0 + 1.2, ip, CAPTIVE.ip, 80, service="http", ob=260, rb=410, country="Japan", src_mac=mac
        )
        cap.http.append(
            _Http(
                "GET", CAPTIVE.domain, CAPTIVE.uri, CAPTIVE.ua, 200, "OK", "text/html", 0, 68, self._uid("F")
            )
        )
        leave = min(self.end, t0 + rng.uniform(3.5, 5) * 3600)
        t = t0 + 5
        while t < leave:
            site = rng.choices(PHONE_SITES, weights=[s.weight for s in PHONE_SITES])[0]
            self.https(phone, t, site)
            t += rng.uniform(120, 900)

        # the visit to the malware-distribution host (a link in a message or an ad)
        t1 = min(t0 + rng.uniform(300, 1500), leave - 600)
        dns = self.lookup(phone, t1, S2_DOMAIN, [S2_IP], scenario=2)
        assert dns is not None
        hits = []
        for k, at in enumerate((t1 + 0.2, t1 + rng.uniform(60, 240))):
            payload = rng.randint(1_150_000, 1_250_000)
            c = self.conn(
                at,
                ip,
                S2_IP,
                80,
                service="http",
                ob=rng.randint(700, 1100),
                rb=payload + 9000,
                duration=rng.uniform(2, 9),
                country="Reserved",
                scenario=2,
                src_mac=mac,
            )
            if k == 0:
                c.http.append(
                    _Http(
                        "GET",
                        S2_DOMAIN,
                        S2_LANDING,
                        IOS_SAFARI,
                        200,
                        "OK",
                        "text/html",
                        0,
                        7421,
                        self._uid("F"),
                    )
                )
            c.http.append(
                _Http(
                    "GET",
                    S2_DOMAIN,
                    S2_PAYLOAD,
                    IOS_SAFARI,
                    200,
                    "OK",
                    "application/zip",
                    0,
                    payload,
                    self._uid("F"),
                    referrer=f"http://{S2_DOMAIN}{S2_LANDING}",
                )
            )
            hits.append(c)
        self.truth = {
            "scenario": 2,
            "expected_kind": SCENARIO_KINDS[2],
            "tenant": self.t.id,
            "title": "私物iPhoneが社内Wi-Fiに接続し、マルウェア配布サイトにアクセス",
            "title_en": "A private iPhone joined the office Wi-Fi and contacted a malware-distribution site",
            "sources": ["zeek"],
            "hosts": [ip],
            "indicators": _indicators(
                ips=[S2_IP], domains=[S2_DOMAIN], urls=[f"http://{S2_DOMAIN}{S2_PAYLOAD}"]
            ),
            "details": {
                "device": {"ip": ip, "mac": mac, "host_name": phone.name, "user_agent": IOS_SAFARI},
                "joined": _iso_epoch(t0),
                "downloads": len(hits),
            },
        }

    # -------------------------------------------------------------- scenario 6

    def scenario6(self) -> None:
        """~100 Emotet mails from a hacked partner within an hour, blocked by the UTM."""
        rng = self.rng
        mail = self.device("mail")
        assert mail is not None and self.fg is not None
        t0 = min(self._office_time(self.start, self.end - 3700), self.end - 3700)
        senders = [f"{s}@{S6_PARTNER_DOMAIN}" for s in rng.sample(S6_SENDERS, rng.randint(4, 6))]
        staff = [f"{s}@{self.t.email_domain}" for s in rng.sample(S6_STAFF, 7)]
        mmdd = datetime.fromtimestamp(t0, JST).strftime("%m%d")
        year = datetime.fromtimestamp(t0, JST).year
        attachments = [  # (theme, file name pattern, virus, sha256, crc32)
            ("invoice", f"請求書_{mmdd}.zip", "XLS/Agent.EMOTET!tr.dldr", _hex(rng, 64), _hex(rng, 8)),
            ("bonus", f"賞与明細_{mmdd}.xlsm", "XLS/Agent.EMOTET!tr.dldr", _hex(rng, 64), _hex(rng, 8)),
            ("invoice", f"請求書_{mmdd}.doc", "WM/Agent.EMOTET!tr.dldr", _hex(rng, 64), _hex(rng, 8)),
        ]
        subjects = {
            "invoice": (
                "請求書のご送付 No.{n}",
                "【請求書】{m}月分ご請求書の送付について No.{n}",
                "Re: 請求書の件 No.{n}",
            ),
            "bonus": ("賞与支給のお知らせ（No.{n}）", "{y}年夏季賞与明細書の送付 No.{n}"),
        }
        count = rng.randint(96, 104)
        times = sorted(t0 + rng.uniform(0, 3300) for _ in range(count))
        used_senders: set[str] = set()
        used_hashes: set[str] = set()
        for k, at in enumerate(times):
            sender = senders[k] if k < len(senders) else rng.choice(senders)
            rcpt = rng.choice(staff)
            att = attachments[k % 3] if k < 3 else rng.choices(attachments, weights=(5, 4, 2))[0]
            theme, fname, virus, sha, crc = att
            subject = rng.choice(subjects[theme]).format(n=rng.randint(10000, 99999), m=int(mmdd[:2]), y=year)
            c = self._mail_in(mail, at, scenario=6)
            c.src, c.country = S6_PARTNER_MTA, "Reserved"
            c.local_orig = False
            c.fg_extra = [("utmaction", "block"), ("countav", 1)]
            self._fg_virus(
                at + min(c.duration, 3.0) * 0.8,
                c,
                service="SMTP",
                direction="outgoing",
                dstip=mail.ip,
                filename=fname,
                virus=virus,
                sha256=sha,
                crc=crc,
                mail={"from": sender, "to": rcpt, "sender": sender, "recipient": rcpt, "subject": subject},
                scenario=6,
            )
            used_senders.add(sender)
            used_hashes.add(sha)
        decoys = self._decoy_detections(t0)
        self.truth = {
            "scenario": 6,
            "expected_kind": SCENARIO_KINDS[6],
            "tenant": self.t.id,
            "title": "取引先の侵害されたメールサーバから請求書・賞与を装うマルウェア付きメールが"
            "大量着信（UTMで遮断）",
            "title_en": "A hacked trading partner's mail server sent ~100 malware-laden invoice/bonus mails "
            "(blocked by the UTM)",
            "sources": ["fortigate"],
            "hosts": [mail.ip],
            "indicators": _indicators(sha256=sorted(used_hashes), emails=sorted(used_senders), domains=[]),
            "details": {
                "partner": {
                    "name": S6_PARTNER_NAME,
                    "name_en": S6_PARTNER_NAME_EN,
                    "domain": S6_PARTNER_DOMAIN,
                    "mail_server": S6_PARTNER_MTA,
                },
                "mails": count,
                "senders": sorted(used_senders),
                "recipients": sorted(staff),
                "subject_patterns": [p.replace("{n}", "<番号>") for t in subjects.values() for p in t],
                "attachments": [{"file_name": a[1], "virus": a[2], "sha256": a[3]} for a in attachments],
                "virus_names": sorted({a[2] for a in attachments}),
                "burst_start": _iso_epoch(times[0]),
                "burst_end": _iso_epoch(times[-1]),
                "unrelated_detections": decoys,
            },
        }

    def _decoy_detections(self, avoid: float) -> list[dict[str, Any]]:
        """Single web-download detections on other PCs at other times: not the campaign."""
        rng = self.rng
        out = []
        pcs = rng.sample(self.pcs(), len(S6_DECOYS))
        for (domain, ip, uri, virus), dev in zip(S6_DECOYS, pcs, strict=True):
            at = self._office_time(self.start, self.end - 60)
            if avoid - 3600 < at < avoid + 7200:  # keep well clear of the burst
                at = at + 10800 if at + 10800 < self.end - 60 else max(self.start + 60, at - 10800)
            c = self.conn(
                at,
                dev.ip,
                ip,
                80,
                service="http",
                ob=rng.randint(300, 600),
                rb=rng.randint(900, 1600),
                country="Reserved",
                src_mac=dev.mac,
            )
            c.http.append(
                _Http("GET", domain, uri, dev.ua, 403, "Forbidden", "text/html", 0, 1210, self._uid("F"))
            )
            c.fg_extra = [("utmaction", "block"), ("countav", 1)]
            sha = _hex(rng, 64)
            self._fg_virus(
                at + 0.3,
                c,
                service="HTTP",
                direction="incoming",
                dstip=ip,
                filename=uri.rsplit("/", 1)[1],
                virus=virus,
                sha256=sha,
                crc=_hex(rng, 8),
                web={"url": f"http://{domain}{uri}", "agent": dev.ua},
                scenario=None,
            )
            out.append({"host": dev.ip, "url": f"http://{domain}{uri}", "virus": virus, "sha256": sha})
        return out

    # -------------------------------------------------------------- scenario 7

    def scenario7(self) -> None:
        """Upatre downloads Dyre on one PC, later on a second; Dyre/Dridex call home."""
        rng = self.rng
        span = self.end - self.start
        victims = rng.sample([d for d in self.pcs() if not d.always_on] or self.pcs(), 2)
        for v in victims:  # they are at work when it happens and stay until evening
            v.arrive, v.leave = min(v.arrive, 8.5), max(v.leave, 18.5)
        t1 = self._office_time(self.start, self.end - 0.25 * span, share=0.5)
        t2 = self._office_time(t1 + 5400, self.end - 3600)
        for v, t in zip(victims, (t1, t2), strict=True):
            if not self._working(v, t):  # a window with no office hours: the PC was left on
                v.always_on = True
        contacted: set[str] = set()
        events: list[float] = []
        for n, (dev, t_inf) in enumerate(zip(victims, (t1, t2), strict=True)):
            # Upatre (opened from a mail attachment) fetches its payload
            c = self.conn(
                t_inf,
                dev.ip,
                S7_DOWNLOAD_IP,
                80,
                service="http",
                ob=rng.randint(250, 400),
                rb=rng.randint(380_000, 420_000),
                duration=rng.uniform(2, 6),
                scenario=7,
                src_mac=dev.mac,
            )
            c.http.append(
                _Http(
                    "GET",
                    S7_DOWNLOAD_IP,
                    S7_DOWNLOAD_URI,
                    "Updates downloader",
                    200,
                    "OK",
                    "image/jpeg",
                    0,
                    c.rb - 350,
                    self._uid("F"),
                )
            )
            c.alerts.append(SIG_UPATRE)
            contacted.add(S7_DOWNLOAD_IP)
            events.append(t_inf)
            # Dyre checks in every 10-15 minutes while the PC is on
            primary, other = (S7_C2[0], S7_C2[1]) if n == 0 else (S7_C2[1], S7_C2[0])
            t = t_inf + rng.uniform(40, 120)
            while t < self.end:
                if self._working(dev, t):
                    ip, port, _ = primary if rng.random() < 0.8 else other
                    c = self.conn(
                        t,
                        dev.ip,
                        ip,
                        port,
                        service="ssl",
                        ob=rng.randint(1800, 6000),
                        rb=rng.randint(2500, 9000),
                        duration=rng.uniform(0.8, 4),
                        scenario=7,
                        src_mac=dev.mac,
                    )
                    c.tls = _Tls(
                        None,
                        "TLSv12",
                        "TLS_RSA_WITH_AES_256_CBC_SHA",
                        None,
                        False,
                        subject="C=AU, ST=Some-State, O=Internet Widgits Pty Ltd",
                        issuer="C=AU, ST=Some-State, O=Internet Widgits Pty Ltd",
                        fingerprint=hashlib.sha256(f"dyre-{ip}".encode()).hexdigest(),
                        serial="00:D3:9A:4F:0C:5E:71:22:9B",
                        validation="self signed certificate",
                    )
                    c.alerts.append(SIG_DYRE)
                    contacted.add(ip)
                    events.append(t)
                t += rng.uniform(600, 900)
            if n == 1:  # the second PC also carries Dridex
                ip, port, _ = S7_C2[2]
                t = t_inf + rng.uniform(300, 900)
                while t < self.end:
                    if self._working(dev, t):
                        c = self.conn(
                            t,
                            dev.ip,
                            ip,
                            port,
                            service="http",
                            ob=rng.randint(900, 2400),
                            rb=rng.randint(300, 1200),
                            scenario=7,
                            src_mac=dev.mac,
                        )
                        c.http.append(
                            _Http(
                                "POST",
                                f"{ip}:{port}",
                                "/",
                                "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.1; "
                                "Trident/7.0; SLCC2; .NET CLR 2.0.50727)",
                                200,
                                "OK",
                                "application/octet-stream",
                                c.ob - 400,
                                c.rb - 250,
                                self._uid("F"),
                            )
                        )
                        c.alerts.append(SIG_DRIDEX)
                        contacted.add(ip)
                        events.append(t)
                    t += rng.uniform(1500, 2100)
        c2 = [{"ip": ip, "port": port, "malware": m} for ip, port, m in S7_C2 if ip in contacted]
        self.truth = {
            "scenario": 7,
            "expected_kind": SCENARIO_KINDS[7],
            "tenant": self.t.id,
            "title": "2台のPCでネットバンキングを狙うマルウェア（UPATRE/DYRE）の通信を検知",
            "title_en": "Online-banking malware (Upatre/Dyre, Dridex) calling home from two PCs",
            "sources": ["suricata", "zeek"],
            "hosts": sorted(d.ip for d in victims),
            "indicators": _indicators(
                ips=sorted(contacted), urls=[f"http://{S7_DOWNLOAD_IP}{S7_DOWNLOAD_URI}"]
            ),
            "details": {
                "infections": [
                    {"host": d.ip, "host_name": d.name, "at": _iso_epoch(t)}
                    for d, t in zip(victims, (t1, t2), strict=True)
                ],
                "c2": c2,
                "signatures": [
                    {"sid": s.sid, "name": s.msg, "category": s.category, "severity": s.severity}
                    for s in (SIG_UPATRE, SIG_DYRE, SIG_DRIDEX)
                ],
            },
        }

    # -------------------------------------------------------------- scenarios 1, 3, 4: helpers

    def _free_ip(self, lo: int, hi: int) -> str:
        """A free address of the first site in ``[lo, hi)``, starting at a random place."""
        used = {d.ip for d in self.devices}
        base = self.t.networks[0].rsplit(".", 1)[0]
        first = lo + self.rng.randrange(hi - lo)
        for n in [*range(first, hi), *range(lo, first)]:
            if f"{base}.{n}" not in used:
                return f"{base}.{n}"
        raise DemoError(f"{self.t.id}: no free address in .{lo}-.{hi - 1}")

    def _private_mac(self) -> str:
        """A randomised ("private Wi-Fi address") MAC: locally administered, unicast."""
        first = (self.rng.randrange(256) & 0xFC) | 0x02
        return f"{first:02x}" + "".join(f":{self.rng.randrange(256):02x}" for _ in range(5))

    def _internet_ip(self, avoid: set[str]) -> str:
        """A random public address (an innocent server somewhere), none of ``avoid``."""
        while True:
            ip = ipaddress.IPv4Address(self.rng.randrange(0x01000000, 0xE0000000))
            text = str(ip)
            if ip.is_global and not text.startswith(DOC_NETS) and text not in avoid:
                avoid.add(text)
                return text

    def _http_get(self, dev: _Device, ts: float, site: _HttpSite, *, scenario: int) -> _Conn:
        rng = self.rng
        if rng.random() < 0.6:
            self.lookup(dev, ts - rng.uniform(0.02, 0.4), site.domain, [site.ip], scenario=scenario)
        size = rng.randint(*site.size)
        c = self.conn(
            ts,
            dev.ip,
            site.ip,
            80,
            service="http",
            ob=rng.randint(150, 420),
            rb=size + rng.randint(180, 400),
            country=site.country,
            scenario=scenario,
            src_mac=dev.mac,
        )
        status, msg = (204, "No Content") if site.uri == "/generate_204" else (200, "OK")
        fuid = self._uid("F") if size else None
        c.http.append(_Http("GET", site.domain, site.uri, site.ua, status, msg, site.mime, 0, size, fuid))
        return c

    # -------------------------------------------------------------- scenario 1

    def scenario1(self) -> None:
        """An isolated Windows XP PC is plugged into the LAN to print and talks to the outside."""
        rng = self.rng
        span = self.end - self.start
        t0 = self._office_time(self.start, self.end - 0.5 * span, share=0.5)
        base = self.t.networks[0].rsplit(".", 1)[0]
        ip = self._free_ip(40, 60)
        mac = S1_OUI + "".join(f":{rng.randrange(256):02x}" for _ in range(3))
        # not a "pc": the background never drives it, only this scenario
        xp = _Device(ip, mac, S1_HOST_NAME, "xp", f"{base}.1", dhcp=True, always_on=True, ua=XP_IE8)
        self.devices.append(xp)
        self.dhcp_exchange(xp, t0, renew=False, scenario=1, client_software=S1_VENDOR_CLASS)

        # what it was plugged in for: a print job
        printer = self.device("printer")
        assert printer is not None
        self.conn(
            t0 + rng.uniform(60, 240),
            ip,
            printer.ip,
            9100,
            ob=self._size(12, 0.6, 50_000, 5 * 10**7),
            rb=40,
            duration=rng.uniform(5, 40),
            scenario=1,
            src_mac=mac,
        )
        # XP's own chatter: certificate lists, the IE home page
        t = t0 + rng.uniform(5, 20)
        for site in XP_SITES:
            self._http_get(xp, t, site, scenario=1)
            t += rng.uniform(2, 30)
        t = t0 + rng.uniform(1800, 3600)
        while t < self.end:
            self._http_get(xp, t, rng.choice(XP_SITES[:3]), scenario=1)
            t += rng.uniform(3 * 3600, 5 * 3600)

        # the beacon: every ~300 s, near-constant sizes, to one host in no intel list
        bot = _hex(rng, 8)
        t = t0 + rng.uniform(90, 200)
        beacons: list[float] = []
        ob, rb = rng.randint(205, 225), rng.randint(380, 420)
        while t < self.end - 1:
            c = self.conn(
                t,
                ip,
                S1_BEACON_IP,
                80,
                service="http",
                ob=ob + rng.randint(-2, 2),
                rb=rb + rng.randint(-3, 3),
                duration=rng.uniform(0.25, 0.6),
                country="Reserved",
                scenario=1,
                src_mac=mac,
            )
            c.http.append(
                _Http(
                    "GET",
                    S1_BEACON_IP,
                    S1_BEACON_URI.format(bot=bot),
                    XP_IE8,
                    200,
                    "OK",
                    "text/plain",
                    0,
                    c.rb - 190,
                    self._uid("F"),
                )
            )
            beacons.append(t)
            t += S1_BEACON_INTERVAL + rng.uniform(-S1_BEACON_JITTER, S1_BEACON_JITTER)

        # the known C2 (Feodo Tracker), irregular check-ins
        c2_ip, c2_port, c2_malware = S1_C2
        t = t0 + rng.uniform(400, 900)
        c2_times: list[float] = []
        while t < self.end - 1:
            c = self.conn(
                t,
                ip,
                c2_ip,
                c2_port,
                service="http",
                ob=rng.randint(600, 2400),
                rb=rng.randint(200, 5000),
                duration=rng.uniform(0.5, 3),
                country="Reserved",
                scenario=1,
                src_mac=mac,
            )
            c.http.append(
                _Http(
                    "POST",
                    f"{c2_ip}:{c2_port}",
                    f"/{_hex(rng, 6)}/{_hex(rng, 4)}",
                    XP_IE8,
                    200,
                    "OK",
                    "application/octet-stream",
                    c.ob - 350,
                    c.rb - 200,
                    self._uid("F"),
                )
            )
            c2_times.append(t)
            t += rng.uniform(1200, 3600)
        self.assets.append(
            {
                "tenant": self.t.id,
                "mac": mac,
                "ip": ip,
                "hostname": S1_HOST_NAME,
                "os_name": S1_OS,
                "isolated": True,
                "has_antimalware": False,
                "has_endpoint_agent": False,
                "note": "旧CADソフト専用のWindows XP端末。ウイルス対策ソフトなし。"
                "ネットワークには接続していない（隔離）との認識。",
            }
        )
        gaps = [b - a for a, b in itertools.pairwise(beacons)]
        self.truth = {
            "scenario": 1,
            "expected_kind": SCENARIO_KINDS[1],
            "tenant": self.t.id,
            "title": "隔離しているはずのWindows XP端末（ウイルス対策なし）が印刷のためLANに接続され、"
            "外部と通信",
            "title_en": "An isolated Windows XP PC without anti-malware was plugged in to print and talked "
            "to the outside",
            "sources": ["zeek"],
            "hosts": [ip],
            "indicators": _indicators(ips=[c2_ip]),
            "details": {
                "device": {
                    "ip": ip,
                    "mac": mac,
                    "host_name": S1_HOST_NAME,
                    "os_name": S1_OS,
                    "user_agents": [XP_IE8, XP_CRYPTOAPI],
                },
                "joined": _iso_epoch(t0),
                "c2": [{"ip": c2_ip, "port": c2_port, "malware": c2_malware, "connections": len(c2_times)}],
                "beacon": {
                    "ip": S1_BEACON_IP,
                    "port": 80,
                    "interval_seconds": S1_BEACON_INTERVAL,
                    "jitter_seconds": S1_BEACON_JITTER,
                    "connections": len(beacons),
                    "mean_interval_seconds": round(sum(gaps) / len(gaps), 3) if gaps else None,
                    "first": _iso_epoch(beacons[0]) if beacons else None,
                    "last": _iso_epoch(beacons[-1]) if beacons else None,
                },
            },
        }

    # -------------------------------------------------------------- scenario 3

    def scenario3(self) -> None:
        """A family router hides several devices behind one address; one is a WannaCry PC."""
        rng = self.rng
        span = self.end - self.start
        t0 = self._office_time(self.start, self.end - 0.45 * span, share=0.5)
        base = self.t.networks[0].rsplit(".", 1)[0]
        ip = self._free_ip(150, 200)
        mac = S3_OUI + "".join(f":{rng.randrange(256):02x}" for _ in range(3))
        name = "AirStation-" + mac.replace(":", "")[-4:].upper()
        router = _Device(ip, mac, name, "rogue-router", f"{base}.1", dhcp=True, always_on=True)
        self.devices.append(router)
        self.dhcp_exchange(router, t0, renew=False, scenario=3)

        # the family's devices behind it: all of it leaves from the router's address
        families: set[str] = set()
        agents: set[str] = set()
        for family, sites in S3_FAMILY:
            t = t0 + rng.uniform(30, 1800)
            while t < self.end - 1:
                site = rng.choices(sites, weights=[s.weight for s in sites])[0]
                self._http_get(router, t, site, scenario=3)
                families.add(family)
                agents.add(site.ua)
                for _ in range(rng.randint(1, 3)):
                    pick = rng.choices(PHONE_SITES, weights=[s.weight for s in PHONE_SITES])[0]
                    self.https(router, t + rng.uniform(1, 300), pick, scenario=3)
                t += rng.uniform(1200, 3600)

        # WannaCry on the Windows 7 PC: the kill-switch lookup fails, then SMB everywhere
        t1 = t0 + rng.uniform(0.1, 0.25) * span
        lookups = []
        t = t1
        while t < self.end - 1:
            dns = self.lookup(router, t, S3_KILLSWITCH, [], rcode="NXDOMAIN", scenario=3)
            assert dns is not None
            dns.alerts.append(SIG_WANNACRY_DNS)
            lookups.append(t)
            t += rng.uniform(2.5, 5) * 3600  # each time the worm (re)starts
        nas = self.device("nas")
        live = {d.ip: d for d in self.devices if d.kind in ("pc", "nas", "printer", "router")}
        internal: list[str] = []
        external: list[str] = []
        exploited: list[str] = []
        avoid = {*_CATALOGUE_IPS, *(d.ip for d in self.devices)}

        def smb(at: float, dst: str, state: str, country: str) -> None:
            c = self.conn(
                at,
                ip,
                dst,
                445,
                state=state,
                ob=rng.randint(1200, 2600) if state == "SF" else 0,
                rb=rng.randint(600, 1600) if state == "SF" else 0,
                duration=rng.uniform(0.3, 3) if state == "SF" else rng.uniform(0.0005, 0.003),
                service="smb" if state == "SF" else None,
                country=country,
                scenario=3,
                src_mac=mac,
            )
            if state == "SF":  # something answered: the exploit goes in
                c.alerts += [SIG_ETERNALBLUE_PROBE, SIG_ETERNALBLUE_ECHO, SIG_WANNACRY_SMB]
                exploited.append(dst)

        # the local subnet first
        t = t1 + rng.uniform(5, 30)
        for n in rng.sample(range(2, 255), 60):
            dst = f"{base}.{n}"
            if dst == ip:
                continue
            dev = live.get(dst)
            if dev is nas:
                state = "SF"
            elif dev is None:
                state = "S0"
            else:  # Windows' firewall drops 445; the printer and router reset it
                state = "REJ" if dev.kind in ("printer", "router") else "S0"
            smb(t, dst, state, "Reserved")
            internal.append(dst)
            t += rng.uniform(0.02, 0.4)
        if nas is not None and nas.ip not in internal:
            smb(t, nas.ip, "SF", "Reserved")
            internal.append(nas.ip)
        # then random Internet addresses, in bursts while the PC is on
        t = t1 + rng.uniform(60, 300)
        while t < self.end - 120:
            for _ in range(rng.randint(30, 45)):
                r = rng.random()
                state = "S0" if r < 0.86 else ("REJ" if r < 0.98 else "SF")
                dst = self._internet_ip(avoid)
                smb(t, dst, state, rng.choice(("United States", "China", "Korea, Republic of", "Brazil")))
                external.append(dst)
                t += rng.uniform(0.05, 1.5)
            t += rng.uniform(3600, 5400)

        self.truth = {
            "scenario": 3,
            "expected_kind": SCENARIO_KINDS[3],
            "tenant": self.t.id,
            "title": "家族が持ち込んだ無線ルータの配下に複数の端末、うち1台がWannaCryに感染",
            "title_en": "A wireless router brought in by the owner's family hides several devices; one has "
            "WannaCry",
            "sources": ["zeek", "suricata"],
            "hosts": [ip],
            "indicators": _indicators(domains=[S3_KILLSWITCH]),
            "details": {
                "router": {"ip": ip, "mac": mac, "host_name": name, "vendor": "BUFFALO.INC"},
                "joined": _iso_epoch(t0),
                "os_families": sorted(families),
                "user_agents": sorted(agents),
                "wannacry": {
                    "first_seen": _iso_epoch(t1),
                    "killswitch_domain": S3_KILLSWITCH,
                    "killswitch_lookups": len(lookups),
                    "smb_targets_internal": len(internal),
                    "smb_targets_external": len(external),
                    "smb_exploited": len(exploited),
                },
                "signatures": [
                    {"sid": s.sid, "name": s.msg, "category": s.category, "severity": s.severity}
                    for s in (SIG_WANNACRY_DNS, SIG_ETERNALBLUE_PROBE, SIG_ETERNALBLUE_ECHO, SIG_WANNACRY_SMB)
                ],
            },
        }

    # -------------------------------------------------------------- scenario 4

    def scenario4(self) -> None:
        """An infected office PC attacks outside servers; private phones join the open DHCP."""
        rng = self.rng
        span = self.end - self.start
        pcs = [d for d in self.pcs() if d.srcintf == "internal" and not d.always_on] or self.pcs()
        pc = rng.choice(pcs)
        pc.arrive, pc.leave = min(pc.arrive, 8.5), max(pc.leave, 18.5)
        first = self._office_time(self.start, self.end - 0.5 * span, share=0.4)
        starts = [first]
        for _ in range(2):
            nxt = starts[-1] + rng.uniform(1.5, 3) * 3600
            if nxt < self.end - 900:
                starts.append(nxt)
        if not all(self._working(pc, t) for t in starts):  # no office hours in the window
            pc.always_on = True
        avoid = {*_CATALOGUE_IPS, *(d.ip for d in self.devices)}
        targets: set[str] = set()
        attacks: set[str] = set()
        failed = 0
        detections = 0
        bursts = []
        for t_b in starts:
            t = t_b
            count = 0
            for _ in range(rng.randint(55, 80)):
                dst = self._internet_ip(avoid)
                targets.add(dst)
                country = rng.choice(("United States", "Japan", "Germany", "Netherlands", "Singapore"))
                for port in rng.sample(S4_PORTS, rng.choice((1, 1, 2))):
                    r = rng.random()
                    state = "S0" if r < 0.55 else ("REJ" if r < 0.8 else "SF")
                    c = self.conn(
                        t,
                        pc.ip,
                        dst,
                        port,
                        state=state,
                        service=S4_SERVICES[port] if state == "SF" else None,
                        ob=rng.randint(300, 1500) if state == "SF" else 0,
                        rb=rng.randint(100, 600) if state == "SF" else 0,
                        duration=rng.uniform(0.2, 2.5) if state == "SF" else rng.uniform(0.01, 0.3),
                        country=country,
                        scenario=4,
                        src_mac=pc.mac,
                    )
                    count += 1
                    t += rng.uniform(0.3, 3.0)
                    if state != "SF":
                        failed += 1
                        continue
                    name, attackid, uri = rng.choice(S4_ATTACKS[port])
                    if port == 80:
                        c.http.append(
                            _Http(
                                "POST" if "eval-stdin" in uri else "GET",
                                dst,
                                uri,
                                S4_UA,
                                403,
                                "Forbidden",
                                "text/html",
                                c.ob - 300 if "eval-stdin" in uri else 0,
                                c.rb - 150 if c.rb > 150 else 0,
                                None,
                            )
                        )
                    if "suricata" in self.t.sources:
                        c.alerts.append(S4_SIGS[port])
                    if self.fg is not None:
                        c.fg_extra = [("utmaction", "block"), ("countips", 1)]
                        self._fg_ips(c.ts + min(c.duration, 0.5) * 0.5, c, name, attackid, uri)
                    attacks.add(name)
                    detections += 1
            bursts.append({"start": _iso_epoch(t_b), "end": _iso_epoch(t), "connections": count})

        # private phones on the open Wi-Fi (DHCP hands out an address to anyone)
        phones = []
        base = self.t.networks[0].rsplit(".", 1)[0]
        for host_name, ua, check in S4_PHONES:
            at = self._office_time(self.start, self.end - 3 * 3600)
            phone = _Device(
                self._free_ip(150, 200),
                self._private_mac(),
                host_name,
                "phone",
                f"{base}.1",
                dhcp=True,
                ua=ua,
            )
            self.devices.append(phone)
            self.dhcp_exchange(phone, at, renew=False, scenario=4)
            self._http_get(phone, at + 1.5, check, scenario=4)
            leave = min(self.end - 1, at + rng.uniform(1.5, 3) * 3600)
            t = at + 10
            while t < leave:
                site = rng.choices(PHONE_SITES, weights=[s.weight for s in PHONE_SITES])[0]
                self.https(phone, t, site, scenario=4)
                t += rng.uniform(120, 900)
            phones.append(
                {"ip": phone.ip, "mac": phone.mac, "host_name": host_name, "joined": _iso_epoch(at)}
            )

        sources = ["zeek"] + [s for s in ("suricata", "fortigate") if s in self.t.sources]
        self.truth = {
            "scenario": 4,
            "expected_kind": SCENARIO_KINDS[4],
            "tenant": self.t.id,
            "title": "社内PCが踏み台にされ、社外のWeb・FTP・SSHサーバへ攻撃（私物端末も無線LANに接続）",
            "title_en": "An office PC used as a stepping stone to attack outside web/FTP/SSH servers "
            "(private devices on the open Wi-Fi)",
            "sources": sources,
            "hosts": [pc.ip],
            "indicators": _indicators(),
            "details": {
                "stepping_stone": {"ip": pc.ip, "mac": pc.mac, "host_name": pc.name},
                "bursts": bursts,
                "ports": list(S4_PORTS),
                "targets": len(targets),
                "failed_connections": failed,
                "ids_detections": detections,
                "attacks": sorted(attacks),
                "private_devices": phones,
            },
        }

    def policy_alerts(self) -> None:
        """A handful of harmless ET POLICY/INFO alerts on ordinary traffic."""
        budget = self.rng.randint(5, 9)
        for c in self.conns:
            if budget == 0:
                break
            host = c.tls.sni if c.tls else (c.http[0].host if c.http else None)
            sig = POLICY_SIGS.get(host or "")
            if sig is not None and c.scenario is None and self.rng.random() < 0.25:
                c.alerts.append(sig)
                budget -= 1

    # -------------------------------------------------------------- FortiGate

    def _fg_virus(
        self,
        ts: float,
        c: _Conn,
        *,
        service: str,
        direction: str,
        dstip: str,
        filename: str,
        virus: str,
        sha256: str,
        crc: str,
        scenario: int | None,
        mail: dict[str, str] | None = None,
        web: dict[str, str] | None = None,
    ) -> None:
        assert self.fg is not None
        inbound = not c.local_orig
        mime = mail is not None
        pairs: list[tuple[str, Any]] = [
            *self._fg_head(ts, "0211008194" if mime else "0211008192", "utm", "virus", "warning", "infected"),
            ("policyid", 3 if inbound else 1),
            ("poluuid", self.fg.poluuid),
            ("policytype", "policy"),
            ("msg", "File is infected."),
            ("action", "blocked"),
            ("service", service),
            ("sessionid", self._fg_session(c)),
            ("srcip", c.src),
            ("dstip", dstip),
            ("srcport", c.sport),
            ("dstport", c.dport),
            ("srccountry", c.country if inbound else "Reserved"),
            ("dstcountry", "Reserved" if inbound else c.country),
            ("srcintf", "wan1" if inbound else "internal"),
            ("srcintfrole", "wan" if inbound else "lan"),
            ("dstintf", "internal" if inbound else "wan1"),
            ("dstintfrole", "lan" if inbound else "wan"),
            ("proto", 6),
            ("direction", direction),
            ("filename", filename),
            ("checksum", crc),
            ("quarskip", "No-skip"),
            ("virus", virus),
            ("viruscat", "Virus"),
            ("dtype", "av-engine"),
            ("ref", "http://www.fortinet.com/ve?vn=" + urllib.parse.quote(virus, safe="")),
            ("virusid", int(sha256[:6], 16) % 9_000_000 + 1_000_000),
        ]
        if web:
            pairs += [("url", web["url"]), ("agent", web["agent"])]
        pairs.append(("profile", "default"))
        if mail:
            pairs += [(k, mail[k]) for k in ("from", "to", "sender", "recipient", "subject")]
        pairs += [
            ("analyticscksum", sha256),
            ("analyticssubmit", "false"),
            ("crscore", 50),
            ("craction", 2),
            ("crlevel", "critical"),
        ]
        self.fortigate_lines.append(_Line(ts, _kv(pairs), scenario))

    def _fg_ips(self, ts: float, c: _Conn, attack: str, attackid: int, uri: str) -> None:
        """An IPS signature hit on an outgoing session (scenario 4), dropped by the UTM."""
        assert self.fg is not None
        group = "web_app3" if c.dport == 80 else "applications3"
        pairs: list[tuple[str, Any]] = [
            *self._fg_head(ts, "0419016384", "utm", "ips", "alert", "signature"),
            ("severity", "critical" if c.dport == 80 else "high"),
            ("srcip", c.src),
            ("srccountry", "Reserved"),
            ("dstip", c.dst),
            ("dstcountry", c.country),
            ("srcintf", "internal"),
            ("srcintfrole", "lan"),
            ("dstintf", "wan1"),
            ("dstintfrole", "wan"),
            ("sessionid", self._fg_session(c)),
            ("action", "dropped"),
            ("proto", 6),
            ("service", _FG_SERVICES.get((c.proto, c.dport), f"{c.proto}/{c.dport}")),
            ("policyid", 1),
            ("poluuid", self.fg.poluuid),
            ("policytype", "policy"),
            ("attack", attack),
            ("srcport", c.sport),
            ("dstport", c.dport),
        ]
        if c.dport == 80:
            pairs += [("hostname", c.dst), ("url", uri), ("agent", S4_UA)]
        pairs += [
            ("direction", "outgoing"),
            ("attackid", attackid),
            ("profile", "default"),
            ("ref", f"http://www.fortinet.com/ids/VID{attackid}"),
            ("incidentserialno", self.rng.randrange(10**8, 10**9)),
            ("msg", f"{group}: {attack},"),
            ("crscore", 50),
            ("craction", 4096),
            ("crlevel", "critical"),
        ]
        self.fortigate_lines.append(_Line(ts, _kv(pairs), 4))

    def _fg_session(self, c: _Conn) -> int:
        """The FortiGate session id of ``c``: the traffic and UTM logs of a session share it."""
        assert self.fg is not None
        if c.fg_session is None:
            self.fg.session += self.rng.randint(1, 40)
            c.fg_session = self.fg.session
        return c.fg_session

    def _fg_head(
        self, ts: float, logid: str, typ: str, subtype: str, level: str, eventtype: str | None = None
    ) -> list[tuple[str, Any]]:
        assert self.fg is not None
        local = datetime.fromtimestamp(round(ts, 6), JST)
        micros = round(ts * 1_000_000)
        return [
            ("date", local.strftime("%Y-%m-%d")),
            ("time", local.strftime("%H:%M:%S")),
            ("devname", self.fg.devname),
            ("devid", self.fg.devid),
            ("eventtime", micros * 1000 + micros * 7919 % 1000),
            ("tz", "+0900"),
            ("logid", logid),
            ("type", typ),
            ("subtype", subtype),
            *([("eventtype", eventtype)] if eventtype else []),
            ("level", level),
            ("vd", "root"),
        ]

    def fortigate_traffic(self) -> None:
        """Forward-traffic logs for every session that crossed the firewall."""
        assert self.fg is not None
        by_ip = {d.ip: d for d in self.devices}
        for c in sorted(self.conns, key=lambda c: c.ts):
            if c.local_orig == c.local_resp or c.src == "0.0.0.0":
                continue
            inbound = not c.local_orig
            dev = by_ip.get(c.src)
            pairs: list[tuple[str, Any]] = [
                *self._fg_head(c.end, "0000000013", "traffic", "forward", "notice"),
                ("srcip", c.src),
                ("srcport", c.sport),
                ("srcintf", "wan1" if inbound else (dev.srcintf if dev else "internal")),
                ("srcintfrole", "wan" if inbound else "lan"),
                ("dstip", self.fg.wan_ip if inbound else c.dst),
                ("dstport", c.dport),
                ("dstintf", "internal" if inbound else "wan1"),
                ("dstintfrole", "lan" if inbound else "wan"),
                ("srccountry", c.country if inbound else "Reserved"),
                ("dstcountry", "Reserved" if inbound else c.country),
                ("sessionid", self._fg_session(c)),
                ("proto", 6 if c.proto == "tcp" else 17),
                ("action", _FG_ACTIONS.get(c.state, "close") if c.proto == "tcp" else "accept"),
                ("policyid", 3 if inbound else 1),
                ("policytype", "policy"),
                ("poluuid", self.fg.poluuid),
                ("policyname", "WAN-to-MAIL" if inbound else "LAN-to-Internet"),
                ("service", _FG_SERVICES.get((c.proto, c.dport), f"{c.proto}/{c.dport}")),
            ]
            if inbound:
                pairs += [("trandisp", "dnat"), ("tranip", c.fg_dnat or c.dst), ("tranport", c.dport)]
            else:
                pairs += [("trandisp", "snat"), ("transip", self.fg.wan_ip), ("transport", c.sport)]
            ipb = 52 if c.proto == "tcp" else 28
            pairs += [
                ("duration", max(1, round(c.duration))),
                ("sentbyte", c.ob + c.opk * ipb),
                ("rcvdbyte", c.rb + c.rpk * ipb),
                ("sentpkt", c.opk),
                ("rcvdpkt", c.rpk),
                ("appcat", "unscanned"),
                *c.fg_extra,
            ]
            if c.src_mac and not inbound:
                pairs += [("srcmac", c.src_mac), ("mastersrcmac", c.src_mac), ("srcserver", 0)]
            level = "warning" if c.fg_extra else "notice"
            if level != "notice":
                pairs = [(k, level if k == "level" else v) for k, v in pairs]
            self.fortigate_lines.append(_Line(c.end, _kv(pairs), c.scenario))

    def fortigate_events(self) -> None:
        """A few administrator logins: the firewall's own event log."""
        assert self.fg is not None
        admin = self.pcs()[0]
        gw = self.devices[0].ip
        day = datetime.fromtimestamp(self.start, JST).replace(hour=10, minute=0, second=0, microsecond=0)
        while day.timestamp() < self.end:
            at = day.timestamp() + self.rng.uniform(0, 3 * 3600)
            if self.start <= at < self.end - 900 and day.weekday() < 5:
                for action, logid, desc, msg in (
                    ("login", "0100032001", "Admin login successful", "logged in successfully from"),
                    ("logout", "0100032003", "Admin logout successful", "logged out from"),
                ):
                    pairs: list[tuple[str, Any]] = [
                        *self._fg_head(at, logid, "event", "system", "information"),
                        ("logdesc", desc),
                        ("sn", str(self.rng.randrange(10**9, 2 * 10**9))),
                        ("user", "admin"),
                        ("ui", f"https({admin.ip})"),
                        ("method", "https"),
                        ("srcip", admin.ip),
                        ("dstip", gw),
                        ("action", action),
                        ("status", "success"),
                        ("reason", "none" if action == "login" else "exit"),
                        ("profile", "super_admin"),
                        ("msg", f"Administrator admin {msg} https({admin.ip})"),
                    ]
                    self.fortigate_lines.append(_Line(at, _kv(pairs), None))
                    at += self.rng.uniform(120, 600)
            day += timedelta(days=1)

    # -------------------------------------------------------------- rendering

    def zeek_logs(self) -> dict[str, list[_Line]]:
        logs: dict[str, list[_Line]] = {name: [] for name in ZEEK_LOGS}
        for c in self.conns:
            logs["conn"].append(_Line(c.ts, _zeek_conn(c), c.scenario))
            if c.dns is not None:
                logs["dns"].append(_Line(c.ts, _zeek_dns(c), c.scenario))
            for depth, h in enumerate(c.http, 1):
                at = c.ts + min(c.duration, 1.0) * depth / (len(c.http) + 1)
                logs["http"].append(_Line(at, _zeek_http(c, h, depth, at), c.scenario))
            if c.tls is not None:
                at = c.ts + min(c.duration, 0.2)
                logs["ssl"].append(_Line(at, _zeek_ssl(c, c.tls, at), c.scenario))
        logs["dhcp"] = list(self.dhcp)
        logs["software"] = self.software()
        return logs

    def software(self) -> list[_Line]:
        """Zeek's software.log: each host's browsers and OS, once, when first seen in HTTP."""
        out: list[_Line] = []
        seen: set[tuple[str, str, str, tuple[int, ...]]] = set()
        for c in sorted(self.conns, key=lambda c: c.ts):
            if not c.local_orig:
                continue
            for depth, h in enumerate(c.http, 1):
                for typ, name, version, addl in SOFTWARE.get(h.ua, []):
                    key = (c.src, typ, name, version)
                    if key in seen:
                        continue
                    seen.add(key)
                    at = c.ts + min(c.duration, 1.0) * depth / (len(c.http) + 1)
                    rec: dict[str, Any] = {"ts": _zts(at), "host": c.src, "software_type": typ, "name": name}
                    rec.update(zip(_VERSION_KEYS, version, strict=False))
                    if addl:
                        rec["version.addl"] = addl
                    if typ.startswith("HTTP::"):
                        rec["unparsed_version"] = h.ua
                    rec["_path"] = "software"
                    out.append(_Line(at, rec, c.scenario))
        return out

    def eve(self) -> list[_Line]:
        out: list[_Line] = []
        for c in self.conns:
            if c.src == "0.0.0.0":
                continue
            out.extend(_eve_events(c))
        return out


# ------------------------------------------------------------------------------ renderers


def _zts(t: float) -> float:
    return round(t, 6)


def _zeek_id(c: _Conn) -> dict[str, Any]:
    return {
        "id.orig_h": c.src,
        "id.orig_p": c.sport,
        "id.resp_h": c.dst,
        "id.resp_p": c.dport,
    }


def _zeek_conn(c: _Conn) -> dict[str, Any]:
    d: dict[str, Any] = {"ts": _zts(c.ts), "uid": c.uid, **_zeek_id(c), "proto": c.proto}
    if c.service:
        d["service"] = c.service
    if c.state != "S0":
        d["duration"] = round(c.duration, 6)
        d["orig_bytes"] = c.ob
        d["resp_bytes"] = c.rb
    ipb = 52 if c.proto == "tcp" else 28
    d.update(
        {
            "conn_state": c.state,
            "local_orig": c.local_orig,
            "local_resp": c.local_resp,
            "missed_bytes": 0,
            "history": c.history,
            "orig_pkts": c.opk,
            "orig_ip_bytes": c.ob + c.opk * ipb,
            "resp_pkts": c.rpk,
            "resp_ip_bytes": c.rb + c.rpk * ipb,
            "_path": "conn",
        }
    )
    return d


_QTYPES = {"A": 1, "AAAA": 28, "HTTPS": 65}
_RCODES = {"NOERROR": 0, "NXDOMAIN": 3}


def _zeek_dns(c: _Conn) -> dict[str, Any]:
    q = c.dns
    assert q is not None
    d: dict[str, Any] = {
        "ts": _zts(c.ts),
        "uid": c.uid,
        **_zeek_id(c),
        "proto": "udp",
        "trans_id": q.trans_id,
        "rtt": round(q.rtt, 6),
        "query": q.query,
        "qclass": 1,
        "qclass_name": "C_INTERNET",
        "qtype": _QTYPES[q.qtype],
        "qtype_name": q.qtype,
        "rcode": _RCODES[q.rcode],
        "rcode_name": q.rcode,
        "AA": False,
        "TC": False,
        "RD": True,
        "RA": True,
        "Z": 0,
    }
    if q.answers:
        d["answers"] = list(q.answers)
        d["TTLs"] = list(q.ttls)
    d["rejected"] = False
    d["_path"] = "dns"
    return d


def _zeek_http(c: _Conn, h: _Http, depth: int, at: float) -> dict[str, Any]:
    d: dict[str, Any] = {
        "ts": _zts(at),
        "uid": c.uid,
        **_zeek_id(c),
        "trans_depth": depth,
        "method": h.method,
        "host": h.host,
        "uri": h.uri,
    }
    if h.referrer:
        d["referrer"] = h.referrer
    d.update(
        {
            "version": "1.1",
            "user_agent": h.ua,
            "request_body_len": h.req_len,
            "response_body_len": h.resp_len,
            "status_code": h.status,
            "status_msg": h.status_msg,
            "tags": [],
        }
    )
    if h.fuid and h.resp_len:
        d["resp_fuids"] = [h.fuid]
        if h.mime:
            d["resp_mime_types"] = [h.mime]
    d["_path"] = "http"
    return d


def _zeek_ssl(c: _Conn, t: _Tls, at: float) -> dict[str, Any]:
    d: dict[str, Any] = {
        "ts": _zts(at),
        "uid": c.uid,
        **_zeek_id(c),
        "version": t.version,
        "cipher": t.cipher,
    }
    if t.curve:
        d["curve"] = t.curve
    if t.sni:
        d["server_name"] = t.sni
    d["resumed"] = t.resumed
    d["established"] = True
    d["ssl_history"] = "CsiI" if t.version == "TLSv13" else "CsxknGIi"
    d["cert_chain_fps"] = [t.fingerprint] if t.fingerprint and not t.resumed else []
    d["client_cert_chain_fps"] = []
    if t.fingerprint and not t.resumed:
        if t.sni:
            d["sni_matches_cert"] = True
        d["validation_status"] = t.validation
    d["_path"] = "ssl"
    return d


def _eve_ts(t: float) -> str:
    return datetime.fromtimestamp(round(t, 6), JST).strftime("%Y-%m-%dT%H:%M:%S.%f%z")


def _eve_base(c: _Conn, at: float, event_type: str, *, reply: bool = False) -> dict[str, Any]:
    src, sport, dst, dport = (c.dst, c.dport, c.src, c.sport) if reply else (c.src, c.sport, c.dst, c.dport)
    return {
        "timestamp": _eve_ts(at),
        "flow_id": c.flow_id,
        "in_iface": "eth1",
        "event_type": event_type,
        "src_ip": src,
        "src_port": sport,
        "dest_ip": dst,
        "dest_port": dport,
        "proto": c.proto.upper(),
    }


def _eve_http(h: _Http) -> dict[str, Any]:
    d: dict[str, Any] = {"hostname": h.host, "url": h.uri, "http_user_agent": h.ua}
    if h.mime:
        d["http_content_type"] = h.mime
    if h.referrer:
        d["http_refer"] = h.referrer
    d.update({"http_method": h.method, "protocol": "HTTP/1.1", "status": h.status, "length": h.resp_len})
    return d


def _eve_tls(t: _Tls) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if t.subject and not t.resumed:
        d["subject"] = t.subject
        d["issuerdn"] = t.issuer
        d["serial"] = t.serial
        fp = t.fingerprint or ""
        d["fingerprint"] = ":".join(fp[i : i + 2] for i in range(0, 40, 2))
    if t.sni:
        d["sni"] = t.sni
    d["version"] = "TLS 1.3" if t.version == "TLSv13" else "TLS 1.2"
    if t.subject and not t.resumed:
        d["notbefore"] = "2024-01-15T00:00:00"
        d["notafter"] = "2025-01-14T23:59:59"
    return d


def _eve_flow_counts(c: _Conn) -> dict[str, Any]:
    ipb = 52 if c.proto == "tcp" else 28
    return {
        "pkts_toserver": c.opk,
        "pkts_toclient": c.rpk,
        "bytes_toserver": c.ob + c.opk * (ipb + 14),
        "bytes_toclient": c.rb + c.rpk * (ipb + 14),
        "start": _eve_ts(c.ts),
    }


def _eve_events(c: _Conn) -> list[_Line]:
    out: list[_Line] = []
    app = {"dns": "dns", "http": "http", "ssl": "tls", "smtp": "smtp", "smb": "smb", "ntp": "ntp"}.get(
        c.service or "", "failed" if c.proto == "tcp" else None
    )
    if c.proto == "tcp" and c.state in ("S0", "REJ"):
        app = None  # no payload: no protocol to detect
    if c.dns is not None:
        q = c.dns
        query = _eve_base(c, c.ts, "dns")
        query["dns"] = {
            "type": "query",
            "id": q.trans_id,
            "rrname": q.query,
            "rrtype": q.qtype,
            "tx_id": 0,
            "opcode": 0,
        }
        out.append(_Line(c.ts, query, c.scenario))
        answer = _eve_base(c, c.ts + q.rtt, "dns", reply=True)
        body: dict[str, Any] = {
            "version": 2,
            "type": "answer",
            "id": q.trans_id,
            "flags": "8183" if q.rcode == "NXDOMAIN" else "8180",
            "qr": True,
            "rd": True,
            "ra": True,
            "opcode": 0,
            "rrname": q.query,
            "rrtype": q.qtype,
            "rcode": q.rcode,
        }
        if q.answers:
            body["answers"] = [
                {"rrname": q.query, "rrtype": q.qtype, "ttl": int(ttl), "rdata": a}
                for a, ttl in zip(q.answers, q.ttls, strict=True)
            ]
            body["grouped"] = {q.qtype: list(q.answers)}
        answer["dns"] = body
        out.append(_Line(c.ts + q.rtt, answer, c.scenario))
    app_events: list[tuple[float, str, dict[str, Any]]] = []
    for k, h in enumerate(c.http):
        at = c.ts + min(c.duration, 1.0) * (k + 1) / (len(c.http) + 1)
        ev = _eve_base(c, at, "http")
        ev["tx_id"] = k
        ev["http"] = _eve_http(h)
        out.append(_Line(at, ev, c.scenario))
        app_events.append((at, "http", ev["http"]))
    if c.tls is not None:
        at = c.ts + min(c.duration, 0.2)
        ev = _eve_base(c, at, "tls")
        ev["tls"] = _eve_tls(c.tls)
        out.append(_Line(at, ev, c.scenario))
        app_events.append((at, "tls", ev["tls"]))
    for sig in c.alerts:
        at, key, payload = app_events[0] if app_events else (c.ts, "", {})
        ev = _eve_base(c, at, "alert")
        if key == "http":
            ev["tx_id"] = 0
        alert: dict[str, Any] = {
            "action": "allowed",
            "gid": 1,
            "signature_id": sig.sid,
            "rev": sig.rev,
            "signature": sig.msg,
            "category": sig.category,
            "severity": sig.severity,
        }
        if sig.family:
            alert["metadata"] = {"malware_family": [sig.family], "signature_severity": ["Major"]}
        ev["alert"] = alert
        if key:
            ev[key] = payload
        if app:
            ev["app_proto"] = app
        ev["flow"] = _eve_flow_counts(c)
        out.append(_Line(at, ev, c.scenario))
    flow = _eve_base(c, c.end, "flow")
    if app:
        flow["app_proto"] = app
    counts = _eve_flow_counts(c)
    counts.update(
        {
            "end": _eve_ts(c.end),
            "age": int(c.duration),
            "state": "closed" if c.proto == "tcp" and c.state == "SF" else "established",
            "reason": "timeout",
            "alerted": bool(c.alerts),
        }
    )
    flow["flow"] = counts
    if c.proto == "tcp" and c.state in ("S0", "REJ"):
        counts["state"] = "new" if c.state == "S0" else "closed"
        flow["tcp"] = {
            "tcp_flags": "02" if c.state == "S0" else "16",
            "tcp_flags_ts": "02",
            "tcp_flags_tc": "00" if c.state == "S0" else "14",
            "syn": True,
            **({"rst": True, "ack": True} if c.state == "REJ" else {}),
            "state": "syn_sent" if c.state == "S0" else "closed",
        }
    elif c.proto == "tcp":
        flags = "1b" if c.state == "SF" else "02"
        flow["tcp"] = {
            "tcp_flags": flags,
            "tcp_flags_ts": flags,
            "tcp_flags_tc": "1a" if c.rpk else "00",
            "syn": True,
            "fin": c.state == "SF",
            "psh": c.state == "SF",
            "ack": c.state == "SF",
            "state": "closed" if c.state == "SF" else "syn_sent",
        }
    out.append(_Line(c.end, flow, c.scenario))
    return out


_FG_SERVICES = {
    ("tcp", 443): "HTTPS",
    ("tcp", 80): "HTTP",
    ("tcp", 25): "SMTP",
    ("udp", 53): "DNS",
    ("udp", 123): "NTP",
    ("tcp", 993): "IMAPS",
    ("tcp", 21): "FTP",
    ("tcp", 22): "SSH",
    ("tcp", 445): "SMB",
}
#: the session-end action of a TCP session by its Zeek state
_FG_ACTIONS = {"SF": "close", "S0": "timeout", "REJ": "server-rst"}
#: FortiOS writes these unquoted; other strings are quoted
_FG_BARE = {"date", "time", "srcip", "dstip", "transip", "tranip"}


def _kv(pairs: list[tuple[str, Any]]) -> str:
    parts = []
    for k, v in pairs:
        if isinstance(v, int) or k in _FG_BARE:
            parts.append(f"{k}={v}")
        else:
            text = str(v).replace("\\", "\\\\").replace('"', '\\"')
            parts.append(f'{k}="{text}"')
    return " ".join(parts)


def _zeek_json(d: dict[str, Any]) -> str:
    return json.dumps(d, separators=(",", ":"), ensure_ascii=False)


def _eve_json(d: dict[str, Any]) -> str:
    # Suricata's JSON writer escapes "/" (jansson's JSON_ESCAPE_SLASH); json.dumps never
    # emits "/" inside an escape sequence, so replacing it afterwards is safe
    return json.dumps(d, separators=(",", ":"), ensure_ascii=False).replace("/", "\\/")


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(digits * 4):0{digits}x}"


def _uuid(rng: random.Random) -> str:
    h = _hex(rng, 32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _indicators(
    *,
    ips: list[str] | None = None,
    domains: list[str] | None = None,
    urls: list[str] | None = None,
    sha256: list[str] | None = None,
    emails: list[str] | None = None,
) -> dict[str, list[str]]:
    return {
        "ips": ips or [],
        "domains": domains or [],
        "urls": urls or [],
        "sha256": sha256 or [],
        "emails": emails or [],
    }


# ------------------------------------------------------------------------------ intel feeds

DOC_NETS = ("192.0.2.", "198.51.100.", "203.0.113.")
FEODO_FAMILIES = {
    "Pikabot": (1194, 2078, 2222, 5000, 13783),
    "QakBot": (443, 995, 2222, 32101),
    "Emotet": (443, 7080, 8080),
    "Dridex": (443, 3389, 8443),
    "TrickBot": (443, 449),
    "IcedID": (443,),
    "BumbleBee": (443, 8443),
    "BazarLoader": (443,),
}
URLHAUS_REPORTERS = ("demo_hunter", "jp_sec_watch", "abuse_demo", "cert_sample", "honeypot_jp", "mal_tracker")
_WORDS = (
    "invoice",
    "docs",
    "cdn",
    "files",
    "update",
    "secure",
    "portal",
    "share",
    "drive",
    "mail",
    "cloud",
    "bonus",
    "pay",
    "order",
    "shop",
    "dl",
    "get",
    "static",
    "img",
    "app",
    "login",
    "verify",
    "track",
)


class _IntelBuilder:
    """Feodo, URLhaus and plain-list files: the demo's indicators among plausible filler."""

    def __init__(
        self, seed: int, start: float, end: float, used_ips: set[str], used_domains: set[str]
    ) -> None:
        self.rng = random.Random(f"mimamori-demo:{seed}:intel")
        self.start = start
        self.end = end
        self.taken_ips = set(used_ips)
        self.taken_domains = set(used_domains)

    def _ip(self) -> str:
        while True:
            ip = self.rng.choice(DOC_NETS) + str(self.rng.randint(2, 254))
            if ip not in self.taken_ips:
                self.taken_ips.add(ip)
                return ip

    def _domain(self) -> str:
        while True:
            a, b = self.rng.sample(_WORDS, 2)
            d = f"{a}-{b}{self.rng.randint(1, 99)}.{self.rng.choice(('example', 'test'))}"
            if self.rng.random() < 0.4:
                d = f"{self.rng.choice(('www', 'cdn', 'dl', 'files'))}.{d}"
            if d not in self.taken_domains:
                self.taken_domains.add(d)
                return d

    def _when(self, days_lo: float, days_hi: float, *, before: float | None = None) -> datetime:
        t = (self.end if before is None else before) - self.rng.uniform(days_lo, days_hi) * 86400
        return datetime.fromtimestamp(int(t), UTC)

    def feodo(self, c2: list[tuple[str, int, str]]) -> tuple[str, list[str]]:
        rows = []
        for ip, port, malware in c2:
            first = self._when(5, 40, before=self.start)
            rows.append((first, ip, port, "online", datetime.fromtimestamp(self.end, UTC).date(), malware))
        fill = []
        for _ in range(45):
            malware = self.rng.choice(list(FEODO_FAMILIES))
            first = self._when(2, 120)
            online = self.rng.random() < 0.3
            last = (
                datetime.fromtimestamp(self.end, UTC).date()
                if online
                else (first + timedelta(days=self.rng.uniform(0, 20))).date()
            )
            ip = self._ip()
            fill.append(ip)
            rows.append(
                (
                    first,
                    ip,
                    self.rng.choice(FEODO_FAMILIES[malware]),
                    "online" if online else "offline",
                    min(last, datetime.fromtimestamp(self.end, UTC).date()),
                    malware,
                )
            )
        rows.sort(key=lambda r: (r[0], r[1]))
        updated = datetime.fromtimestamp(int(self.end) - 300, UTC).strftime("%Y-%m-%d %H:%M:%S")
        buf = io.StringIO()
        buf.write(
            "################################################################\n"
            "# abuse.ch Feodo Tracker Botnet C2 IP Blocklist (CSV)          #\n"
            f"# Last updated: {updated} UTC                        #\n"
            "#                                                              #\n"
            "# Terms Of Use: https://feodotracker.abuse.ch/blocklist/       #\n"
            "# For questions please contact feodotracker [at] abuse.ch      #\n"
            "################################################################\n"
            "#\n"
        )
        w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
        w.writerow(["first_seen_utc", "dst_ip", "dst_port", "c2_status", "last_online", "malware"])
        for first, ip, port, status, last, malware in rows:
            w.writerow([first.strftime("%Y-%m-%d %H:%M:%S"), ip, port, status, last.isoformat(), malware])
        buf.write(f"# END {len(rows)} entries")  # the real file has no newline after this
        return buf.getvalue(), fill

    def urlhaus(self, listed: list[tuple[str, str, str]]) -> tuple[str, list[str]]:
        """``listed``: (url, tags, reporter) that must be in the file."""
        entries = [
            (self._when(0.5, 5, before=self.start), url, "online", tags, rep) for url, tags, rep in listed
        ]
        fill = []
        for _ in range(60):
            r = self.rng.random()
            if r < 0.35:
                ip = self._ip()
                url = (
                    f"http://{ip}:{self.rng.randint(30000, 60000)}/i"
                    if r < 0.15
                    else (f"http://{ip}/bins/{self.rng.choice(('x86_64', 'arm7', 'mips', 'mpsl'))}")
                )
                tags = "None" if url.endswith("/i") else "elf,mirai,ua-wget"
            else:
                host = self._domain()
                name = self.rng.choice(
                    (
                        "invoice_2024.zip",
                        "scan0419.js",
                        "doc_98321.xlsm",
                        "setup.exe",
                        "payment.iso",
                        "update.msi",
                        "bonus.zip",
                    )
                )
                url = (
                    f"http{'s' if self.rng.random() < 0.3 else ''}://{host}/{self.rng.choice(_WORDS)}/{name}"
                )
                tags = self.rng.choice(
                    (
                        "exe,Emotet",
                        "zip,Qakbot",
                        "js,AsyncRAT",
                        "iso,Pikabot",
                        "None",
                        "msi,DarkGate",
                        "xlsm,Emotet",
                    )
                )
            fill.append(url)
            entries.append(
                (
                    self._when(0.1, 29),
                    url,
                    "online" if self.rng.random() < 0.4 else "offline",
                    tags,
                    self.rng.choice(URLHAUS_REPORTERS),
                )
            )
        entries.sort(key=lambda e: e[0])
        uid = self.rng.randint(2_800_000, 2_900_000)
        newest = datetime.fromtimestamp(int(self.end) - 120, UTC)
        rows = []
        for added, url, status, tags, rep in entries:
            uid += self.rng.randint(1, 40)
            if status == "online":
                last = newest - timedelta(seconds=self.rng.randint(0, 3600))
            else:
                last = min(
                    added + timedelta(hours=self.rng.uniform(1, 48)),
                    newest - timedelta(seconds=self.rng.randint(600, 7200)),
                )
            last = max(added, last)
            rows.append((uid, added, url, status, last, tags, rep))
        rows.reverse()  # newest first, as the real dump
        updated = datetime.fromtimestamp(int(self.end) - 120, UTC).strftime("%Y-%m-%d %H:%M:%S")
        buf = io.StringIO()
        buf.write(
            "################################################################\n"
            "# abuse.ch URLhaus Database Dump (CSV - recent URLs only)      #\n"
            f"# Last updated: {updated} (UTC)                      #\n"
            "#                                                              #\n"
            "# Terms Of Use: https://urlhaus.abuse.ch/api/                  #\n"
            "# For questions please contact urlhaus [at] abuse.ch           #\n"
            "################################################################\n"
            "#\n"
            "# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n"
        )
        w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
        fmt = "%Y-%m-%d %H:%M:%S"
        for uid, added, url, status, last, tags, rep in rows:
            w.writerow(
                [
                    uid,
                    added.strftime(fmt),
                    url,
                    status,
                    last.strftime(fmt),
                    "malware_download",
                    tags,
                    f"https://urlhaus.abuse.ch/url/{uid}/",
                    rep,
                ]
            )
        return buf.getvalue(), fill

    def plain(
        self,
        ips: list[str],
        domains: list[str],
        urls: list[str],
        fill: list[str],
        notes: dict[str, str] | None = None,
    ) -> str:
        """``notes``: a threat name written as a trailing comment after that entry."""
        extra = [self._ip() for _ in range(15)] + [self._domain() for _ in range(15)]
        entries = [*ips, *domains, *urls, *self.rng.sample(fill, min(30, len(fill))), *extra]
        self.rng.shuffle(entries)
        head = (
            "# mimamori demo block list: one indicator a line (IP, domain or URL)\n"
            "# fictional entries only: documentation IP ranges and .example/.test domains\n"
        )
        notes = notes or {}
        return head + "".join(f"{e}  # {notes[e]}\n" if e in notes else f"{e}\n" for e in entries)


# ------------------------------------------------------------------------------ entry point


def generate(
    out_dir: Path,
    *,
    seed: int = 7,
    start: datetime | None = None,
    hours: int = 24,
) -> DemoManifest:
    """Write the demo telemetry, intel feeds and ``manifest.json`` under ``out_dir``.

    ``start`` defaults to ``hours`` before the current hour; a naive ``start`` is read as
    UTC. Every timestamp written lies in ``[start, start + hours)``. The same ``seed``,
    ``start`` and ``hours`` give byte-identical files.
    """
    if hours < MIN_HOURS:
        raise DemoError(f"hours must be at least {MIN_HOURS} (the scenarios need room), got {hours}")
    if start is None:
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours)
    elif start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    start = start.astimezone(UTC)
    end_dt = start + timedelta(hours=hours)
    t_start, t_end = start.timestamp(), end_dt.timestamp()
    provider, tenants = load_tenants()
    out_dir.mkdir(parents=True, exist_ok=True)

    sims = []
    for tenant in tenants:
        sim = _TenantSim(tenant, seed, t_start, t_end)
        sim.background()
        if tenant.scenario == 2:
            sim.scenario2()
        elif tenant.scenario == 6:
            sim.scenario6()
        elif tenant.scenario == 7:
            sim.scenario7()
        elif tenant.scenario == 1:
            sim.scenario1()
        elif tenant.scenario == 3:
            sim.scenario3()
        elif tenant.scenario == 4:
            sim.scenario4()
        if "suricata" in tenant.sources:
            sim.policy_alerts()
        if sim.fg is not None:
            sim.fortigate_traffic()
            sim.fortigate_events()
        sims.append(sim)

    files: list[DemoFile] = []
    counts: dict[int, list[float]] = {}
    per_file: dict[int, dict[str, int]] = {}
    used_ips: set[str] = set()
    used_domains: set[str] = set()
    for sim in sims:
        tid = sim.t.id
        for c in sim.conns:
            used_ips.update((c.src, c.dst))
            used_domains.update(h.host for h in c.http)
            if c.dns:
                used_domains.add(c.dns.query)
            if c.tls and c.tls.sni:
                used_domains.add(c.tls.sni)
        outputs: list[tuple[str, str, list[_Line], Any]] = [
            ("zeek", f"{tid}/zeek/{name}.log", lines, _zeek_json) for name, lines in sim.zeek_logs().items()
        ]
        if "suricata" in sim.t.sources:
            outputs.append(("suricata", f"{tid}/suricata/eve.json", sim.eve(), _eve_json))
        if sim.fg is not None:
            outputs.append(("fortigate", f"{tid}/fortigate/fortigate.log", sim.fortigate_lines, str))
        for source, rel, lines, render in outputs:
            kept = sorted((ln for ln in lines if t_start <= ln.ts < t_end), key=lambda ln: ln.ts)
            scen = sorted({ln.scenario for ln in kept if ln.scenario is not None})
            for ln in kept:
                if ln.scenario is not None:
                    counts.setdefault(ln.scenario, []).append(ln.ts)
                    by_file = per_file.setdefault(ln.scenario, {})
                    by_file[rel] = by_file.get(rel, 0) + 1
            path = out_dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(render(ln.body) + "\n" for ln in kept), encoding="utf-8", newline="\n")
            files.append(DemoFile(tid, source, rel, scen[0] if scen else None, len(kept)))

    truths = [s.truth for s in sims if s.truth is not None]
    for truth in truths:
        stamps = counts.get(truth["scenario"], [])
        truth["events"] = len(stamps)
        truth["events_by_file"] = per_file.get(truth["scenario"], {})
        truth["first_seen"] = _iso_epoch(min(stamps)) if stamps else None
        truth["last_seen"] = _iso_epoch(max(stamps)) if stamps else None
        truth["expected_incidents"] = 1
        truth["also_expected"] = list(SCENARIO_ALSO.get(truth["scenario"], []))
    truths.sort(key=lambda s: s["scenario"])

    intel = _IntelBuilder(seed, t_start, t_end, used_ips, used_domains)
    listed = {ip for s in truths if s["scenario"] in (1, 7) for ip in s["indicators"]["ips"]}
    feodo, feodo_fill = intel.feodo([c for c in (*S7_C2, S1_C2) if c[0] in listed])
    urlhaus, url_fill = intel.urlhaus(
        [
            (f"http://{S2_DOMAIN}{S2_PAYLOAD}", "zip,ransomware", "jp_sec_watch"),
            (f"http://{S2_IP}{S2_PAYLOAD}", "zip,ransomware", "jp_sec_watch"),
            (f"http://{S7_DOWNLOAD_IP}{S7_DOWNLOAD_URI}", "Upatre,exe,Dyre", "cert_sample"),
        ]
    )
    bad_ips = sorted(_bad_ips(truths))
    bad_domains = sorted({d for s in truths for d in s["indicators"]["domains"]})
    bad_urls = sorted({u for s in truths for u in s["indicators"]["urls"]})
    plain = intel.plain(
        bad_ips, bad_domains, bad_urls, feodo_fill + url_fill, notes={S3_KILLSWITCH: "WannaCry"}
    )
    intel_files = {
        "intel/ipblocklist.csv": feodo,
        "intel/urlhaus_csv_recent.csv": urlhaus,
        "intel/blocklist.txt": plain,
    }
    for rel, text in intel_files.items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")

    manifest = DemoManifest(
        root=out_dir,
        seed=seed,
        start=start,
        end=end_dt,
        hours=hours,
        provider=provider,
        tenants=[t.to_dict() for t in tenants],
        files=files,
        intel=list(intel_files),
        scenarios=truths,
        assets=[a for sim in sims for a in sim.assets],
    )
    (out_dir / "manifest.json").write_text(
        json.dumps(manifest.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8", newline="\n"
    )
    return manifest


def _bad_ips(truths: list[dict[str, Any]]) -> set[str]:
    return {ip for s in truths for ip in s["indicators"]["ips"]}
