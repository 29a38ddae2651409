"""The relay's lean Redis connection for its scripts, against the real Redis (and, for a
connection that dies mid-call, a loopback server that reads a command and hangs up)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis.asyncio as redis
from django.conf import settings

from studyapp.realtime.scriptpipe import CLIENT_NAME, ScriptError, ScriptPipe, encode

COUNT = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
FAIL = "return redis.error_reply('refused by the script')"
ECHO = "return ARGV[1]"
SCRIPTS = {"count": COUNT, "fail": FAIL, "echo": ECHO}


def with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", "", ""))


@pytest.fixture
async def client() -> AsyncIterator[redis.Redis]:
    connection = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    yield connection
    await connection.aclose()


@pytest.fixture
def key() -> str:
    return f"test:scriptpipe:{uuid.uuid4().hex}"


async def test_calls_of_one_turn_go_out_together_and_settle_in_order(client, key) -> None:
    pipe = ScriptPipe(settings.REDIS_URL, SCRIPTS)
    await pipe.call("count", [key], [0])  # connected
    writes = []
    transport = pipe.replies.transport
    real_write = transport.write
    transport.write = lambda data: (writes.append(data), real_write(data))

    results = await asyncio.gather(*(pipe.call("count", [key], [1]) for _ in range(100)))

    assert results == list(range(1, 101))
    assert len(writes) == 1  # one system call for the hundred
    assert await client.get(key) == "100"
    await client.delete(key)
    pipe.close()


async def test_an_error_reply_fails_only_its_own_call(client, key) -> None:
    pipe = ScriptPipe(settings.REDIS_URL, SCRIPTS)
    first = pipe.call("count", [key], [5])
    failing = pipe.call("fail", [key], [])
    after = pipe.call("count", [key], [1])

    assert await first == 5
    with pytest.raises(ScriptError, match="refused by the script"):
        await failing
    assert await after == 6
    await client.delete(key)
    pipe.close()


async def test_bulk_replies_and_text_beyond_ascii_pass_through_whole(key) -> None:
    pipe = ScriptPipe(settings.REDIS_URL, SCRIPTS)
    text = 'a "delta" — naïve café 🌱\r\n$3\r\nnot a command'
    assert await pipe.call("echo", [key], [text]) == text.encode()
    assert encode("é").endswith(b"$2\r\n\xc3\xa9\r\n")  # the length counts bytes
    pipe.close()


async def test_a_forgotten_script_is_sent_again_whole(client, key) -> None:
    pipe = ScriptPipe(settings.REDIS_URL, SCRIPTS)
    assert await pipe.call("count", [key], [1]) == 1
    await client.script_flush()  # as after a restart of Redis that kept the connection's place
    assert await asyncio.gather(*(pipe.call("count", [key], [1]) for _ in range(3))) == [2, 3, 4]
    await client.delete(key)
    pipe.close()


async def test_the_url_chooses_the_database_and_the_connection_is_named(key) -> None:
    pipe = ScriptPipe(with_db(settings.REDIS_URL, 7), SCRIPTS)
    other = redis.Redis.from_url(with_db(settings.REDIS_URL, 7), decode_responses=True)
    try:
        assert await pipe.call("count", [key], [3]) == 3
        assert await other.get(key) == "3"
        names = [c.get("name") for c in await other.client_list()]
        assert CLIENT_NAME in names
    finally:
        await other.delete(key)
        await other.aclose()
        pipe.close()


async def test_a_killed_connection_is_replaced_by_the_next_call(client, key) -> None:
    pipe = ScriptPipe(settings.REDIS_URL, SCRIPTS)
    assert await pipe.call("count", [key], [1]) == 1
    ours = [c for c in await client.client_list() if c.get("name") == CLIENT_NAME]
    for connection in ours:
        await client.client_kill_filter(_id=connection["id"])
    for _ in range(100):
        if pipe.replies.lost:
            break
        await asyncio.sleep(0.01)
    assert pipe.replies.lost

    assert await pipe.call("count", [key], [1]) == 2
    await client.delete(key)
    pipe.close()


async def test_calls_in_flight_fail_when_the_connection_drops() -> None:
    """A server that takes the set-up, then hangs up on the first call it reads."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n")  # CLIENT SETNAME
        writer.write(b"+OK\r\n")
        await reader.read(1)  # a call
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pipe = ScriptPipe(f"redis://127.0.0.1:{port}", SCRIPTS)
    calls = [pipe.call("count", ["k"], [1]) for _ in range(3)]

    outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5)

    assert all(isinstance(o, ConnectionError) for o in outcomes), outcomes
    server.close()
    await server.wait_closed()


async def test_unreachable_or_refusing_redis_fails_the_calls_clearly() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    nowhere = ScriptPipe(f"redis://127.0.0.1:{port}/0", SCRIPTS)
    with pytest.raises(ConnectionError, match=f"cannot use Redis at 127.0.0.1:{port}"):
        await nowhere.call("count", ["k"], [1])

    parts = urlsplit(settings.REDIS_URL)
    wrong = urlunsplit(
        (parts.scheme, f"nobody:wrong-password@{parts.hostname}:{parts.port or 6379}", "", "", "")
    )
    refused = ScriptPipe(wrong, SCRIPTS)
    with pytest.raises(ConnectionError) as raised:
        await refused.call("count", ["k"], [1])
    assert "wrong-password" not in str(raised.value)
    assert "WRONGPASS" in str(raised.value) or "AUTH" in str(raised.value)
