"""Which frames a writing socket sends in the bus's own turn of the event loop, and which wait
for its frame pump (studyapp/writing/consumers.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from studyapp.writing.consumers import WritingConsumer


def delta(seq: int) -> dict[str, Any]:
    return {"seq": seq, "type": "delta", "text": "x"}


async def idle_socket() -> WritingConsumer:
    consumer = WritingConsumer()
    consumer.sent_seq = 4
    consumer.frame_pump = asyncio.get_running_loop().create_future()  # stands in for the task
    return consumer


async def test_the_reply_s_next_text_goes_out_at_once() -> None:
    consumer = await idle_socket()
    assert consumer._sendable_now([delta(5)])
    assert consumer._sendable_now([delta(5), delta(6)])


async def test_other_frames_and_gaps_wait_for_the_pump() -> None:
    consumer = await idle_socket()
    assert not consumer._sendable_now([{"seq": 5, "type": "turn_start"}])  # after a handler's ack
    assert not consumer._sendable_now([delta(5), {"seq": 6, "type": "turn_end"}])
    assert not consumer._sendable_now([delta(7)])  # a gap: filled from the store
    assert not consumer._sendable_now([delta(4)])  # sent already
    assert not consumer._sendable_now(None)  # "you may have missed some"
    assert not consumer._sendable_now([])


async def test_nothing_overtakes_frames_queued_or_being_sent() -> None:
    consumer = await idle_socket()
    consumer.inbox.put_nowait([delta(5)])
    assert not consumer._sendable_now([delta(6)])

    consumer = await idle_socket()
    async with consumer.delivering:  # a replay, or a send still waiting on the socket
        assert not consumer._sendable_now([delta(5)])


async def test_a_socket_before_hello_or_after_disconnect_sends_nothing_at_once() -> None:
    consumer = await idle_socket()
    consumer.sent_seq = None
    assert not consumer._sendable_now([delta(5)])
    consumer = await idle_socket()
    consumer.frame_pump = None
    assert not consumer._sendable_now([delta(5)])
