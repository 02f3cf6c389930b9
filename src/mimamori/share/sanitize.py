"""Take out what must not leave the tenant: internal addresses, host names, personal data.

``Sanitizer`` is built from the tenant record (its CIDRs, contact person, phone, mail) and
its inventory (asset and DHCP host names), plus the partners' contact names, and rewrites
free text. Public addresses and domains of the attacker stay: they are what partners need
to look for. ``is_internal`` tells exporters which indicator values to drop outright.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from mimamori.db.models import Asset, DhcpLease, Tenant
from mimamori.db.models_share import Partner, PartnerContact

_IPV4 = re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d{1,3}){3})(?:/\d{1,2})?(?::\d{1,5})?(?![\w.])")
_IPV6 = re.compile(r"(?<![\w:])((?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F:]{0,4})(?![\w:])")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Japanese and international phone numbers: 03-1234-5678, 090-1234-5678, +81 3 1234 5678
_PHONE = re.compile(r"(?<!\d)(?:\+\d{1,3}[ -]?)?(?:\(?0?\d{1,4}\)?[ -]?)\d{1,4}[ -]\d{3,4}(?!\d)")
_INTERNAL_SUFFIX = re.compile(
    r"\b[\w-]+(?:\.[\w-]+)*\.(?:local|lan|internal|intranet|intra|corp|home|localdomain|ad)\b", re.I
)
# Windows-style names that are internal by construction (\\FILESV01\share, DOMAIN\user)
_UNC = re.compile(r"\\\\[\w.-]+(?:\\[^\s\\]+)*")


_LOCAL = [
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "0.0.0.0/8",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    )
]


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@dataclass
class Sanitizer:
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)
    hostnames: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)  # person names
    language: str = "ja"
    # organisation names that stay even when they contain a person's family name
    # (桜井商事 keeps its name when its contact is 桜井 さん)
    keep: set[str] = field(default_factory=set)

    @classmethod
    def for_tenant(cls, session: Session, tenant_id: str, language: str = "ja") -> Sanitizer:
        t = session.get(Tenant, tenant_id)
        nets = []
        for c in (t.networks if t else []) or []:
            try:
                nets.append(ipaddress.ip_network(str(c), strict=False))
            except ValueError:
                continue
        hosts: set[str] = set()
        for h in session.scalars(select(Asset.hostname).where(Asset.tenant_id == tenant_id)):
            if h:
                hosts.add(h)
        for h in session.scalars(select(DhcpLease.hostname).where(DhcpLease.tenant_id == tenant_id)):
            if h:
                hosts.add(h)
        names: set[str] = set()
        if t is not None and t.contact_name:
            names.add(t.contact_name)
        for n in session.scalars(
            select(PartnerContact.name)
            .join(Partner, Partner.id == PartnerContact.partner_id)
            .where(Partner.tenant_id == tenant_id)
        ):
            names.add(n)
        keep = {t.name} if t is not None else set()
        keep.update(session.scalars(select(Partner.name).where(Partner.tenant_id == tenant_id)))
        return cls(networks=nets, hostnames=hosts, names=names, language=language, keep=keep)

    # ---------------------------------------------------------------------------- checks

    def is_internal_ip(self, value: str) -> bool:
        addr = _ip(value.split("/")[0])
        if addr is None:
            return False
        if any(addr in n for n in self.networks if n.version == addr.version):
            return True
        # RFC 1918, shared address space, loopback, link-local, ULA; documentation ranges
        # (TEST-NET) stay "external": they stand for public addresses in examples and tests
        return any(addr in n for n in _LOCAL if n.version == addr.version)

    def is_internal(self, value: str) -> bool:
        """An indicator value that describes the tenant, not the attacker."""
        v = value.strip().lower().rstrip(".")
        if self.is_internal_ip(v):
            return True
        if _INTERNAL_SUFFIX.fullmatch(v):
            return True
        short = v.split(".")[0]
        return any(h.lower() in (v, short) for h in self.hostnames)

    # ---------------------------------------------------------------------------- rewrite

    def _mark(self, what: str) -> str:
        ja = {
            "addr": "[内部アドレス]",
            "host": "[社内ホスト]",
            "mail": "[メールアドレス]",
            "phone": "[電話番号]",
            "name": "[担当者]",
        }
        en = {
            "addr": "[internal address]",
            "host": "[internal host]",
            "mail": "[e-mail address]",
            "phone": "[phone number]",
            "name": "[person]",
        }
        return (ja if self.language == "ja" else en)[what]

    def text(self, text: str | None) -> str:
        if not text:
            return ""
        out = _UNC.sub(self._mark("host"), text)
        out = _EMAIL.sub(self._mark("mail"), out)
        out = _IPV4.sub(lambda m: self._mark("addr") if self.is_internal_ip(m.group(1)) else m.group(0), out)
        out = _IPV6.sub(lambda m: self._mark("addr") if self.is_internal_ip(m.group(1)) else m.group(0), out)
        out = _INTERNAL_SUFFIX.sub(self._mark("host"), out)
        for h in sorted(self.hostnames, key=len, reverse=True):
            if len(h) >= 3:
                out = re.sub(
                    rf"(?<![\w.-]){re.escape(h)}(?:\.[\w-]+)*(?![\w-])", self._mark("host"), out, flags=re.I
                )
        out = _PHONE.sub(self._mark("phone"), out)
        kept = sorted((k for k in self.keep if k), key=len, reverse=True)
        for i, k in enumerate(kept):
            out = out.replace(k, f"\x00{i}\x00")
        for n in sorted(self.names, key=len, reverse=True):
            variants = {n, n.replace(" ", ""), n.replace(" ", "\u3000")}
            parts = n.split()
            if len(parts) > 1 and len(parts[0]) >= 2:
                variants.add(parts[0])  # family name alone (佐藤さん)
            for v in sorted(variants, key=len, reverse=True):
                if v.strip():
                    out = out.replace(v, self._mark("name"))
        for i, k in enumerate(kept):
            out = out.replace(f"\x00{i}\x00", k)
        return out

    def leaks(self, text: str) -> list[str]:
        """What in ``text`` should not be there (used by tests and before sending)."""
        found = [m.group(1) for m in _IPV4.finditer(text) if self.is_internal_ip(m.group(1))]
        found += _EMAIL.findall(text)
        found += [h for h in self.hostnames if len(h) >= 3 and re.search(rf"\b{re.escape(h)}\b", text, re.I)]
        found += [n for n in self.names if n in text]
        return found
