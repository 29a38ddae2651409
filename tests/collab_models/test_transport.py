"""The network seam: the lean HTTP/1.1 client's connection reuse and its requests sent before
anything is awaited, and the httpx fallback."""

from __future__ import annotations

import asyncio
import gc
import re
import socket
import threading
import weakref

import httpx
import pytest

from collab_models import transport
from collab_models.base import SamplingParams
from collab_models.http1 import H1Pool
from collab_models.openai_backend import OpenAIBackend, endpoint_health
from tests.collab_models.conftest import MODEL
from tests.collab_models.vllm_fake import FakeVLLM, Script

HISTORY = [{"role": "user", "content": "hello"}]


def idle_connections() -> list[object]:
    entry = transport._loops[asyncio.get_running_loop()]
    return [conn for idle in entry.h1._idle.values() for conn in idle]


async def run_turn(backend: OpenAIBackend) -> str:
    stream = backend.stream(HISTORY, SamplingParams())
    return "".join([d async for d in stream])


async def test_keep_alive_connections_are_reused(fake: FakeVLLM) -> None:
    backend = OpenAIBackend(endpoints=[fake.url], model=MODEL)
    for _ in range(3):
        assert await run_turn(backend)

    ports = {r.client for r in fake.chat_requests()}
    assert len(ports) == 1  # one TCP connection served all three turns
    assert len(idle_connections()) == 1


async def test_a_cancelled_stream_does_not_go_back_to_the_pool(fake: FakeVLLM) -> None:
    fake.script(Script(text=" ".join(["w"] * 50), tps=100))
    stream = OpenAIBackend(endpoints=[fake.url], model=MODEL).stream(HISTORY, SamplingParams())
    async for _ in stream:
        break
    await stream.aclose()

    assert idle_connections() == []
    assert await fake.wait_for(lambda: fake.disconnects == 1)


async def test_a_stale_keep_alive_connection_is_retried_transparently(fake: FakeVLLM) -> None:
    backend = OpenAIBackend(endpoints=[fake.url], model=MODEL, retries=0)
    assert await run_turn(backend)
    [conn] = idle_connections()

    def dies_on_write(data: bytes) -> None:
        """The keep-alive race: the server hangs up as the request goes out."""
        asyncio.get_running_loop().call_soon(conn.lost, ConnectionResetError())

    conn.write = dies_on_write  # type: ignore[attr-defined]

    assert await run_turn(backend)
    assert endpoint_health(fake.url)["failures"] == 0
    assert len({r.client for r in fake.chat_requests()}) == 2  # a fresh connection took over


async def test_idle_connections_closed_by_the_server_are_skipped(fake: FakeVLLM) -> None:
    backend = OpenAIBackend(endpoints=[fake.url], model=MODEL, retries=0)
    assert await run_turn(backend)
    await fake.stop()
    await fake.start()  # same port, new server: the old connection is gone

    assert await run_turn(backend)


async def test_a_custom_client_factory_carries_every_request() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        body = (
            b'data: {"choices":[{"index":0,"delta":{"content":"mocked"},"finish_reason":"stop"}]}'
            b"\n\ndata: [DONE]\n\n"
        )
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    with transport.use_client_factory(
        lambda: httpx.AsyncClient(transport=httpx.MockTransport(handler))
    ):
        backend = OpenAIBackend(endpoints=["http://gpu-box:8000"], model=MODEL)
        assert await run_turn(backend) == "mocked"

    assert seen == ["http://gpu-box:8000/v1/chat/completions"]


@pytest.mark.parametrize("fast", [True, False])
async def test_connection_refused_is_a_transport_error(fast: bool) -> None:
    previous = transport.set_fast_http(fast)
    try:
        with pytest.raises(transport.TransportError):
            await transport.open_stream(
                "http://127.0.0.1:9/v1/chat/completions",
                body=b"{}",
                headers={},
                connect_timeout=1,
                read_timeout=1,
            )
    finally:
        transport.set_fast_http(previous)


async def test_a_request_is_on_the_wire_before_anything_is_awaited() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(2)
    port = listener.getsockname()[1]
    pool = H1Pool()
    try:
        outgoing = pool.send_now("POST", "127.0.0.1", port, "/v1/x", headers={}, body=b"hi")
        # Nothing was awaited: the event loop has not run, yet the server has the request.
        peer, _ = listener.accept()
        with peer:
            peer.settimeout(2)
            request = peer.recv(65536)
            assert request.startswith(b"POST /v1/x HTTP/1.1\r\n")
            assert request.endswith(b"\r\n\r\nhi")
            peer.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            exchange = await pool.response(outgoing, connect_timeout=2)
            assert exchange.status == 200
            assert await exchange.read_body(100) == b"ok"
            await exchange.aclose()
    finally:
        pool.close()
        listener.close()


async def test_a_host_name_is_connected_to_when_the_response_is_awaited(fake: FakeVLLM) -> None:
    pool = H1Pool()
    try:
        port = int(fake.url.rsplit(":", 1)[1])
        outgoing = pool.send_now("GET", "localhost", port, "/health", headers={}, body=b"")
        assert outgoing.conn is None
        exchange = await pool.response(outgoing, connect_timeout=2)
        assert exchange.status == 200
        await exchange.aclose()
    finally:
        pool.close()


