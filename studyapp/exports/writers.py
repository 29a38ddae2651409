"""Row writers that stream to disk: CSV, JSON Lines and Parquet (in row-group batches).

A writer takes the codebook's columns, receives rows one at a time, and never holds more than
one Parquet row group in memory.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

import pyarrow as pa
import pyarrow.parquet as pq

from studyapp.exports.tables import Column

PARQUET_ROW_GROUP = 5000

_ARROW_TYPES = {
    "string": pa.string(),
    "integer": pa.int64(),
    "float": pa.float64(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "json": pa.string(),
}


def json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=json_default, separators=(",", ":"))


class RowWriter(Protocol):
    def write(self, row: Sequence[Any]) -> None: ...

    def close(self) -> None: ...


# A spreadsheet opening the CSV runs a cell starting with one of these as a formula
# (=HYPERLINK(...) in a participant's message would become a live link).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(text: str) -> str:
    """Prefix a single quote to text a spreadsheet would read as a formula (the OWASP rule)."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


class CsvWriter:
    def __init__(self, path: Path, columns: Sequence[Column]) -> None:
        self._file = path.open("w", newline="", encoding="utf-8")
        self._types = [c.type for c in columns]
        self._csv = csv.writer(self._file)
        self._csv.writerow([c.name for c in columns])

    def _cell(self, kind: str, value: Any) -> Any:
        if value is None:
            return ""
        if kind == "json":
            return _dumps(value)
        if kind == "timestamp":
            return value.isoformat()
        if kind == "boolean":
            return "true" if value else "false"
        if kind == "string" and isinstance(value, str):
            return neutralise_formula(value)
        return value

    def write(self, row: Sequence[Any]) -> None:
        self._csv.writerow([self._cell(k, v) for k, v in zip(self._types, row, strict=True)])

    def close(self) -> None:
        self._file.close()


class JsonlWriter:
    def __init__(self, path: Path, columns: Sequence[Column]) -> None:
        self._file = path.open("w", encoding="utf-8")
        self._names = [c.name for c in columns]

    def write(self, row: Sequence[Any]) -> None:
        self._file.write(_dumps(dict(zip(self._names, row, strict=True))))
        self._file.write("\n")

    def write_record(self, record: dict[str, Any]) -> None:
        self._file.write(_dumps(record))
        self._file.write("\n")

    def close(self) -> None:
        self._file.close()


class ParquetWriter:
    def __init__(
        self, path: Path, columns: Sequence[Column], row_group: int = PARQUET_ROW_GROUP
    ) -> None:
        self._types = [c.type for c in columns]
        self._schema = pa.schema([(c.name, _ARROW_TYPES[c.type]) for c in columns])
        self._writer = pq.ParquetWriter(str(path), self._schema, compression="zstd")
        self._row_group = row_group
        self._buffer: list[list[Any]] = [[] for _ in columns]

    def write(self, row: Sequence[Any]) -> None:
        for kind, column, value in zip(self._types, self._buffer, row, strict=True):
            column.append(_dumps(value) if kind == "json" and value is not None else value)
        if len(self._buffer[0]) >= self._row_group:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer[0]:
            return
        batch = pa.RecordBatch.from_arrays(
            [pa.array(col, type=f.type) for col, f in zip(self._buffer, self._schema, strict=True)],
            schema=self._schema,
        )
        self._writer.write_batch(batch)
        self._buffer = [[] for _ in self._buffer]

    def close(self) -> None:
        self._flush()
        self._writer.close()


WRITERS = {"csv": CsvWriter, "jsonl": JsonlWriter, "parquet": ParquetWriter}


def open_writer(fmt: str, path: Path, columns: Sequence[Column]) -> RowWriter:
    return WRITERS[fmt](path, columns)
