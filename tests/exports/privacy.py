"""Scanning exported files for platform ids, compressed Parquet pages included."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq


def file_texts(path: Path) -> list[bytes]:
    """The raw bytes, and for Parquet also every decoded value (pages are compressed)."""
    texts = [path.read_bytes()]
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        texts.append(str(table.to_pylist()).encode())
    return texts


def leaks(directory: Path, ids: list[str]) -> list[tuple[str, str]]:
    found = []
    files = [p for p in directory.rglob("*") if p.is_file()]
    assert files, f"nothing exported under {directory}"
    for path in files:
        for blob in file_texts(path):
            lowered = blob.lower()
            found += [(path.name, i) for i in ids if i.lower().encode() in lowered]
    return sorted(set(found))
