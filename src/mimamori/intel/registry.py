"""The table of feed readers, keyed by name, and format detection over it.

Detection asks each reader's ``sniff`` in ``READERS`` order: specific formats first,
the plain-list reader last because it accepts any file of bare values.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mimamori.intel.abusech import (
    FeodoCsvReader,
    FeodoJsonReader,
    ThreatFoxCsvReader,
    ThreatFoxJsonReader,
    UrlhausCsvReader,
    UrlhausJsonReader,
)
from mimamori.intel.base import DuplicateReaderError, FeedReader, NoReaderError, UnknownReaderError
from mimamori.intel.misp import MispEventReader, MispFeedReader
from mimamori.intel.plain import PlainListReader
from mimamori.intel.stix import StixBundleReader


def _table(readers: Iterable[FeedReader]) -> dict[str, FeedReader]:
    table: dict[str, FeedReader] = {}
    for reader in readers:
        if reader.name in table:
            raise DuplicateReaderError(reader.name)
        table[reader.name] = reader
    return table


#: reader name -> reader, in detection order.
READERS: dict[str, FeedReader] = _table(
    [
        MispFeedReader(),
        FeodoCsvReader(),
        UrlhausCsvReader(),
        ThreatFoxCsvReader(),
        FeodoJsonReader(),
        UrlhausJsonReader(),
        ThreatFoxJsonReader(),
        MispEventReader(),
        StixBundleReader(),
        PlainListReader(),
    ]
)


def get_reader(name: str) -> FeedReader:
    try:
        return READERS[name]
    except KeyError:
        raise UnknownReaderError(name, READERS) from None


def detect_reader(path: Path) -> FeedReader:
    """The first reader whose ``sniff`` accepts ``path``; ``NoReaderError`` if none does."""
    for reader in READERS.values():
        if reader.sniff(path):
            return reader
    raise NoReaderError(str(path))
