"""Vendor recognition for syslog batches: which parser each received message goes to.

A syslog receiver spools messages as they come, one per line, whatever the device. Here a
batch is split by vendor with Polars expressions over the whole batch (no per-message
Python): FortiGate key=value (``devid=``/``logid=`` with ``type=``), PAN-OS CSV (a CSV
payload whose fourth field is a PAN-OS log type), pfSense/OPNsense ``filterlog``, login
lines of sshd/Dovecot/Postfix/PAM (``authlog``), and everything else as generic
``syslog``. Lines that are not UTF-8 are tried as Shift_JIS (cp932) for the decision only;
every group keeps the bytes as received, so the pipeline's reader decodes (or
quarantines) them exactly as it does for files.
"""

from __future__ import annotations

import re

import polars as pl

from mimamori.sources.authlog import PATTERNS as AUTH_PATTERNS
from mimamori.sources.panos import CSV_START, KNOWN_TYPES
from mimamori.sources.reader import is_utf8
from mimamori.sources.syslog_header import APPNAME, MESSAGE, with_syslog_header

#: tried in this order; the first that claims a line gets it
VENDORS = ("fortigate", "panos", "filterlog", "authlog")
GENERIC = "syslog"

_AUTH = "|".join(f"(?:{re.sub(r'[(][?]P<[a-z]+>', '(?:', rx)})" for _, _, rx in AUTH_PATTERNS)


def classify(text: pl.Series) -> pl.Series:
    """Source name per line of ``text`` (String, one message per element)."""
    df = pl.DataFrame({"t": text.str.slice(0, 8192)})
    df = with_syslog_header(df, "t")
    msg = pl.col(MESSAGE).fill_null(pl.col("t"))
    csv = msg.str.split(",")
    is_forti = msg.str.contains(r"\b(?:devid|logid)=") & msg.str.contains(r"\btype=")
    is_pan = msg.str.contains(rf"^(?:{CSV_START})") & csv.list.get(3, null_on_oob=True).is_in(KNOWN_TYPES)
    is_filterlog = pl.col(APPNAME) == "filterlog"
    is_auth = pl.col("t").str.contains(_AUTH)
    name = (
        pl.when(is_forti.fill_null(False))
        .then(pl.lit("fortigate"))
        .when(is_pan.fill_null(False))
        .then(pl.lit("panos"))
        .when(is_filterlog.fill_null(False))
        .then(pl.lit("filterlog"))
        .when(is_auth.fill_null(False))
        .then(pl.lit("authlog"))
        .otherwise(pl.lit(GENERIC))
    )
    return df.select(name.alias("source")).to_series()


def split_by_vendor(payload: bytes) -> list[tuple[str, bytes]]:
    """``payload`` (messages separated by LF) -> [(source, messages of that source)]."""
    body = payload[:-1] if payload.endswith(b"\n") else payload
    if not body:
        return []
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return _split_slow(body)
    text = pl.Series("t", [body], dtype=pl.Binary).cast(pl.String).str.split("\n").explode()
    df = pl.DataFrame({"t": text, "source": classify(text)})
    out: list[tuple[str, bytes]] = []
    for source in (*VENDORS, GENERIC):
        group = df.filter(pl.col("source") == source)["t"]
        if group.len():
            out.append((source, (group.str.join("\n").item() + "\n").encode()))
    return out


def _split_slow(body: bytes) -> list[tuple[str, bytes]]:
    # a batch holding lines that are not UTF-8 (Japanese devices send Shift_JIS): decode
    # line by line for the decision, keep each line's bytes as received
    parts = body.split(b"\n")
    text = pl.Series(
        "t",
        [p.decode("utf-8", errors="strict") if is_utf8(p) else p.decode("cp932", "replace") for p in parts],
        dtype=pl.String,
    )
    sources = classify(text).to_list()
    out: list[tuple[str, bytes]] = []
    for source in (*VENDORS, GENERIC):
        group = [p for p, s in zip(parts, sources, strict=True) if s == source]
        if group:
            out.append((source, b"\n".join(group) + b"\n"))
    return out
