"""CLI commands for the HTTP service: `serve`, `keys create|list|revoke`, `token create`.

Registered on the main typer app by `register(app)`. Imports stay inside the commands, so
`jiefeng --help` does not load the web stack. Key and token creation from the command line are
written to the audit log too (actor: the operating-system user).
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import socket
import uuid
from typing import Annotated

import typer
from rich.console import Console

keys_app = typer.Typer(no_args_is_help=True, help="API keys for systems and staff.")
token_app = typer.Typer(no_args_is_help=True, help="Customer tokens.")

console = Console()
errors = Console(stderr=True)

DbOption = Annotated[
    str, typer.Option("--db", envvar="JIEFENG_DB", help="SQLite file path or postgresql:// URL.")
]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _audit_cli(store, action: str, target: str, roles: tuple[str, ...] = ()) -> None:
    from jiefeng.service.audit import AuditEntry, AuditLog

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    AuditLog(store).append(AuditEntry(
        at=_now(), request_id=f"cli-{uuid.uuid4().hex}", actor_kind="cli", actor=user,
        key_id=None, roles=roles, action=action, method="CLI", path=f"jiefeng {action}",
        target=target, reason=None, status=0))


def serve(
    db: DbOption = "jiefeng.db",
    host: Annotated[str, typer.Option("--host", help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64,
                                         help="Worker processes")] = 1,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
) -> None:
    """Run the HTTP API (OpenAPI at /openapi.json, docs at /docs)."""
    import uvicorn

    from jiefeng.service.credential_limits import FailureLimiter
    from jiefeng.service.security import signing_secret
    from jiefeng.store.sql import SqlStore

    os.environ["JIEFENG_DB"] = db  # the workers' app factory reads it
    store = SqlStore(db)  # migrate once, before any worker starts
    try:
        FailureLimiter.from_env()  # a bad setting stops here, in one line, not in each worker
        signing_secret(store, _now())  # and make the token secret once, not per worker
    except ValueError as error:
        errors.print(str(error), markup=False, highlight=False)
        raise typer.Exit(2) from None
    finally:
        store.close()
    # Our own listening socket with TCP_NODELAY, which accepted connections inherit: worker
    # processes get the socket handed over, and asyncio then cannot tell it is TCP and leaves
    # Nagle's algorithm on, so a response written in two parts waited ~40 ms for a delayed ACK.
    listener = _listening_socket(host, port)
    uvicorn.run("jiefeng.api.app:app_from_env", factory=True, fd=listener.fileno(),
                workers=workers, log_level=log_level, proxy_headers=False,
                server_header=False)


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.bind((host, port))
    listener.listen(2048)
    listener.set_inheritable(True)
    return listener


@keys_app.command("create")
def keys_create(
    role: Annotated[list[str], typer.Option(
        "--role", help="ingest, reviewer, operator or admin; repeat for several")],
    name: Annotated[str | None, typer.Option(
        "--name", help="Actor name on events and audit entries; default <role>-<id>")] = None,
    db: DbOption = "jiefeng.db",
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    from jiefeng.service.security import ApiKeys
    from jiefeng.store.sql import SqlStore

    store = SqlStore(db)
    try:
        new = ApiKeys(store).create(role, name, f"cli:{getpass.getuser()}", _now())
    except ValueError as error:
        errors.print(f"[red]{error}[/red]", markup=True, highlight=False)
        raise typer.Exit(2) from None
    _audit_cli(store, "keys.create", new.key_id, new.roles)
    errors.print(f"key {new.key_id} ({new.name}, roles {', '.join(new.roles)}); "
                 "shown once, store it now:")
    print(new.key)


@keys_app.command("list")
def keys_list(db: DbOption = "jiefeng.db") -> None:
    """List API keys (never their secrets)."""
    from jiefeng.service.security import ApiKeys
    from jiefeng.store.sql import SqlStore

    store = SqlStore(db, must_exist=True)  # read-only: never creates a database
    try:
        keys = ApiKeys(store).list()
    finally:
        store.close()
    for key in keys:
        state = f"revoked {key['revoked_at']}" if key["revoked_at"] else "active"
        console.print(f"{key['key_id']}  {key['name']}  {','.join(key['roles'])}  {state}",
                      markup=False, highlight=False)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key id")],
                db: DbOption = "jiefeng.db") -> None:
    """Revoke an API key; it is refused from the next request on. The last active admin key
    is kept (create another admin key first)."""
    from jiefeng.service.security import ApiKeys, LastAdmin
    from jiefeng.shown import cut
    from jiefeng.store.sql import SqlStore

    store = SqlStore(db, must_exist=True)  # no database: no key to revoke, nothing created
    try:
        record = ApiKeys(store).revoke(key_id, f"cli:{getpass.getuser()}", _now())
    except LastAdmin as error:
        errors.print(str(error), markup=False, highlight=False)
        raise typer.Exit(2) from None
    if record is None:
        errors.print(cut(f"key_id: no API key {key_id!r}"), markup=False, highlight=False,
                     soft_wrap=True)
        raise typer.Exit(2)
    _audit_cli(store, "keys.revoke", key_id)
    console.print(f"revoked {key_id} at {record['revoked_at']}", markup=False, highlight=False)


@token_app.command("create")
def token_create(
    account: Annotated[str, typer.Option("--account", help="The customer's account id")],
    ttl_hours: Annotated[int, typer.Option("--ttl-hours", min=1, max=720)] = 24,
    db: DbOption = "jiefeng.db",
) -> None:
    """Print a customer token for one account (reads that account, submits its appeals).
    The account must be in the database (no database is created for it)."""
    from jiefeng.service.security import CustomerTokens, signing_secret
    from jiefeng.shown import cut
    from jiefeng.store.connect import db_shown
    from jiefeng.store.sql import SqlStore

    store = SqlStore(db, must_exist=True)
    with store.read() as connection:
        known = store.account_exists(connection, account)
    if not known:
        store.close()
        errors.print(cut(f"--account: no account {account!r} in --db {db_shown(store.url)}; give "
                         "the id of an account that has been ingested"),
                     markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    try:
        token = CustomerTokens(signing_secret(store, _now())).issue(account, _now(), ttl_hours)
    except ValueError as error:
        errors.print(str(error), markup=False, highlight=False)
        raise typer.Exit(2) from None
    _audit_cli(store, "tokens.create", account)
    print(token)


def register(app: typer.Typer) -> None:
    """Add `serve`, `keys` and `token` to the main CLI."""
    app.command("serve")(serve)
    app.add_typer(keys_app, name="keys")
    app.add_typer(token_app, name="token")
