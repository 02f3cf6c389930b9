"""Database fixtures: a throwaway PostgreSQL server per session and migrated databases per test.

Registered for the whole suite by ``tests/conftest.py`` (``pytest_plugins``). Use:

- ``db_url`` — a migrated, empty control-plane database, once on SQLite and once on
  PostgreSQL (the PostgreSQL run carries the ``postgres`` mark); ``db_engine`` is the same
  as an ``Engine`` from ``mimamori.db.session.make_engine``.
- ``empty_db_url`` — the same two backends, but never migrated (for migration tests).
- ``pg_url`` — a fresh, empty PostgreSQL database of its own.
- ``pg_server`` — the session's ``PostgresServer`` (``create_database``/``drop_database``).

Tests that use the server are marked ``postgres`` automatically (``-m "not postgres"``).

The server is started once per session from the PostgreSQL binaries on PATH or in
``/usr/lib/postgresql/<version>/bin`` (``$MIMAMORI_PG_BIN`` wins), in a temporary directory,
listening on 127.0.0.1 only, with durability switched off for speed. As root it runs as the
``postgres`` system user (or ``nobody``), since PostgreSQL refuses to run as root. Without
binaries the PostgreSQL tests skip, or fail under ``CI=true``.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine

from mimamori.db import migrate
from mimamori.db.session import make_engine
from tests.conftest import IN_CI

PG_BIN_ENV = "MIMAMORI_PG_BIN"
PG_TOOLS = ("initdb", "pg_ctl", "postgres")
SUPERUSER = "postgres"


class PostgresUnavailable(RuntimeError):
    """No usable PostgreSQL server binaries on this machine."""


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", bin_dir.parent.name))


def find_pg_bin() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, newest version first."""
    candidates: list[Path] = []
    if os.environ.get(PG_BIN_ENV):  # explicit: no fallback (an unusable value means "none")
        candidates.append(Path(os.environ[PG_BIN_ENV]))
    else:
        on_path = shutil.which("pg_ctl")
        if on_path:  # may be a symlink into /usr/lib/postgresql/<ver>/bin
            candidates += [Path(on_path).parent, Path(on_path).resolve().parent]
        debian = Path("/usr/lib/postgresql").glob("*/bin")  # not on PATH after apt-get install
        candidates += sorted(debian, key=_version_key, reverse=True)
    for bin_dir in candidates:
        if all(os.access(bin_dir / tool, os.X_OK) for tool in PG_TOOLS):
            return bin_dir
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, for tests only (trust auth)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = 0
        self._run_as: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            self._run_as = _unprivileged_user()
        # /tmp is traversable by the server user (a root-only $TMPDIR might not be), and short
        # enough for the unix socket path (about 100 bytes at most).
        long_tmp = len(tempfile.gettempdir()) > 60
        base = "/tmp" if (self._run_as is not None or long_tmp) and os.path.isdir("/tmp") else None
        self.root = Path(tempfile.mkdtemp(prefix="mimamori-pg-", dir=base))
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.log_file = self.root / "postgres.log"
        self._names = itertools.count(1)
        self._watchdog: subprocess.Popen[bytes] | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, attempts: int = 3) -> None:
        self.socket_dir.mkdir()
        if self._run_as is not None:
            for path in (self.root, self.socket_dir):
                os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)
        self._tool(
            "initdb",
            "-D", str(self.data_dir),
            "-U", SUPERUSER,
            "-A", "trust",
            "-E", "UTF8",
            "--locale=C",
            "--no-sync",
        )  # fmt: skip
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# mimamori test server: local only, no durability\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "shared_buffers = 32MB\nmax_connections = 100\n"
            )
        atexit.register(self.stop)
        self._start_watchdog()
        for attempt in range(attempts):
            self.port = _free_port()
            try:
                log = str(self.log_file)
                self._pg_ctl("start", "-w", "-t", "60", "-l", log, "-o", f"-p {self.port}")
                break
            except subprocess.CalledProcessError as exc:
                # Another process may have taken the port between probing and binding.
                if attempt + 1 < attempts and "already in use" in self.log_tail():
                    continue
                raise RuntimeError(f"PostgreSQL did not start ({exc}):\n{self.log_tail()}") from exc
        self._wait_ready()

    def stop(self) -> None:
        atexit.unregister(self.stop)
        if (self.data_dir / "postmaster.pid").exists():
            try:
                self._pg_ctl("stop", "-w", "-t", "30", "-m", "fast")
            except subprocess.CalledProcessError:
                with contextlib.suppress(subprocess.CalledProcessError):
                    self._pg_ctl("stop", "-w", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)
        if self._watchdog is not None:
            self._watchdog.communicate(timeout=30)
            self._watchdog = None

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.admin():
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    # -- databases ---------------------------------------------------------------------
    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True
        )

    def create_database(self, name: str | None = None, template: str | None = None) -> str:
        """Create a database (a copy of ``template`` if given) and return its URL."""
        name = name or f"test_{next(self._names)}"
        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            stmt = sql.SQL("{} TEMPLATE {}").format(stmt, sql.Identifier(template))
        with self.admin() as conn:
            conn.execute(stmt)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whatever a test left connected to it."""
        with self.admin() as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))

    # -- helpers -----------------------------------------------------------------------
    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def _pg_ctl(self, *args: str) -> None:
        self._tool("pg_ctl", "-D", str(self.data_dir), *args)

    def _child(self) -> dict[str, Any]:
        """How server programs run: as the unprivileged user when we are root, PG* unset."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        kwargs: dict[str, Any] = {"cwd": self.root, "env": env}
        if self._run_as is not None:
            env.update(HOME=str(self.root), USER=self._run_as.pw_name)
            kwargs.update(user=self._run_as.pw_uid, group=self._run_as.pw_gid, extra_groups=[])
        return kwargs

    def _tool(self, tool: str, *args: str) -> None:
        try:
            subprocess.run(
                [str(self.bin_dir / tool), *args],
                check=True,
                capture_output=True,
                text=True,
                timeout=120,
                **self._child(),
            )
        except subprocess.CalledProcessError as exc:
            exc.add_note(f"{tool} output:\n{exc.stdout}{exc.stderr}")
            raise

    def _start_watchdog(self) -> None:
        # Stops the server and removes the directory once our end of its stdin closes: at
        # stop(), or when pytest dies without running teardown (SIGKILL, a crash).
        pg_ctl, data, root = (
            shlex.quote(str(p)) for p in (self.bin_dir / "pg_ctl", self.data_dir, self.root)
        )
        script = f"cat >/dev/null; {pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {root}"
        self._watchdog = subprocess.Popen(
            ["/bin/sh", "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C meant for pytest must not fire it early
            **self._child(),
        )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses the PostgreSQL server carries the ``postgres`` mark by itself."""
    for item in items:
        if "pg_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


def _unprivileged_user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresUnavailable("running as root and neither a 'postgres' nor 'nobody' user exists")


def _unavailable(reason: str) -> NoReturn:
    reason = f"{reason}; install Debian 'postgresql' (make sysdeps, as root) or set ${PG_BIN_ENV}"
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (started on first use, a second or two)."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        _unavailable(
            f"PostgreSQL server binaries ({', '.join(PG_TOOLS)}) not found on PATH "
            "or in /usr/lib/postgresql/*/bin"
        )
    try:
        server = PostgresServer(bin_dir)
    except PostgresUnavailable as exc:
        _unavailable(str(exc))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty (unmigrated) PostgreSQL database for one test."""
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture(scope="session")
def _pg_migrated_template(pg_server: PostgresServer) -> str:
    name = "mimamori_migrated"
    engine = make_engine(pg_server.create_database(name))
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()  # CREATE DATABASE ... TEMPLATE needs it without connections
    return name


@pytest.fixture(scope="session")
def _sqlite_migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "control.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()  # closes the last connection, which folds the WAL into the file
    return path


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty control-plane database: SQLite (a file in tmp_path) and PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "control.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_migrated_template"), path)
        yield f"sqlite:///{path}"
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    url = server.create_database(template=request.getfixturevalue("_pg_migrated_template"))
    yield url
    server.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, never migrated database on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def db_engine(db_url: str) -> Iterator[Engine]:
    """``make_engine(db_url)``, disposed after the test."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()
