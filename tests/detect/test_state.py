"""Detector state survives batches and restarts; only frames are persisted."""

from __future__ import annotations

import polars as pl
import pytest

from mimamori.detect.state import StateStore


def test_frames_persist_per_tenant_and_detector(tmp_path):
    store = StateStore(tmp_path)
    st = store.get("acme", "beacon")
    st["pairs"] = pl.DataFrame({"src": ["10.0.0.1"], "n": [3]})
    st["cache"] = {"not": "persisted"}
    store.get("beta", "beacon")["pairs"] = pl.DataFrame({"src": ["10.9.9.9"], "n": [1]})
    store.save_all()
    again = StateStore(tmp_path)
    assert again.get("acme", "beacon")["pairs"].to_dicts() == [{"src": "10.0.0.1", "n": 3}]
    assert "cache" not in again.get("acme", "beacon")
    assert again.get("beta", "beacon")["pairs"]["src"].to_list() == ["10.9.9.9"]
    assert again.get("acme", "other") == {}
    # a key dropped from the state is deleted on the next save
    del again.get("acme", "beacon")["pairs"]
    again.save("acme", "beacon")
    assert StateStore(tmp_path).get("acme", "beacon") == {}


def test_unsafe_state_keys_are_refused(tmp_path):
    store = StateStore(tmp_path)
    store.get("acme", "x")["../evil"] = pl.DataFrame({"a": [1]})
    with pytest.raises(ValueError):
        store.save("acme", "x")
