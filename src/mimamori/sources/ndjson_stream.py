"""NDJSON rows read by DuckDB straight from the file, handed out block by block.

The reader gives parsers a file in blocks of bytes, and Polars parses a block's JSON lines
from memory. DuckDB's reader parses the same lines in about two thirds of the CPU time, but
it reads files, not buffers. ``NdjsonStream`` runs one streaming DuckDB query over the whole
file and hands out, for each block in turn, exactly as many rows as the block has lines.

Rows and lines only correspond when every line of the file is one JSON object: DuckDB skips
blank lines and rejects anything else (two objects on a line, a bare value, an array, bad
JSON). So callers use the stream only for blocks whose lines all begin with ``{``
(``LineBatch.lead``), and compare the block's first and last lines with the rows they got.
Any failure -- an error from DuckDB, too few rows, a row that disagrees -- closes the stream
for the rest of the file, and the caller parses that block and the later ones itself.

DuckDB casts where Polars refuses (``"12"`` read as the count 12, ``true`` as 1, ``1.7``
rounded to 2), so a value of the wrong JSON type in a line that is not a block's first or
last is read by the cast instead of by the caller's careful path. Zeek writes every value
with its field's type, so this only changes what malformed logs give.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

#: Rows per Arrow batch fetched from DuckDB (a multiple of DuckDB's vector size).
FETCH_ROWS = 122_880

_DUCK_TYPES: dict[pl.DataType, str] = {
    pl.String(): "VARCHAR",
    pl.Int64(): "BIGINT",
    pl.Float64(): "DOUBLE",
    pl.Boolean(): "BOOLEAN",
    pl.List(pl.String()): "VARCHAR[]",
}


#: The Python type ``json.loads`` gives for a value of each column type.
_JSON_KIND: dict[pl.DataType, type] = {
    pl.String(): str,
    pl.Int64(): int,
    pl.Float64(): float,
    pl.Boolean(): bool,
}


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class NdjsonStream:
    """The rows of one NDJSON file with ``schema``'s fields, ``take(n)`` at a time."""

    def __init__(self, file: str, schema: dict[str, pl.DataType]) -> None:
        columns = ", ".join(f"{_sql_string(k)}: {_sql_string(_DUCK_TYPES[v])}" for k, v in schema.items())
        self.schema = schema
        # As many threads as Polars uses: POLARS_MAX_THREADS=1 (a scaled-out worker) means one.
        self._con: duckdb.DuckDBPyConnection | None = duckdb.connect(
            config={"threads": pl.thread_pool_size()}
        )
        self._con.execute("SET produce_arrow_string_view = true")
        query = (
            f"SELECT * FROM read_json({_sql_string(file)}, format = 'newline_delimited', "
            f"columns = {{{columns}}})"
        )
        self._reader: pa.RecordBatchReader | None = self._con.sql(query).to_arrow_reader(FETCH_ROWS)
        self._held: list[pa.RecordBatch] = []  # fetched, not yet taken

    @classmethod
    def open(cls, file: str, schema: dict[str, pl.DataType]) -> NdjsonStream | None:
        """A stream, or None when a field's type has no DuckDB reading here or DuckDB fails."""
        if any(t not in _DUCK_TYPES for t in schema.values()):
            return None
        try:
            return cls(file, schema)
        except duckdb.Error:
            return None

    def take(self, n: int) -> pl.DataFrame | None:
        """The next ``n`` rows; None (and the stream closed) if DuckDB fails or has fewer."""
        if self._reader is None:
            return None
        try:
            while sum(b.num_rows for b in self._held) < n:
                self._held.append(self._reader.read_next_batch())
        except (StopIteration, duckdb.Error, pa.ArrowException):
            self.close()
            return None
        table = pa.Table.from_batches(self._held)
        self._held = table.slice(n).to_batches()
        frame = pl.from_arrow(table.slice(0, n))
        assert isinstance(frame, pl.DataFrame)
        return frame.cast(self.schema)  # type: ignore[arg-type]

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._con is not None:
            self._con.close()
            self._con = None
        self._held = []


def rows_agree(df: pl.DataFrame, first: str | bytes, last: str | bytes) -> bool:
    """True when ``df``'s first and last rows hold the values of a block's ``first`` and
    ``last`` lines: a cheap check that rows and lines still correspond. Only values whose
    JSON type is the column's are compared (a number read into a text column is left out)."""
    if df.height == 0:
        return False
    ends = ((first, 0), (last, df.height - 1))
    kinds = {c: _JSON_KIND.get(t) for c, t in df.schema.items()}
    for line, row in ends:
        try:
            obj: Any = json.loads(line)
        except ValueError:
            return False
        if not isinstance(obj, dict):
            return False
        values = df.row(row, named=True)
        for key, value in obj.items():
            kind = kinds.get(key)
            if kind is not None and type(value) is kind and values[key] != value:
                return False
    return True
