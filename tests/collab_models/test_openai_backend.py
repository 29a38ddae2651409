"""The vLLM streaming client against a real HTTP server speaking vLLM's wire format."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

from collab_models.base import ModelError, ReplyStream, SamplingParams, TurnRecord
from collab_models.openai_backend import EndpointPool, OpenAIBackend, Timeouts, endpoint_health
from collab_models.transport import set_fast_http
from tests.collab_models.conftest import MODEL
from tests.collab_models.vllm_fake import FakeVLLM, Script

HISTORY = [{"role": "user", "content": "Help me write a blog post about gardening"}]


@pytest.fixture(autouse=True, params=["fast", "httpx"])
def http_client(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every behaviour holds on both HTTP paths: the lean client and httpx."""
    previous = set_fast_http(request.param == "fast")
    yield request.param
    set_fast_http(previous)


def make_backend(
    *urls: str, model: str = MODEL, retries: int = 2, **timeouts: float
) -> OpenAIBackend:
    return OpenAIBackend(
        endpoints=list(urls), model=model, retries=retries, timeouts=Timeouts(**timeouts)
    )


async def collect(stream: ReplyStream) -> tuple[list[str], TurnRecord]:
    deltas = [d async for d in stream]
    assert stream.record is not None
    return deltas, stream.record


async def collect_until_error(stream: ReplyStream) -> tuple[list[str], ModelError]:
    deltas: list[str] = []
    try:
        async for delta in stream:
            deltas.append(delta)
    except ModelError as exc:
        return deltas, exc
    pytest.fail("the stream ended without a ModelError")


def free_port_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def test_streams_content_deltas_and_records_usage_and_timings(fake: FakeVLLM) -> None:
    fake.script(Script(text="Hello there, how are you today?"))
    stream = make_backend(fake.url).stream(HISTORY, SamplingParams())

    deltas, record = await collect(stream)

    assert deltas == ["Hello", " there,", " how", " are", " you", " today?"]
    assert record.text == record.raw_output == "Hello there, how are you today?"
    assert record.finish_reason == "stop"
    assert record.prompt_tokens == 8  # the fake counts words of the messages
    assert record.completion_tokens == 6
    assert record.ttft_ms is not None
    assert record.duration_ms is not None
    assert 0 < record.ttft_ms <= record.duration_ms
    assert (record.backend, record.model, record.endpoint) == ("openai", MODEL, fake.url)
    assert record.error == ""


async def test_text_on_a_separate_finish_chunk_and_length_finish(fake: FakeVLLM) -> None:
    fake.script(Script(text="one two three four", text_on_finish=False))
    sampling = SamplingParams(max_tokens=3)

    deltas, record = await collect(make_backend(fake.url).stream(HISTORY, sampling))

    assert "".join(deltas) == "one two three"
    assert record.finish_reason == "length"
    assert record.completion_tokens == 3


async def test_sampling_values_are_always_sent_explicitly(fake: FakeVLLM) -> None:
    backend = make_backend(fake.url)
    await collect(backend.stream(HISTORY, SamplingParams(temperature=0.8, top_p=1.0)))
    await collect(backend.stream(HISTORY, SamplingParams(temperature=0.0, max_tokens=64, seed=7)))

    first, second = (r.body for r in fake.chat_requests())
    assert first["temperature"] == 0.8
    assert first["top_p"] == 1.0
    assert first["max_tokens"] == 1024
    assert "seed" not in first
    assert second["temperature"] == 0.0
    assert second["max_tokens"] == 64
    assert second["seed"] == 7
    for body in (first, second):
        assert body["stream"] is True
        assert body["stream_options"] == {"include_usage": True}
        assert body["model"] == MODEL
        assert body["messages"] == HISTORY


