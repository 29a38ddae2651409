"""The relay's script client when Redis stalls, and its redis-py stand-in (RELAY_SCRIPT_CLIENT).

A stalled Redis is a redis-server of the test's own, frozen with SIGSTOP (the shared one is
never touched): a call fails with a timeout instead of hanging, and the next call after Redis
wakes works on a new connection.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Iterator

import pytest
import redis.exceptions

from studyapp.realtime import framestore
from studyapp.realtime.framestore import RedisFrameStore
from studyapp.realtime.scriptpipe import CallTimeout, RedisPyScripts, ScriptPipe
from studyapp.writing.models import Message, Role
from tests.writing.conftest import db, open_client, token_for
from tests.writing.private_redis import PrivateRedis

COUNT = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
ECHO = "return ARGV[1]"
SCRIPTS = {"count": COUNT, "echo": ECHO}
# Far above the clients' own limit (1 s): reached only when a call hangs.
HANG_GUARD_S = 8


@pytest.fixture
def private_redis(tmp_path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    thaw(server)
    server.stop()


def freeze(server: PrivateRedis) -> None:
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)


def thaw(server: PrivateRedis) -> None:
    assert server.proc is not None
    if server.proc.poll() is None:
        os.kill(server.proc.pid, signal.SIGCONT)


async def test_a_call_to_a_stalled_redis_times_out_and_the_next_one_reconnects(private_redis):
    pipe = ScriptPipe(private_redis.url, SCRIPTS, timeout_s=1)
    assert await pipe.call("count", ["k"], [1]) == 1
    first = pipe.replies
    freeze(private_redis)

    stalled = [pipe.call("count", ["k"], [1]) for _ in range(3)]
    outcomes = await asyncio.wait_for(
        asyncio.gather(*stalled, return_exceptions=True), HANG_GUARD_S
    )
    assert all(isinstance(o, CallTimeout) for o in outcomes), outcomes
    assert "did not answer within 1 s" in str(outcomes[0])
    assert first is not None
    assert first.lost  # answers can no longer be matched: dropped

    # Still frozen: a new connection's set-up gets no answer either, and fails in time.
    with pytest.raises(ConnectionError, match="cannot use Redis"):
        await asyncio.wait_for(pipe.call("echo", ["k"], ["x"]), HANG_GUARD_S)

    thaw(private_redis)
    assert await asyncio.wait_for(pipe.call("echo", ["k"], ["awake"]), HANG_GUARD_S) == b"awake"
    assert pipe.replies is not first
    pipe.close()


async def test_redis_py_scripts_time_out_on_a_stalled_redis_and_recover(private_redis):
    scripts = RedisPyScripts(private_redis.url, SCRIPTS, timeout_s=1)
    assert await scripts.call("count", ["k"], [2]) == 2
    freeze(private_redis)

    with pytest.raises(redis.exceptions.TimeoutError):
        await asyncio.wait_for(scripts.call("count", ["k"], [1]), HANG_GUARD_S)

    thaw(private_redis)
    assert await asyncio.wait_for(scripts.call("echo", ["k"], ["awake"]), HANG_GUARD_S) == (
        b"awake"
    )
    await scripts.client.aclose()


async def test_redis_py_scripts_load_a_script_redis_forgot(private_redis):
    scripts = RedisPyScripts(private_redis.url, SCRIPTS, timeout_s=1)
    assert await scripts.call("count", ["k"], [1]) == 1
    assert private_redis.cli("SCRIPT", "FLUSH") == "OK"
    assert await scripts.call("count", ["k"], [1]) == 2
    await scripts.client.aclose()


@pytest.mark.parametrize(
    ("kind", "error"),
    [("pipe", CallTimeout), ("redis-py", redis.exceptions.TimeoutError)],
)
async def test_the_frame_store_fails_a_frame_within_the_set_timeout(
    private_redis, settings, kind, error
):
    settings.RELAY_SCRIPT_CLIENT = kind
    settings.REDIS_CALL_TIMEOUT_S = 1
    store = RedisFrameStore(private_redis.url)
    await store.begin("p", {"generation_id": "g1", "turn": 1}, {"type": "turn_start", "turn": 1})
    freeze(private_redis)

    with pytest.raises(error):  # the set second, not the default five
        await asyncio.wait_for(store.append("p", [{"type": "delta", "text": "a"}]), 3)

    thaw(private_redis)
    frames = await store.append("p", [{"type": "delta", "text": "b"}])
    assert frames[0]["text"] == "b"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("drain_generations")
async def test_a_chat_turn_relays_through_redis_py_when_set(writer, settings, monkeypatch):
    settings.RELAY_SCRIPT_CLIENT = "redis-py"
    store = RedisFrameStore(settings.REDIS_URL, prefix=f"test:{uuid.uuid4().hex}:")
    monkeypatch.setattr(framestore, "_store", store)

    client, state = await open_client("demo", token_for(writer))
    frames = [f for f in await client.turn("Help me plan a short story", "m-1") if "seq" in f]

    used = store._clients[asyncio.get_running_loop()]  # the relay ran on this store
    assert isinstance(used.relay_scripts, RedisPyScripts)
    seqs = [f["seq"] for f in frames]
    assert seqs == list(range(state["last_seq"] + 1, state["last_seq"] + 1 + len(seqs)))
    assert frames[0]["type"] == "turn_start"
    assert frames[-1]["type"] == "turn_end"
    assert frames[-1]["finish_reason"] == "stop"
    reply = await db(lambda: Message.objects.get(participation=writer, turn=1, role=Role.ASSISTANT))
    assert reply.text == frames[-1]["text"] != ""
    await client.close()
