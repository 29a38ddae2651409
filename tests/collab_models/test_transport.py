"""The network seam: the lean HTTP/1.1 client's connection reuse, and the httpx fallback."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from collab_models import transport
from collab_models.base import SamplingParams
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


class _DiesOnWrite:
    """A transport whose peer hangs up as the request goes out (the keep-alive race)."""

    def __init__(self, conn: Any) -> None:
        self.conn, self.real = conn, conn.transport

    def write(self, data: bytes) -> None:
        self.real.close()
        asyncio.get_running_loop().call_soon(self.conn.connection_lost, ConnectionResetError())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


async def test_a_stale_keep_alive_connection_is_retried_transparently(fake: FakeVLLM) -> None:
    backend = OpenAIBackend(endpoints=[fake.url], model=MODEL, retries=0)
    assert await run_turn(backend)
    [conn] = idle_connections()
    conn.transport = _DiesOnWrite(conn)  # type: ignore[attr-defined]

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
