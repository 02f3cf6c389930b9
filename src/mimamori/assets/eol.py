"""What a device runs, from what it shows on the wire, and whether that has reached end of life.

Two halves:

- **Identification**: user agents (browsers, ``Microsoft-CryptoAPI/<NT version>``), server
  banners from Zeek ``software.log`` (``Microsoft-IIS/<version>``), DHCP host names and DHCP
  vendor classes (``MSFT 5.0``, ``android-dhcp-13``) become an ``OsGuess``: OS family, name,
  version, device class, and the endoflife.date product and release-cycle keys to check.
- **End of life**: ``EolTable`` answers ``is_eol(product, cycle_keys, when)`` from release
  cycles in endoflife.date's shape. The package ships ``eol_data.yaml`` (extracted from the
  endoflife.date repository, MIT; see its ``source`` field). ``EolTable.refresh_from(path)``
  merges a newer file when one is available: an endoflife.date API answer saved to disk
  (v0 ``/api/<product>.json``, a list of cycles, product from the file name; or v1
  ``/api/v1/products/<product>``, ``{"result": {"name", "releases": [...]}}``), a product page
  from the endoflife.date repository (``products/<product>.md``, YAML front matter), or a
  file in our own shape. Nothing here reaches the network.

A coarse version matches every cycle it could be (``Windows NT 10.0`` is Windows 10 *or* 11,
any edition): the answer is ``True`` only when all of them are past end of life, ``False``
when none is, and ``None`` (unknown) when they disagree.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from mimamori import yamlio

__all__ = [
    "EolError",
    "EolTable",
    "OsGuess",
    "build_data",
    "default_table",
    "guess_from_dhcp_vendor",
    "guess_from_hostname",
    "guess_from_os_name",
    "guess_from_software",
    "guess_from_user_agent",
]

DATA_FILE = "eol_data.yaml"


class EolError(Exception):
    """An end-of-life data file that cannot be read; names the file and the reason."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


# ------------------------------------------------------------------ identification


@dataclass(frozen=True)
class OsGuess:
    """An operating system as identified from one observation.

    ``confidence``: 3 explicit (an agent or firewall reporting the OS), 2 a user agent or
    banner with a version, 1 a hint without a reliable version (host name, vendor class).
    ``cycles`` are endoflife.date release-cycle keys of ``product`` this could be.
    """

    family: str  # windows, macos, ios, ipados, android, linux, chromeos
    name: str
    version: str | None
    device_class: str  # phone, tablet, pc, unknown
    product: str | None = None
    cycles: tuple[str, ...] = ()
    confidence: int = 2

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}" if self.version else self.name


#: Windows NT kernel version -> (marketing version, endoflife.date cycle keys of "windows")
WINDOWS_NT: dict[str, tuple[str, tuple[str, ...]]] = {
    "5.0": ("2000", ("2000",)),
    "5.1": ("XP", ("5",)),
    "5.2": ("XP x64 / Server 2003", ("5",)),
    "6.0": ("Vista", ("6",)),
    "6.1": ("7", ("7",)),
    "6.2": ("8", ("8",)),
    "6.3": ("8.1", ("8.1",)),
    "10.0": ("10/11", ("10", "11")),
}

#: IIS version -> (Windows Server version, endoflife.date cycle keys of "windows-server")
IIS_SERVER: dict[str, tuple[str, tuple[str, ...]]] = {
    "5.0": ("2000", ("2000",)),
    "6.0": ("2003", ("2003",)),
    "7.0": ("2008", ("2008",)),
    "7.5": ("2008 R2", ("2008-r2",)),
    "8.0": ("2012", ("2012",)),
    "8.5": ("2012 R2", ("2012-r2",)),
    "10.0": ("2016 or later", ("2016", "2019", "2022", "2025")),
}

