"""Passive asset inventory: observers that learn a tenant's devices from its events."""

from __future__ import annotations

from mimamori.assets.base import InventoryObserver
from mimamori.assets.inventory import DeviceInventoryObserver

#: observer name -> class; the one place an observer is registered.
OBSERVERS: dict[str, type[InventoryObserver]] = {DeviceInventoryObserver.name: DeviceInventoryObserver}


def default_observers() -> list[InventoryObserver]:
    return [cls() for cls in OBSERVERS.values()]


__all__ = ["OBSERVERS", "InventoryObserver", "default_observers"]
