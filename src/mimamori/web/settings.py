"""Settings of the web console: cookies, session lifetimes, sign-in limits, request size."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class WebSettings:
    #: Secure cookies; switched off only for plain http on a loopback address (demo, tests)
    cookie_secure: bool = True
    session_idle: timedelta = timedelta(minutes=30)
    session_absolute: timedelta = timedelta(hours=12)
    #: failed passwords on one account before it is locked, and for how long
    lockout_failures: int = 5
    lockout_for: timedelta = timedelta(minutes=15)
    #: per source address: failed sign-ins, and distinct accounts tried, in the window
    source_failures: int = 20
    source_accounts: int = 8
    source_window_seconds: float = 600.0
    #: largest request body accepted (bytes); larger answers 413
    max_body: int = 1_048_576
    #: paths under these prefixes may carry larger bodies (sensor ingest)
    large_body_prefixes: tuple[str, ...] = ("/api/v1/ingest/",)
    max_large_body: int = 64 * 1_048_576
    #: how often the silent-sensor check runs in the server (0: never)
    sensor_check_seconds: float = 300.0
    sensor_silence: timedelta = timedelta(hours=6)