_NT = re.compile(r"Windows NT (\d+\.\d+)")
_CRYPTOAPI = re.compile(r"Microsoft-CryptoAPI/(\d+\.\d+)", re.IGNORECASE)
_IPHONE = re.compile(r"\((iPhone|iPod)[^)]*?OS (\d+)(?:_(\d+))?")
_IPAD = re.compile(r"\(iPad[^)]*?OS (\d+)(?:_(\d+))?")
_ANDROID = re.compile(r"Android (\d+)(?:\.(\d+))?")
_MACOS = re.compile(r"Mac OS X (\d+)[._](\d+)(?:[._](\d+))?")
_UBUNTU = re.compile(r"Ubuntu/(\d+\.\d+)")
_WIN_OLD = re.compile(r"Windows (98|95|ME|9x)\b|Win(98|95)\b")


def _win(ver: str | None) -> OsGuess | None:
    if ver is None or ver not in WINDOWS_NT:
        return None
    name, cycles = WINDOWS_NT[ver]
    return OsGuess("windows", "Windows", name, "pc", "windows", cycles)


@lru_cache(maxsize=4096)
def guess_from_user_agent(ua: str | None) -> OsGuess | None:
    """The OS an HTTP (or CryptoAPI) user agent reveals, or ``None``."""
    if not ua:
        return None
    if m := _CRYPTOAPI.search(ua):
        return _win(m.group(1))
    if m := _IPAD.search(ua):
        ipad = m.group(1)
        if int(ipad) >= 13:
            return OsGuess("ipados", "iPadOS", ipad, "tablet", "ipados", (ipad,))
        return OsGuess("ios", "iOS", ipad, "tablet", "ios", (ipad,))
    if m := _IPHONE.search(ua):
        iphone = m.group(2)
        return OsGuess("ios", "iOS", iphone, "phone", "ios", (iphone,))
    if m := _ANDROID.search(ua):
        kind = "phone" if "Mobile" in ua else "tablet"
        if "; K)" in ua or "; K;" in ua:  # Chrome's reduced UA freezes "Android 10; K"
            return OsGuess("android", "Android", None, kind, "android")
        a_major, a_minor = m.group(1), m.group(2)
        cycles = (f"{a_major}.{a_minor}", a_major) if a_minor is not None else (a_major,)
        version = f"{a_major}.{a_minor}" if a_minor is not None else a_major
        return OsGuess("android", "Android", version, kind, "android", cycles)
    if "Windows Phone" in ua:
        return OsGuess("windows", "Windows Phone", None, "phone")
    if m := _NT.search(ua):
        return _win(m.group(1))
    if m := _WIN_OLD.search(ua):
        return OsGuess("windows", "Windows", m.group(1) or m.group(2), "pc", "windows", ("9x",))
    if "CrOS" in ua:
        return OsGuess("chromeos", "ChromeOS", None, "pc")
    if m := _MACOS.search(ua):
        major, minor = int(m.group(1)), int(m.group(2))
        if (major, minor) >= (10, 15):  # Safari/Chrome/Firefox freeze at 10_15_7 on macOS 11+
            return OsGuess("macos", "macOS", "10.15 or later", "pc", "macos")
        return OsGuess("macos", "macOS", f"{major}.{minor}", "pc", "macos", (f"{major}.{minor}",))
    if "Macintosh" in ua or "Mac OS X" in ua:
        return OsGuess("macos", "macOS", None, "pc", "macos")
    if m := _UBUNTU.search(ua):
        return OsGuess("linux", "Ubuntu", m.group(1), "pc", "ubuntu", (m.group(1),))
    if "Linux" in ua or "X11" in ua:
        return OsGuess("linux", "Linux", None, "pc")
    return None