async def test_role_chunk_does_not_count_as_the_first_token(fake: FakeVLLM) -> None:
    fake.script(Script(text="late reply", first_token_delay=0.3))

    _, record = await collect(make_backend(fake.url).stream(HISTORY, SamplingParams()))

    assert record.ttft_ms is not None
    assert record.ttft_ms >= 280


@pytest.mark.parametrize("shape", ["legacy", "new"])
async def test_unknown_model_is_a_permanent_error_with_a_clear_message(
    fake: FakeVLLM, shape: str
) -> None:
    fake.error_shape = shape
    stream = make_backend(fake.url, model="collabllm-typo").stream(HISTORY, SamplingParams())

    deltas, error = await collect_until_error(stream)

    assert deltas == []
    assert error.permanent
    assert "'collabllm-typo' is not served at" in str(error)
    assert "does not exist" in str(error)  # vLLM's own words, from either body shape
    assert len(fake.chat_requests()) == 1  # never retried
    assert stream.record is not None
    assert stream.record.finish_reason == "error"


@pytest.mark.parametrize("shape", ["legacy", "new"])
async def test_error_body_before_the_stream_is_read_in_both_shapes(
    fake: FakeVLLM, shape: str
) -> None:
    fake.script(Script(status=400, error_message="max_tokens is too large", error_shape=shape))

    _, error = await collect_until_error(make_backend(fake.url).stream(HISTORY, SamplingParams()))

    assert error.permanent
    assert "HTTP 400" in str(error)
    assert "max_tokens is too large" in str(error)
    assert len(fake.chat_requests()) == 1


async def test_503_before_the_stream_is_retried(fake: FakeVLLM) -> None:
    fake.script(Script(status=503), Script(text="second time lucky"))

    deltas, record = await collect(make_backend(fake.url).stream(HISTORY, SamplingParams()))

    assert "".join(deltas) == "second time lucky"
    assert record.finish_reason == "stop"
    assert len(fake.chat_requests()) == 2


async def test_retries_give_up_with_a_transient_error(fake: FakeVLLM) -> None:
    fake.script(*[Script(status=503, error_message="engine is loading")] * 2)

    stream = make_backend(fake.url, retries=1).stream(HISTORY, SamplingParams())
    _, error = await collect_until_error(stream)

    assert not error.permanent
    assert "2 attempt(s)" in str(error)
    assert "HTTP 503" in str(error)
    assert "engine is loading" in str(error)


async def test_fails_over_to_a_second_replica_when_the_first_is_down(fake: FakeVLLM) -> None:
    down = free_port_url()
    backend = make_backend(down, fake.url, connect=1)

    for _ in range(2):
        deltas, record = await collect(backend.stream(HISTORY, SamplingParams()))
        assert deltas
        assert record.endpoint == fake.url

    assert endpoint_health(down)["failures"] == 1  # the second turn avoided the dead replica


async def test_fails_over_when_a_replica_answers_503(fake: FakeVLLM, fake2: FakeVLLM) -> None:
    fake.script(Script(status=503))
    backend = make_backend(fake.url, fake2.url)
    backend.pool.ranked = lambda tried=(): sorted(  # type: ignore[method-assign]
        backend.pool.urls, key=lambda u: (u in tried, backend.pool.cooling(u))
    )  # deterministic: the first replica first unless it failed

    _, first = await collect(backend.stream(HISTORY, SamplingParams()))
    _, second = await collect(backend.stream(HISTORY, SamplingParams()))

    assert first.endpoint == fake2.url
    assert second.endpoint == fake2.url
    assert len(fake.chat_requests()) == 1
    assert len(fake2.chat_requests()) == 2


