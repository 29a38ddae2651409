"""Redis restarts under open sockets: the seq counter is lost or rolled back, and the replies
that follow still reach every page once, in order (studyapp/realtime/framestore.py, epochs).

Each test runs its own redis-server (no persistence), restarts it with ``SHUTDOWN NOSAVE``, and
points this process's frame store at it; the shared Redis is never touched.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from studyapp.realtime import framebus, generations
from studyapp.realtime.framestore import RedisFrameStore
from studyapp.writing.models import Message, Role
from tests.writing.conftest import Client, db, open_client, token_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("drain_generations"),
]


class Page:
    """What static/js/writing.js keeps of the stream, checked as it goes: after a ``state``
    every numbered frame is the next seq of the state's epoch (none skipped, none twice)."""

    def __init__(self, participation, state: dict[str, Any]) -> None:
        self.key = participation.public_id.hex
        self.last_seq: int = state["last_seq"]
        self.epoch: str | None = state.get("epoch")
        self.text = ""  # the reply being streamed, as the page shows it

    def apply(self, frames: list[dict[str, Any]]) -> None:
        for frame in frames:
            if frame["type"] == "state":
                self.last_seq, self.epoch, self.text = frame["last_seq"], frame.get("epoch"), ""
            elif "seq" in frame:
                if self.epoch is not None:
                    assert frame.get("epoch") == self.epoch, f"a new epoch without a state: {frame}"
                assert frame["seq"] == self.last_seq + 1, f"after {self.last_seq}: {frame}"
                self.last_seq, self.epoch = frame["seq"], frame.get("epoch")
                if frame["type"] == "turn_start":
                    self.text = ""
                elif frame["type"] == "delta":
                    self.text += frame["text"]


def _reply(participation, turn: int) -> Message:
    return Message.objects.get(participation=participation, turn=turn, role=Role.ASSISTANT)


def _ended(turn: int):
    return lambda f: f["type"] in ("turn_end", "turn_error") and f.get("turn") == turn


async def _turn(client: Client, page: Page, text: str, turn: int) -> dict[str, Any]:
    """Send ``text`` and follow the page until the reply of ``turn`` ends; its turn_end."""
    await client.send({"type": "send", "text": text, "client_msg_id": f"m-{turn}"})
    frames = await client.until(_ended(turn), wait_s=10)
    page.apply(frames)
    end = frames[-1]
    assert end["type"] == "turn_end", end
    assert [f["turn"] for f in frames if f["type"] == "turn_start"][-1:] == [turn]
    return end


async def _assert_stored(participation, turn: int, end: dict[str, Any], page: Page) -> None:
    reply = await db(_reply, participation, turn)
    assert page.text == end["text"] == reply.text


async def test_an_open_socket_hears_the_next_reply_after_redis_restarts(private_redis, writer):
    client, state = await open_client("demo", token_for(writer))
    page = Page(writer, state)
    await _turn(client, page, "Help me write about budget travel in Portugal", 1)
    old_epoch = page.epoch

    private_redis.restart()  # the counter is gone: numbering would start at 1 again
    end = await _turn(client, page, "Make the opening shorter", 2)
    await _assert_stored(writer, 2, end, page)
    assert page.epoch != old_epoch
    await client.close()


async def test_a_counter_rolled_back_by_a_snapshot_does_not_deafen_the_socket(
    private_redis, writer
):
    client, state = await open_client("demo", token_for(writer))
    page = Page(writer, state)
    await _turn(client, page, "Help me write about budget travel in Portugal", 1)
    assert private_redis.cli("SAVE") == "OK"  # the snapshot Redis will come back with
    await _turn(client, page, "Add a paragraph about trains", 2)

    private_redis.restart()  # loads the snapshot: the counter stands where turn 1 left it
    end = await _turn(client, page, "Make the opening shorter", 3)
    await _assert_stored(writer, 3, end, page)
    await client.close()


async def test_a_reconnect_with_a_seq_from_before_the_restart_gets_the_whole_reply(
    private_redis, writer, settings
):
    first, state = await open_client("demo", token_for(writer))
    page = Page(writer, state)
    await _turn(first, page, "Help me write about budget travel in Portugal", 1)
    await first.close()  # the page's socket drops; it keeps its last seq and epoch
    private_redis.restart()

    settings.OFFLINE_TOKENS_PER_SECOND = 20  # the next reply streams for a few seconds
    sender, _ = await open_client("demo", token_for(writer))
    await sender.send({"type": "send", "text": "Make the opening shorter", "client_msg_id": "m-2"})
    # Wait until the new reply has numbered past the page's old seq: its seqs there would
    # look like frames the page already holds.
    await sender.until(lambda f: f.get("seq", 0) > page.last_seq + 1, wait_s=10)

    again, _ = await open_client("demo", token_for(writer), hello=False)
    await again.send({"type": "hello", "last_seq": page.last_seq, "epoch": page.epoch})
    frames = await again.until(_ended(2), wait_s=15)
    assert frames[0]["type"] == "state"
    assert frames[0]["generation"] is not None  # the new reply, still streaming
    page.apply(frames)
    assert frames[-1]["type"] == "turn_end"
    await _assert_stored(writer, 2, frames[-1], page)
    await sender.close()
    await again.close()


