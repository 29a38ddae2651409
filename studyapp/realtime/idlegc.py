"""Collect the middle generation while the server is idle, not under load.

The collector's middle generation (objects that survived a young collection) is collected
every tenth young collection, with the event loop stopped for as long as it takes. While
participants connect and their replies stream, that generation fills with their live objects
(sockets, tasks, frames): on the 2-core bench machine its collection took 60-75 ms, and every
message that arrived meanwhile waited (bench/README.md, Relay). Collected at a quiet moment
instead, it is short again when load comes, and seldom due.

A quiet moment is a check interval in which the process used little CPU. The collection then
runs on the event loop: a message arriving during it waits, as it would have under load, but
such a moment is rare when the server is idle.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

CHECK_S = 0.5
# Idle: less CPU than this share of one core over the last check interval.
IDLE_SHARE = 0.05
# Young collections since the middle generation's last collection before it is worth one.
MIDDLE_PENDING = 2
# Middle-generation collections since the last full one before an idle full collection.
OLDEST_PENDING = 5


def collect_if_due() -> int | None:
    """Collect the middle generation, or all three, if enough is pending; the generation
    collected, or None."""
    _, young_collections, middle_collections = gc.get_count()
    if middle_collections >= OLDEST_PENDING:
        gc.collect(2)
        return 2
    if young_collections >= MIDDLE_PENDING:
        gc.collect(1)
        return 1
    return None


async def collect_when_idle(
    check_s: float = CHECK_S,
    idle_share: float = IDLE_SHARE,
    cpu_clock: Callable[[], float] = time.process_time,
) -> None:
    """Run for the server's life: at each quiet check, :func:`collect_if_due`."""
    used_before = cpu_clock()
    while True:
        await asyncio.sleep(check_s)
        if cpu_clock() - used_before < check_s * idle_share:
            collect_if_due()
        used_before = cpu_clock()  # the collection itself is not load
