"""``mimamori share ...`` as an analyst uses it (JSON listings, errors exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mimamori.cli import app
from mimamori.config import Settings
from mimamori.db.session import make_engine, session_scope
from mimamori.share.stix_export import validate_bundle
from tests.share.conftest import Sink, make_incident

runner = CliRunner()


def run(home: Path, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, ["share", *args, "--data-dir", str(home)], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.stdout


def test_share_cli_flow(tmp_path: Path, smtp_sink: tuple[Sink, int]) -> None:
    sink, port = smtp_sink
    home = tmp_path / "home"
    for tid, name, net, mail in (
        ("acme", "アクメ精機", "10.10.0.0/16", "sato@acme.co.jp"),
        ("beta", "ベータ部品", "192.168.50.0/24", "suzuki@beta-parts.jp"),
    ):
        r = runner.invoke(
            app,
            [
                "tenants",
                "add",
                tid,
                "--name",
                name,
                "--networks",
                net,
                "--contact-name",
                "佐藤 太郎" if tid == "acme" else "鈴木 花子",
                "--contact-email",
                mail,
                "--data-dir",
                str(home),
            ],
        )
        assert r.exit_code == 0, r.output
    engine = make_engine(Settings.load(home).database_url)
    with session_scope(engine) as s:
        inc_id = make_incident(s).id
    engine.dispose()

    run(
        home, "partner", "add", "acme", "ベータ部品", "--domain", "beta-parts.jp", "--customer-tenant", "beta"
    )
    run(home, "partner", "contact", "acme", "ベータ部品", "鈴木 花子", "suzuki@beta-parts.jp")
    partners = json.loads(run(home, "partner", "list", "acme", "--json"))
    assert partners[0]["is_customer"] and partners[0]["contacts"][0]["email"] == "suzuki@beta-parts.jp"
    run(home, "partner", "add", "acme", "X", "--domain", "not a domain", code=2)

    run(home, "group", "add", "acme-chain", "アクメ・チェーン", "--lead", "acme")
    run(home, "group", "member", "acme-chain", "--tenant", "beta", "--role", "supplier")
    groups = json.loads(run(home, "group", "list", "--json"))
    member = groups[0]["members"][1]
    assert (member["name"], member["consent"]) == ("ベータ部品", False)
    run(home, "group", "consent", "acme-chain", str(member["member"]), "--by", "鈴木 花子")
    assert json.loads(run(home, "group", "list", "--tenant", "beta", "--json"))[0]["members"][1]["consent"]
    token = run(
        home, "group", "key", "beta-reader", "--group", "acme-chain", "--member", str(member["member"])
    )
    assert token.startswith("mmt_")

    w = json.loads(run(home, "warn", "draft", "acme", str(inc_id), "--tlp", "amber", "--json"))
    assert w["tlp"] == "AMBER" and "10.10.1.23" not in w["body_ja"]
    run(home, "warn", "send", "acme", str(w["id"]), "--smtp-port", str(port))
    assert sink.rcpts == ["suzuki@beta-parts.jp"]
    status = json.loads(run(home, "warn", "status", "acme", str(inc_id), "--json"))
    assert [(x["partner"], x["state"]) for x in status] == [("ベータ部品", "delivered")]
    assert json.loads(run(home, "warn", "chase", "--after-hours", "0", "--smtp-port", str(port), "--json"))
    run(home, "warn", "draft", "beta", str(inc_id), code=2)  # not beta's incident

    out = tmp_path / "bundle.json"
    run(
        home,
        "export",
        "acme",
        str(inc_id),
        "--to",
        "group:acme-chain",
        "--tlp",
        "AMBER+STRICT",
        "--out",
        str(out),
    )
    assert validate_bundle(json.loads(out.read_text())) == []
    run(home, "export", "acme", str(inc_id), "--to", "public", "--tlp", "GREEN", code=2)
    run(home, "export", "acme", str(inc_id), "--to", "provider:soc-x", "--tlp", "AMBER", code=2)
    run(home, "permission", "grant", "acme", "soc-x", "--by", "佐藤 太郎", "--max-tlp", "AMBER")
    assert json.loads(run(home, "permission", "list", "acme", "--json"))[0]["provider"] == "soc-x"
    run(home, "export", "acme", str(inc_id), "--to", "provider:soc-x", "--tlp", "AMBER", "--out", str(out))

    run(home, "publish", "acme", str(inc_id), "acme-chain", "--tlp", "GREEN")
    run(home, "misp-feed", "acme-chain", str(tmp_path / "feed"))
    assert len(json.loads((tmp_path / "feed" / "manifest.json").read_text())) == 1
    imp = json.loads(run(home, "import", str(out), "--json"))
    assert imp["tlp"] == "AMBER" and imp["stored"] == 3
    run(home, "import", str(out), "--share-to", "acme-chain", code=2)  # AMBER is not passed on

    run(home, "infoclass", "tag", "acme", "personal_data", "--host", "10.10.1.0/24", "--records", "800")
    rep = json.loads(run(home, "infoclass", "reports", "acme", str(inc_id), "--json"))
    assert [r["key"] for r in rep["reports"]] == ["ppc"]
    a = json.loads(run(home, "disclosure", "assess", "acme", str(inc_id), "--yes", "severe_damage", "--json"))
    # the one warned partner has not acknowledged: small-group sharing is not (yet) enough
    assert a["factors"]["small_group_insufficient"] and a["recommendation"] == "disclose"
    run(home, "disclosure", "assess", "acme", str(inc_id), "--yes", "bogus", code=2)
    d = json.loads(
        run(home, "disclosure", "draft", "acme", str(inc_id), "--contact", "03-0000-0000 窓口", "--json")
    )
    assert d["tlp"] == "CLEAR" and "10.10.1.23" not in d["body_ja"]

    run(
        home,
        "check",
        "create",
        "acme-chain",
        "--title",
        "確認",
        "--instructions",
        "ログ確認",
        "--by",
        "佐藤",
        "--requester",
        "acme",
        "--indicator",
        "203.0.113.45",
    )
    run(home, "check", "send", "1", "--smtp-port", str(port))
    summ = json.loads(run(home, "check", "summary", "1", "--json"))
    assert summ["asked"] == 1 and summ["counts"]["pending"] == 1

    run(home, "block", "add", "acme", "domain", "evil-invoice.example", "--by", "analyst")
    run(home, "block", "add", "acme", "ip", "10.10.1.1", "--by", "analyst", code=2)  # internal
    blocks = json.loads(run(home, "block", "list", "acme", "--json"))
    assert [(b["value"], b["state"]) for b in blocks] == [("evil-invoice.example", "active")]
    assert run(home, "block", "token", "acme", "fgt").startswith("mmb_")
