"""``mimamori users …`` and ``mimamori tokens …``: console accounts and API tokens for scripts.

Secrets (a new user's TOTP secret, a new token) are shown once and never stored in clear.
Listings and creations take ``--json``. User errors exit with status 2.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated, Any

import typer

from mimamori.cliutil import DataDir, JsonOut, console, print_table, session
from mimamori.cliutil import print_json as _print_json

users_app = typer.Typer(no_args_is_help=True, help="Web console users: add, list, disable, unlock.")
tokens_app = typer.Typer(no_args_is_help=True, help="API tokens for scripts: create, list, revoke.")


def _session(data_dir: Path | None) -> AbstractContextManager[Any]:
    from mimamori.web.accounts import AccountError

    return session(data_dir, errors=(AccountError,))


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument()],
    role: Annotated[
        str, typer.Option(help="provider_admin, analyst, tenant_owner, tenant_viewer, partner_viewer")
    ],
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="tenant of a tenant or partner user")
    ] = None,
    partner: Annotated[int | None, typer.Option(help="partner id (partner_viewer)")] = None,
    name: Annotated[str | None, typer.Option(help="display name")] = None,
    password: Annotated[
        str | None, typer.Option(envvar="MIMAMORI_NEW_PASSWORD", help="default: a random one, printed")
    ] = None,
    totp: Annotated[bool, typer.Option(help="TOTP for a tenant user (always on for provider roles)")] = False,
    language: Annotated[str, typer.Option(help="ja or en")] = "ja",
    data_dir: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Add a user; prints the password (if generated) and the TOTP secret once."""
    import secrets

    from mimamori.web.accounts import create_user, user_dict
    from mimamori.web.security import totp_uri

    pw = password or secrets.token_urlsafe(15)
    with _session(data_dir) as s:
        u = create_user(
            s,
            username,
            pw,
            role,
            display_name=name,
            tenant_id=tenant,
            partner_id=partner,
            language=language,
            totp=totp,
            actor="cli",
        )
        out = user_dict(u)
        out["password"] = None if password else pw
        out["totp_secret"] = u.totp_secret
        out["totp_uri"] = totp_uri(u.totp_secret, u.username) if u.totp_secret else None
    if as_json:
        _print_json(out)
        return
    console.print(f"user {out['username']} ({out['role']}) added")
    if out["password"]:
        console.print(f"password: {out['password']}")
    if out["totp_secret"]:
        console.print(f"TOTP secret: {out['totp_secret']}\n{out['totp_uri']}")


@users_app.command("list")
def users_list(data_dir: DataDir = None, as_json: JsonOut = False) -> None:
    from mimamori.web.accounts import list_users, user_dict

    with _session(data_dir) as s:
        rows = [user_dict(u) for u in list_users(s)]
    if as_json:
        _print_json(rows)
        return
    print_table(
        rows,
        ["username", "role", "tenant", "totp", "disabled", "locked_until", "last_login_at"],
        ["user", "role", "tenant", "totp", "disabled", "locked until", "last sign-in"],
    )


@users_app.command("disable")
def users_disable(username: str, data_dir: DataDir = None) -> None:
    """Disable a user and end their sessions."""
    from mimamori.web.accounts import disable_user

    with _session(data_dir) as s:
        disable_user(s, username)
    console.print(f"user {username} disabled")


@users_app.command("unlock")
def users_unlock(username: str, data_dir: DataDir = None) -> None:
    """Lift a lockout after failed sign-ins."""
    from mimamori.web.accounts import unlock_user

    with _session(data_dir) as s:
        unlock_user(s, username)
    console.print(f"user {username} unlocked")


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="what the token is for")],
    tenant: Annotated[str, typer.Option("--tenant", "-t")],
    role: Annotated[str, typer.Option(help="tenant_viewer, tenant_owner or analyst")] = "tenant_viewer",
    days: Annotated[int | None, typer.Option(help="expires after this many days")] = None,
    data_dir: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Create a token scoped to one tenant; the token is printed once."""
    from mimamori.web.accounts import create_token, token_dict

    with _session(data_dir) as s:
        row, token = create_token(s, tenant, name, role=role, days=days, actor="cli")
        out = token_dict(row)
    out["token"] = token
    if as_json:
        _print_json(out)
    else:
        console.print(f"token {out['id']} for {tenant} ({role}): {token}")


@tokens_app.command("list")
def tokens_list(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t")] = None,
    data_dir: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    from mimamori.web.accounts import list_tokens, token_dict

    with _session(data_dir) as s:
        rows = [token_dict(t) for t in list_tokens(s, tenant)]
    if as_json:
        _print_json(rows)
        return
    print_table(
        rows,
        ["id", "name", "tenant", "role", "created_at", "revoked_at", "last_used_at"],
        ["id", "name", "tenant", "role", "created", "revoked", "last used"],
    )


@tokens_app.command("revoke")
def tokens_revoke(token_id: int, data_dir: DataDir = None, as_json: JsonOut = False) -> None:
    from mimamori.web.accounts import revoke_token, token_dict

    with _session(data_dir) as s:
        out = token_dict(revoke_token(s, token_id))
    if as_json:
        _print_json(out)
    else:
        console.print(f"token {token_id} revoked")
