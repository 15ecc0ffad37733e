"""The CLI end to end, as an operator runs it (subprocesses against a real server)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from typer.testing import CliRunner, Result

from touchstone import cli
from touchstone.core.config import get_settings
from touchstone.core.postgres import DatabaseUrls, libpq_dsn

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _touchstone(env: dict[str, str], *args: str, check: bool = True) -> Result:
    """Run the CLI in-process (a subprocess costs seconds of imports per call)."""
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli.app, list(args), env=env)
    finally:
        get_settings.cache_clear()
    if check:
        assert result.exit_code == 0, (result.output, result.exception)
    return result


@pytest.fixture
def cli_env(database_urls: DatabaseUrls, worker_id: str) -> Iterator[dict[str, str]]:
    """An external-database set-up (DATABASE_URL) on a throwaway database of the test server."""
    name = f"touchstone_cli_{worker_id}_{os.getpid()}"
    admin = database_urls.admin.set(database=name)
    env = {
        "DATABASE_URL": admin.render_as_string(hide_password=False),
        "LOG_LEVEL": "WARNING",
        "ENVIRONMENT": "test",
    }
    yield env
    with psycopg.connect(libpq_dsn(admin.set(database="postgres")), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _org_slugs(env: dict[str, str], active: bool | None = None) -> set[str]:
    dsn = env["DATABASE_URL"].replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("select slug, is_active from orgs").fetchall()
    return {slug for slug, is_active in rows if active in (None, is_active)}


def test_orgs_users_demo_backup_restore(cli_env: dict[str, str], tmp_path: Path) -> None:
    assert "latest migration" in _touchstone(cli_env, "migrate").stdout
    created = _touchstone(
        cli_env,
        "orgs",
        "create",
        "Acme Bank",
        "--admin-email",
        "boss@acme.example.com",
        "--kind",
        "bank",
    )
    assert "invitation emailed" in created.stdout
    added = _touchstone(
        cli_env,
        "users",
        "create",
        "--org",
        "acme-bank",
        "--email",
        "clerk@acme.example.com",
        "--role",
        "appraiser",
        "--password",
        "long enough password",
    )
    assert "appraiser" in added.stdout
    missing = _touchstone(
        cli_env,
        "users",
        "create",
        "--org",
        "nope",
        "--email",
        "x@acme.example.com",
        "--role",
        "viewer",
        check=False,
    )
    assert missing.exit_code == 1
    assert "No organization" in missing.output
    assert "deactivated" in _touchstone(cli_env, "orgs", "deactivate", "acme-bank").stdout
    assert _org_slugs(cli_env, active=False) == {"acme-bank"}
    assert "active" in _touchstone(cli_env, "orgs", "activate", "acme-bank").stdout
    assert _org_slugs(cli_env, active=False) == set()
    demo = _touchstone(cli_env, "demo")
    assert "branch_manager" in demo.stdout
    assert "24K gold rate" in demo.stdout
    again = _touchstone(cli_env, "demo")
    assert "already loaded" in again.stdout
    assert _credentials(again) == _credentials(demo), "a second demo prints the same ones"

    backup = tmp_path / "touchstone.dump"
    _touchstone(cli_env, "backup", str(backup))
    _touchstone(cli_env, "orgs", "create", "Later Co", "--admin-email", "a@later.example.com")
    assert "later-co" in _org_slugs(cli_env)
    _touchstone(cli_env, "restore", str(backup), "--yes")
    assert _org_slugs(cli_env) == {"acme-bank", "demo-bank"}


def test_billing_set_changes_a_plan_with_a_reason(cli_env: dict[str, str]) -> None:
    """Issue 13: plans are the platform's to set (or the provider's), audited."""
    _touchstone(cli_env, "orgs", "create", "Plan Co", "--admin-email", "a@plan.example.com")
    done = _touchstone(
        cli_env,
        *("billing", "set", "--org", "plan-co", "--plan", "enterprise", "--status", "active"),
        *("--reason", "contract 42"),
    )
    assert "plan enterprise, status active" in done.stdout
    unknown = _touchstone(
        cli_env,
        "billing",
        "set",
        "--org",
        "plan-co",
        "--plan",
        "gold",
        "--reason",
        "typo",
        check=False,
    )
    assert (unknown.exit_code, "Unknown plan" in unknown.output) == (1, True)
    nowhere = _touchstone(
        cli_env,
        "billing",
        "set",
        "--org",
        "nope",
        "--plan",
        "pro",
        "--reason",
        "typo",
        check=False,
    )
    assert (nowhere.exit_code, "No organization" in nowhere.output) == (1, True)
    dsn = cli_env["DATABASE_URL"].replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select plan, status from subscriptions").fetchall() == [
            ("enterprise", "active")
        ]
        (changes,) = conn.execute(
            "select changes from audit_events where action = 'billing.changed_by_platform'"
        ).fetchone() or (None,)
    assert changes["reason"] == "contract 42"


def _credentials(demo: Result) -> dict[str, str]:
    return {
        line.split()[1]: line.split()[2]
        for line in demo.stdout.splitlines()
        if "@demobank.example.com" in line
    }


def _json(env: dict[str, str], *args: str) -> Any:
    return json.loads(_touchstone(env, *args, "--json").stdout)


def test_operators_manage_orgs_members_and_keys(cli_env: dict[str, str]) -> None:
    passwords = {row["email"]: row["password"] for row in _json(cli_env, "demo")}
    orgs = _json(cli_env, "orgs", "list")
    assert [(o["slug"], o["is_active"]) for o in orgs] == [("demo-bank", True)]
    assert orgs[0]["active_members"] == len(passwords)

    clerk = "clerk@demobank.example.com"
    created = _touchstone(
        cli_env,
        *("users", "create", "--org", "demo-bank", "--email", clerk, "--role", "appraiser"),
        *("--branch", "MAIN"),
    )
    assert "branch MAIN" in created.stdout
    assert "invitation emailed" in created.stdout
    no_branch = _touchstone(
        cli_env,
        *("users", "create", "--org", "demo-bank", "--email", "x@demobank.example.com"),
        *("--role", "appraiser", "--branch", "NOPE"),
        check=False,
    )
    assert (no_branch.exit_code, "No branch" in no_branch.output) == (1, True)
    members = {u["email"]: u for u in _json(cli_env, "users", "list", "--org", "demo-bank")}
    assert members[clerk]["branch"] == "MAIN"

    reset = _touchstone(cli_env, "users", "reset-password", "--org", "demo-bank", "--email", clerk)
    assert "new password (shown once)" in reset.stdout
    _touchstone(cli_env, "users", "deactivate", "--org", "demo-bank", "--email", clerk)
    members = {u["email"]: u for u in _json(cli_env, "users", "list", "--org", "demo-bank")}
    assert members[clerk]["is_active"] is False
    unknown = _touchstone(
        cli_env,
        *("users", "deactivate", "--org", "demo-bank", "--email", "nobody@x.example"),
        check=False,
    )
    assert (unknown.exit_code, "No member" in unknown.output) == (1, True)
    assert _touchstone(cli_env, "users", "list", check=False).exit_code == 2  # no --org

    assert _json(cli_env, "apikeys", "list", "--org", "demo-bank") == []
    revoked = _touchstone(
        cli_env, "apikeys", "revoke", "--org", "demo-bank", "--prefix", "nokey", check=False
    )
    assert revoked.exit_code == 1

    admin = "admin@demobank.example.com"
    _touchstone(
        cli_env,
        *("users", "reset-password", "--org", "demo-bank", "--email", admin),
        *("--password", "changed by the operator"),
    )
    again = {row["email"]: row["password"] for row in _json(cli_env, "demo", "--reset")}
    assert again == passwords
    dsn = cli_env["DATABASE_URL"].replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(dsn) as conn:
        actions = [row[0] for row in conn.execute("select action from audit_events")]
    assert actions.count("user.password_reset") >= 2 + len(passwords)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_until_ready(env: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "touchstone.cli", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own group and session, as under a shell or a service
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                return process, port
        except httpx.HTTPError:
            pass
        assert process.poll() is None, process.communicate()[0]
        time.sleep(0.2)
    process.kill()
    raise AssertionError("server never became ready")


def _worker_children(pid: int) -> set[int]:
    """Children of every thread of `pid` (the supervisor thread starts the new worker)."""
    tasks = Path(f"/proc/{pid}/task").glob("*/children")
    return {int(child) for task in tasks for child in task.read_text().split()}


def _session_members(session_id: int) -> set[int]:
    """Live processes of a session (ps's SID column, from /proc)."""
    members = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it exited while we looked
            continue
        if int(fields[3]) == session_id and fields[0] != "Z":
            members.add(int(stat.parent.name))
    return members


@pytest.mark.parametrize(
    ("signum", "to_group"),
    [
        (signal.SIGINT, False),  # Ctrl-C
        (signal.SIGTERM, False),  # docker stop, kill
        (signal.SIGTERM, True),  # timeout, systemd: the whole group
        (signal.SIGHUP, True),  # a closed terminal
    ],
    ids=["sigint", "sigterm", "sigterm-group", "sighup-group"],
)
def test_serve_on_the_embedded_server_stops_everything_on_a_signal(
    worker_id: str, signum: signal.Signals, to_group: bool
) -> None:
    data_dir = ROOT / "var" / f"test-serve-{worker_id}-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING"}
    env.pop("DATABASE_URL", None)
    try:
        process, port = serve_until_ready(env)
        assert _session_members(process.pid) >= {process.pid} | _worker_children(process.pid)
        assert httpx.get(f"http://127.0.0.1:{port}/docs").status_code == 200
        if to_group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        output = process.communicate(timeout=60)[0]
        assert process.returncode in (0, 128 + signal.SIGTERM), output  # SIGHUP is a SIGTERM
        assert f"http://127.0.0.1:{port}/docs" in output
        assert not (data_dir / "pgdata" / "postmaster.pid").exists(), "postgres still runs"
        deadline = time.monotonic() + 30
        while _session_members(process.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _session_members(process.pid) == set(), "processes outlived the server"
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def test_a_killed_server_takes_its_worker_and_embedded_database_with_it(worker_id: str) -> None:
    data_dir = ROOT / "var" / f"test-serve-{worker_id}-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING"}
    env.pop("DATABASE_URL", None)
    try:
        process, _ = serve_until_ready(env)
        process.kill()
        process.communicate(timeout=30)
        deadline = time.monotonic() + 60
        while _session_members(process.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _session_members(process.pid) == set(), "the worker outlived its server"
        postmaster = data_dir / "pgdata" / "postmaster.pid"
        while postmaster.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not postmaster.exists(), "postgres outlived everything attached to it"
        process, _ = serve_until_ready(env)  # and the next start stops it again on Ctrl-C
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
        assert not postmaster.exists(), "a dead process kept the database attached"
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def test_serve_starts_its_worker_again_after_it_is_killed(worker_id: str) -> None:
    data_dir = ROOT / "var" / f"test-serve-kill-{worker_id}-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING"}
    env.pop("DATABASE_URL", None)
    try:
        process, port = serve_until_ready(env)
        try:
            [first] = _worker_children(process.pid)
            os.kill(first, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                children = _worker_children(process.pid) - {first}
                ready = httpx.get(f"http://127.0.0.1:{port}/health/ready").status_code == 200
                if children and ready:
                    break
                time.sleep(0.5)
            else:
                raise AssertionError("no new worker, or not ready again, within 30 s")
        finally:
            process.send_signal(signal.SIGINT)
            output = process.communicate(timeout=30)[0]
        assert process.returncode == 0, output
        assert "job worker exited (-9); starting it again" in output
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
