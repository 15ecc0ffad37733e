"""What every command shares: settings, a migrated database to work in, errors as exit codes.

Exit codes: 0 done; 1 refused (no such org or member, a conflict, not allowed); 2 bad usage
or settings.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from touchstone.core.config import Settings, get_settings
from touchstone.core.db import Database
from touchstone.core.errors import AppError
from touchstone.core.logging import configure_logging
from touchstone.core.postgres import DatabaseUrls, prepare_database
from touchstone.core.security import configure_password_hashing

T = TypeVar("T")
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts")]
OrgOption = Annotated[str, typer.Option(help="Org slug")]
status = Console(stderr=True)
"""Progress and spinners go to stderr, so stdout holds only the answer (and `--json`)."""


def command_name() -> str:
    """How to run `touchstone` again from here: `.venv/bin/touchstone` in a checkout (where
    `uv` may not be on the PATH), plain `touchstone` where it is installed on the PATH."""
    program = Path(sys.argv[0])
    if program.name == "touchstone" and program.is_relative_to(Path.cwd()):
        return str(program.relative_to(Path.cwd()))
    return "touchstone"


def load_settings() -> Settings:
    try:
        settings = get_settings()
    except ValidationError as exc:
        typer.echo(f"Configuration error:\n{exc}", err=True)
        raise typer.Exit(2) from exc
    configure_logging(settings)
    configure_password_hashing(settings)
    return settings


@dataclass(frozen=True)
class Operator:
    """A command's access: the runtime-role database (RLS applies to the CLI too), and the
    owner-capable URLs for the few things only an operator may see across tenants."""

    database: Database
    settings: Settings
    urls: DatabaseUrls


def operate(work: Callable[[Operator], Awaitable[T]]) -> T:
    """Migrate, then run `work`; refusals and bad values become messages and exit codes."""
    settings = load_settings()
    with status.status("Preparing the database…"):
        urls = prepare_database(settings)

    async def main() -> T:
        database = Database(urls.runtime, settings)
        try:
            return await work(Operator(database, settings, urls))
        finally:
            await database.dispose()

    try:
        return asyncio.run(main())
    except AppError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        typer.echo(f"error: {problems}", err=True)
        raise typer.Exit(2) from exc


def show(rows: Sequence[dict[str, Any]], *, as_json: bool, title: str) -> None:
    """Rows as a table for people, or as a JSON array for scripts."""
    if as_json:
        typer.echo(json.dumps(list(rows), default=str, indent=2))
        return
    if not rows:
        typer.echo(f"no {title.lower()}")
        return
    table = Table(title=title, title_justify="left")
    for column in rows[0]:
        table.add_column(column.replace("_", " "))
    for row in rows:
        table.add_row(*(_cell(value) for value in row.values()))
    Console().print(table)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if hasattr(value, "strftime"):
        return f"{value:%Y-%m-%d %H:%M}"
    return str(value)
