"""Attacks on an SME's internet-facing services: the web shop, member logins, cloud mail.

Three detectors, each keeping bounded state between batches with the bookkeeping of
``outbound.py`` (``remember`` merges compact rows into a time-bounded, size-capped frame and
returns what the batch really added; ``not_yet_alerted`` remembers what was reported):

- ``web_attack``: per request of a web access log, signatures of SQL injection, path
  traversal, web-shell use, other exploit attempts (XSS, Log4Shell, Shellshock, Struts) and
  scanner user agents; grouped per client, category and hour into one alert. Requests that
  the server answered with 2xx make it more serious than probes it refused. Also
  **bulk member-data lookups**: one client fetching many distinct numeric ids under the same
  URL template (``/member/{n}``, ``?member_id=``) within the window — the vulnerable
  member-lookup case of the seed notice.
- ``credential_stuffing``: login attempts (``event.category`` authentication with a user
  name: app logins, Entra, M365, Google; or POSTs to login pages in access logs) — many
  accounts from one source with a high failure ratio; distributed low-and-slow attacks
  (many sources, each with few attempts, sharing one pattern: user agent and target);
  then any successful login from a stuffing source or to a targeted account from a source
  of the attack (account takeover suspected).
- ``cloud_signin``: impossible travel between two successful sign-ins of one user (geo from
  the sign-in log), successful sign-ins with legacy protocols that cannot do MFA, and new
  mailbox forwarding or inbox rules that forward outside, delete or hide mail (business
  e-mail compromise).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from mimamori.detect.base import AlertDraft, DetectContext, Detector
from mimamori.detect.outbound import ROW_KEY, TS, not_yet_alerted, remember, row_key
from mimamori.sources.cloud import LEGACY_CLIENT_APPS, MAILBOX_RULE_OPERATIONS

# ------------------------------------------------------------------------- signatures

#: category -> case-insensitive regex on the URL-decoded request target
WEB_SIGNATURES: dict[str, str] = {
    "sql_injection": (
        r"union(?:\s|/\*.*?\*/)+(?:all(?:\s|/\*.*?\*/)+)?select\b"
        r"|\bselect\s+(?:\*|(?:[\w.`\[\]]+|\d+|null)\s*,|concat|count\s*\(|@@|char\s*\(|0x)"
        r"|['\")]\s*(?:or|and)\s+['\"]?\w+['\"]?\s*(?:=|like)|\b(?:or|and)\s+\d+\s*=\s*\d+"
        r"|\b(?:sleep|benchmark|pg_sleep)\s*\(|waitfor\s+delay|information_schema|xp_cmdshell"
        r"|@@version|\bconcat\s*\(.{0,40}0x|;\s*(?:drop|insert|update|delete)\s+|'\s*(?:--|#)"
    ),
    "path_traversal": (
        r"(?:\.\.[/\\]){2,}|\.\.[/\\].*(?:etc/passwd|win\.ini|boot\.ini|web\.config|\.env)"
        r"|/etc/(?:passwd|shadow)|c:\\windows\\|/proc/self/environ|php://(?:filter|input)"
    ),
    "web_shell": (
        r"\b(?:c99|r57|wso|b374k|c100|r00t|alfa|indoxploit|webadmin|fileman|shell|cmd|evil|up|uploader)"
        r"\d*\.(?:php|asp|aspx|jsp)\b"
        r"|[?&](?:cmd|exec|command|execute|shell|run)=[^&]*(?:whoami|uname|\bid\b|\bls\b|\bdir\b|"
        r"ipconfig|ifconfig|net\s+user|cat\s|wget|curl|powershell|cmd\.exe|/bin/(?:ba)?sh|echo|ver\b)"
        r"|[?&]proxy&port=\d+&ip=|conn\.aspx\?proxy|/(?:uploads?|images?|files|tmp)/[^?]*\.(?:php\d?|phtml|aspx?|jsp)\b"
    ),
    "exploit_attempt": (
        r"[?&][\w.-]+=(?:(?:https?|ftp)://[^&]*\?(?:&|$)|(?:php|data|expect|phar|zip)://)|"
        r"<script|javascript:|\$\{jndi:|\(\)\s*\{\s*:;\s*\}|%\{\(|\$\{\(|\bonerror\s*=|"
        r"/cgi-bin/.*(?:\.sh|bash)|/wp-admin/admin-ajax\.php\?action=revslider|/vendor/phpunit/.*eval-stdin"
    ),
}

#: paths that only vulnerability scanners and bots ask for (admin tools, secrets, device
#: exploits); a client asking for ``MIN_PROBES`` different ones that the server refuses is scanning
PROBE_PATHS = (
    r"(?i)(?:/(?:phpmyadmin|pma|myadmin|mysqladmin|phpmyadmin[-\d.]+|dbadmin|sqlweb|websql|webdb|"
    r"mysql-admin|admin/pma)/|/scripts/setup\.php$|/\.env$|/\.git/|/\.svn/|/\.aws/|/wp-config\.php|"
    r"/HNAP1|/boaform|/manager/html|/solr/admin|/actuator/|/vendor/phpunit/|/owa/auth/x\.js|/\.DS_Store$|"
    r"/server-status$|/config\.json$|/backup\.(?:zip|sql|tar\.gz)$|/shell\?|/cgi-bin/(?:luci|test-cgi))"
)
MIN_PROBES = 3

#: scanner and attack-tool user agents
SCANNER_AGENTS = (
    r"(?i)\b(?:sqlmap|nikto|nmap|masscan|zgrab|nuclei|wpscan|dirbuster|gobuster|dirb|feroxbuster|"
    r"acunetix|nessus|openvas|w3af|havij|netsparker|qualys|zmeu|morfeus|jorgee|fimap|hydra|"
    r"whatweb|wfuzz|ffuf|arachni|skipfish|paros|webinspect|appscan|burp(?:suite)?|censysinspect|"
    r"ahrefsbot-scan|l9explore|l9tcpid|internet-measurement|expanse)\b"
)

#: categories that are attacks on the application (scanner UA alone is reconnaissance)
SEVERITY = {
    "web_shell": ("high", "medium"),  # (some request answered 2xx, all refused)
    "sql_injection": ("high", "medium"),
    "path_traversal": ("high", "medium"),
    "exploit_attempt": ("medium", "low"),
    "scanner": ("low", "low"),
    "probe": ("low", "low"),
}
KIND = {
    "web_shell": "web_shell",
    "sql_injection": "web_attack",
    "path_traversal": "web_attack",
    "exploit_attempt": "web_attack",
    "scanner": "web_scan",
    "probe": "web_scan",
}
LABEL = {
    "web_shell": "web-shell access",
    "sql_injection": "SQL injection",
    "path_traversal": "path traversal",
    "exploit_attempt": "exploit attempts",
    "scanner": "vulnerability scanner",
    "probe": "probing for admin tools and secrets",
}

#: static files never count as member-data lookups
STATIC = r"(?i)\.(?:png|jpe?g|gif|svg|ico|css|js|woff2?|ttf|map|webp|mp4|pdf|zip)$"
#: query parameters that name one record
ID_PARAM = (
    r"(?i)(?:^|&)((?:member|user|customer|account|client|order|kaiin|uid|id|no|num)[_-]?(?:id|no)?)"
    r"=(\d{1,12})(?:&|$)"
)

LOGIN_PATH = (
    r"(?i)(?:/login|/signin|/sign-in|/logon|/log-in|/wp-login\.php|/xmlrpc\.php|/user/login|"
    r"/account/login|/member/login|/auth(?:enticate)?$|/session(?:s)?$|/api/(?:v\d+/)?(?:auth|login|token))"
)


#: percent-codes of the characters attacks hide, decoded in one Aho-Corasick pass
_CODES = {
    "%20": " ", "%27": "'", "%22": '"', "%3c": "<", "%3e": ">", "%2f": "/", "%5c": "\\", "%2e": ".",
    "%3d": "=", "%28": "(", "%29": ")", "%3b": ";", "%7b": "{", "%7d": "}", "%24": "$", "%3a": ":",
    "%26": "&", "%2c": ",", "%23": "#", "%40": "@", "%0a": " ", "%0d": " ", "%09": " ", "+": " ",
}  # fmt: skip


def url_decode(expr: pl.Expr) -> pl.Expr:
    """A light, vectorised percent-decoding of the characters attacks hide (``%25`` first, so
    doubly encoded ``%2527`` also decodes)."""
    out = expr.fill_null("").str.replace_all("%25", "%", literal=True)
    return out.str.replace_many(list(_CODES), list(_CODES.values()), ascii_case_insensitive=True)


def web_categories(events: pl.DataFrame) -> pl.DataFrame:
    """The web requests of a batch with the attack categories each matches (may be none)."""
    target = url_decode(pl.coalesce(pl.col("url.original"), pl.col("url.path"), pl.col("message")))
    ua = pl.col("user_agent.original").fill_null("")
    cats = [
        pl.when(target.str.contains(f"(?i){rx}")).then(pl.lit(name)).otherwise(None)
        for name, rx in WEB_SIGNATURES.items()
    ]
    cats.append(pl.when(ua.str.contains(SCANNER_AGENTS)).then(pl.lit("scanner")).otherwise(None))
    refused = pl.col("http.response.status_code").fill_null(0) >= 400
    probe = pl.col("url.path").fill_null("").str.contains(PROBE_PATHS) & refused
    cats.append(pl.when(probe).then(pl.lit("probe")).otherwise(None))
    return events.filter(
        (pl.col("event.category") == "web")
        & pl.col("source.ip").is_not_null()
        & pl.col("@timestamp").is_not_null()
    ).with_columns(pl.concat_list(cats).list.drop_nulls().alias("categories"))


# ------------------------------------------------------------------------ web attacks


class WebAttackDetector(Detector):
    """Attack requests against a web server, and bulk member-data lookups, per client."""

    name = "web_attack"
    description = "SQL injection, path traversal, web shells, scanners, bulk member-data lookups"

    def __init__(
        self,
        window: timedelta = timedelta(hours=1),
        enum_window: timedelta = timedelta(hours=1),
        enum_min_ids: int = 100,
        max_rows: int = 200_000,
    ) -> None:
        self.window = window
        self.enum_window = enum_window
        self.enum_min_ids = enum_min_ids
        self.max_rows = max_rows

    def detect(self, events: pl.DataFrame, ctx: DetectContext) -> list[AlertDraft]:
        web = web_categories(events)
        if web.height == 0:
            return []
        alerts = self._attacks(web, ctx)
        alerts += self._enumeration(web, ctx)
        return alerts

    def _attacks(self, web: pl.DataFrame, ctx: DetectContext) -> list[AlertDraft]:
        every = f"{int(self.window.total_seconds())}s"
        hits = (
            web.filter(pl.col("categories").list.len() > 0)
            .explode("categories")
            .rename({"categories": "category"})
            .with_columns(pl.col("@timestamp").dt.truncate(every).alias("bucket"))
        )
        if hits.height == 0:
            return []
        status = pl.col("http.response.status_code")
        stats = hits.group_by("source.ip", "category", "bucket").agg(
            pl.len().alias("requests"),
            pl.col("url.path").n_unique().alias("paths"),
            (status.is_between(200, 299)).sum().alias("answered"),
            pl.col("@timestamp").min().alias("first"),
            pl.col("@timestamp").max().alias("last"),
            pl.col("url.original").drop_nulls().unique(maintain_order=True).head(5).alias("sample"),
            pl.col("user_agent.original").drop_nulls().unique(maintain_order=True).head(3).alias("agents"),
            pl.col("destination.domain").drop_nulls().first().alias("site"),
            pl.col("destination.ip").drop_nulls().first().alias("server"),
            pl.col("http.request.peer_ip").drop_nulls().first().alias("proxy"),
        )
        stats = stats.rename({"source.ip": "src"}).filter(
            (pl.col("category") != "probe") | (pl.col("paths") >= MIN_PROBES)
        )
        stats = not_yet_alerted(ctx.state, stats, ["src", "category", "bucket"], self.window * 48)
        alerts = []
        for g in stats.sort("bucket", "src", "category").iter_rows(named=True):
            cat = g["category"]
            hit, miss = SEVERITY[cat]
            severity = hit if g["answered"] else miss
            site = g["site"] or g["server"] or "web server"
            keys = [f"web:{g['src']}"]
            if cat == "web_shell":
                keys.append(f"webshell:{site}")
            alerts.append(
                AlertDraft(
                    detector=self.name,
                    kind=KIND[cat],
                    severity=severity,
                    title=f"{LABEL[cat]} against {site} from {g['src']}: {g['requests']} requests "
                    f"({g['answered']} answered 2xx)",
                    first_seen=g["first"],
                    last_seen=g["last"],
                    keys=keys,
                    host=g["server"],
                    indicator=g["src"],
                    event_count=g["requests"],
                    evidence={
                        "category": cat,
                        "client": g["src"],
                        "proxy": g["proxy"],
                        "site": site,
                        "requests": g["requests"],
                        "answered_2xx": g["answered"],
                        "sample_requests": g["sample"],
                        "user_agents": g["agents"],
                    },
                ).with_dedup(ctx.tenant, g["src"], cat, g["bucket"])
            )
        return alerts

    def _enumeration(self, web: pl.DataFrame, ctx: DetectContext) -> list[AlertDraft]:
        path = pl.col("url.path").fill_null("")
        query = pl.col("url.query").fill_null("")
        param = query.str.extract_groups(ID_PARAM)
        seg = path.str.extract(r"/(\d{1,12})(?:/|$)", 1)
        template = (
            pl.when(param.struct.field("2").is_not_null())
            .then(
                pl.concat_str(path, pl.lit("?"), param.struct.field("1").str.to_lowercase(), pl.lit("={n}"))
            )
            .otherwise(path.str.replace_all(r"/\d{1,12}(/|$)", "/{n}$1"))
        )
        rows = (
            web.filter(pl.col("http.response.status_code").is_between(200, 299) & ~path.str.contains(STATIC))
            .select(
                row_key("url.original").alias(ROW_KEY),
                pl.col("@timestamp").alias(TS),
                pl.col("source.ip").alias("src"),
                template.alias("template"),
                pl.coalesce(param.struct.field("2"), seg).alias("rid"),
                pl.coalesce(pl.col("destination.domain"), pl.col("destination.ip")).alias("site"),
            )
            .filter(pl.col("rid").is_not_null())
        )
        kept, new = remember(ctx.state, "lookups", rows, self.enum_window, self.max_rows)
        if new.height == 0:
            return []
        ends = new.group_by("src", "template").agg(pl.col(TS).max().alias("bucket"))
        stats = (
            kept.join(ends, on=["src", "template"])
            .filter((pl.col(TS) > pl.col("bucket") - self.enum_window) & (pl.col(TS) <= pl.col("bucket")))
            .group_by("src", "template", "bucket")
            .agg(
                pl.col("rid").n_unique().alias("ids"),
                pl.len().alias("requests"),
                pl.col(TS).min().alias("first"),
                pl.col(TS).max().alias("last"),
                pl.col("rid").unique().sort().head(10).alias("sample"),
                pl.col("site").drop_nulls().first().alias("site"),
            )
            .filter(pl.col("ids") >= self.enum_min_ids)
            .with_columns(pl.lit("enumeration").alias("category"))
        )
        if stats.height == 0:
            return []
        # one alert per client and template per window: drop findings within a window of a mark
        done = ctx.state.get("enum_marks")
        if isinstance(done, pl.DataFrame) and done.height:
            near = stats.join(done, on=["src", "template"]).filter(
                pl.col("mark") > pl.col("bucket") - self.enum_window * 4
            )
            stats = stats.join(near.select("src", "template"), on=["src", "template"], how="anti")
        if stats.height == 0:
            return []
        marks = stats.select("src", "template", pl.col("bucket").alias("mark"))
        if isinstance(done, pl.DataFrame) and done.height:
            marks = pl.concat([done, marks])
        newest = marks["mark"].max()
        assert isinstance(newest, datetime)
        ctx.state["enum_marks"] = marks.filter(pl.col("mark") >= newest - self.enum_window * 48).tail(10_000)
        alerts = []
        for g in stats.sort("bucket").iter_rows(named=True):
            site = g["site"] or "web server"
            alerts.append(
                AlertDraft(
                    detector=self.name,
                    kind="member_data_enumeration",
                    severity="high",
                    title=f"{g['src']} looked up {g['ids']} different records via {g['template']} on {site}",
                    first_seen=g["first"],
                    last_seen=g["last"],
                    keys=[f"web:{g['src']}", f"enum:{site}"],
                    indicator=g["src"],
                    event_count=g["requests"],
                    evidence={
                        "category": "member_data_enumeration",
                        "client": g["src"],
                        "site": site,
                        "url_template": g["template"],
                        "distinct_ids": g["ids"],
                        "requests": g["requests"],
                        "sample_ids": g["sample"],
                    },
                ).with_dedup(ctx.tenant, g["src"], g["template"], g["bucket"])
            )
        return alerts


# ------------------------------------------------------------------ credential stuffing


def login_attempts(events: pl.DataFrame) -> pl.DataFrame:
    """Login attempts of a batch: (key, ts, src, user, ok, pattern, agent).

    The pattern is the login endpoint (dataset and path): a distributed attack shares it,
    while user agents are usually rotated.
    """
    auth = events.filter(
        (pl.col("event.category") == "authentication")
        & pl.col("event.outcome").is_in(["success", "failure"])
        & pl.col("source.ip").is_not_null()
    ).select(
        row_key("user.name", "event.outcome").alias(ROW_KEY),
        pl.col("@timestamp").alias(TS),
        pl.col("source.ip").alias("src"),
        pl.col("user.name").str.to_lowercase().alias("user"),
        (pl.col("event.outcome") == "success").alias("ok"),
        pl.concat_str(
            pl.col("event.dataset").fill_null("-"), pl.col("url.path").fill_null("-"), separator=" "
        ).alias("pattern"),
        pl.col("user_agent.original").alias("agent"),
    )
    # access logs: POSTs to a login page, without a user name; a redirect (301/302/303) is
    # read as a successful login, anything else (the form shown again, 401/403) as a failure
    web = events.filter(
        (pl.col("event.category") == "web")
        & (pl.col("http.request.method") == "POST")
        & pl.col("url.path").fill_null("").str.contains(LOGIN_PATH)
        & pl.col("source.ip").is_not_null()
    ).select(
        row_key("url.original").alias(ROW_KEY),
        pl.col("@timestamp").alias(TS),
        pl.col("source.ip").alias("src"),
        pl.col("user.name").str.to_lowercase().alias("user"),
        pl.col("http.response.status_code").is_in([301, 302, 303]).fill_null(False).alias("ok"),
        pl.concat_str(
            pl.col("event.dataset").fill_null("-"), pl.col("url.path").fill_null("-"), separator=" "
        ).alias("pattern"),
        pl.col("user_agent.original").alias("agent"),
    )
    return pl.concat([auth, web], how="vertical_relaxed").filter(pl.col(TS).is_not_null())


class CredentialStuffingDetector(Detector):
    """Many accounts tried from one source, or by many sources with one pattern; the takeovers that follow."""

    name = "credential_stuffing"
    description = "list-based login attacks (credential stuffing) and the successful logins after them"

    def __init__(
        self,
        window: timedelta = timedelta(hours=1),
        min_accounts: int = 10,
        min_failures: int = 20,
        min_failure_ratio: float = 0.8,
        min_web_posts: int = 60,
        slow_window: timedelta = timedelta(hours=24),
        slow_min_sources: int = 20,
        slow_min_accounts: int = 30,
        slow_max_per_source: int = 10,
        follow: timedelta = timedelta(days=3),
        max_rows: int = 300_000,
    ) -> None:
        self.window = window
        self.min_accounts = min_accounts
        self.min_failures = min_failures
        self.min_failure_ratio = min_failure_ratio
        self.min_web_posts = min_web_posts
        self.slow_window = slow_window
        self.slow_min_sources = slow_min_sources
        self.slow_min_accounts = slow_min_accounts
        self.slow_max_per_source = slow_max_per_source
        self.follow = follow
        self.max_rows = max_rows

    def detect(self, events: pl.DataFrame, ctx: DetectContext) -> list[AlertDraft]:
        rows = login_attempts(events)
        if rows.height == 0:
            return []
        kept, new = remember(ctx.state, "attempts", rows, self.slow_window, self.max_rows)
        if new.height == 0:
            return []
        alerts = self._single_source(kept, new, ctx)
        alerts += self._distributed(kept, new, ctx)
        alerts += self._takeovers(new, ctx)
        return alerts

    def _flag(self, ctx: DetectContext, flagged: pl.DataFrame) -> None:
        """Remember sources and targeted accounts of an attack (src, user, at), bounded."""
        old = ctx.state.get("flagged")
        both = pl.concat([old, flagged], how="vertical_relaxed") if isinstance(old, pl.DataFrame) else flagged
        newest = both["at"].max()
        assert isinstance(newest, datetime)
        ctx.state["flagged"] = (
            both.filter(pl.col("at") >= newest - self.follow)
            .unique(["src", "user"], keep="last")
            .tail(200_000)
        )

    def _single_source(self, kept: pl.DataFrame, new: pl.DataFrame, ctx: DetectContext) -> list[AlertDraft]:
        ends = new.group_by("src").agg(pl.col(TS).max().alias("bucket"))
        stats = (
            kept.join(ends, on="src")
            .filter((pl.col(TS) > pl.col("bucket") - self.window) & (pl.col(TS) <= pl.col("bucket")))
            .group_by("src", "bucket")
            .agg(
                pl.len().alias("attempts"),
                (~pl.col("ok")).sum().alias("failures"),
                pl.col("user").drop_nulls().n_unique().alias("accounts"),
                pl.col("user").is_null().all().alias("web_only"),
                pl.col(TS).min().alias("first"),
                pl.col(TS).max().alias("last"),
                pl.col("user").drop_nulls().unique().sort().head(10).alias("sample"),
                pl.col("pattern").mode().first().alias("pattern"),
                pl.col("agent").drop_nulls().mode().first().alias("agent"),
            )
            .with_columns((pl.col("failures") / pl.col("attempts")).alias("ratio"))
            .filter(
                (
                    (pl.col("accounts") >= self.min_accounts)
                    & (pl.col("failures") >= self.min_failures)
                    & (pl.col("ratio") >= self.min_failure_ratio)
                )
                | (pl.col("web_only") & (pl.col("attempts") >= self.min_web_posts))
            )
            .with_columns(pl.lit("single").alias("what"))
        )
        stats = self._not_recent(ctx, stats, "single", self.window)
        stats = not_yet_alerted(ctx.state, stats, ["src", "bucket", "what"], self.slow_window * 2)
        if stats.height == 0:
            return []
        users = kept.join(stats.select("src", "bucket"), on="src").filter(
            (pl.col(TS) > pl.col("bucket") - self.window) & (pl.col(TS) <= pl.col("bucket"))
        )
        self._flag(ctx, users.select("src", "user", pl.col(TS).alias("at")))
        alerts = []
        for g in stats.sort("bucket", "src").iter_rows(named=True):
            what = (
                f"{g['accounts']} accounts, {g['failures']}/{g['attempts']} failed"
                if not g["web_only"]
                else f"{g['attempts']} login-form posts"
            )
            alerts.append(
                AlertDraft(
                    detector=self.name,
                    kind="credential_stuffing",
                    severity="medium",
                    title=f"Credential stuffing from {g['src']}: {what} in {_human(self.window)}",
                    first_seen=g["first"],
                    last_seen=g["last"],
                    keys=[f"stuffing:{g['src']}", f"web:{g['src']}"],
                    indicator=g["src"],
                    event_count=g["attempts"],
                    evidence={
                        "behaviour": "one source, many accounts",
                        "source": g["src"],
                        "attempts": g["attempts"],
                        "failures": g["failures"],
                        "failure_ratio": round(g["ratio"], 3),
                        "distinct_accounts": g["accounts"],
                        "sample_accounts": g["sample"],
                        "pattern": g["pattern"],
                        "user_agent": g["agent"],
                    },
                ).with_dedup(
                    ctx.tenant, g["src"], "single", g["first"].replace(minute=0, second=0, microsecond=0)
                )
            )
        return alerts

    def _distributed(self, kept: pl.DataFrame, new: pl.DataFrame, ctx: DetectContext) -> list[AlertDraft]:
        # the window ending at each touched pattern's newest new attempt
        ends = new.group_by("pattern").agg(pl.col(TS).max().alias("end"))
        failed = kept.join(ends, on="pattern").filter(
            (pl.col(TS) > pl.col("end") - self.slow_window) & (pl.col(TS) <= pl.col("end"))
        )
        if failed.height == 0:
            return []
        per_src = failed.group_by("pattern", "src").agg(pl.len().alias("n"), (~pl.col("ok")).sum().alias("f"))
        stats = (
            failed.group_by("pattern")
            .agg(
                pl.len().alias("attempts"),
                (~pl.col("ok")).sum().alias("failures"),
                pl.col("src").n_unique().alias("sources"),
                pl.col("user").drop_nulls().n_unique().alias("accounts"),
                pl.col("user").is_null().all().alias("web_only"),
                pl.col("agent").drop_nulls().n_unique().alias("agents"),
                pl.col(TS).min().alias("first"),
                pl.col(TS).max().alias("bucket"),
                pl.col("src").unique().sort().head(10).alias("sample_sources"),
                pl.col("user").drop_nulls().unique().sort().head(10).alias("sample"),
            )
            .join(
                per_src.group_by("pattern").agg(pl.col("n").median().alias("median_per_source")),
                on="pattern",
            )
            .with_columns((pl.col("failures") / pl.col("attempts")).alias("ratio"))
            .filter(
                (pl.col("sources") >= self.slow_min_sources)
                & (
                    (pl.col("accounts") >= self.slow_min_accounts)
                    | (pl.col("web_only") & (pl.col("attempts") >= 3 * self.slow_min_sources))
                )
                & (pl.col("ratio") >= self.min_failure_ratio)
                & (pl.col("median_per_source") <= self.slow_max_per_source)
            )
            .with_columns(pl.col("pattern").alias("src"), pl.lit("distributed").alias("what"))
        )
        stats = self._not_recent(ctx, stats, "distributed", self.slow_window)
        stats = not_yet_alerted(ctx.state, stats, ["src", "bucket", "what"], self.slow_window * 2)
        if stats.height == 0:
            return []
        self._flag(
            ctx,
            failed.join(stats.select("pattern"), on="pattern").select("src", "user", pl.col(TS).alias("at")),
        )
        alerts = []
        for g in stats.sort("bucket").iter_rows(named=True):
            alerts.append(
                AlertDraft(
                    detector=self.name,
                    kind="credential_stuffing",
                    severity="medium",
                    title=(
                        f"Distributed credential stuffing on {g['pattern']}: {g['sources']} sources, "
                        + (f"{g['accounts']} accounts, " if not g["web_only"] else "")
                        + f"{g['failures']}/{g['attempts']} failed"
                    ),
                    first_seen=g["first"],
                    last_seen=g["bucket"],
                    keys=[f"stuffing:{g['pattern']}"],
                    event_count=g["attempts"],
                    evidence={
                        "behaviour": "many sources, one pattern (low and slow)",
                        "pattern": g["pattern"],
                        "distinct_sources": g["sources"],
                        "distinct_accounts": g["accounts"],
                        "distinct_user_agents": g["agents"],
                        "attempts": g["attempts"],
                        "failures": g["failures"],
                        "failure_ratio": round(g["ratio"], 3),
                        "median_attempts_per_source": g["median_per_source"],
                        "sample_sources": g["sample_sources"],
                        "sample_accounts": g["sample"],
                    },
                ).with_dedup(ctx.tenant, g["pattern"], "distributed", g["first"].date())
            )
        return alerts

    def _takeovers(self, new: pl.DataFrame, ctx: DetectContext) -> list[AlertDraft]:
        flagged = ctx.state.get("flagged")
        ok = new.filter(pl.col("ok") & pl.col("user").is_not_null())
        if not isinstance(flagged, pl.DataFrame) or flagged.height == 0 or ok.height == 0:
            return []
        sources = flagged.group_by("src").agg(pl.col("at").min().alias("since"))
        # a success from an attacking source, or to a targeted account from an attacking source
        hits = ok.join(sources, on="src").filter(pl.col(TS) >= pl.col("since"))
        hits = hits.filter(pl.col(TS) <= pl.col("since") + self.follow)
        if hits.height == 0:
            return []
        found = (
            hits.group_by("user", "src")
            .agg(pl.col(TS).min().alias("first"), pl.col(TS).max().alias("last"), pl.len().alias("n"))
            .with_columns(pl.col("first").dt.truncate("1d").alias("bucket"), pl.lit("takeover").alias("what"))
        )
        done = ctx.state.get("takeovers")
        if isinstance(done, pl.DataFrame) and done.height:
            found = found.join(done, on=["user", "src", "bucket"], how="anti")
        if found.height == 0:
            return []
        marks = found.select("user", "src", "bucket")
        if isinstance(done, pl.DataFrame) and done.height:
            marks = pl.concat([done, marks])
        ctx.state["takeovers"] = marks.tail(20_000)
        alerts = []
        for g in found.sort("first").iter_rows(named=True):
            alerts.append(
                AlertDraft(
                    detector=self.name,
                    kind="account_takeover",
                    severity="high",
                    title=(
                        f"Successful login to {g['user']} from {g['src']}, "
                        "a source of a credential-stuffing attack"
                    ),
                    first_seen=g["first"],
                    last_seen=g["last"],
                    keys=[f"user:{g['user']}", f"stuffing:{g['src']}", f"web:{g['src']}"],
                    indicator=g["src"],
                    event_count=g["n"],
                    evidence={"account": g["user"], "source": g["src"], "successful_logins": g["n"]},
                ).with_dedup(ctx.tenant, g["user"], g["src"], g["bucket"])
            )
        return alerts

    @staticmethod
    def _not_recent(ctx: DetectContext, stats: pl.DataFrame, what: str, window: timedelta) -> pl.DataFrame:
        """Drop sliding-window findings already reported for the same source within the window."""
        done = ctx.state.get("alerted")
        if not isinstance(done, pl.DataFrame) or done.height == 0 or stats.height == 0:
            return stats
        marks = done.filter(pl.col("what") == what).select("src", pl.col("bucket").alias("mark"))
        recent = (
            stats.join(marks, on="src")
            .filter(
                (pl.col("mark") > pl.col("bucket") - window) & (pl.col("mark") <= pl.col("bucket") + window)
            )
            .select("src", "bucket")
        )
        return stats.join(recent, on=["src", "bucket"], how="anti")


# -------------------------------------------------------------------- exposed services

#: services that an SME rarely needs open to the internet (port -> service)
EXPOSED_PORTS = {
    21: "FTP", 22: "SSH", 23: "Telnet", 135: "MS-RPC", 139: "NetBIOS", 445: "SMB", 1433: "SQL Server",
    1521: "Oracle DB", 2082: "cPanel", 2083: "cPanel", 3306: "MySQL", 3389: "Remote Desktop",
    5432: "PostgreSQL", 5900: "VNC", 5985: "WinRM", 6379: "Redis", 8080: "admin/proxy web",
    9200: "Elasticsearch", 10000: "Webmin", 11211: "memcached", 27017: "MongoDB",
}  # fmt: skip


class ExposedServiceDetector(Detector):
    """An office or shop server answering outside clients on a port that need not be public."""

    name = "exposed_service"
    description = "internal servers reachable from the internet on database, remote-access or admin ports"

    def __init__(
        self, window: timedelta = timedelta(hours=24), min_sources: int = 3, max_rows: int = 200_000
    ) -> None:
        self.window = window
        self.min_sources = min_sources
        self.max_rows = max_rows

    def detect(self, events: pl.DataFrame, ctx: DetectContext) -> list[AlertDraft]:
        rows = (
            events.filter(
                (pl.col("event.category") == "network")
                & (pl.col("event.outcome") == "success")
                & pl.col("destination.port").is_in(list(EXPOSED_PORTS))
                & pl.col("source.ip").is_not_null()
                & pl.col("destination.ip").is_not_null()
            )
            .filter(~ctx.internal("source.ip") & ctx.internal("destination.ip"))
            .select(
                row_key().alias(ROW_KEY),
                pl.col("@timestamp").alias(TS),
                pl.col("source.ip").alias("client"),
                pl.col("destination.ip").alias("server"),
                pl.col("destination.port").alias("port"),
            )
        )
        kept, new = remember(ctx.state, "inbound", rows, self.window, self.max_rows)
        if new.height == 0:
            return []
        ends = new.group_by("server", "port").agg(pl.col(TS).max().alias("end"))
        stats = (
            kept.join(ends, on=["server", "port"])
            .filter((pl.col(TS) > pl.col("end") - self.window) & (pl.col(TS) <= pl.col("end")))
            .group_by("server", "port")
            .agg(
                pl.col("client").n_unique().alias("clients"),
                pl.len().alias("connections"),
                pl.col(TS).min().alias("first"),
                pl.col(TS).max().alias("last"),
                pl.col("client").unique().sort().head(10).alias("sample"),
            )
            .filter(pl.col("clients") >= self.min_sources)
            .with_columns(
                pl.col("first").dt.truncate("1w").alias("bucket"),
                pl.concat_str(pl.col("server"), pl.lit(":"), pl.col("port").cast(pl.String)).alias("src"),
                pl.lit("exposed").alias("what"),
            )
        )
        stats = not_yet_alerted(ctx.state, stats, ["src", "bucket", "what"], timedelta(days=14))
        return [
            AlertDraft(
                detector=self.name,
                kind="exposed_service",
                severity="medium",
                title=(
                    f"{g['server']} answers the internet on port {g['port']} ({EXPOSED_PORTS[g['port']]}): "
                    f"{g['clients']} outside clients in {_human(self.window)}"
                ),
                first_seen=g["first"],
                last_seen=g["last"],
                keys=[f"host:{g['server']}", f"exposed:{g['server']}:{g['port']}"],
                host=g["server"],
                event_count=g["connections"],
                evidence={
                    "server": g["server"],
                    "port": g["port"],
                    "service": EXPOSED_PORTS[g["port"]],
                    "outside_clients": g["clients"],
                    "connections": g["connections"],
                    "sample_clients": g["sample"],
                },
            ).with_dedup(ctx.tenant, g["server"], g["port"], g["bucket"])
            for g in stats.sort("first").iter_rows(named=True)
        ]


# ---------------------------------------------------------------------- cloud sign-ins

EARTH_KM = 6371.0088


def _haversine(lat1: pl.Expr, lon1: pl.Expr, lat2: pl.Expr, lon2: pl.Expr) -> pl.Expr:
    r = 3.141592653589793 / 180
    dlat = (lat2 - lat1) * r
    dlon = (lon2 - lon1) * r
    a = (dlat / 2).sin() ** 2 + (lat1 * r).cos() * (lat2 * r).cos() * (dlon / 2).sin() ** 2
    return 2 * EARTH_KM * a.sqrt().arcsin()


#: inbox-rule parameters that hide or destroy mail (the BEC pattern), beside forwarding
HIDING = (
    r"(?i)(?:DeleteMessage=True|SoftDeleteMessage=True|MarkAsRead=True.*MoveToFolder|"
    r"MoveToFolder=[^;]*(?:RSS|Archive|Conversation History|Deleted Items|Junk|Notes))"
)
#: Google Workspace login-audit warnings: Google itself suspects the account (name -> severity)
GWS_WARNINGS = {
    "suspicious_login": "medium",
    "suspicious_login_less_secure_app": "medium",
    "suspicious_programmatic_login": "medium",
    "gov_attack_warning": "high",
    "account_disabled_hijacked": "high",
    "account_disabled_password_leak": "high",
    "account_disabled_spamming": "high",
    "account_disabled_spamming_through_relay": "high",
}
#: Google Workspace events that set up forwarding
GWS_FORWARDING = ("email_forwarding_out_of_domain", "email_forwarding_change")


class CloudSigninDetector(Detector):
    """Impossible travel, legacy-protocol sign-ins, and new forwarding / inbox rules."""

    name = "cloud_signin"
    description = (
        "cloud mail takeover: impossible travel, legacy-protocol sign-ins, forwarding and inbox rules"
    )

    def __init__(
        self,
        max_speed_kmh: float = 900.0,
        min_distance_km: float = 500.0,
        memory: timedelta = timedelta(days=30),
        max_users: int = 100_000,
    ) -> None:
        self.max_speed_kmh = max_speed_kmh
        self.min_distance_km = min_distance_km
        self.memory = memory
        self.max_users = max_users

    def detect(self, events: pl.DataFrame, ctx: DetectContext) -> list[AlertDraft]:
        alerts = self._travel(events, ctx)
        alerts += self._legacy(events, ctx)
        alerts += self._mailbox_rules(events, ctx)
        alerts += self._provider_warnings(events, ctx)
        return alerts

    def _provider_warnings(self, events: pl.DataFrame, ctx: DetectContext) -> list[AlertDraft]:
        """Google's own account warnings (suspicious login, hijacked, leaked password)."""
        hits = events.filter(
            (pl.col("event.dataset") == "google_workspace.login")
            & pl.col("event.action").is_in(list(GWS_WARNINGS))
        )
        alerts = []
        for g in hits.sort("@timestamp").iter_rows(named=True):
            who = (g["user.name"] or "?").lower()
            alerts.append(
                AlertDraft(
                    detector=self.name,
                    kind="account_takeover",
                    severity=GWS_WARNINGS[g["event.action"]],
                    title=f"Google Workspace warns about {who}: {g['event.action']}",
                    first_seen=g["@timestamp"],
                    last_seen=g["@timestamp"],
                    keys=[f"user:{who}"],
                    indicator=g["source.ip"],
                    evidence={"account": who, "warning": g["event.action"], "source_ip": g["source.ip"]},
                ).with_dedup(ctx.tenant, who, g["event.action"], g["@timestamp"])
            )
        return alerts

    def _travel(self, events: pl.DataFrame, ctx: DetectContext) -> list[AlertDraft]:
        cols = {
            "user": pl.col("user.name").str.to_lowercase(),
            TS: pl.col("@timestamp"),
            "ip": pl.col("source.ip"),
            "lat": pl.col("source.geo.location.lat"),
            "lon": pl.col("source.geo.location.lon"),
            "place": pl.concat_str(
                pl.col("source.geo.city_name").fill_null("?"),
                pl.col("source.geo.country_iso_code").fill_null("?"),
                separator=", ",
            ),
        }
        rows = events.filter(
            (pl.col("event.category") == "authentication")
            & (pl.col("event.outcome") == "success")
            & pl.col("user.name").is_not_null()
            & pl.col("source.geo.location.lat").is_not_null()
            & pl.col("source.geo.location.lon").is_not_null()
            & pl.col("@timestamp").is_not_null()
        ).select(**cols)
        if rows.height == 0:
            return []
        last = ctx.state.get("last_seen")
        both = pl.concat([last, rows], how="vertical_relaxed") if isinstance(last, pl.DataFrame) else rows
        both = both.unique(["user", TS, "ip"], keep="first").sort("user", TS)
        pairs = both.with_columns(
            pl.col(TS).shift(1).over("user").alias("prev_ts"),
            pl.col("lat").shift(1).over("user").alias("prev_lat"),
            pl.col("lon").shift(1).over("user").alias("prev_lon"),
            pl.col("ip").shift(1).over("user").alias("prev_ip"),
            pl.col("place").shift(1).over("user").alias("prev_place"),
        ).filter(pl.col("prev_ts").is_not_null())
        pairs = pairs.join(rows.select("user", TS, "ip"), on=["user", TS, "ip"], how="semi")
        hours = ((pl.col(TS) - pl.col("prev_ts")).dt.total_seconds() / 3600).clip(lower_bound=1 / 60)
        km = _haversine(pl.col("prev_lat"), pl.col("prev_lon"), pl.col("lat"), pl.col("lon"))
        found = (
            pairs.with_columns(km.alias("km"), hours.alias("hours"))
            .with_columns((pl.col("km") / pl.col("hours")).alias("kmh"))
            .filter((pl.col("km") >= self.min_distance_km) & (pl.col("kmh") > self.max_speed_kmh))
        )
        # keep each user's newest sign-in for the next batch (bounded)
        newest = both.group_by("user").agg(pl.all().sort_by(TS).last())
        cutoff = newest[TS].max()
        assert isinstance(cutoff, datetime)
        ctx.state["last_seen"] = (
            newest.filter(pl.col(TS) >= cutoff - self.memory)
            .sort(TS)
            .tail(self.max_users)
            .select(rows.columns)
        )
        alerts = []
        for g in found.iter_rows(named=True):
            alerts.append(
                AlertDraft(
                    detector=self.name,
                    kind="impossible_travel",
                    severity="medium",
                    title=(
                        f"Impossible travel for {g['user']}: {g['prev_place']} -> {g['place']}, "
                        f"{g['km']:.0f} km in {g['hours'] * 60:.0f} min"
                    ),
                    first_seen=g["prev_ts"],
                    last_seen=g[TS],
                    keys=[f"user:{g['user']}"],
                    indicator=g["ip"],
                    event_count=2,
                    evidence={
                        "account": g["user"],
                        "from": {
                            "ip": g["prev_ip"],
                            "place": g["prev_place"],
                            "at": g["prev_ts"].isoformat(),
                        },
                        "to": {"ip": g["ip"], "place": g["place"], "at": g[TS].isoformat()},
                        "distance_km": round(g["km"]),
                        "speed_kmh": round(g["kmh"]),
                    },
                ).with_dedup(ctx.tenant, g["user"], g["prev_ts"], g[TS])
            )
        return alerts

    def _legacy(self, events: pl.DataFrame, ctx: DetectContext) -> list[AlertDraft]:
        hits = events.filter(
            (pl.col("event.category") == "authentication")
            & (pl.col("event.outcome") == "success")
            & pl.col("network.application").is_in(LEGACY_CLIENT_APPS)
            & pl.col("user.name").is_not_null()
        )
        if hits.height == 0:
            return []
        stats = (
            hits.with_columns(pl.col("@timestamp").dt.truncate("1d").alias("bucket"))
            .group_by(pl.col("user.name").str.to_lowercase().alias("src"), "bucket", "network.application")
            .agg(
                pl.len().alias("n"),
                pl.col("@timestamp").min().alias("first"),
                pl.col("@timestamp").max().alias("last"),
                pl.col("source.ip").unique().sort().head(5).alias("ips"),
            )
            .with_columns(pl.concat_str(pl.lit("legacy:"), pl.col("network.application")).alias("what"))
        )
        stats = not_yet_alerted(ctx.state, stats, ["src", "bucket", "what"], timedelta(days=3))
        return [
            AlertDraft(
                detector=self.name,
                kind="legacy_auth_signin",
                severity="medium",
                title=f"{g['src']} signed in with {g['network.application']} (legacy protocol, no MFA)",
                first_seen=g["first"],
                last_seen=g["last"],
                keys=[f"user:{g['src']}"],
                indicator=g["ips"][0] if g["ips"] else None,
                event_count=g["n"],
                evidence={
                    "account": g["src"],
                    "client_app": g["network.application"],
                    "source_ips": g["ips"],
                },
            ).with_dedup(ctx.tenant, g["src"], g["network.application"], g["bucket"])
            for g in stats.sort("first").iter_rows(named=True)
        ]

    def _mailbox_rules(self, events: pl.DataFrame, ctx: DetectContext) -> list[AlertDraft]:
        user = pl.col("user.name").fill_null("").str.to_lowercase()
        target = pl.col("email.to.address").str.to_lowercase()
        user_domain = user.str.extract(r"@([^@]+)$", 1)
        target_domain = target.str.extract(r"@([^@>\s]+)", 1)
        reason = pl.col("event.reason").fill_null("")
        rule_op = pl.col("event.action").is_in(MAILBOX_RULE_OPERATIONS)
        same_org = (target_domain == user_domain) | target_domain.str.ends_with(
            pl.concat_str(pl.lit("."), user_domain)
        )
        outside = target.is_not_null() & (user_domain.is_null() | ~same_org.fill_null(False))
        hiding = rule_op & reason.str.contains(HIDING)
        gws = pl.col("event.action").is_in(GWS_FORWARDING)
        hits = events.filter(
            (pl.col("event.outcome") != "failure") & ((rule_op & (outside | hiding)) | gws)
        ).with_columns(outside.alias("outside"), hiding.alias("hiding"))
        if hits.height == 0:
            return []
        alerts = []
        for g in hits.sort("@timestamp").iter_rows(named=True):
            who = g["user.name"] or "?"
            what = []
            if g["outside"] or g["event.action"] in GWS_FORWARDING:
                what.append(f"forwards mail to {g['email.to.address'] or 'an outside address'}")
            if g["hiding"]:
                what.append("deletes or hides incoming mail")
            alerts.append(
                AlertDraft(
                    detector=self.name,
                    kind="mailbox_rule",
                    severity="high",
                    title=f"New mailbox rule for {who} ({g['event.action']}): {' and '.join(what)}",
                    first_seen=g["@timestamp"],
                    last_seen=g["@timestamp"],
                    keys=[f"user:{who.lower()}"],
                    indicator=g["source.ip"],
                    evidence={
                        "account": who,
                        "operation": g["event.action"],
                        "forward_to": g["email.to.address"],
                        "parameters": (g["event.reason"] or "")[:500],
                        "source_ip": g["source.ip"],
                    },
                ).with_dedup(ctx.tenant, who, g["event.action"], g["@timestamp"], g["event.reason"])
            )
        return alerts


def _human(window: timedelta) -> str:
    minutes = int(window.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


__all__ = [
    "CloudSigninDetector",
    "CredentialStuffingDetector",
    "ExposedServiceDetector",
    "WebAttackDetector",
    "login_attempts",
    "url_decode",
    "web_categories",
]
