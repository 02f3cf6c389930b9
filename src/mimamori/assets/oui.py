"""MAC addresses: one spelling, the vendor from the IEEE OUI registry, randomised addresses.

Phones and tablets (iOS 14+, Android 10+, Windows "random hardware addresses") join Wi-Fi
with a locally administered address (the 0x02 bit of the first octet): the IEEE registry
cannot name its maker, and such an address is itself a sign of a private device.
"""

from __future__ import annotations

import re
from functools import lru_cache

import netaddr

__all__ = ["RANDOMISED", "is_randomised", "normalise_mac", "vendor"]

#: the vendor recorded for a locally administered (randomised, "private") address
RANDOMISED = "randomised (private address)"

_HEX = re.compile(r"[0-9a-f]{12}")


@lru_cache(maxsize=65536)
def normalise_mac(mac: str | None) -> str | None:
    """``aa:bb:cc:dd:ee:ff`` for any common spelling; None for junk, broadcast, multicast, zero."""
    if not mac:
        return None
    digits = re.sub(r"[^0-9a-f]", "", mac.lower())
    if not _HEX.fullmatch(digits) or digits == "000000000000":
        return None
    if int(digits[:2], 16) & 0x01:  # group (multicast/broadcast) address: never one device
        return None
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def is_randomised(mac: str) -> bool:
    """Locally administered (the U/L bit set): randomised by the device, not from a vendor."""
    return bool(int(mac[:2], 16) & 0x02)


@lru_cache(maxsize=65536)
def vendor(mac: str | None) -> str | None:
    """The registered organisation of a MAC's OUI, ``RANDOMISED``, or None when unregistered."""
    norm = normalise_mac(mac)
    if norm is None:
        return None
    if is_randomised(norm):
        return RANDOMISED
    try:
        org = netaddr.EUI(norm).oui.registration().org
    except (netaddr.NotRegisteredError, netaddr.AddrFormatError, IndexError):
        return None
    return str(org).strip() or None
