"""What every command-line module shares: the consoles, the common options, JSON output,
a migrated database session, and the way a user error ends a command (message, exit 2)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from mimamori.config import Settings

console = Console()
err = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="MIMAMORI_HOME", help="where the database and archive live"),
]
JsonOut = Annotated[bool, typer.Option("--json", help="machine-readable JSON output")]


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


def print_table(rows: list[dict[str, Any]], keys: list[str], headers: list[str] | None = None) -> None:
    """Rows as a Rich table of the given keys (missing and null values blank)."""
    table = Table(*(headers or keys))
    for r in rows:
        table.add_row(*["" if r.get(k) is None else str(r[k]) for k in keys])
    console.print(table)


def fail(msg: str) -> None:
    err.print(f"[red]error:[/] {msg}")
    raise typer.Exit(2)


@contextmanager
def session(data_dir: Path | None, errors: tuple[type[Exception], ...] = ()) -> Iterator[Any]:
    """A session on the migrated database; ``errors`` are user errors: shown, exit status 2."""
    from mimamori.db.session import init_db, make_engine, session_scope

    settings = Settings.load(data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    try:
        init_db(engine)
        with session_scope(engine) as s:
            yield s
    except errors as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
