"""``mimamori users`` and ``mimamori tokens``: create, list, revoke, with --json and exit codes."""

from __future__ import annotations

import json

import pyotp
from typer.testing import CliRunner

from mimamori.cli import app


def test_users_and_tokens_from_the_command_line(tmp_path) -> None:
    run = CliRunner()
    d = ["--data-dir", str(tmp_path)]
    assert run.invoke(app, ["tenants", "add", "acme", "--name", "Acme", *d]).exit_code == 0
    r = run.invoke(app, ["users", "add", "sato", "--role", "analyst", "--json", *d])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["role"] == "analyst" and out["totp"] is True and len(out["password"]) >= 12
    assert pyotp.TOTP(out["totp_secret"]).now().isdigit()
    r = run.invoke(app, ["users", "add", "x", "--role", "tenant_owner", "--tenant", "nope", *d])
    assert r.exit_code == 2 and "existing --tenant" in r.output
    r = run.invoke(app, ["users", "add", "y", "--role", "analyst", "--password", "short", *d])
    assert r.exit_code == 2
    r = run.invoke(app, ["tokens", "create", "backup", "--tenant", "acme", "--json", *d])
    tok = json.loads(r.output)
    assert tok["token"].startswith("mmt_") and tok["revoked_at"] is None
    listed = json.loads(run.invoke(app, ["tokens", "list", "--json", *d]).output)
    assert [t["name"] for t in listed] == ["backup"] and "token" not in listed[0]
    r = run.invoke(app, ["tokens", "revoke", str(tok["id"]), "--json", *d])
    assert json.loads(r.output)["revoked_at"] is not None
    users = json.loads(run.invoke(app, ["users", "list", "--json", *d]).output)
    assert [u["username"] for u in users] == ["sato"]
