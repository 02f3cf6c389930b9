"""Observed strings -> OS and version; end-of-life answers from the shipped and refreshed data."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from mimamori.assets.eol import (
    EolError,
    EolTable,
    default_table,
    guess_from_dhcp_vendor,
    guess_from_hostname,
    guess_from_os_name,
    guess_from_software,
    guess_from_user_agent,
)

DAY = date(2026, 11, 22)


@pytest.mark.parametrize(
    ("ua", "label", "device_class", "eol"),
    [
        ("Microsoft-CryptoAPI/5.1", "Windows XP", "pc", True),
        ("Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 5.1; Trident/4.0)", "Windows XP", "pc", True),
        ("Mozilla/5.0 (Windows; U; Windows NT 6.0; en-US)", "Windows Vista", "pc", True),
        ("Mozilla/5.0 (Windows NT 6.1; Win64; x64) Chrome/65.0", "Windows 7", "pc", True),
        ("Mozilla/5.0 (Windows NT 6.3; Win64; x64)", "Windows 8.1", "pc", True),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0", "Windows 10/11", "pc", None),
        ("Microsoft-CryptoAPI/10.0", "Windows 10/11", "pc", None),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 12_5_7 like Mac OS X)", "iOS 12", "phone", True),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X)", "iOS 18", "phone", False),
        ("Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X)", "iPadOS 17", "tablet", False),
        ("Mozilla/5.0 (Linux; Android 9; SM-G960F) Mobile Safari/537.36", "Android 9", "phone", True),
        ("Mozilla/5.0 (Linux; Android 15; Pixel 9) Mobile", "Android 15", "phone", False),
        ("Mozilla/5.0 (Linux; Android 10; K) Chrome/120.0 Mobile", "Android", "phone", None),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_6_3; en-us)", "macOS 10.6", "pc", True),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)", "macOS 10.15 or later", "pc", None),
        ("Mozilla/5.0 (X11; Linux x86_64) Firefox/56.0", "Linux", "pc", None),
    ],
)
def test_user_agent_to_os_and_eol(ua: str, label: str, device_class: str, eol: bool | None) -> None:
    guess = guess_from_user_agent(ua)
    assert guess is not None
    assert (guess.label, guess.device_class) == (label, device_class)
    assert default_table().is_eol(guess.product, guess.cycles, DAY) is eol


def test_unidentifiable_user_agents() -> None:
    assert guess_from_user_agent("curl/7.58.0") is None
    assert guess_from_user_agent(None) is None


def test_software_log_banners() -> None:
    iis = guess_from_software("Microsoft-IIS", "7.0", "Microsoft-IIS/7.0")
    assert iis is not None and iis.label == "Windows Server 2008"
    assert default_table().is_eol(iis.product, iis.cycles, DAY) is True
    crypto = guess_from_software("Microsoft-CryptoAPI", "6.1", "Microsoft-CryptoAPI/6.1")
    assert crypto is not None and crypto.label == "Windows 7"


def test_hostname_and_dhcp_vendor_hints() -> None:
    phone = guess_from_hostname("Hanakos-iPhone")
    assert phone is not None and (phone.family, phone.device_class, phone.confidence) == ("ios", "phone", 1)
    desktop = guess_from_hostname("DESKTOP-1A2B3C4")
    assert desktop is not None and desktop.label == "Windows 10/11"
    assert guess_from_hostname("printer-2f") is None
    android = guess_from_dhcp_vendor("android-dhcp-13")
    assert android is not None and android.label == "Android 13"


def test_eol_depends_on_the_date() -> None:
    table = default_table()
    assert table.is_eol("windows", ("7",), date(2019, 12, 31)) is False
    assert table.is_eol("windows", ("7",), date(2020, 1, 15)) is True
    assert table.is_eol("nonexistent", ("1",), DAY) is None


def test_refresh_from_api_v0_and_v1(tmp_path: Path) -> None:
    table = default_table()
    v0 = tmp_path / "windows.json"
    v0.write_text(json.dumps([{"cycle": "11-24h2-w", "eol": "2026-01-01"}]))
    assert table.refresh_from(v0) == 1
    assert table.is_eol("windows", ("11-24h2-w",), DAY) is True
    v1 = tmp_path / "answer.json"
    v1.write_text(
        json.dumps({"result": {"name": "fortios", "releases": [{"name": "6.0", "eolFrom": "2022-09-29"}]}})
    )
    assert table.refresh_from(v1) == 1
    assert table.is_eol("fortios", ("6.0",), DAY) is True


def test_refresh_from_an_endoflife_product_page(tmp_path: Path) -> None:
    page = tmp_path / "ios.md"
    page.write_text('---\ntitle: iOS\nreleases:\n  - releaseCycle: "99"\n    eol: 2026-01-01\n---\n\ntext\n')
    table = EolTable()
    assert table.refresh_from(page) == 1
    assert table.is_eol("ios", ("99",), DAY) is True


def test_bad_refresh_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    with pytest.raises(EolError, match=r"x\.json: not JSON"):
        default_table().refresh_from(bad)
    with pytest.raises(EolError, match="cannot read"):
        default_table().refresh_from(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("name", "version", "label", "eol"),
    [
        ("Windows XP", None, "Windows XP", True),
        ("Windows 7 Professional", None, "Windows 7", True),
        ("Windows", "10", "Windows 10", None),  # LTSC editions are still supported
        ("Windows Server 2008 R2", None, "Windows Server 2008 R2", True),
        ("iOS", "17.1", "iOS 17.1", True),
        ("macOS", "14.2", "macOS 14.2", False),
        ("Mac OS X", "10.6.8", "macOS 10.6", True),
        ("Android", "12", "Android 12", True),
    ],
)
def test_reported_os_names(name: str, version: str | None, label: str, eol: bool | None) -> None:
    guess = guess_from_os_name(name, version)
    assert guess is not None and (guess.label, guess.confidence) == (label, 3)
    assert default_table().is_eol(guess.product, guess.cycles, DAY) is eol