@lru_cache(maxsize=4096)
def guess_from_software(name: str | None, version: str | None, ua: str | None) -> OsGuess | None:
    """The OS behind a Zeek ``software.log`` entry (a browser UA or a server banner)."""
    if name and name.lower() == "microsoft-iis" and version:
        key = ".".join(version.split(".")[:2])
        if key in IIS_SERVER:
            label, cycles = IIS_SERVER[key]
            return OsGuess("windows", "Windows Server", label, "unknown", "windows-server", cycles)
    if name and name.lower() == "microsoft-cryptoapi" and version:
        return _win(".".join(version.split(".")[:2]))
    return guess_from_user_agent(ua)


_HOST_HINTS: tuple[tuple[re.Pattern[str], OsGuess], ...] = (
    (re.compile(r"iphone", re.I), OsGuess("ios", "iOS", None, "phone", "ios", confidence=1)),
    (re.compile(r"ipad", re.I), OsGuess("ipados", "iPadOS", None, "tablet", "ipados", confidence=1)),
    (
        re.compile(r"android|galaxy|pixel|xperia|aquos|arrows|oppo|xiaomi|redmi", re.I),
        OsGuess("android", "Android", None, "phone", "android", confidence=1),
    ),
    (
        re.compile(r"macbook|imac|mac-?mini|mac-?pro", re.I),
        OsGuess("macos", "macOS", None, "pc", "macos", confidence=1),
    ),
    # Windows 10/11 name new installs DESKTOP-XXXXXXX / LAPTOP-XXXXXXXX
    (
        re.compile(r"^(desktop|laptop)-[a-z0-9]{6,8}$", re.I),
        OsGuess("windows", "Windows", "10/11", "pc", "windows", ("10", "11"), confidence=1),
    ),
)


@lru_cache(maxsize=4096)
def guess_from_hostname(hostname: str | None) -> OsGuess | None:
    """A weak hint from a DHCP host name (``Taros-iPhone``, ``DESKTOP-1A2B3C4``)."""
    if not hostname:
        return None
    for pattern, guess in _HOST_HINTS:
        if pattern.search(hostname):
            return guess
    return None


_WIN_NAME = re.compile(r"\b(XP|Vista|2000|8\.1|7|8|10|11)\b", re.I)
_WIN_CYCLES = {
    "xp": "5",
    "vista": "6",
    "2000": "2000",
    "7": "7",
    "8": "8",
    "8.1": "8.1",
    "10": "10",
    "11": "11",
}
_SERVER_NAME = re.compile(r"\b(2000|2003|2008|2012|2016|2019|2022|2025)(?:\s*(R2))?", re.I)
_MAJOR_MINOR = re.compile(r"(\d+)(?:\.(\d+))?")


@lru_cache(maxsize=1024)
def guess_from_os_name(name: str | None, version: str | None = None) -> OsGuess | None:
    """An OS reported outright (a firewall's device list, an agent): ``Windows XP``, ``iOS 17.1``."""
    if not name:
        return None
    text = f"{name} {version or ''}".strip()
    low = text.lower()
    if "windows" in low and "server" in low:
        m = _SERVER_NAME.search(text)
        label = f"{m.group(1)} R2" if m and m.group(2) else (m.group(1) if m else None)
        cycles = (f"{m.group(1)}-r2",) if m and m.group(2) else ((m.group(1),) if m else ())
        return OsGuess("windows", "Windows Server", label, "unknown", "windows-server", cycles, 3)
    if "windows" in low:
        m = _WIN_NAME.search(text)
        key = m.group(1).lower() if m else None
        label = {"xp": "XP", "vista": "Vista"}.get(key or "", key)
        cycles = (_WIN_CYCLES[key],) if key else ()
        return OsGuess("windows", "Windows", label, "pc", "windows", cycles, 3)
    for marker, family, os_name, product, device_class in (
        ("ipad", "ipados", "iPadOS", "ipados", "tablet"),
        ("ios", "ios", "iOS", "ios", "phone"),
        ("iphone", "ios", "iOS", "ios", "phone"),
        ("android", "android", "Android", "android", "phone"),
        ("mac", "macos", "macOS", "macos", "pc"),
    ):
        if marker in low:
            m = _MAJOR_MINOR.search(text)
            if m is None:
                return OsGuess(family, os_name, None, device_class, product, (), 3)
            major, minor = m.group(1), m.group(2)
            # macOS 10.x and Android x.y name cycles by major.minor; the others by major
            keys = (f"{major}.{minor}", major) if minor is not None else (major,)
            if family == "macos" and major != "10":
                keys = (major,)
            if family in {"ios", "ipados"}:
                keys = (major,)
            return OsGuess(
                family, os_name, ".".join(k for k in (major, minor) if k), device_class, product, keys, 3
            )
    if "linux" in low or "ubuntu" in low or "debian" in low:
        return OsGuess("linux", name, version, "unknown", None, (), 3)
    return OsGuess(low.split()[0], name, version, "unknown", None, (), 3)


