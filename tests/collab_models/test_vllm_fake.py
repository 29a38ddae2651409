"""The fake vLLM server itself: wire format, subprocess mode, thread mode."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx

from collab_models.arms import build_arm
from tests.collab_models.conftest import MODEL
from tests.collab_models.vllm_fake import FakeVLLM, Script

REPO = Path(__file__).resolve().parents[2]


async def test_wire_format_matches_vllm(fake: FakeVLLM) -> None:
    fake.script(Script(text="Hi there"))
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hello"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{fake.url}/v1/chat/completions", json=body)

    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line[len("data: ") :] for line in response.text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == MODEL for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-2]["choices"][0]["delta"] == {"content": " there"}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 1, "total_tokens": 3, "completion_tokens": 2}


async def test_non_streaming_completion(fake: FakeVLLM) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 3}
    async with httpx.AsyncClient() as client:
        data = (await client.post(f"{fake.url}/v1/chat/completions", json=body)).json()
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 3


async def test_runs_as_a_subprocess_for_benchmarks() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.collab_models.vllm_fake", "--port", "0", "--tps", "500",
        "--tokens", "10", cwd=REPO, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line.startswith("vllm_fake listening on http://127.0.0.1:")
        url = line.split()[-1]
        arm = build_arm({"name": "base", "endpoints": [url], "model": MODEL})
        stream = arm.reply([{"role": "user", "content": "hi"}])
        deltas = [d async for d in stream]
        assert len(deltas) == 10
        assert stream.record is not None
        assert stream.record.completion_tokens == 10
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


async def test_runs_in_a_thread_for_other_event_loops() -> None:
    with FakeVLLM(tps=0).running_in_thread() as fake:
        arm = build_arm({"name": "base", "endpoints": [fake.url], "model": MODEL})
        deltas = [d async for d in arm.reply([{"role": "user", "content": "hi"}])]
        assert len(deltas) == 20
        assert len(fake.chat_requests()) == 1