async def test_frames_of_a_new_epoch_missed_while_resubscribing_are_taken_from_the_store(
    private_redis, writer, monkeypatch
):
    """Another process streams a reply after the restart while this process's subscription
    is still down: the socket is told to resync, and takes the reply from the store although
    its seqs are lower than what it sent."""
    client, state = await open_client("demo", token_for(writer))
    page = Page(writer, state)
    await _turn(client, page, "Help me write about budget travel in Portugal", 1)
    assert page.last_seq >= 3
    monkeypatch.setattr(framebus, "RETRY_S", 3.0)  # the subscription stays down a while
    private_redis.restart()

    elsewhere = RedisFrameStore(private_redis.url)  # another process's store
    key, generation_id = writer.public_id.hex, uuid.uuid4().hex
    start = {"type": "turn_start", "turn": 2, "generation_id": generation_id, "user_text": "Hi"}
    marker = {"generation_id": generation_id, "turn": 2, "origin": "elsewhere"}
    await elsewhere.begin(key, marker, start, origin="elsewhere")
    await elsewhere.append(key, [{"type": "delta", "text": "Hello"}], origin="elsewhere")
    end = {"type": "turn_end", "turn": 2, "generation_id": generation_id, "text": "Hello"}
    (numbered_end,) = await elsewhere.lease_end(key, generation_id, [end], origin="elsewhere")
    assert numbered_end["seq"] <= page.last_seq  # numbers the socket already sent

    frames = await client.until(_ended(2), wait_s=10)
    page.apply(frames)
    assert frames[0]["type"] == "state"
    assert page.text == "Hello"
    assert await client.comm.receive_nothing(timeout=0.3)  # each frame once
    await client.close()


async def test_a_lost_counter_begins_a_new_epoch_and_a_running_generation_keeps_its_own(
    private_redis,
):
    store = RedisFrameStore(private_redis.url, prefix=f"test:{uuid.uuid4().hex}:")
    marker = {"generation_id": "g1", "turn": 1, "origin": "here"}
    start = await store.begin("p", marker, {"type": "turn_start", "turn": 1})
    epoch = start["epoch"]
    assert start["seq"] == 1

    private_redis.restart()  # while g1 streams: it goes on in its epoch, after its last frame
    await asyncio.sleep(0.2)  # the store's connection notices that Redis went away
    (delta,) = await store.lease_append(
        "p", "g1", [{"type": "delta", "text": "a"}], epoch=epoch, last_seq=1
    )
    assert (delta["seq"], delta["epoch"]) == (2, epoch)
    await store.lease_end("p", "g1", [{"type": "turn_end", "turn": 1}], epoch=epoch, last_seq=2)
    snapshot = await store.snapshot("p")
    assert snapshot.epoch == epoch
    assert [f["seq"] for f in snapshot.frames] == [2, 3]
    (picked,) = await store.append("p", [{"type": "pair_chosen", "turn": 1}])
    assert (picked["seq"], picked["epoch"]) == (4, epoch)  # this run of Redis vouches for it

    assert private_redis.cli("SAVE") == "OK"
    private_redis.restart()  # the counter comes back from the snapshot: it may be behind
    await asyncio.sleep(0.2)
    second = await store.begin("p", {**marker, "generation_id": "g2"}, {"type": "turn_start"})
    assert second["seq"] == 1
    assert second["epoch"] != epoch
    snapshot = await store.snapshot("p")
    assert (snapshot.epoch, [f["seq"] for f in snapshot.frames]) == (second["epoch"], [1])


async def test_a_hello_with_an_epoch_that_is_not_a_string_is_refused(private_redis, writer):
    client, _ = await open_client("demo", token_for(writer), hello=False)
    error = await client.error({"type": "hello", "last_seq": 3, "epoch": 7})
    assert (error["code"], error["field"]) == ("bad_field", "epoch")
    state = await client.hello(None)  # nothing was lost: the socket still takes a hello
    assert state["epoch"] is None
    await client.close()


async def test_a_reply_that_failed_while_redis_was_down_is_offered_again_on_the_open_socket(
    private_redis, writer, settings
):
    """Its end could not be published: once Redis is back the open socket is sent a fresh
    state, which offers Retry, rather than leaving the page streaming a reply that ended."""
    settings.OFFLINE_TOKENS_PER_SECOND = 20  # still streaming when Redis goes away
    client, _ = await open_client("demo", token_for(writer))
    await client.send({"type": "send", "text": "Help me with trains", "client_msg_id": "m-1"})
    await client.until(lambda f: f["type"] == "delta", wait_s=10)

    private_redis.cli("SHUTDOWN", "NOSAVE")
    assert private_redis.proc is not None
    private_redis.proc.wait(timeout=10)
    assert await generations.generations_wait(15)  # the reply failed: its end went nowhere
    private_redis.start()

    frames = await client.until(lambda f: f["type"] in ("state", "turn_error"), wait_s=10)
    fresh = frames[-1]
    assert fresh["type"] == "state", fresh
    assert (fresh["generation"], fresh["retry_turn"]) == (None, 1)
    await client.close()