async def test_a_started_stream_closed_before_its_task_ran_drops_its_request(
    fake: FakeVLLM,
) -> None:
    fake.script(Script(text=" ".join(["w"] * 50), tps=20))
    stream = OpenAIBackend(endpoints=[fake.url], model=MODEL).stream(HISTORY, SamplingParams())
    stream.start()  # the request is sent here
    await stream.aclose()  # before the producer's task had a turn

    assert await fake.wait_for(lambda: fake.disconnects == 1)
    assert idle_connections() == []
    assert stream.record is not None
    assert stream.record.finish_reason == "cancelled"


async def test_a_response_is_taken_once() -> None:
    pool = H1Pool()
    outgoing = pool.send_now("GET", "127.0.0.1", 9, "/", headers={}, body=b"")
    with pytest.raises(transport.TransportError):
        await pool.response(outgoing, connect_timeout=1)
    with pytest.raises(RuntimeError):
        await pool.response(outgoing, connect_timeout=1)


async def test_a_closed_connection_is_freed_without_the_garbage_collector(fake: FakeVLLM) -> None:
    backend = OpenAIBackend(endpoints=[fake.url], model=MODEL)
    assert await run_turn(backend)
    [conn] = idle_connections()
    freed = weakref.ref(conn)
    del conn
    gc.disable()
    try:
        transport._loops[asyncio.get_running_loop()].h1.close()
        for _ in range(3):  # connection_lost runs a turn of the loop later
            await asyncio.sleep(0)
        assert freed() is None
    finally:
        gc.enable()


async def test_what_the_socket_could_not_take_at_once_is_sent_when_awaited() -> None:
    """A body larger than the socket's buffer: send_now sends part, response() the rest."""
    body = b"x" * (8 << 20)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(20)
    port = listener.getsockname()[1]
    received: list[int] = []

    def serve() -> None:
        peer, _ = listener.accept()
        with peer:
            data = b""
            while b"\r\n\r\n" not in data:
                data += peer.recv(65536)
            head, _, rest = data.partition(b"\r\n\r\n")
            length = int(re.search(rb"content-length: (\d+)", head).group(1))
            while len(rest) < length and (chunk := peer.recv(1 << 20)):
                rest += chunk
            received.append(len(rest))
            peer.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    pool = H1Pool()
    try:
        outgoing = pool.send_now("POST", "127.0.0.1", port, "/big", headers={}, body=body)
        assert outgoing.conn is not None
        assert 0 < len(outgoing.conn.outbox) < len(outgoing.data)
        async with asyncio.timeout(20):
            exchange = await pool.response(outgoing, connect_timeout=5)
        assert exchange.status == 204
        await exchange.aclose()
    finally:
        pool.close()
        listener.close()
    await asyncio.to_thread(server.join, 5)
    assert received == [len(body)]


async def _answered_before_awaited(answer: bytes) -> tuple[list[bytes], transport.Exchange]:
    """Send a request with a sink, let a server answer it while nothing awaits the response,
    and return what the sink got by then, and the response opened afterwards."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(2)
    port = listener.getsockname()[1]
    pool = H1Pool()
    got: list[bytes] = []
    try:
        outgoing = pool.send_now(
            "POST", "127.0.0.1", port, "/v1/x", headers={}, body=b"hi", sink=got.append
        )
        peer, _ = listener.accept()
        with peer:
            peer.settimeout(2)
            peer.recv(65536)
            peer.sendall(answer)
            conn = outgoing.conn
            assert conn is not None
            # The whole response parsed, though nothing has asked for it yet.
            await asyncio.wait([conn.complete], timeout=2)
            before = list(got)
            exchange = await pool.response(outgoing, connect_timeout=2)
        return before, exchange
    finally:
        pool.close()
        listener.close()


async def test_a_sink_given_with_the_request_gets_the_body_before_anything_awaits_it() -> None:
    body = b"data: first\n\n"
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    before, exchange = await _answered_before_awaited(answer)

    assert before == [body]  # read and handed over by the event loop's watch on the socket
    assert exchange.status == 200
    await exchange.pump(lambda chunk: None, lambda: asyncio.get_running_loop().time() + 2)


async def test_an_error_response_is_kept_for_read_body_not_given_to_the_sink() -> None:
    body = b'{"error": "busy"}'
    answer = b"HTTP/1.1 503 Busy\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    before, exchange = await _answered_before_awaited(answer)

    assert before == []
    assert exchange.status == 503
    assert await exchange.read_body(100) == body


async def test_a_model_reply_reaches_its_listener_from_the_socket_not_from_a_task(
    fake: FakeVLLM,
) -> None:
    """Each delta is handed over where the socket is read, the first one included: not in a
    turn of the producer's task, which waits behind every other message under a burst."""
    fake.script(Script(text="one two three four", tps=0))
    stream = OpenAIBackend(endpoints=[fake.url], model=MODEL).stream(HISTORY, SamplingParams())
    callers: list[asyncio.Task[object] | None] = []
    await stream.deliver_to(lambda delta: callers.append(asyncio.current_task()))

    assert len(callers) == 4
    assert callers == [None] * 4  # a callback of the event loop, outside any task


async def test_a_connect_that_does_not_complete_times_out_with_a_clear_error() -> None:
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    waiting = []  # never accepted: they fill the queue, and later connects are not answered
    for _ in range(4):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        waiting.append(sock)
    await asyncio.sleep(0.1)
    pool = H1Pool()
    try:
        outgoing = pool.send_now("POST", "127.0.0.1", port, "/v1/x", headers={}, body=b"hi")
        with pytest.raises(transport.TransportError, match=r"timed out after 0\.3s"):
            await pool.response(outgoing, connect_timeout=0.3)
    finally:
        pool.close()
        for sock in waiting:
            sock.close()
        listener.close()
