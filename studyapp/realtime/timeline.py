"""Optional timestamps of a reply's steps through the relay, for ``bench/relay.py --timeline``.

Off unless ``RELAY_TIMELINE`` names a file. Then every :func:`mark` keeps ``(step, key,
time.perf_counter())`` in memory (perf_counter is one monotonic clock for every process on the
machine), and a background thread appends what was kept to the file as JSON lines once a
second, so a process that is killed loses at most the last second.
"""

from __future__ import annotations

import json
import os
import threading
import time

FLUSH_S = 1.0

_path = os.environ.get("RELAY_TIMELINE", "")
_kept: list[tuple[str, str, float]] = []
_lock = threading.Lock()
_writer: threading.Thread | None = None


def mark(step: str, key: str) -> None:
    """Note that ``step`` happened now for participation ``key`` (nothing when off)."""
    if not _path:
        return
    _kept.append((step, key, time.perf_counter()))
    _start_writer()


def _start_writer() -> None:
    global _writer
    if _writer is None:
        with _lock:
            if _writer is None:
                _writer = threading.Thread(target=_write_forever, name="timeline", daemon=True)
                _writer.start()


def _write_forever() -> None:
    while True:
        time.sleep(FLUSH_S)
        batch = _kept[:]
        del _kept[: len(batch)]
        if batch:
            with open(_path, "a", encoding="utf-8") as out:
                out.writelines(json.dumps(event) + "\n" for event in batch)
