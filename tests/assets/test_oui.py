"""MAC spelling, IEEE OUI vendors, randomised (locally administered) addresses."""

from __future__ import annotations

import pytest

from mimamori.assets.oui import RANDOMISED, is_randomised, normalise_mac, vendor


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("F4-8E-38-8B-B6-03", "f4:8e:38:8b:b6:03"),
        ("f48e.388b.b603", "f4:8e:38:8b:b6:03"),
        ("ff:ff:ff:ff:ff:ff", None),  # broadcast
        ("01:00:5e:00:00:fb", None),  # multicast
        ("00:00:00:00:00:00", None),
        ("not a mac", None),
        (None, None),
    ],
)
def test_normalise_mac(raw: str | None, expected: str | None) -> None:
    assert normalise_mac(raw) == expected


def test_vendor_from_the_ieee_registry() -> None:
    assert vendor("f4:8e:38:8b:b6:03") == "Dell Inc."  # the DHCP client in zeek-rita-testdata


def test_randomised_address_is_named_as_such() -> None:
    assert is_randomised("da:a1:19:12:34:56")
    assert not is_randomised("f4:8e:38:8b:b6:03")
    assert vendor("DA:A1:19:12:34:56") == RANDOMISED
