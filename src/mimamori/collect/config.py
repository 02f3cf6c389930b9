"""Collection settings, from the environment (``MIMAMORI_*``) or the command line.

The mode follows from configuration alone: without ``MIMAMORI_NATS_URL`` everything runs
in one process (spool -> pipeline, SQLite or PostgreSQL); with it the receivers forward
the spool to NATS JetStream and ``mimamori worker`` processes store the batches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from mimamori.config import Settings


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


@dataclass
class CollectConfig:
    spool_dir: Path
    nats_url: str | None = None
    max_spool_bytes: int = 1 << 30
    tenant_max_bytes: int | None = 256 << 20
    segment_bytes: int = 64 << 20
    max_body_bytes: int = 64 << 20  # an HTTP request, after gunzip
    chunk_bytes: int = 2 << 20  # spool records (and JetStream messages) are cut near this size
    max_line_bytes: int = 4 << 20  # an HTTP line longer than this rejects the request (413)
    max_message_bytes: int = 2 << 20  # a syslog message longer than this is cut (logged)
    flush_bytes: int = 1 << 20  # a syslog batch is spooled at this size ...
    flush_seconds: float = 0.5  # ... or after this long
    idle_seconds: float = 300.0  # a TCP/TLS syslog client silent this long is disconnected
    wait_seconds: float = 10.0  # HTTP waits this long for the batch to be stored (embedded)
    host: str = "127.0.0.1"
    syslog_udp: int | None = None
    syslog_tcp: int | None = None
    syslog_tls: int | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    subject_prefix: str = "mimamori.raw"
    stream: str = "MIMAMORI_RAW"
    nats_replicas: int = 1  # 3 on a three-node JetStream cluster
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, settings: Settings, **overrides: object) -> CollectConfig:
        cfg = cls(
            spool_dir=Path(os.environ.get("MIMAMORI_SPOOL_DIR") or settings.data_dir / "spool"),
            nats_url=os.environ.get("MIMAMORI_NATS_URL") or None,
            max_spool_bytes=_int("MIMAMORI_SPOOL_MAX_BYTES", 1 << 30),
            tenant_max_bytes=_int("MIMAMORI_SPOOL_TENANT_MAX_BYTES", 256 << 20),
            nats_replicas=_int("MIMAMORI_NATS_REPLICAS", 1),
        )
        for key, value in overrides.items():
            if value is not None:
                setattr(cfg, key, value)
        return cfg
