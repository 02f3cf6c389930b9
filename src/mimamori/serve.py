"""Kept for callers of the old read-only API: the web console (``mimamori.web``) replaced it."""

from __future__ import annotations

from mimamori.web.app import create_app, serve

__all__ = ["create_app", "serve"]
