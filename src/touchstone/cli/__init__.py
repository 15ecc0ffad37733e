"""`touchstone …`: run the platform and administer it from a shell.

Exit codes: 0 done; 1 refused (no such org or member, a conflict, not allowed); 2 bad usage
or settings.
"""

import typer

from touchstone.cli import server, tenants

app = typer.Typer(
    help="Touchstone platform. Exit codes: 0 done, 1 refused, 2 bad usage or settings.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
for command in (server.serve, server.worker, server.migrate, server.backup, server.restore):
    app.command()(command)
app.command()(tenants.demo)
app.add_typer(tenants.orgs_app, name="orgs")
app.add_typer(tenants.users_app, name="users")
app.add_typer(tenants.apikeys_app, name="apikeys")
app.add_typer(tenants.billing_app, name="billing")

__all__ = ["app"]
