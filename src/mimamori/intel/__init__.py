"""Threat intelligence: feed readers, deduplication, warning list, storage and matching.

Typical use::

    report = import_paths(session, ["feeds/ipblocklist.csv", "misp-feed/"])
    matcher = load_active(session, allow_private=tenant.intel_private_ranges)
    hits = matcher.match(events)  # one row per (event row, indicator)
"""

from mimamori.intel.base import (
    INDICATOR_SCHEMA,
    FeedConfigError,
    FeedFetchError,
    FeedFormatError,
    FeedReader,
    IntelError,
    Issue,
    NoReaderError,
    ReadResult,
    UnknownReaderError,
)
from mimamori.intel.dedup import DEFAULT_EXPIRY, Deduplicated, ExpiryPolicy, deduplicate
from mimamori.intel.feeds import FeedConfig, FeedUpdate, UpdateReport, load_feeds, update
from mimamori.intel.importer import FileReport, ImportReport, import_paths, read_paths
from mimamori.intel.match import MATCH_SCHEMA, IndicatorSet
from mimamori.intel.registry import READERS, detect_reader, get_reader
from mimamori.intel.store import SourceMeta, StoreResult, load_active, store
from mimamori.intel.warninglist import WarningList

__all__ = [
    "DEFAULT_EXPIRY",
    "INDICATOR_SCHEMA",
    "MATCH_SCHEMA",
    "READERS",
    "Deduplicated",
    "ExpiryPolicy",
    "FeedConfig",
    "FeedConfigError",
    "FeedFetchError",
    "FeedFormatError",
    "FeedReader",
    "FeedUpdate",
    "FileReport",
    "ImportReport",
    "IndicatorSet",
    "IntelError",
    "Issue",
    "NoReaderError",
    "ReadResult",
    "SourceMeta",
    "StoreResult",
    "UnknownReaderError",
    "UpdateReport",
    "WarningList",
    "deduplicate",
    "detect_reader",
    "get_reader",
    "import_paths",
    "load_active",
    "load_feeds",
    "read_paths",
    "store",
    "update",
]
