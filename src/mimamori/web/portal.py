"""The SME portal's words: plain-language status, what to do now, what the service caught.

Japanese first, English second. No jargon: an SME owner without an IT department should
understand every sentence. Kinds without their own advice get the generic words.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from mimamori.db.models import Alert, Incident
from mimamori.detect.base import severity_rank
from mimamori.incidents.catalog import load_catalog
from mimamori.web.repo import TenantRepo

#: kind -> (what to do now, ja; en)
ADVICE: dict[str, tuple[str, str]] = {
    "ransomware": (
        "該当のパソコンのLANケーブルを抜き、Wi-Fiを切ってください。電源は切らずにそのままにしてください。身代金は絶対に支払わないでください。",
        "Unplug the PC's network cable and turn off its Wi-Fi. Leave it switched on. Never pay a ransom.",
    ),
    "banking_malware": (
        "該当のパソコンでネットバンキングを使わないでください。取引銀行への連絡は担当者がご案内します。",
        "Do not use online banking on that PC. We will help you contact your bank.",
    ),
    "emotet": (
        "取引先に「当社名のあやしいメールが届いたら開かないでください」とお知らせください。該当のパソコンはネットワークから外してください。",
        "Tell your business partners not to open suspicious mail in your name. Take the PC off the network.",
    ),
    "malicious_destination": (
        "該当の機器はしばらく使わず、担当者からの連絡をお待ちください。",
        "Please stop using the device for now and wait for our call.",
    ),
    "malware_mail_campaign": (
        "請求書や賞与を装ったメールの添付ファイルは開かないでください。",
        "Do not open attachments of mail about invoices or bonuses.",
    ),
    "credential_stuffing": (
        "ネットショップやメールのパスワードを使い回していないか確認し、二段階認証（ワンタイムコード）を設定してください。",
        "Check that passwords are not reused and switch on two-step sign-in (one-time codes).",
    ),
    "account_takeover": (
        "該当のアカウントのパスワードをすぐに変更し、二段階認証を設定してください。",
        "Change the account's password now and switch on two-step sign-in.",
    ),
    "card_skimming": (
        "カード決済を一時停止してください。カード会社への連絡は担当者がご案内します。",
        "Pause card payments. We will help you contact the card company.",
    ),
    "sensor_silent": (
        "監視機器（UTM）の電源とケーブルが抜けていないか確認してください。",
        "Please check that the monitoring box (UTM) is switched on and its cables are plugged in.",
    ),
    "new_device": (
        "見覚えのない機器が社内のネットワークにつながりました。心当たりがあれば担当者にお知らせください。",
        "A device we did not know joined your office network. Tell us if you know what it is.",
    ),
    "eol_os": (
        "サポートが終了した古いパソコンが使われています。インターネットにつながないでください。",
        "An old computer that no longer gets security updates is in use. Keep it off the internet.",
    ),
}
GENERIC = ("担当者が確認しています。連絡をお待ちください。", "We are looking into it and will contact you.")

STATE_WORDS = {
    "new": ("受付済み", "received"),
    "triage": ("確認中", "being checked"),
    "remote_support": ("遠隔で対応中", "being handled remotely"),
    "onsite": ("訪問して対応中", "an engineer is visiting"),
    "containment": ("被害の拡大を防いでいます", "stopping it from spreading"),
    "recovery": ("復旧作業中", "restoring"),
    "closed": ("対応完了", "done"),
    "false_positive": ("問題ありませんでした", "no problem found"),
}

#: alert kind families for "what the service caught for you"
CAUGHT = {
    "malware_blocked": ("ウイルスを止めました", "viruses stopped"),
    "malicious_destination": ("危険なサイトとの通信を見つけました", "contacts with dangerous sites found"),
    "web_attack": ("ホームページへの攻撃を見つけました", "attacks on your website found"),
    "credential_stuffing": ("パスワードを狙った攻撃を見つけました", "password attacks found"),
    "new_device": ("新しくつながった機器を見つけました", "new devices noticed"),
}


def status(repo: TenantRepo, tenant_id: str, now: datetime | None = None) -> dict[str, Any]:
    """The portal's front page as data: level, headline, what to do, incidents, what was caught."""
    now = now or datetime.now(UTC)
    tenant = repo.tenant(tenant_id)
    catalog = load_catalog()
    open_incs = repo.incidents(tenant_id=tenant.id, open_only=True)
    worst = max((severity_rank(i.severity) for i in open_incs), default=-1)
    if not open_incs:
        level, head = (
            "ok",
            ("現在、対応が必要な問題はありません。", "Nothing needs your attention right now."),
        )
    elif worst >= severity_rank("high"):
        level, head = (
            "action",
            (
                "対応が必要な問題があります。下の「今すること」をご覧ください。",
                "Something needs your attention. See 'What to do now' below.",
            ),
        )
    else:
        level, head = (
            "watch",
            ("確認中の件があります。担当者が対応しています。", "We are checking something for you."),
        )
    todo: list[dict[str, str]] = []
    seen: set[str] = set()
    for inc in open_incs:
        if inc.kind in seen:
            continue
        seen.add(inc.kind)
        ja, en = ADVICE.get(inc.kind, GENERIC)
        todo.append({"incident": str(inc.id), "ja": ja, "en": en})
    since = now - timedelta(days=30)
    rows = repo.session.execute(
        select(Alert.kind, func.count(), func.coalesce(func.sum(Alert.event_count), 0))
        .where(Alert.tenant_id == tenant.id, Alert.first_seen >= since)
        .group_by(Alert.kind)
    ).all()
    caught = []
    for kind, n, _events in sorted(rows):
        words = CAUGHT.get(kind) or (catalog.kind(kind).title_ja, catalog.kind(kind).title_en)
        caught.append({"kind": kind, "ja": words[0], "en": words[1], "count": int(n)})
    handled = repo.session.scalar(
        select(func.count()).where(
            Incident.tenant_id == tenant.id,
            Incident.state.in_(("closed", "false_positive")),
            Incident.closed_at >= since,
        )
    )
    incidents = []
    for inc in repo.incidents(tenant_id=tenant.id, open_only=False)[:50]:
        k = catalog.kind(inc.kind)
        st = STATE_WORDS.get(inc.state, (inc.state, inc.state))
        incidents.append(
            {
                "id": inc.id,
                "what_ja": k.title_ja,
                "what_en": k.title_en,
                "state_ja": st[0],
                "state_en": st[1],
                "open": inc.state not in ("closed", "false_positive"),
                "opened_at": inc.opened_at.isoformat(),
            }
        )
    sensor_times = [str(x["last_seen_at"]) for x in repo.sensors(tenant.id) if x["last_seen_at"]]
    heard = sensor_times + [at for at in repo.last_data(tenant.id).values() if at]
    return {
        "tenant": tenant.id,
        "last_data_at": max(heard) if heard else None,
        "name": tenant.name,
        "level": level,
        "headline_ja": head[0],
        "headline_en": head[1],
        "todo": todo,
        "incidents": incidents,
        "caught_30d": caught,
        "handled_30d": int(handled or 0),
    }
