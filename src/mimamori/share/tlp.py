"""TLP 2.0 (FIRST) as code: the labels, who may receive each, and the STIX marking objects.

Every export path (warnings, check requests, STIX bundles, MISP feeds, TAXII collections,
disclosure drafts) asks ``decide``/``enforce`` before anything leaves. The rules:

========  ============================================================================
CLEAR     anyone, public channels included
GREEN     the recipient's community and peers; never a public channel
AMBER     the recipient organisation and its clients on a need-to-know basis
STRICT    (AMBER+STRICT) the recipient organisation only
RED       named individual recipients only; no channel that reaches a whole group
========  ============================================================================

Two situations differ. The *originator* chooses its first recipients: it may send AMBER to
the organisations of a closed trust group or to a partner, and RED to named persons. A
*holder* that received the information (an imported bundle, another tenant's incident) may
only pass it on within what the label allows: GREEN to its community, AMBER to its own
organisation and clients, AMBER+STRICT inside its own organisation, RED to nobody.

For a provider platform (FORMATS.md): AMBER and AMBER+STRICT information goes to *another*
security provider (a partner's outsourced SOC, another MSSP) only with the originator's
recorded permission (``SharingPermission``); RED never goes to one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

EXTENSION_ID = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
MARKING_CREATED = "2022-10-01T00:00:00.000Z"


class TLP(enum.Enum):
    CLEAR = "CLEAR"
    GREEN = "GREEN"
    AMBER = "AMBER"
    AMBER_STRICT = "AMBER+STRICT"
    RED = "RED"

    @property
    def rank(self) -> int:
        return _ORDER.index(self)

    @property
    def label(self) -> str:
        """``TLP:AMBER+STRICT`` as written on documents."""
        return f"TLP:{self.value}"

    @property
    def marking_id(self) -> str:
        return MARKING_IDS[self]

    @classmethod
    def parse(cls, text: str) -> TLP:
        """``amber+strict``, ``TLP:AMBER+STRICT``, ``AMBER_STRICT`` -> ``TLP.AMBER_STRICT``.

        TLP 1.0 ``WHITE`` is read as ``CLEAR`` (its TLP 2.0 successor)."""
        norm = text.strip().upper().removeprefix("TLP:").replace("_", "+").replace(" ", "")
        if norm == "WHITE":
            return cls.CLEAR
        for t in cls:
            if t.value == norm:
                return t
        raise ValueError(f"unknown TLP label {text!r} (CLEAR, GREEN, AMBER, AMBER+STRICT, RED)")

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, TLP):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, TLP):
            return NotImplemented
        return self.rank <= other.rank


_ORDER = [TLP.CLEAR, TLP.GREEN, TLP.AMBER, TLP.AMBER_STRICT, TLP.RED]

#: the OASIS TLP 2.0 marking-definition ids (FORMATS.md)
MARKING_IDS: dict[TLP, str] = {
    TLP.CLEAR: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    TLP.GREEN: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    TLP.AMBER: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    TLP.AMBER_STRICT: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    TLP.RED: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
_BY_MARKING = {v: k for k, v in MARKING_IDS.items()}
# TLP 1.0 markings of the stix2 library, read as their TLP 2.0 counterparts on import
_TLP1 = {
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": TLP.CLEAR,  # WHITE
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": TLP.GREEN,
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": TLP.AMBER,
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": TLP.RED,
}


def marking_definition(tlp: TLP) -> dict[str, Any]:
    """The OASIS TLP 2.0 marking-definition object for ``tlp``."""
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": MARKING_IDS[tlp],
        "created": MARKING_CREATED,
        "name": tlp.label,
        "extensions": {
            EXTENSION_ID: {"extension_type": "property-extension", "tlp_2_0": tlp.value.lower()},
        },
    }


def tlp_of_markings(refs: list[Any] | None) -> TLP | None:
    """The strictest TLP among ``object_marking_refs`` (TLP 1.0 ids are mapped), or None."""
    found = [_BY_MARKING.get(r) or _TLP1.get(r) for r in refs or [] if isinstance(r, str)]
    known = [t for t in found if t is not None]
    return max(known, key=lambda t: t.rank) if known else None


# ------------------------------------------------------------------------------ the rules


class Reach(enum.Enum):
    """What kind of audience a sharing action reaches."""

    PUBLIC = "public"  # a public web page, a public feed, a press release
    COMMUNITY = "community"  # a closed trust group / ISAC channel (many organisations)
    ORGANISATION = "organisation"  # one other organisation as a whole (a portal, a role mailbox)
    CLIENT = "client"  # a client of the holder, need-to-know
    OWN_ORGANISATION = "own"  # inside the holder's own organisation
    PERSON = "person"  # named individual recipients
    PROVIDER = "provider"  # another (outsourced) security provider


@dataclass(frozen=True)
class Audience:
    reach: Reach
    name: str  # who: "group:acme-chain", "partner:12", "provider:soc-x", "mail:a@b"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    needs_permission: bool = False


class TlpViolation(Exception):
    """A sharing action the label forbids."""

    def __init__(self, tlp: TLP, audience: Audience, reason: str) -> None:
        super().__init__(f"{tlp.label} may not go to {audience.name} ({audience.reach.value}): {reason}")
        self.tlp = tlp
        self.audience = audience
        self.reason = reason


def decide(
    tlp: TLP,
    audience: Audience,
    *,
    first_hand: bool,
    provider_permission: bool = False,
) -> Decision:
    """May information labelled ``tlp`` go to ``audience``?

    ``first_hand``: the sender is the originator (or acts for it, as the provider does for
    its tenant's own incident). ``provider_permission``: the originator's recorded
    permission to pass AMBER / AMBER+STRICT to another provider.
    """
    reach = audience.reach
    if tlp is TLP.CLEAR:
        return Decision(True, "TLP:CLEAR may be shared with anyone")
    if reach is Reach.PUBLIC:
        return Decision(False, f"only TLP:CLEAR may be made public; this is {tlp.label}")
    if reach is Reach.PROVIDER:
        if tlp is TLP.GREEN:
            return Decision(True, "TLP:GREEN may go to peers, including other providers")
        if tlp is TLP.RED:
            return Decision(False, "TLP:RED is for named individual recipients only, never a provider")
        if provider_permission:
            return Decision(True, f"{tlp.label} to another provider with the originator's permission")
        return Decision(
            False,
            f"{tlp.label} is not passed to another provider without the originator's permission",
            needs_permission=True,
        )
    if tlp is TLP.GREEN:
        return Decision(True, "TLP:GREEN may be shared within the community, not publicly")
    if tlp is TLP.RED:
        if reach is Reach.PERSON and first_hand:
            return Decision(True, "TLP:RED to named individual recipients chosen by the originator")
        if reach is Reach.PERSON:
            return Decision(False, "TLP:RED may not be passed on by its recipients")
        return Decision(False, "TLP:RED is for named individual recipients only, not a group or channel")
    # AMBER and AMBER+STRICT
    if first_hand:
        # the originator picks the organisations that receive it (each then bound by the label)
        if reach in (Reach.COMMUNITY, Reach.ORGANISATION, Reach.PERSON, Reach.OWN_ORGANISATION):
            return Decision(True, f"{tlp.label} to recipients chosen by the originator")
        if reach is Reach.CLIENT and tlp is TLP.AMBER:
            return Decision(True, "TLP:AMBER may reach clients on a need-to-know basis")
        return Decision(False, f"{tlp.label} does not extend to clients")
    if reach in (Reach.OWN_ORGANISATION,):
        return Decision(True, f"{tlp.label} may be used within the recipient's own organisation")
    if reach is Reach.CLIENT and tlp is TLP.AMBER:
        return Decision(True, "TLP:AMBER may be passed to the recipient's clients, need-to-know")
    if reach is Reach.CLIENT:
        return Decision(False, "TLP:AMBER+STRICT stays within the recipient's own organisation")
    return Decision(False, f"{tlp.label} may not be passed on beyond the recipient's organisation")


def enforce(
    tlp: TLP,
    audience: Audience,
    *,
    first_hand: bool,
    provider_permission: bool = False,
) -> Decision:
    """``decide``, raising ``TlpViolation`` when the answer is no."""
    d = decide(tlp, audience, first_hand=first_hand, provider_permission=provider_permission)
    if not d.allowed:
        raise TlpViolation(tlp, audience, d.reason)
    return d


def strictest(labels: list[TLP]) -> TLP:
    return max(labels, key=lambda t: t.rank) if labels else TLP.CLEAR
