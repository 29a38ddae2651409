"""The server collects the garbage collector's older generations when it is idle."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from studyapp.realtime import idlegc


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


@pytest.fixture
def collector_counts() -> Iterator[None]:
    """Young collections by hand only, so that the counts this test reads are its own."""
    threshold = gc.get_threshold()
    gc.collect()
    gc.set_threshold(10**9, threshold[1], threshold[2])
    yield
    gc.set_threshold(*threshold)


def cycle_in_middle_generation() -> weakref.ref[Node]:
    """A cyclic garbage object that survived a young collection (it is in the middle
    generation, which only a middle or full collection frees)."""
    node = Node()
    gc.collect(0)  # alive now: moved to the middle generation
    gone = weakref.ref(node)
    del node
    gc.collect(0)  # a young collection does not look at it
    return gone


@pytest.mark.usefixtures("collector_counts")
def test_the_middle_generation_is_collected_once_enough_is_pending() -> None:
    gone = cycle_in_middle_generation()
    assert gone() is not None
    assert gc.get_count()[1] >= idlegc.MIDDLE_PENDING

    assert idlegc.collect_if_due() == 1

    assert gone() is None
    assert gc.get_count()[1] == 0
    assert idlegc.collect_if_due() is None  # nothing pending now


@pytest.mark.usefixtures("collector_counts")
async def test_an_idle_server_collects_and_a_busy_one_does_not() -> None:
    gone = cycle_in_middle_generation()
    cpu = {"used": 0.0, "busy": True}

    def cpu_clock() -> float:
        """The process's CPU time: a full core's worth per check while busy, none after."""
        if cpu["busy"]:
            cpu["used"] += 0.05
        return cpu["used"]

    collector = asyncio.ensure_future(
        idlegc.collect_when_idle(check_s=0.02, idle_share=0.05, cpu_clock=cpu_clock)
    )
    try:
        await asyncio.sleep(0.2)
        assert gone() is not None  # busy: no collection

        cpu["busy"] = False
        await asyncio.sleep(0.2)
        assert gone() is None
    finally:
        collector.cancel()
