"""Web server access logs: Apache/nginx combined and common formats, IIS W3C extended.

**Apache / nginx** (source ``apache``): the NCSA common format
``host ident user [time] "request" status bytes`` with, in the combined format,
``"referrer" "user-agent"`` after it. Also read: a ``vhost:port`` before the host
(Apache ``vhost_combined``), any prefix before the host such as a syslog header (the line
is searched, not anchored), and one more quoted field after the user agent holding an
X-Forwarded-For chain (the common nginx ``"$http_x_forwarded_for"`` addition). With a chain,
``source.ip`` is its first valid address (the client) and the address that connected is
kept in ``http.request.peer_ip`` (the proxy); the whole chain is kept as logged. Times carry
their own offset (``[25/Oct/2015:04:11:25 +0100]``) and are converted to UTC.

**IIS W3C** (source ``iis``): space-separated fields named by the last ``#Fields:`` line
(kept in the file's context across batches; a new ``#Fields:`` line mid-file takes effect
from there). Times are UTC as IIS writes them; the ``timezone`` option reads them in another
zone for servers configured to log local time. ``+`` in the user agent stands for a space.
An ``X-Forwarded-For`` field (IIS custom field, ``cs(X-Forwarded-For)`` or
``X-Forwarded-For``) is handled as above.

Quarantined, with the reason: lines that are not access-log lines (often truncated), a
combined line whose referrer/user-agent is cut off, bad status or time, an IIS line with
fewer or more fields than its ``#Fields`` header, an IIS line before any ``#Fields`` header.
A request line that is not ``METHOD target PROTOCOL`` (binary probes, garbage) is kept:
it is evidence, with the raw text in ``url.original`` and no method.
"""

from __future__ import annotations

from typing import Any, ClassVar

import polars as pl

from mimamori.events.schema import TS
from mimamori.sources.base import ParseResult, SourceParser, finish, split_structural
from mimamori.sources.reader import LINE, TEXT, LineBatch, quarantine_rows
from mimamori.sources.syslog_header import local_to_utc, valid_ip

_Q = r'"((?:[^"\\]|\\.)*)"'  # a quoted field with backslash escapes
#: host ident user [time] "request" status bytes, then the rest of the line
#: The request is read up to the first ``" status bytes`` followed by the end or a quote, so
#: unescaped quotes inside it (old Apache, Tomcat: ``?q="><script>``) do not break the line.
ACCESS_RE = r'(?:(\S+:\d+) )?(\S+) (\S+) (\S+) \[([^\]]+)\] "(.*?)" (\d{3}|-) (\d+|-)((?: ".*)?)$'

#: the rest: "referrer" "user-agent" and optionally "x-forwarded-for" (anything after is ignored)
REST_RE = rf"^ {_Q} {_Q}(?: {_Q})?"
REQUEST_RE = r"^([A-Za-z_-]+) (\S+)(?: (HTTP/[0-9.]+))?$"
_ACCESS_FIELDS = ("vhost", "host", "ident", "user", "time", "request", "status", "bytes", "rest")


def _dash_null(expr: pl.Expr) -> pl.Expr:
    return pl.when(expr.is_in(["-", ""])).then(pl.lit(None, dtype=pl.String)).otherwise(expr).name.keep()


def _unescape(expr: pl.Expr) -> pl.Expr:
    return expr.str.replace_all(r'\\"', '"', literal=True)


