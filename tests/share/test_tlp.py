"""TLP 2.0 rules, one test per level, plus the provider-permission rule."""

from __future__ import annotations

import pytest

from mimamori.share.tlp import (
    MARKING_IDS,
    TLP,
    Audience,
    Reach,
    TlpViolation,
    decide,
    enforce,
    marking_definition,
    tlp_of_markings,
)

PUBLIC = Audience(Reach.PUBLIC, "web")
GROUP = Audience(Reach.COMMUNITY, "group:chain")
ORG = Audience(Reach.ORGANISATION, "partner:1")
CLIENT = Audience(Reach.CLIENT, "client:x")
OWN = Audience(Reach.OWN_ORGANISATION, "own")
PERSON = Audience(Reach.PERSON, "mail:a@example.jp")
PROVIDER = Audience(Reach.PROVIDER, "provider:other-soc")
ALL = [PUBLIC, GROUP, ORG, CLIENT, OWN, PERSON, PROVIDER]


def allowed(tlp: TLP, first_hand: bool, permission: bool = False) -> set[Reach]:
    return {
        a.reach for a in ALL if decide(tlp, a, first_hand=first_hand, provider_permission=permission).allowed
    }


def test_clear_goes_anywhere() -> None:
    assert allowed(TLP.CLEAR, first_hand=False) == {a.reach for a in ALL}


def test_green_never_public() -> None:
    for first in (True, False):
        assert allowed(TLP.GREEN, first) == {a.reach for a in ALL} - {Reach.PUBLIC}
    with pytest.raises(TlpViolation, match="only TLP:CLEAR may be made public"):
        enforce(TLP.GREEN, PUBLIC, first_hand=True)


def test_amber_org_and_clients_only_when_passed_on() -> None:
    assert allowed(TLP.AMBER, first_hand=False) == {Reach.OWN_ORGANISATION, Reach.CLIENT}
    # the originator chooses its recipients: a closed group, an organisation, persons
    assert allowed(TLP.AMBER, first_hand=True) == {
        Reach.COMMUNITY,
        Reach.ORGANISATION,
        Reach.CLIENT,
        Reach.OWN_ORGANISATION,
        Reach.PERSON,
    }


def test_amber_strict_stays_in_the_organisation() -> None:
    assert allowed(TLP.AMBER_STRICT, first_hand=False) == {Reach.OWN_ORGANISATION}
    assert Reach.CLIENT not in allowed(TLP.AMBER_STRICT, first_hand=True)
    with pytest.raises(TlpViolation, match="own organisation"):
        enforce(TLP.AMBER_STRICT, CLIENT, first_hand=False)


def test_red_named_people_only() -> None:
    assert allowed(TLP.RED, first_hand=True) == {Reach.PERSON}
    assert allowed(TLP.RED, first_hand=False) == set()
    assert allowed(TLP.RED, first_hand=True, permission=True) == {Reach.PERSON}


@pytest.mark.parametrize("tlp", [TLP.AMBER, TLP.AMBER_STRICT])
def test_amber_to_another_provider_needs_permission(tlp: TLP) -> None:
    d = decide(tlp, PROVIDER, first_hand=True)
    assert not d.allowed and d.needs_permission
    assert decide(tlp, PROVIDER, first_hand=True, provider_permission=True).allowed
    assert decide(tlp, PROVIDER, first_hand=False, provider_permission=True).allowed
    assert decide(TLP.GREEN, PROVIDER, first_hand=False).allowed


def test_parse_and_order() -> None:
    assert TLP.parse("tlp:amber+strict") is TLP.AMBER_STRICT
    assert TLP.parse("AMBER_STRICT") is TLP.AMBER_STRICT
    assert TLP.parse("white") is TLP.CLEAR
    with pytest.raises(ValueError):
        TLP.parse("purple")
    assert TLP.CLEAR < TLP.GREEN < TLP.AMBER < TLP.AMBER_STRICT < TLP.RED


def test_marking_definitions_are_the_oasis_ones() -> None:
    md = marking_definition(TLP.AMBER_STRICT)
    assert md["id"] == "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"
    assert md["created"] == "2022-10-01T00:00:00.000Z"
    ext = md["extensions"]["extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"]
    assert ext == {"extension_type": "property-extension", "tlp_2_0": "amber+strict"}
    assert tlp_of_markings([MARKING_IDS[TLP.GREEN], MARKING_IDS[TLP.RED]]) is TLP.RED
    # TLP 1.0 AMBER from the stix2 library is read as TLP 2.0 AMBER
    assert tlp_of_markings(["marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"]) is TLP.AMBER
    assert tlp_of_markings(["marking-definition--00000000-0000-4000-8000-000000000000"]) is None
