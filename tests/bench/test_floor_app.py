"""The relay benchmark's floor app and its participant, end to end on loopback."""

from __future__ import annotations

import asyncio
import math
import socket

import uvicorn

from bench import floor_app
from bench import relay as relay_bench
from tests.collab_models.vllm_fake import FakeVLLM, Script, _EmbeddedServer


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    return sock


async def test_the_floor_app_relays_the_model_reply_to_a_benchmark_participant(monkeypatch):
    reply = "A short reply from the model, streamed token by token"
    async with FakeVLLM(tps=200) as fake:
        fake.script(Script(text=reply))
        monkeypatch.setenv("FLOOR_MODEL_URL", fake.url)
        sock = _listening_socket()
        port = sock.getsockname()[1]
        server = _EmbeddedServer(
            uvicorn.Config(floor_app.app, lifespan="off", log_level="warning")
        )
        serving = await server.serve_until_ready([sock])
        try:
            start = asyncio.Event()
            start.set()
            result = await asyncio.wait_for(
                relay_bench.participant(port, "no-token", "key", start), 30
            )
        finally:
            server.stop_now()
            await serving
    assert result.error == ""
    assert result.text == result.final_text == reply
    assert len(result.gaps_ms) >= 1  # coalesced, but more than one frame at 200 tokens/s
    assert (result.lost, result.duplicated) == (0, 0)
    assert math.isfinite(result.ttft_ms)
    assert result.ttft_ms > 0
    (request,) = fake.chat_requests()
    assert request.body["messages"] == [{"role": "user", "content": "Help me write a blog post."}]
