"""Readiness probes used by check_models."""

from __future__ import annotations

from collab_models.arms import build_arm
from collab_models.probes import (
    probe_completion,
    probe_endpoint,
    probe_health,
    probe_models,
)
from tests.collab_models.conftest import MODEL
from tests.collab_models.vllm_fake import FakeVLLM, Script


async def test_health_probe_reports_ready_and_not_ready(fake: FakeVLLM) -> None:
    assert (await probe_health(fake.url)).ok
    fake.healthy = False
    result = await probe_health(fake.url + "/v1")
    assert not result.ok
    assert "503" in result.detail


async def test_health_probe_reports_an_unreachable_server() -> None:
    result = await probe_health("http://127.0.0.1:9", timeout_s=1)
    assert not result.ok
    assert "Error" in result.detail


async def test_models_probe_finds_base_models_and_lora_adapters(fake: FakeVLLM) -> None:
    assert (await probe_models(fake.url, MODEL)).ok
    assert (await probe_models(fake.url, "collabllm-writing")).ok
    missing = await probe_models(fake.url, "collabllm-math")
    assert not missing.ok
    assert "collabllm-writing" in missing.detail


async def test_completion_probe_times_a_short_stream(fake: FakeVLLM) -> None:
    fake.script(Script(text="Hello! Nice to meet you."))
    result = await probe_completion(fake.url, MODEL)
    assert result.ok
    assert result.ttft_ms is not None
    assert result.latency_ms is not None
    assert result.completion_tokens == 5
    assert fake.chat_requests()[0].body["temperature"] == 0.0
    assert "[ok  ] completion" in str(result)


async def test_endpoint_probe_stops_at_the_first_failure(fake: FakeVLLM) -> None:
    results = await probe_endpoint(fake.url, "not-served")
    assert [(r.check, r.ok) for r in results] == [("health", True), ("models", False)]


async def test_arm_probe_checks_every_endpoint(fake: FakeVLLM, fake2: FakeVLLM) -> None:
    arm = build_arm({"name": "base", "endpoints": [fake.url, fake2.url], "model": MODEL})
    results = await arm.probe()
    # Every endpoint answers, then the arm holds a two-turn exchange through its replicas.
    assert [r.check for r in results] == ["health", "models"] * 2 + ["turn 1", "turn 2"]
    assert all(r.ok for r in results)
    assert len(fake.chat_requests()) + len(fake2.chat_requests()) == 2
    offline = build_arm({"name": "demo", "backend": "offline", "rate": 0})
    assert [(r.check, r.ok) for r in await offline.probe()] == [("turn 1", True), ("turn 2", True)]
