"""Fixtures for the collab_models tests: a fake vLLM server on loopback and a clean seam."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping

import pytest

from collab_models.openai_backend import reset_health
from collab_models.transport import aclose_client
from tests.collab_models.vllm_fake import FakeVLLM

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
# The network code also runs on uvloop (uvicorn's loop in production): test it on both there.
BOTH_LOOPS = {"test_openai_backend.py", "test_transport.py"}


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    if item.path.name in BOTH_LOOPS:
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
            return factories
        factories["uvloop"] = uvloop.new_event_loop
    return factories


@pytest.fixture(autouse=True)
async def clean_transport() -> AsyncIterator[None]:
    """Every test starts with healthy replicas and leaves no open client behind."""
    reset_health()
    yield
    await aclose_client()
    reset_health()


@pytest.fixture
async def fake() -> AsyncIterator[FakeVLLM]:
    """A fake vLLM server in the test's event loop, streaming as fast as it can."""
    server = FakeVLLM(tps=0)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def fake2() -> AsyncIterator[FakeVLLM]:
    """A second replica."""
    server = FakeVLLM(tps=0)
    await server.start()
    yield server
    await server.stop()
