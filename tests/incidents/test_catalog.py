"""Incident kinds, playbooks and service levels are data, validated on load."""

from __future__ import annotations

import pytest

from mimamori.incidents.catalog import CatalogError, load_catalog, parse_playbook


def test_packaged_catalog_loads_and_every_kind_has_a_bilingual_playbook():
    cat = load_catalog()
    for kind in ("malicious_destination", "malware_mail_campaign", "banking_malware", "ransomware", "emotet"):
        pb = cat.playbook_for(kind)
        assert pb.tasks, kind
        assert all(t.ja and t.en for t in pb.tasks)
    # the ministry's advice is carried: never pay, warn partners, isolate
    assert any("身代金" in t.ja for t in cat.playbook_for("ransomware").tasks)
    assert any(t.key == "warn_partners" for t in cat.playbook_for("emotet").tasks)
    assert cat.kind("some_future_kind").playbook == "generic"


def test_malformed_playbook_is_reported_with_file_and_key():
    with pytest.raises(CatalogError, match=r"x\.yaml: task 1: unknown key"):
        parse_playbook(
            {"name": "x", "tasks": [{"key": "a", "phase": "triage", "ja": "a", "en": "a", "oops": 1}]},
            "x.yaml",
        )
    with pytest.raises(CatalogError, match="unknown phase"):
        parse_playbook(
            {"name": "x", "tasks": [{"key": "a", "phase": "later", "ja": "a", "en": "a"}]}, "x.yaml"
        )


def test_override_directory_adds_kinds(tmp_path):
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "kinds.yaml").write_text(
        "kinds:\n  usb_worm:\n    title: {ja: USBワーム, en: USB worm}\n"
        "    severity: high\n    playbook: usb\n",
        encoding="utf-8",
    )
    (tmp_path / "playbooks" / "usb.yaml").write_text(
        "name: usb\ntasks:\n  - {key: unplug, phase: containment, ja: 抜く, en: unplug}\n", encoding="utf-8"
    )
    cat = load_catalog(str(tmp_path))
    assert cat.kind("usb_worm").severity == "high"
    assert cat.playbook_for("usb_worm").tasks[0].key == "unplug"
    (tmp_path / "kinds.yaml").write_text("kinds:\n  bad:\n    severity: extreme\n", encoding="utf-8")
    load_catalog.cache_clear()
    with pytest.raises(CatalogError, match="unknown severity"):
        load_catalog(str(tmp_path))