_ANDROID_DHCP = re.compile(r"android-dhcp-(\d+)", re.I)


@lru_cache(maxsize=1024)
def guess_from_dhcp_vendor(vendor_class: str | None) -> OsGuess | None:
    """A hint from the DHCP vendor class identifier (option 60): Zeek's ``client_software``,
    Suricata's ``vendor_class_identifier``, carried in ``user_agent.original`` of DHCP events."""
    if not vendor_class:
        return None
    if vendor_class.startswith("MSFT 5.0"):  # Windows 2000 and every later version
        return OsGuess("windows", "Windows", None, "pc", "windows", confidence=1)
    if vendor_class.startswith("MSFT 98"):
        return OsGuess("windows", "Windows", "98", "pc", "windows", ("9x",), confidence=1)
    if m := _ANDROID_DHCP.match(vendor_class):
        major = m.group(1)
        return OsGuess("android", "Android", major, "phone", "android", (major,), confidence=1)
    if vendor_class.startswith("dhcpcd"):
        return OsGuess("linux", "Linux", None, "unknown", confidence=1)
    return None


# ------------------------------------------------------------------ end of life


def _as_date(value: Any) -> date | bool | None:
    """An endoflife.date ``eol`` value: a date, ``true``/``false``, or missing."""
    if isinstance(value, bool):
        return value
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def _cycle_matches(cycle: str, key: str) -> bool:
    # "7" matches "7-sp1", "10" matches "10-22h2" and "10-21h2-e-lts", "8" does not match "8.1"
    return cycle == key or cycle.startswith(key + "-")