def _forwarded(chain: pl.Expr, peer: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(source.ip, peer): the chain's first valid address, else the peer itself."""
    first = valid_ip(chain.str.split(",").list.first().str.strip_chars())
    return pl.coalesce(first, peer), pl.when(first.is_not_null()).then(peer).otherwise(None)


def _url_parts(target: pl.Expr) -> list[pl.Expr]:
    return [
        target.alias("url.original"),
        target.str.replace(r"\?.*$", "").alias("url.path"),
        target.str.extract(r"\?(.*)$", 1).alias("url.query"),
    ]


def _common_fields(module: str, dataset: str) -> list[pl.Expr]:
    status = pl.col("http.response.status_code")
    return [
        pl.lit("event").alias("event.kind"),
        pl.lit("web").alias("event.category"),
        pl.lit("access").alias("event.type"),
        pl.lit(module).alias("event.module"),
        pl.lit(dataset).alias("event.dataset"),
        pl.when(status.is_null())
        .then(pl.lit("unknown"))
        .when(status < 400)
        .then(pl.lit("success"))
        .otherwise(pl.lit("failure"))
        .alias("event.outcome"),
    ]


#: the text before the request's opening quote: [vhost:port] host ident user [time]
PREFIX_RE = r"(?:(\S+:\d+) )?(\S+) (\S+) (\S+) \[([^\]]+)\] $"
STATUS_RE = r"^ (\d{3}|-) (\d+|-) ?$"


def _split_on_quotes(data: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Fast path for the usual lines (no escaped quote): split on ``"`` instead of one big
    regex. Returns (parts of the lines it read, in the layout of the regex path; the other
    lines for the regex path)."""
    q = pl.col("__q")
    n = q.list.len()
    split = data.with_columns(pl.col(TEXT).str.split('"').alias("__q"))

    def at(i: int) -> pl.Expr:
        return q.list.get(i, null_on_oob=True)

    shape = (
        pl.when(n == 3)
        .then(True)
        .when(n == 7)
        .then((at(4) == " ") & (at(6).str.strip_chars() == ""))
        .when(n == 9)
        .then((at(4) == " ") & (at(6) == " ") & (at(8).str.strip_chars() == ""))
        .otherwise(False)
    ) & ~pl.col(TEXT).str.contains("\\", literal=True)
    split = split.with_columns(
        shape.alias("__ok"),
        at(0).str.extract_groups(PREFIX_RE).alias("__p"),
        at(2).str.extract_groups(STATUS_RE).alias("__s"),
    )
    ok = (
        pl.col("__ok")
        & pl.col("__p").struct.field("2").is_not_null()
        & pl.col("__s").struct.field("1").is_not_null()
    )
    split = split.with_columns(ok.fill_null(False).alias("__ok"))
    fast = split.filter(pl.col("__ok")).select(
        pl.col(LINE),
        *[pl.col("__p").struct.field(str(i + 1)).alias(name) for i, name in enumerate(_ACCESS_FIELDS[:5])],
        at(1).alias("request"),
        pl.col("__s").struct.field("1").alias("status"),
        pl.col("__s").struct.field("2").alias("bytes"),
        pl.lit("").alias("rest"),
        at(3).alias("referrer"),
        at(5).alias("agent"),
        at(7).alias("xff"),
    )
    return fast, split.filter(~pl.col("__ok")).select(LINE, TEXT)


class ApacheAccessParser(SourceParser):
    """Apache httpd / nginx access logs in the common or combined format."""

    name: ClassVar[str] = "apache"
    description: ClassVar[str] = "Apache/nginx access log (common, combined, vhost, X-Forwarded-For)"

    def sniff(self, head: list[str]) -> bool:
        lines = [ln for ln in head if ln.strip()][:10]
        if not lines:
            return False
        s = pl.Series(lines)
        return bool(s.str.contains(ACCESS_RE).mean() >= 0.8)  # type: ignore[operator]

    def parse(self, batch: LineBatch, ctx: dict[str, Any]) -> ParseResult:
        data, skipped = split_structural(batch)
        fast, slow = _split_on_quotes(data)
        parts = slow.select(pl.col(LINE), pl.col(TEXT).str.extract_groups(ACCESS_RE).alias("m")).unnest("m")
        parts = parts.rename(dict(zip([str(i) for i in range(1, 10)], _ACCESS_FIELDS, strict=True)))
        rest = parts.select(pl.col("rest").str.extract_groups(REST_RE).alias("r")).unnest("r")
        parts = parts.with_columns(
            rest["1"].alias("referrer"), rest["2"].alias("agent"), rest["3"].alias("xff")
        )
        if fast.height:
            parts = pl.concat([fast, parts.select(fast.columns)], how="vertical_relaxed")
        bad_rest = (pl.col("rest").str.strip_chars() != "") & pl.col("agent").is_null()
        reason = (
            pl.when(pl.col("host").is_null())
            .then(pl.lit("not a common/combined access-log line (truncated or another format)"))
            .when(bad_rest & pl.col("rest").str.starts_with(' "'))
            .then(pl.lit("field referrer/user-agent: truncated (unterminated quote)"))
            .otherwise(pl.lit(None, dtype=pl.String))
        )
        parts = parts.with_columns(reason.alias("__bad"))
        bad = parts.filter(pl.col("__bad").is_not_null()).select(LINE, "__bad")
        quarantine = None
        if bad.height:
            texts = bad.join(data, on=LINE, how="left")
            quarantine = quarantine_rows(
                batch.path, texts[LINE].to_list(), texts["__bad"].to_list(), texts[TEXT].to_list()
            )
            parts = parts.filter(pl.col("__bad").is_null())
        request = _unescape(pl.col("request"))
        req = request.str.extract_groups(REQUEST_RE)
        target = pl.coalesce(req.struct.field("2"), _dash_null(request))
        peer = valid_ip(pl.col("host"))
        xff = _dash_null(_unescape(pl.col("xff")))
        xff = pl.when(xff.str.contains(r"^[0-9A-Fa-f:., ]+$")).then(xff).otherwise(None)
        source, proxy = _forwarded(xff, peer)
        vhost = pl.col("vhost")
        events = parts.select(
            pl.col(LINE),
            pl.col("time")
            .str.to_datetime("%d/%b/%Y:%H:%M:%S %z", strict=False, time_unit="us")
            .dt.convert_time_zone("UTC")
            .cast(TS)
            .alias("@timestamp"),
            source.alias("source.ip"),
            proxy.alias("http.request.peer_ip"),
            xff.alias("http.request.x_forwarded_for"),
            pl.when(peer.is_null()).then(pl.col("host")).otherwise(None).alias("source.domain"),
            _dash_null(pl.col("user")).alias("user.name"),
            req.struct.field("1").str.to_uppercase().alias("http.request.method"),
            *_url_parts(target),
            pl.col("status").cast(pl.Int32, strict=False).alias("http.response.status_code"),
            pl.col("bytes").cast(pl.Int64, strict=False).alias("http.response.body.bytes"),
            _dash_null(_unescape(pl.col("referrer"))).alias("http.request.referrer"),
            _dash_null(_unescape(pl.col("agent"))).alias("user_agent.original"),
            vhost.str.extract(r"^(.*):\d+$", 1).alias("destination.domain"),
            vhost.str.extract(r":(\d+)$", 1).cast(pl.Int32, strict=False).alias("destination.port"),
            request.alias("message"),
        ).with_columns(_common_fields("apache", "apache.access"))
        # a host that is a name (HostnameLookups On) is kept as source.domain; one of the two is required
        events = events.with_columns(pl.coalesce("source.ip", "source.domain").alias("__src"))
        result = finish(
            events,
            batch.path,
            required={"@timestamp": "time", "http.response.status_code": "status", "__src": "host"},
            quarantine=quarantine,
            raw=data,
            skipped=skipped,
        )
        return result


# ---------------------------------------------------------------------------- IIS W3C

#: W3C field -> ECS column. Fields not named here are not needed.
W3C_FIELDS: dict[str, str] = {
    "s-ip": "destination.ip",
    "s-port": "destination.port",
    "s-computername": "host.name",
    "s-sitename": "observer.hostname",
    "cs-host": "destination.domain",
    "cs-method": "http.request.method",
    "cs-uri-stem": "url.path",
    "cs-uri-query": "url.query",
    "cs-username": "user.name",
    "c-ip": "http.request.peer_ip",
    "cs(user-agent)": "user_agent.original",
    "cs(referer)": "http.request.referrer",
    "sc-status": "http.response.status_code",
    "sc-bytes": "http.response.body.bytes",
    "cs-bytes": "source.bytes",
    "time-taken": "event.duration",
    "x-forwarded-for": "http.request.x_forwarded_for",
    "cs(x-forwarded-for)": "http.request.x_forwarded_for",
}


class IisW3cParser(SourceParser):
    """Microsoft IIS W3C extended log files (``#Fields:`` header)."""

    name: ClassVar[str] = "iis"
    description: ClassVar[str] = "IIS W3C extended access log"

    def __init__(self, timezone: str = "UTC") -> None:
        self.timezone = timezone

    def sniff(self, head: list[str]) -> bool:
        return any(ln.startswith("#Fields:") for ln in head) and any(
            ln.startswith(("#Software: Microsoft Internet Information Services", "#Version:")) for ln in head
        )

    def parse(self, batch: LineBatch, ctx: dict[str, Any]) -> ParseResult:
        lines = batch.lines
        blank = lines[TEXT].str.strip_chars().str.len_bytes() == 0
        directive = lines[TEXT].str.starts_with("#")
        skipped = int((blank | directive).sum())
        # each data line belongs to the last #Fields line before it (or the one from earlier batches)
        fields_at = lines.filter(lines[TEXT].str.starts_with("#Fields:")).select(
            LINE, pl.col(TEXT).str.strip_prefix("#Fields:").str.strip_chars().alias("fields")
        )
        data = lines.filter(~blank & ~directive)
        carried = ctx.get("iis_fields")
        if fields_at.height:
            ctx["iis_fields"] = fields_at["fields"][-1]
        if data.height == 0:
            return ParseResult(skipped=skipped)
        data = data.sort(LINE).join_asof(fields_at.sort(LINE), on=LINE, strategy="backward")
        data = data.with_columns(pl.col("fields").fill_null(pl.lit(carried, dtype=pl.String)))
        results: list[ParseResult] = []
        no_header = data.filter(pl.col("fields").is_null())
        if no_header.height:
            results.append(
                ParseResult(
                    quarantine=quarantine_rows(
                        batch.path,
                        no_header[LINE].to_list(),
                        ["no #Fields header before this line"] * no_header.height,
                        no_header[TEXT].to_list(),
                    )
                )
            )
        for (header,), group in data.filter(pl.col("fields").is_not_null()).group_by(
            "fields", maintain_order=True
        ):
            results.append(self._parse_group(batch.path, str(header), group.select(LINE, TEXT)))
        events = pl.concat([r.events for r in results])
        quarantine = pl.concat([r.quarantine for r in results])
        return ParseResult(events, quarantine, skipped)

    def _parse_group(self, path: str, header: str, data: pl.DataFrame) -> ParseResult:
        names = header.split()
        n = len(names)
        data = data.with_columns(
            pl.col(TEXT).str.strip_chars().str.replace_all(r"[ \t]+", " ").str.split(" ").alias("__f")
        )
        counts = data["__f"].list.len()
        wrong = data.filter(counts != n)
        quarantine = None
        if wrong.height:
            got = wrong["__f"].list.len().to_list()
            quarantine = quarantine_rows(
                path,
                wrong[LINE].to_list(),
                [
                    f"expected {n} fields (#Fields header), got {g}"
                    + (" (truncated line?)" if g < n else " (unescaped space in a field?)")
                    for g in got
                ],
                wrong[TEXT].to_list(),
            )
            data = data.filter(counts == n)
        cols = data.select(
            pl.col(LINE),
            *[pl.col("__f").list.get(i).alias(name.lower()) for i, name in enumerate(names)],
        )
        cols = cols.with_columns([_dash_null(pl.col(c)) for c in cols.columns if c != LINE])
        exprs: list[pl.Expr] = [pl.col(LINE)]
        taken: set[str] = set()
        for w3c, ecs in W3C_FIELDS.items():
            if w3c in cols.columns and ecs not in taken:
                taken.add(ecs)
                value = pl.col(w3c)
                if ecs in ("user_agent.original", "http.request.referrer"):
                    value = value.str.replace_all("+", " ", literal=True)
                if ecs == "event.duration":  # milliseconds -> nanoseconds
                    value = value.cast(pl.Int64, strict=False) * 1_000_000
                exprs.append(value.alias(ecs))
        if "date" in cols.columns and "time" in cols.columns:
            naive = pl.concat_str(pl.col("date"), pl.col("time"), separator=" ").str.to_datetime(
                "%Y-%m-%d %H:%M:%S%.f", strict=False, time_unit="us"
            )
            exprs.append(local_to_utc(naive, self.timezone).alias("@timestamp"))
        else:
            exprs.append(pl.lit(None, dtype=TS).alias("@timestamp"))
        events = cols.select(exprs)
        for ecs in ("http.request.peer_ip", "http.request.x_forwarded_for", "url.path", "url.query"):
            if ecs not in events.columns:
                events = events.with_columns(pl.lit(None, dtype=pl.String).alias(ecs))
        peer = valid_ip(pl.col("http.request.peer_ip"))
        xff = pl.col("http.request.x_forwarded_for")
        xff = pl.when(xff.str.contains(r"^[0-9A-Fa-f:., ]+$")).then(xff).otherwise(None)
        source, proxy = _forwarded(xff, peer)
        target = pl.concat_str(
            pl.col("url.path"), pl.lit("?"), pl.col("url.query"), ignore_nulls=False
        ).fill_null(pl.col("url.path"))
        events = events.with_columns(
            source.alias("source.ip"),
            proxy.alias("http.request.peer_ip"),
            xff.alias("http.request.x_forwarded_for"),
            target.alias("url.original"),
            pl.col("http.response.status_code").cast(pl.Int32, strict=False),
        ).with_columns(_common_fields("iis", "iis.access"))
        return finish(
            events,
            path,
            required={"@timestamp": "date/time", "http.response.status_code": "sc-status"},
            quarantine=quarantine,
            raw=data.select(LINE, TEXT),
        )


__all__ = ["ApacheAccessParser", "IisW3cParser"]
