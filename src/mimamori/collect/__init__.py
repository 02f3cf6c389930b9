"""Lossless collection: receivers (HTTP, syslog), a durable spool, and batch processing.

What a receiver accepts is appended and fsynced to the spool (``collect.spool``) before it
is acknowledged. One consumer reads the spool in order and commits its position only once
a batch is safe downstream: stored by the pipeline (embedded mode, ``collect.processor``)
or accepted by NATS JetStream (scale-out mode, ``collect.nats``, consumed by
``mimamori worker``). Every batch carries an idempotent id that the pipeline uses for its
archive file names and alert dedup keys, and that the ``collect_batch`` table records in
the same transaction as the batch's alerts, so a batch processed twice is stored once.
"""

from __future__ import annotations


class CollectError(Exception):
    """Root of the collect package's errors."""


class QuotaExceeded(CollectError):
    """The spool (``scope="disk"``) or a tenant's share of it (``scope="tenant"``) is full."""

    def __init__(self, scope: str, reason: str, retry_after: int = 5) -> None:
        super().__init__(reason)
        self.scope = scope
        self.reason = reason
        self.retry_after = retry_after


__all__ = ["CollectError", "QuotaExceeded"]
