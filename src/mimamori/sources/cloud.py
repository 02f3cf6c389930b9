"""Cloud sign-in and mailbox audit logs (one JSON object per line) normalised to ECS.

The same record reaches an SME in several shapes: the Microsoft Graph API (camelCase,
``createdDateTime``), an Azure Monitor diagnostic export (the record under ``properties``),
a Microsoft Sentinel / Log Analytics table (PascalCase, ``TimeGenerated``), or Panther-style
lower-case keys. Keys are therefore compared case-insensitively, ``properties.`` is looked
through, and each ECS field is the first of its declared candidate keys that is present.

- ``entra_signin``: Microsoft Entra ID (Azure AD) sign-in logs. ``event.category``
  authentication; outcome from ``status.errorCode`` / ``ResultType`` (0 = success);
  ``network.application`` is the client app used (``Browser``, ``IMAP4``, ``Exchange
  ActiveSync``, ... the legacy ones bypass MFA); geo from ``location`` / ``LocationDetails``.
- ``m365_audit``: the Microsoft 365 unified audit log (``CreationTime``, ``Operation``,
  ``UserId``, ``ClientIP``, ``Parameters``). Parameters are kept as ``Name=Value; ...`` in
  ``event.reason``; forwarding targets of inbox rules and ``Set-Mailbox`` go to
  ``email.to.address``. ``UserLoggedIn`` / ``UserLoginFailed`` are authentication events.
  ``ClientIP`` may carry a port (``1.2.3.4:5678``, ``[2001:db8::1]:443``), which is removed.
- ``gws_login``: Google Workspace Admin SDK Reports API, ``login`` application. One
  activity can hold several events; ``event.action`` is the first one's name and
  ``message`` lists all names. ``login_failure`` is a failure; suspicious-login and
  account warnings are kept with their names.

Times without an offset are UTC, as these services write them. A line that is not a JSON
object, or has no readable time, is quarantined naming the field. A JSON array file (some
exports) is not read: convert it to one object per line (``jq -c '.[]'``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import polars as pl

from mimamori.sources.base import ParseResult, SourceParser, finish, json_lines, split_structural
from mimamori.sources.reader import LINE, TEXT, LineBatch
from mimamori.sources.syslog_header import iso_datetime, valid_ip

#: Entra sign-in client apps that cannot do modern authentication (so no MFA).
LEGACY_CLIENT_APPS = (
    "Exchange ActiveSync",
    "IMAP4",
    "POP3",
    "Authenticated SMTP",
    "Exchange Web Services",
    "MAPI Over HTTP",
    "Offline Address Book",
    "Outlook Anywhere (RPC over HTTP)",
    "Exchange Online PowerShell",
    "AutoDiscover",
    "Other clients",
)

#: Entra sign-in error codes that interrupt a sign-in (MFA or consent needed, "keep me signed
#: in" prompt, device registration): not a wrong password, so neither success nor failure.
INTERRUPT_CODES = (50055, 50072, 50074, 50076, 50079, 50097, 50125, 50140, 50158, 81010, 81012)

#: mailbox operations that create or change forwarding / inbox rules
MAILBOX_RULE_OPERATIONS = (
    "New-InboxRule",
    "Set-InboxRule",
    "Enable-InboxRule",
    "UpdateInboxRules",
    "Set-Mailbox",
    "New-TransportRule",
    "Set-TransportRule",
)


def canonical(df: pl.DataFrame) -> pl.DataFrame:
    """Lower-case column names, looking through ``properties.``; the first of duplicates wins."""
    seen: set[str] = set()
    exprs: list[pl.Expr] = []
    names = sorted(df.columns, key=lambda c: c.lower().startswith("properties."))
    for c in names:
        low = c.lower()
        if low.startswith("properties."):
            low = low.removeprefix("properties.")
        if low in seen:
            continue
        seen.add(low)
        exprs.append(pl.col(c).alias(low))
    return df.select(exprs)


def pick(df: pl.DataFrame, *names: str, dtype: pl.DataType | None = None) -> pl.Expr:
    """The first present of the (lower-case) candidate columns, as text; empty text is null."""
    cols: list[pl.Expr] = []
    for n in names:
        if n not in df.columns:
            continue
        t = df.schema[n]
        if isinstance(t, pl.List | pl.Array | pl.Struct) or t == pl.Null:
            continue
        col = pl.col(n).cast(pl.String)
        cols.append(pl.when(col.str.strip_chars() == "").then(None).otherwise(col))
    if not cols:
        return pl.lit(None, dtype=dtype or pl.String)
    out = pl.coalesce(cols) if len(cols) > 1 else cols[0]
    return out.cast(dtype, strict=False) if dtype is not None else out


def strip_port(expr: pl.Expr) -> pl.Expr:
    """``1.2.3.4:5678`` / ``[2001:db8::1]:443`` / ``2001:db8::1`` -> the address (null if none)."""
    s = expr.str.strip_chars()
    bracket = s.str.extract(r"^\[([^\]]+)\]", 1)
    v4port = s.str.extract(r"^(\d{1,3}(?:\.\d{1,3}){3}):\d+$", 1)
    return valid_ip(pl.coalesce(bracket, v4port, s))


def _lines(batch: LineBatch) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, int]:
    data, skipped = split_structural(batch)
    df, bad = json_lines(data, batch.path)
    return canonical(df), bad, data, skipped


def _sniff_json(head: list[str], *needles: str) -> bool:
    lines = [ln for ln in head if ln.strip()][:5]
    return (
        bool(lines)
        and all(ln.lstrip().startswith("{") for ln in lines)
        and any(all(n.lower() in ln.lower() for n in needles) for ln in lines)
    )


def _params_text(df: pl.DataFrame, name: str) -> pl.Expr:
    """A ``[{Name, Value}]`` list as ``Name=Value; ...`` (already-text values are kept)."""
    if name not in df.columns:
        return pl.lit(None, dtype=pl.String)
    dtype = df.schema[name]
    if isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct):
        fields = {f.name.lower(): f.name for f in dtype.inner.fields}
        key = fields.get("name")
        value = fields.get("value")
        if key is None or value is None:
            return pl.lit(None, dtype=pl.String)
        return (
            pl.col(name)
            .list.eval(
                pl.concat_str(
                    pl.element().struct.field(key).cast(pl.String),
                    pl.lit("="),
                    pl.element().struct.field(value).cast(pl.String).fill_null(""),
                )
            )
            .list.join("; ")
        )
    if dtype == pl.String:
        return pl.col(name)
    return pl.lit(None, dtype=pl.String)


class EntraSigninParser(SourceParser):
    """Microsoft Entra ID sign-in logs (Graph, diagnostic export or Sentinel shape)."""

    name: ClassVar[str] = "entra_signin"
    description: ClassVar[str] = "Microsoft Entra ID (Azure AD) sign-in logs, JSON lines"

    def sniff(self, head: list[str]) -> bool:
        return _sniff_json(head, "userPrincipalName", "ipAddress", "clientAppUsed")

    def parse(self, batch: LineBatch, ctx: dict[str, Any]) -> ParseResult:
        df, bad, data, skipped = _lines(batch)
        code = pick(df, "status.errorcode", "resulttype", dtype=pl.Int64())
        geo = ("location", "locationdetails")
        lat = pick(df, *(f"{g}.geocoordinates.latitude" for g in geo), dtype=pl.Float64())
        lon = pick(df, *(f"{g}.geocoordinates.longitude" for g in geo), dtype=pl.Float64())
        country = pick(df, *(f"{g}.countryorregion" for g in geo))
        if "location" in df.columns and df.schema["location"] == pl.String:  # diagnostic: top-level country
            country = pl.coalesce(country, pl.col("location"))
        events = df.select(
            pl.col(LINE),
            iso_datetime(pick(df, "createddatetime", "timegenerated", "time")).alias("@timestamp"),
            pl.lit("event").alias("event.kind"),
            pl.lit("authentication").alias("event.category"),
            pl.lit("start").alias("event.type"),
            pl.lit("sign_in").alias("event.action"),
            pl.when(code.is_null())
            .then(pl.lit("unknown"))
            .when(code == 0)
            .then(pl.lit("success"))
            .when(code.is_in(INTERRUPT_CODES))
            .then(pl.lit("unknown"))
            .otherwise(pl.lit("failure"))
            .alias("event.outcome"),
            pl.lit("azure.signinlogs").alias("event.dataset"),
            pl.lit("azure").alias("event.module"),
            pick(df, "id", "originalrequestid", "correlationid").alias("event.id"),
            code.cast(pl.String).alias("rule.id"),  # the sign-in error code
            pick(df, "status.failurereason", "resultdescription", "status.additionaldetails").alias(
                "event.reason"
            ),
            valid_ip(pick(df, "ipaddress", "calleripaddress")).alias("source.ip"),
            pick(df, "userprincipalname", "identity").str.to_lowercase().alias("user.name"),
            pick(df, "clientappused").alias("network.application"),
            pick(df, "useragent").alias("user_agent.original"),
            pick(df, "appdisplayname", "resourcedisplayname").alias("message"),
            country.alias("source.geo.country_iso_code"),
            pick(df, *(f"{g}.city" for g in geo)).alias("source.geo.city_name"),
            lat.alias("source.geo.location.lat"),
            lon.alias("source.geo.location.lon"),
            pl.lit("Microsoft").alias("observer.vendor"),
            pl.lit("Entra ID").alias("observer.product"),
        )
        return finish(
            events,
            batch.path,
            required={"@timestamp": "createdDateTime"},
            quarantine=bad,
            raw=data.select(LINE, TEXT),
            skipped=skipped,
        )


class M365AuditParser(SourceParser):
    """Microsoft 365 unified audit log records (Management Activity API / Purview export)."""

    name: ClassVar[str] = "m365_audit"
    description: ClassVar[str] = "Microsoft 365 unified audit log, JSON lines"

    def sniff(self, head: list[str]) -> bool:
        return _sniff_json(head, "CreationTime", "Operation", "Workload")

    def parse(self, batch: LineBatch, ctx: dict[str, Any]) -> ParseResult:
        df, bad, data, skipped = _lines(batch)
        op = pick(df, "operation")
        params = _params_text(df, "parameters")
        result = pick(df, "resultstatus").str.to_lowercase()
        login = op.is_in(["UserLoggedIn", "UserLoginFailed"])
        forward = params.str.extract(
            r"(?i)(?:^|; )(?:ForwardTo|RedirectTo|ForwardAsAttachmentTo|ForwardingSmtpAddress|"
            r"ForwardingAddress)=([^;]+)",
            1,
        ).str.replace(r"(?i)^smtp:", "")
        events = df.select(
            pl.col(LINE),
            iso_datetime(pick(df, "creationtime", "timegenerated")).alias("@timestamp"),
            pl.lit("event").alias("event.kind"),
            pl.when(login)
            .then(pl.lit("authentication"))
            .when(op.is_in(MAILBOX_RULE_OPERATIONS))
            .then(pl.lit("email"))
            .otherwise(pl.lit("configuration"))
            .alias("event.category"),
            pl.when(login).then(pl.lit("start")).otherwise(pl.lit("change")).alias("event.type"),
            op.alias("event.action"),
            pl.when(op == "UserLoginFailed")
            .then(pl.lit("failure"))
            .when(op == "UserLoggedIn")
            .then(pl.lit("success"))
            .when(result.is_in(["true", "succeeded", "success"]))
            .then(pl.lit("success"))
            .when(result.is_in(["false", "failed", "failure"]))
            .then(pl.lit("failure"))
            .otherwise(pl.lit("unknown"))
            .alias("event.outcome"),
            pl.lit("o365.audit").alias("event.dataset"),
            pl.lit("o365").alias("event.module"),
            pick(df, "id").alias("event.id"),
            params.alias("event.reason"),
            strip_port(pick(df, "clientip", "actoripaddress", "client_ipaddress")).alias("source.ip"),
            pick(df, "userid").str.to_lowercase().alias("user.name"),
            pick(df, "workload", "officeworkload").alias("observer.product"),
            pick(df, "objectid", "officeobjectid").alias("message"),
            forward.str.strip_chars().alias("email.to.address"),
            pl.lit("Microsoft").alias("observer.vendor"),
        )
        return finish(
            events,
            batch.path,
            required={"@timestamp": "CreationTime"},
            quarantine=bad,
            raw=data.select(LINE, TEXT),
            skipped=skipped,
        )


class GoogleWorkspaceLoginParser(SourceParser):
    """Google Workspace login audit (Admin SDK Reports API activities, application ``login``)."""

    name: ClassVar[str] = "gws_login"
    description: ClassVar[str] = "Google Workspace login audit (Reports API), JSON lines"

    def sniff(self, head: list[str]) -> bool:
        return _sniff_json(head, "admin#reports#activity", '"login"')

    def parse(self, batch: LineBatch, ctx: dict[str, Any]) -> ParseResult:
        df, bad, data, skipped = _lines(batch)
        names = self._event_names(df)
        first = names.list.first()
        events = df.select(
            pl.col(LINE),
            iso_datetime(pick(df, "id.time")).alias("@timestamp"),
            pl.lit("event").alias("event.kind"),
            pl.lit("authentication").alias("event.category"),
            pl.lit("start").alias("event.type"),
            first.alias("event.action"),
            pl.when(first == "login_failure")
            .then(pl.lit("failure"))
            .when(first.is_in(["login_success", "login_verification"]))
            .then(pl.lit("success"))
            .otherwise(pl.lit("unknown"))
            .alias("event.outcome"),
            pl.lit("google_workspace.login").alias("event.dataset"),
            pl.lit("google_workspace").alias("event.module"),
            pick(df, "id.uniquequalifier").alias("event.id"),
            valid_ip(pick(df, "ipaddress")).alias("source.ip"),
            pick(df, "actor.email").str.to_lowercase().alias("user.name"),
            pick(df, "login_type").alias("network.application"),
            names.list.join(",").alias("message"),
            pl.lit("Google").alias("observer.vendor"),
            pl.lit("Workspace").alias("observer.product"),
        )
        return finish(
            events,
            batch.path,
            required={"@timestamp": "id.time"},
            quarantine=bad,
            raw=data.select(LINE, TEXT),
            skipped=skipped,
        )

    @staticmethod
    def _event_names(df: pl.DataFrame) -> pl.Expr:
        """The names of the activity's events as a list (``events`` is a list or one object)."""
        if "events" in df.columns:
            dtype = df.schema["events"]
            if (
                isinstance(dtype, pl.List)
                and isinstance(dtype.inner, pl.Struct)
                and any(f.name == "name" for f in dtype.inner.fields)
            ):
                return pl.col("events").list.eval(pl.element().struct.field("name").cast(pl.String))
        single = pick(df, "events.name", "event_name", "name")
        return (
            pl.when(single.is_null())
            .then(pl.lit(None, dtype=pl.List(pl.String)))
            .otherwise(pl.concat_list(single))
        )


__all__ = [
    "INTERRUPT_CODES",
    "LEGACY_CLIENT_APPS",
    "MAILBOX_RULE_OPERATIONS",
    "EntraSigninParser",
    "GoogleWorkspaceLoginParser",
    "M365AuditParser",
]
