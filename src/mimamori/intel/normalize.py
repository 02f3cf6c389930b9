"""Canonical forms of indicator values, so one observable has one spelling everywhere.

Readers and the matcher both go through these rules: IPs in ``ipaddress`` form (``ip:port``
loses the port), domains lowercase IDNA without the root dot, URLs with scheme and host
lowercased (an empty path becomes ``/``), hashes lowercase hex of the right length.
Defanged values (``hxxp://``, ``evil[.]com``) are refanged first. A value that cannot be
normalised raises ``ValueError`` with a reason fit for an issue report.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

IP: Final = "ip"
CIDR: Final = "cidr"
DOMAIN: Final = "domain"
URL: Final = "url"
MD5: Final = "md5"
SHA1: Final = "sha1"
SHA256: Final = "sha256"

#: Every indicator type, in the order reports list them.
INDICATOR_TYPES: Final[tuple[str, ...]] = (IP, CIDR, DOMAIN, URL, MD5, SHA1, SHA256)
HASH_LENGTHS: Final[dict[str, int]] = {MD5: 32, SHA1: 40, SHA256: 64}
_HASH_BY_LENGTH: Final = {n: t for t, n in HASH_LENGTHS.items()}

_HEX = re.compile(r"[0-9a-f]+")
# Labels allow "_" because real DNS names carry it (_dmarc, SRV-style hosts in feeds).
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_SCHEME_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)$", re.DOTALL)
_IPV4_PORT = re.compile(r"^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$")
_BRACKET_PORT = re.compile(r"^\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?$")
_DEFANG = (("hxxps://", "https://"), ("hxxp://", "http://"), ("[.]", "."), ("(.)", "."), ("[:]", ":"))


class NormalizeError(ValueError):
    """A value that is not a valid indicator of the claimed type."""


def refang(value: str) -> str:
    out = value.strip()
    lowered = out.lower()
    if "hxxp" in lowered or "[.]" in out or "(.)" in out or "[:]" in out:
        for old, new in _DEFANG:
            out = re.sub(re.escape(old), new, out, flags=re.IGNORECASE)
    return out


def normalize_ip(value: str, *, port_ok: bool = True) -> str:
    """Canonical IP text; ``1.2.3.4:80`` and ``[2001:db8::1]:443`` drop their port."""
    text = value.strip()
    if port_ok:
        m = _IPV4_PORT.match(text)
        if m:
            text = m.group(1)
        else:
            b = _BRACKET_PORT.match(text)
            if b:
                text = b.group(1)
    try:
        addr = ipaddress.ip_address(text)
    except ValueError as exc:
        raise NormalizeError(f"not an IP address: {value!r}") from exc
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id:
            raise NormalizeError(f"IPv6 address with a zone id: {value!r}")
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
    return str(addr)


def split_ip_port(value: str) -> str:
    """The address of a ThreatFox-style ``ip:port`` value, IPv6 allowed without brackets."""
    text = value.strip()
    if text.startswith("["):
        return normalize_ip(text)
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and host:
        try:
            return normalize_ip(host, port_ok=False)
        except NormalizeError:
            pass
    return normalize_ip(text)


def normalize_cidr(value: str) -> tuple[str, str]:
    """``(type, value)``: a network, or ``ip`` when the prefix covers a single address."""
    text = value.strip()
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise NormalizeError(f"not a CIDR network: {value!r}") from exc
    if net.prefixlen == net.max_prefixlen:
        return IP, normalize_ip(str(net.network_address), port_ok=False)
    return CIDR, str(net)


def normalize_domain(value: str) -> str:
    text = refang(value).lower().rstrip(".")
    if text.startswith("*."):
        text = text[2:]
    if not text:
        raise NormalizeError("empty domain")
    if not text.isascii():
        try:
            text = text.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise NormalizeError(f"not a valid internationalised domain: {value!r}") from exc
    if len(text) > 253:
        raise NormalizeError(f"domain longer than 253 characters: {value[:60]!r}…")
    labels = text.split(".")
    if len(labels) < 2:
        raise NormalizeError(f"domain without a dot: {value!r}")
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise NormalizeError(f"not a valid domain name: {value!r}")
    if labels[-1].isdigit():
        raise NormalizeError(f"looks like an IP address, not a domain: {value!r}")
    return text


def normalize_url(value: str) -> str:
    text = refang(value)
    m = _SCHEME_URL.match(text)
    if not m or not m.group(2):
        raise NormalizeError(f"not an absolute URL: {value[:200]!r}")
    if any(c.isspace() for c in text):
        raise NormalizeError(f"URL contains whitespace: {value[:200]!r}")
    scheme, host, rest = m.groups()
    return f"{scheme.lower()}://{host.lower()}{rest or '/'}"


def normalize_hash(kind: str, value: str) -> str:
    text = value.strip().lower()
    want = HASH_LENGTHS[kind]
    if len(text) != want or not _HEX.fullmatch(text):
        raise NormalizeError(f"not a {kind} hash ({want} hex digits): {value[:80]!r}")
    return text


def normalize(kind: str, value: str) -> tuple[str, str]:
    """Normalise ``value`` claimed to be of ``kind``; returns the final ``(type, value)``.

    ``ip`` values with a prefix become ``cidr`` (or stay ``ip`` for /32 and /128).
    """
    if not isinstance(value, str):
        raise NormalizeError(f"value is a {type(value).__name__}, not text")
    if kind == IP:
        if "/" in value:
            return normalize_cidr(value)
        return IP, normalize_ip(refang(value))
    if kind == CIDR:
        return normalize_cidr(value)
    if kind == DOMAIN:
        return DOMAIN, normalize_domain(value)
    if kind == URL:
        return URL, normalize_url(value)
    if kind in HASH_LENGTHS:
        return kind, normalize_hash(kind, value)
    raise NormalizeError(f"unknown indicator type {kind!r}")


def detect(value: str) -> tuple[str, str]:
    """Guess the type of a bare value (plain lists) and normalise it."""
    text = refang(value)
    if not text:
        raise NormalizeError("empty value")
    if "://" in text:
        return URL, normalize_url(text)
    if "/" in text:
        return normalize_cidr(text)
    if ":" in text or text[:1].isdigit() or text.startswith("["):
        try:
            return IP, normalize_ip(text)
        except NormalizeError:
            pass
    lowered = text.lower()
    kind = _HASH_BY_LENGTH.get(len(lowered))
    if kind and _HEX.fullmatch(lowered):
        return kind, lowered
    try:
        return DOMAIN, normalize_domain(text)
    except NormalizeError:
        raise NormalizeError(f"not an IP, network, domain, URL or hash: {value[:200]!r}") from None
