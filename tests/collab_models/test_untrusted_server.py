"""What a model server, or a configuration, cannot make the client do: hold an error body of
any size, or send a header a value of it would split."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator

import pytest

from collab_models.base import ModelError, SamplingParams
from collab_models.http1 import H1Pool
from collab_models.openai_backend import MAX_ERROR_TEXT, OpenAIBackend
from collab_models.transport import set_fast_http, start_stream
from tests.collab_models.conftest import MODEL
from tests.collab_models.vllm_fake import FakeVLLM

HISTORY = [{"role": "user", "content": "Help me write a blog post about gardening"}]
HUGE = 50 * 1024 * 1024
# A server of its own process (its sending does not count in this one's memory) that answers
# every request with a 500 whose body is HUGE bytes.
SERVER = f"""
import socket, sys, threading

def answer(conn):
    with conn:
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 500 Internal Server Error\\r\\n"
                         b"content-type: text/plain\\r\\ncontent-length: {HUGE}\\r\\n\\r\\n")
            chunk = b"x" * 65536
            for _ in range({HUGE} // 65536):
                conn.sendall(chunk)
        except OSError:
            pass

listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=answer, args=(conn,), daemon=True).start()
"""


@pytest.fixture(params=["fast", "httpx"])
def http_client(request: pytest.FixtureRequest) -> Iterator[str]:
    """The lean client and httpx alike."""
    previous = set_fast_http(request.param == "fast")
    yield request.param
    set_fast_http(previous)


@pytest.fixture
def huge_error_server() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    yield f"http://127.0.0.1:{port}"
    proc.kill()
    proc.wait(timeout=10)


@pytest.mark.usefixtures("http_client")
async def test_a_huge_error_body_is_read_only_up_to_the_bound(huge_error_server: str) -> None:
    backend = OpenAIBackend(endpoints=[huge_error_server], model=MODEL, retries=0)
    stream = backend.stream(HISTORY, SamplingParams())
    tracemalloc.start()
    try:
        with pytest.raises(ModelError, match="HTTP 500") as raised:
            async for _ in stream:
                pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert stream.record is not None
    assert stream.record.finish_reason == "error"
    assert "xxxx" in stream.record.error
    assert len(stream.record.error) <= MAX_ERROR_TEXT + 200  # the message and its context
    assert len(str(raised.value)) <= MAX_ERROR_TEXT + 200
    assert peak < HUGE // 10  # the body was never held whole


@pytest.mark.parametrize(
    "api_key", ["secret\r\nx-injected: 1", "secret\nx", "secret\rx", "sec\x00ret", "sec\x7fret"]
)
def test_an_api_key_with_a_control_character_is_refused(api_key: str) -> None:
    with pytest.raises(ValueError, match="control character"):
        OpenAIBackend(endpoints=["http://127.0.0.1:9"], model=MODEL, api_key=api_key)


@pytest.mark.usefixtures("http_client")
@pytest.mark.parametrize("value", ["a\r\nx-injected: 1", "a\nb", "a\rb", "a\x00b"])
async def test_a_header_value_with_a_control_character_is_refused_before_sending(
    fake: FakeVLLM, value: str
) -> None:
    with pytest.raises(ValueError, match="control character"):
        start_stream(f"{fake.url}/v1/models", body=b"{}", headers={"x-extra": value})

    await asyncio.sleep(0.1)  # time for a request that did go out to arrive
    assert list(fake.requests) == []


def test_the_lean_client_refuses_a_host_or_target_that_would_split_the_request() -> None:
    pool = H1Pool()
    with pytest.raises(ValueError, match="control character"):
        pool.send_now("POST", "127.0.0.1\r\nx-injected: 1", 80, "/", headers={}, body=b"")
    with pytest.raises(ValueError, match="control characters"):
        pool.send_now("POST", "127.0.0.1", 80, "/ HTTP/1.1\r\nx: y\r\n", headers={}, body=b"")
    pool.close()
