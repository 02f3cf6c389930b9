"""Real servers and senders the collect tests start: nats-server, rsyslogd; certificates.

A missing binary skips the test locally and fails it under ``CI=true`` (as tests/pg.py
does for PostgreSQL); ``make sysdeps`` installs them (Debian ``nats-server``, ``rsyslog``,
``rsyslog-gnutls``). Every server runs in its own process group on loopback, with its own
config, pid and work files in the test's directory, and is killed at teardown.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import NoReturn

import pytest

from tests.collect.helpers import free_port
from tests.conftest import IN_CI


def need(binary: str, package: str) -> str:
    found = shutil.which(binary) or next(
        (str(p) for p in (Path("/usr/sbin") / binary, Path("/usr/bin") / binary) if p.exists()), None
    )
    if found is None:
        _unavailable(f"{binary} not found; install Debian '{package}' (make sysdeps, as root)")
    return found


def _unavailable(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


class NatsServer:
    """``nats-server -js`` on loopback with its store in ``root``; restartable on one port."""

    def __init__(self, root: Path) -> None:
        self.binary = need("nats-server", "nats-server")
        self.root = root
        self.port = free_port()
        self.store = root / "jetstream"
        self.conf = root / "nats.conf"
        self.conf.write_text(
            f'listen: "127.0.0.1:{self.port}"\nmax_payload: 8MB\njetstream {{ store_dir: "{self.store}" }}\n'
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.root / "nats.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)], stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        wait_port(self.port)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            kill_group(self.proc, sig)
            self.proc = None


def self_signed(dirpath: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 (openssl)."""
    cert, key = dirpath / "cert.pem", dirpath / "key.pem"
    subprocess.run(
        [need("openssl", "openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext",
         "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


class Rsyslog:
    """rsyslogd relaying UDP from ``in_port`` to our receiver over TCP or TLS."""

    def __init__(self, root: Path, target_port: int, *, tls_ca: Path | None = None) -> None:
        self.binary = need("rsyslogd", "rsyslog")
        if tls_ca is not None and not any(Path("/usr/lib").glob("**/rsyslog/lmnsd_gtls.so")):
            _unavailable("rsyslog TLS module lmnsd_gtls not found; install Debian 'rsyslog-gnutls'")
        self.root = root
        self.in_port = free_port(socket.SOCK_DGRAM)
        work = root / "rsyslog-work"
        work.mkdir(parents=True, exist_ok=True)
        tls_global = (
            f'global(DefaultNetstreamDriver="gtls" DefaultNetstreamDriverCAFile="{tls_ca}")\n'
            if tls_ca
            else ""
        )
        tls_action = ' StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="anon"' if tls_ca else ""
        self.conf = root / "rsyslog.conf"
        self.conf.write_text(
            f'global(workDirectory="{work}")\n{tls_global}'
            'module(load="imudp")\n'
            f'input(type="imudp" address="127.0.0.1" port="{self.in_port}")\n'
            f'action(type="omfwd" target="127.0.0.1" port="{target_port}" protocol="tcp"'
            f' TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format"{tls_action}'
            ' queue.type="LinkedList" action.resumeRetryCount="-1" action.resumeInterval="1")\n'
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.root / "rsyslog.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [self.binary, "-n", "-f", str(self.conf), "-i", str(self.root / "rsyslog.pid")],
            stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        log.close()
        time.sleep(1.0)
        if self.proc.poll() is not None:
            raise RuntimeError("rsyslogd exited: " + (self.root / "rsyslog.log").read_text(errors="replace"))

    def stop(self) -> None:
        if self.proc is not None:
            kill_group(self.proc)
            self.proc = None