async def test_slow_first_token_is_awaited_once_and_never_retried(
    fake: FakeVLLM, fake2: FakeVLLM
) -> None:
    # A request that waits in the server's queue keeps its place: asking again (here or on
    # another replica) would only wait at the back of a queue.
    fake.script(Script(first_token_delay=10))
    fake2.script(Script(first_token_delay=10))
    backend = make_backend(fake.url, fake2.url, retries=2, first_token=0.5)

    started = time.monotonic()
    _, error = await collect_until_error(backend.stream(HISTORY, SamplingParams()))

    assert 0.5 <= time.monotonic() - started < 2.0  # reported once the one limit has passed
    assert "no first token" in str(error)
    assert "within 0.5s" in str(error)
    assert error.permanent is False
    assert len(fake.chat_requests()) + len(fake2.chat_requests()) == 1


@pytest.mark.parametrize("where", ["queue_delay", "first_token_delay"])
async def test_first_token_after_a_long_queue_wait_arrives_on_the_one_request(
    fake: FakeVLLM, where: str
) -> None:
    # Queued longer than the old per-attempt limit (here scaled down: 1.2 s against 0.4 s
    # attempts), within the one first-token limit.
    fake.script(Script(text="Finally my turn", **{where: 1.2}))
    backend = make_backend(fake.url, retries=2, first_token=3.0)

    deltas, record = await collect(backend.stream(HISTORY, SamplingParams()))

    assert "".join(deltas) == "Finally my turn"
    assert len(fake.chat_requests()) == 1
    assert record.ttft_ms is not None
    assert record.ttft_ms >= 1200


async def test_stall_mid_stream_fails_after_the_silence_limit_without_retry(
    fake: FakeVLLM,
) -> None:
    fake.script(Script(text="a b c d e f", stall_after=2))
    stream = make_backend(fake.url, between_tokens=0.3).stream(HISTORY, SamplingParams())

    deltas, error = await collect_until_error(stream)

    assert deltas == ["a", " b"]
    assert "went silent for 0.3s" in str(error)
    assert len(fake.chat_requests()) == 1
    record = stream.record
    assert record is not None
    assert (record.finish_reason, record.text) == ("error", "a b")
    assert "silent" in record.error
    assert await fake.wait_for(lambda: fake.disconnects == 1)


async def test_connection_cut_mid_stream_fails_without_retry(fake: FakeVLLM) -> None:
    fake.script(Script(text="a b c d e f", cut_after=3))
    stream = make_backend(fake.url).stream(HISTORY, SamplingParams())

    deltas, error = await collect_until_error(stream)

    assert "".join(deltas) == "a b c"
    assert "lost" in str(error) or "ended before [DONE]" in str(error)
    assert not error.permanent
    assert len(fake.chat_requests()) == 1


async def test_connection_cut_before_the_first_token_is_retried(fake: FakeVLLM) -> None:
    fake.script(Script(text="never seen", cut_after=0), Script(text="fine"))

    deltas, _ = await collect(make_backend(fake.url).stream(HISTORY, SamplingParams()))

    assert deltas == ["fine"]
    assert len(fake.chat_requests()) == 2


async def test_error_event_inside_the_stream_ends_the_turn(fake: FakeVLLM) -> None:
    fake.script(Script(text="a b c d", error_after=2, error_message="CUDA out of memory"))
    stream = make_backend(fake.url).stream(HISTORY, SamplingParams())

    deltas, error = await collect_until_error(stream)

    assert deltas == ["a", " b"]
    assert "mid-stream: CUDA out of memory" in str(error)
    assert stream.record is not None
    assert stream.record.text == "a b"
    assert len(fake.chat_requests()) == 1


async def test_error_event_before_any_text_is_retried(fake: FakeVLLM) -> None:
    fake.script(Script(error_after=0), Script(text="recovered"))

    deltas, _ = await collect(make_backend(fake.url).stream(HISTORY, SamplingParams()))

    assert deltas == ["recovered"]


async def test_malformed_line_is_an_error_not_a_crash(fake: FakeVLLM) -> None:
    fake.script(Script(text="a b c", malformed_after=1))
    stream = make_backend(fake.url).stream(HISTORY, SamplingParams())

    deltas, error = await collect_until_error(stream)

    assert deltas == ["a"]
    assert "malformed line" in str(error)
    assert stream.record is not None
    assert stream.record.finish_reason == "error"