class EolTable:
    """Release cycles per product: ``{product: {cycle: {"eol": date|bool, "label": str}}}``."""

    def __init__(self, products: dict[str, dict[str, dict[str, Any]]] | None = None) -> None:
        self.products: dict[str, dict[str, dict[str, Any]]] = products or {}
        self.sources: list[str] = []

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> EolTable:
        table = cls()
        table.merge(data)
        return table

    def merge(self, data: dict[str, Any]) -> None:
        """Merge a file in our shape (``{"products": {name: [cycle, ...]}}``)."""
        for product, cycles in data.get("products", {}).items():
            self._merge_cycles(product, cycles)
        if data.get("source"):
            self.sources.append(str(data["source"]))

    def _merge_cycles(self, product: str, cycles: list[dict[str, Any]]) -> int:
        known = self.products.setdefault(product, {})
        n = 0
        for c in cycles:
            name = c.get("cycle", c.get("releaseCycle", c.get("name")))
            if name is None:
                continue
            eol = _as_date(c["eolFrom"] if "eolFrom" in c else c.get("eol"))
            if "isEol" in c and eol is None:
                eol = bool(c["isEol"])
            known[str(name)] = {
                "eol": eol,
                "label": c.get("label") or c.get("releaseLabel") or str(name),
            }
            n += 1
        return n

    def refresh_from(self, path: str | Path, product: str | None = None) -> int:
        """Merge newer cycles from a file on disk; returns how many cycles were read.

        ``path`` may be an endoflife.date API answer (v0 list of cycles, product from
        ``product`` or the file name; v1 ``{"result": {...}}``), an endoflife.date product
        page (``.md`` with YAML front matter), or a file in this module's own shape.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise EolError(str(path), f"cannot read: {exc}") from exc
        if path.suffix == ".md":
            return self._merge_markdown(path, text, product)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EolError(str(path), f"not JSON: {exc}") from exc
        if isinstance(data, list):  # API v0: /api/<product>.json
            return self._merge_cycles(product or path.stem, data)
        if isinstance(data, dict) and isinstance(data.get("result"), dict):  # API v1
            result = data["result"]
            name = product or result.get("name") or path.stem
            return self._merge_cycles(str(name), list(result.get("releases") or []))
        if isinstance(data, dict) and isinstance(data.get("products"), dict):
            before = sum(len(v) for v in self.products.values())
            self.merge(data)
            return sum(len(v) for v in self.products.values()) - before
        raise EolError(str(path), "not an endoflife.date answer nor a mimamori EOL data file")

    def _merge_markdown(self, path: Path, text: str, product: str | None) -> int:
        parts = text.split("---", 2)
        if len(parts) < 3:
            raise EolError(str(path), "no YAML front matter")
        try:
            front = yamlio.safe_load(parts[1])
        except yaml.YAMLError as exc:
            raise EolError(str(path), f"bad front matter: {exc}") from exc
        releases = front.get("releases") if isinstance(front, dict) else None
        if not isinstance(releases, list):
            raise EolError(str(path), "front matter has no releases list")
        return self._merge_cycles(product or path.stem, releases)

    def is_eol(self, product: str | None, cycles: tuple[str, ...], when: datetime | date) -> bool | None:
        """True when every matching cycle is past end of life at ``when``; None if unknown."""
        if not product or not cycles or product not in self.products:
            return None
        day = when.date() if isinstance(when, datetime) else when
        states: set[bool] = set()
        for name, info in self.products[product].items():
            if not any(_cycle_matches(name, key) for key in cycles):
                continue
            eol = info["eol"]
            if isinstance(eol, bool):
                states.add(eol)
            elif isinstance(eol, date):
                states.add(eol <= day)
        return states.pop() if len(states) == 1 else None

    def to_data(self, source: str = "") -> dict[str, Any]:
        """This table in the shipped file's shape (dates as ISO text)."""
        products = {
            product: [
                {
                    "cycle": name,
                    "label": info["label"],
                    "eol": info["eol"].isoformat() if isinstance(info["eol"], date) else info["eol"],
                }
                for name, info in cycles.items()
            ]
            for product, cycles in sorted(self.products.items())
        }
        return {"source": source, "products": products}


#: products shipped in eol_data.yaml (the endoflife.date repository's products/<name>.md)
SHIPPED_PRODUCTS = ("windows", "windows-server", "macos", "ios", "ipados", "android", "ubuntu", "debian")

#: releases older than endoflife.date tracks, dated from Microsoft's lifecycle pages
LEGACY = {"windows": [{"cycle": "9x", "label": "98/ME", "eol": "2006-07-11"}]}


def build_data(products_dir: str | Path, source: str) -> dict[str, Any]:
    """The shipped data file, built from endoflife.date product pages (how it was made)."""
    table = EolTable()
    for name in SHIPPED_PRODUCTS:
        table.refresh_from(Path(products_dir) / f"{name}.md")
    for product, cycles in LEGACY.items():
        table._merge_cycles(product, cycles)
    return table.to_data(source)


@cache
def _shipped() -> dict[str, Any]:
    text = resources.files("mimamori.assets").joinpath(DATA_FILE).read_text(encoding="utf-8")
    data: dict[str, Any] = yamlio.safe_load(text)
    return data


def default_table() -> EolTable:
    """A fresh table from the shipped data file (refresh it with ``refresh_from``)."""
    return EolTable.from_data(_shipped())
