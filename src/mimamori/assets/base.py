"""The inventory-observer protocol: stages that learn about a tenant's devices from events.

Unlike detectors (pure: batch + state -> alerts), observers write what they learn to the
control plane (the asset table, lease history) and may raise alerts about devices.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import polars as pl
from sqlalchemy.orm import Session

from mimamori.db.models import Tenant
from mimamori.detect.base import AlertDraft


class InventoryObserver(ABC):
    name: ClassVar[str]

    @abstractmethod
    def observe(
        self, session: Session, tenant: Tenant, events: pl.DataFrame, batch_id: str
    ) -> list[AlertDraft]:
        """Update the tenant's inventory from one batch; return alerts about devices."""