async def test_total_timeout_bounds_the_turn(fake: FakeVLLM) -> None:
    fake.script(Script(text=" ".join(["word"] * 50), tps=10))
    stream = make_backend(fake.url, total=0.5).stream(HISTORY, SamplingParams())

    started = time.monotonic()
    deltas, error = await collect_until_error(stream)

    assert 2 <= len(deltas) < 50
    assert "total timeout of 0.5s" in str(error)
    assert time.monotonic() - started < 1.5


async def test_cancel_closes_the_connection_and_keeps_the_partial_text(fake: FakeVLLM) -> None:
    fake.script(Script(text=" ".join(f"w{i}" for i in range(100)), tps=50))
    stream = make_backend(fake.url).stream(HISTORY, SamplingParams())

    received = []
    async for delta in stream:
        received.append(delta)
        if len(received) == 3:
            break
    await stream.aclose()

    assert stream.record is not None
    assert stream.record.finish_reason == "cancelled"
    assert stream.record.text == "".join(received) == "w0 w1 w2"
    assert await fake.wait_for(lambda: fake.disconnects == 1)  # the server saw the client leave
    assert fake.active == 0
    assert fake.completed == 0


async def test_cancel_from_another_task_ends_the_consumer(fake: FakeVLLM) -> None:
    fake.script(Script(text=" ".join(["word"] * 100), tps=50))
    stream = make_backend(fake.url).stream(HISTORY, SamplingParams())
    received: list[str] = []
    two_received = asyncio.Event()

    async def consume() -> None:
        async for delta in stream:
            received.append(delta)
            if len(received) == 2:
                two_received.set()

    consumer = asyncio.create_task(consume())
    await asyncio.wait_for(two_received.wait(), 5)
    await stream.aclose()
    await asyncio.wait_for(consumer, 1)

    assert stream.record is not None
    assert stream.record.finish_reason == "cancelled"
    assert await fake.wait_for(lambda: fake.disconnects == 1)


async def test_closing_a_finished_stream_keeps_its_record(fake: FakeVLLM) -> None:
    stream = make_backend(fake.url).stream(HISTORY, SamplingParams())
    await collect(stream)
    await stream.aclose()

    assert stream.record is not None
    assert stream.record.finish_reason == "stop"


def test_pool_prefers_healthy_replicas_and_spreads_load() -> None:
    pool = EndpointPool(["http://a:1/v1/", "http://b:1", "http://c:1"], cooldown=60)
    assert pool.urls == ("http://a:1", "http://b:1", "http://c:1")

    firsts = {pool.ranked()[0] for _ in range(6)}
    assert firsts == set(pool.urls)  # round-robin among equals

    pool.mark_failure("http://a:1")
    for _ in range(6):
        assert pool.ranked()[-1] == "http://a:1"
    pool.begin("http://b:1")
    assert pool.ranked()[0] == "http://c:1"  # least busy
    assert pool.ranked(tried=["http://c:1"])[0] == "http://b:1"  # untried beats idle
    pool.mark_ok("http://a:1")
    assert not pool.cooling("http://a:1")
    pool.end("http://b:1")


async def test_health_probe_guards_a_replica_coming_back(fake: FakeVLLM, fake2: FakeVLLM) -> None:
    backend = OpenAIBackend(endpoints=[fake.url, fake2.url], model=MODEL, health_check=True)
    backend.pool.cooldown = 0  # out of cool-down at once: a suspect, probed before use
    backend.pool.mark_failure(fake.url)
    fake.healthy = False

    for _ in range(3):
        _, record = await collect(backend.stream(HISTORY, SamplingParams()))
        assert record.endpoint == fake2.url

    assert fake.chat_requests() == []
    assert any(r.path == "/health" for r in fake.requests)
