"""A fake vLLM server: real HTTP on loopback, vLLM's exact OpenAI-compatible stream format.

Serves ``POST /v1/chat/completions`` (streaming and not), ``GET /v1/models`` and
``GET /health`` as a raw ASGI app under uvicorn (vLLM's own server stack), with scriptable
faults for the next requests: slow first token, stall mid-stream, connection cut mid-stream,
an error status before the stream (both of vLLM's error-body shapes), an error event inside the
stream, a malformed line, and an unknown model answered with 404.

In a test (same event loop)::

    async with FakeVLLM(tps=500) as fake:
        fake.script(Script(status=503), Script(text="Hello there"))
        ... point a backend at fake.url ...
        assert fake.requests[-1].body["temperature"] == 0.8

From another thread or loop: ``with FakeVLLM().running_in_thread() as fake: ...``.

As a process (benchmarks)::

    python -m tests.collab_models.vllm_fake --port 8001 --tps 50 --tokens 50

prints ``vllm_fake listening on http://127.0.0.1:8001`` once it accepts connections
(``--port 0`` picks a free port and prints it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DEFAULT_MODELS = ("meta-llama/Llama-3.1-8B-Instruct", "collabllm-writing")
LORA_PARENT = {"collabllm-writing": "meta-llama/Llama-3.1-8B-Instruct"}
_LOREM = [
    "Here",
    "is",
    "a",
    "short",
    "draft",
    "that",
    "you",
    "can",
    "shape",
    "further",
    "together",
    "with",
    "me",
    "as",
    "we",
    "go",
    "along",
    "and",
    "change",
    "whatever",
    "does",
    "not",
    "fit",
    "the",
    "tone",
    "the",
    "audience",
    "or",
    "the",
    "length",
    "you",
    "have",
    "in",
    "mind",
    "for",
    "this",
    "piece",
    "of",
    "writing",
    "today",
]
_TOKEN = re.compile(r"\s*\S+")
_FOREVER = 3600.0


@dataclass
class Script:
    """How the server answers one chat completion request (faults count content chunks)."""

    text: str | None = None  # reply text, split into word tokens; None: the server's default
    tokens: list[str] | None = None  # exact content deltas (overrides ``text``)
    tps: float | None = None  # tokens per second; None: the server's rate; 0: no pacing
    first_token_delay: float = 0.0  # seconds between the role chunk and the first token
    queue_delay: float = 0.0  # seconds before the response starts (waiting in vLLM's queue)
    status: int | None = None  # answer with this HTTP error before any stream
    error_message: str = "The server is not ready."
    error_shape: str | None = None  # "legacy" {"object":"error",...} | "new" {"error":{...}}
    stall_after: int | None = None  # go silent (keep the connection open) after N chunks
    cut_after: int | None = None  # close the connection after N chunks
    error_after: int | None = None  # send data: {"error": ...} after N chunks
    malformed_after: int | None = None  # send a line that is not JSON after N chunks
    finish_reason: str = "stop"
    text_on_finish: bool = True  # the last token rides on the finish chunk, as vLLM does


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    client: tuple[str, int] | None = None  # the client's address: one port per TCP connection
    at: float = field(default_factory=time.monotonic)


class _Server(uvicorn.Server):
    """uvicorn that says when it accepts connections."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()

    async def serve_until_ready(self, sockets: list[socket.socket]) -> asyncio.Task[None]:
        """Start serving; return the serving task once it accepts connections."""
        task = asyncio.get_running_loop().create_task(self.serve(sockets=sockets))
        ready = asyncio.get_running_loop().create_task(self.ready.wait())
        await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if task.done():
            await task  # re-raises the start-up failure
            raise RuntimeError("uvicorn stopped during start-up")
        return task


class _EmbeddedServer(_Server):
    """uvicorn without signal handlers (the host process owns them) that stops at once:
    tests start and stop hundreds of these, and uvicorn's 0.1 s polling would dominate."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.exit_now = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def main_loop(self) -> None:
        await self.on_tick(0)
        await self.exit_now.wait()

    def stop_now(self) -> None:
        self.should_exit = self.force_exit = True
        self.exit_now.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        if self.server_state.tasks:  # streams end promptly: their clients were released
            await asyncio.wait(list(self.server_state.tasks), timeout=2)
        for server in self.servers:
            await server.wait_closed()


def _error_body(message: str, kind: str, code: int, shape: str) -> bytes:
    err = {"message": message, "type": kind, "param": None, "code": code}
    body = {"object": "error", **err} if shape == "legacy" else {"error": err}
    return json.dumps(body).encode()


class FakeVLLM:
    """The fake server. ``url`` is its base URL once started."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tps: float = 0.0,
        tokens: int = 20,
        ttft: float = 0.0,
        models: tuple[str, ...] = DEFAULT_MODELS,
        any_model: bool = False,
        error_shape: str = "new",
        keep_requests: int = 10_000,
        max_model_len: int | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
    ) -> None:
        # With a certificate and key the server speaks https (uvicorn's TLS).
        self.ssl = (
            {"ssl_certfile": ssl_certfile, "ssl_keyfile": ssl_keyfile} if ssl_certfile else {}
        )
        # With a window, a prompt plus max_tokens beyond it is answered with vLLM's 400.
        self.max_model_len = max_model_len
        self.host = host
        self.port = port
        self.tps = tps
        self.default_tokens = tokens
        self.ttft = ttft
        self.models = list(models)
        self.any_model = any_model
        self.error_shape = error_shape
        self.healthy = True
        self.requests: deque[RecordedRequest] = deque(maxlen=keep_requests)
        self.disconnects = 0  # streams the client closed before the end
        self.active = 0  # streams in progress
        self.completed = 0
        self._scripts: deque[Script] = deque()
        self._lock = threading.Lock()
        self._gone_events: set[asyncio.Event] = set()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- scripting ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        scheme = "https" if self.ssl else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def script(self, *scripts: Script) -> None:
        """Answer the next chat requests with these scripts, in order."""
        with self._lock:
            self._scripts.extend(scripts)

    def _next_script(self) -> Script:
        with self._lock:
            return self._scripts.popleft() if self._scripts else Script()

    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/v1/chat/completions"]

    async def wait_for(self, predicate: Callable[[], bool], within: float = 5.0) -> bool:
        """Poll ``predicate`` (works whichever loop or thread the server runs in)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if predicate():
                return True
            await asyncio.sleep(0.01)
        return predicate()

    # -- running ------------------------------------------------------------------------------
    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(2048)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        return sock

    def _config(self, **kwargs: Any) -> uvicorn.Config:
        options: dict[str, Any] = {
            "log_config": None,
            "log_level": "warning",
            "access_log": False,
            "lifespan": "off",
            "timeout_graceful_shutdown": 2,
            "backlog": 2048,
        }
        options.update(kwargs)
        return uvicorn.Config(self, **options)

    async def start(self) -> FakeVLLM:
        """Serve in the running loop until :meth:`stop`."""
        sock = self._bind()
        self._server = _EmbeddedServer(self._config(**self.ssl))
        self._task = await self._server.serve_until_ready([sock])
        return self

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._release_all()
        if isinstance(self._server, _EmbeddedServer):
            self._server.stop_now()
        else:
            self._server.should_exit = True
        await self._task
        self._server = None

    async def __aenter__(self) -> FakeVLLM:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @contextlib.contextmanager
    def running_in_thread(self) -> Iterator[FakeVLLM]:
        """Serve from a background thread with its own loop (for sync tests or other loops)."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.start())
                ready.set()
                assert self._task is not None
                loop.run_until_complete(self._task)
            except BaseException as exc:
                errors.append(exc)
                ready.set()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="vllm-fake", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        try:
            yield self
        finally:
            loop = self._loop
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._release_all)
                server = self._server
                if isinstance(server, _EmbeddedServer):
                    loop.call_soon_threadsafe(server.stop_now)
            self._thread.join(10)

    def _release_all(self) -> None:
        for gone in list(self._gone_events):
            gone.set()

    # -- ASGI ---------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        raw = await _read_body(receive)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        client = tuple(scope["client"]) if scope.get("client") else None
        self.requests.append(RecordedRequest(method, path, headers, body, client))  # type: ignore[arg-type]
        if path == "/health" and method == "GET":
            await _respond(send, 200 if self.healthy else 503, b"", "text/plain")
        elif path == "/v1/models" and method == "GET":
            await _respond(send, 200, json.dumps(self._models_body()).encode())
        elif path == "/v1/chat/completions" and method == "POST":
            await self._chat(body, receive, send)
        else:
            await _respond(send, 404, json.dumps({"detail": "Not Found"}).encode())

    def _models_body(self) -> dict[str, Any]:
        created = int(time.time())
        data = [
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": "vllm",
                "root": name,
                "parent": LORA_PARENT.get(name),
                "max_model_len": 131072,
                "permission": [],
            }
            for name in self.models
        ]
        return {"object": "list", "data": data}

    async def _chat(self, body: Any, receive: Receive, send: Send) -> None:
        script = self._next_script()
        shape = script.error_shape or self.error_shape
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            msg = "messages is required"
            await _respond(send, 400, _error_body(msg, "BadRequestError", 400, shape))
            return
        model = str(body.get("model", ""))
        if not self.any_model and model not in self.models:
            msg = f"The model `{model}` does not exist."
            await _respond(send, 404, _error_body(msg, "NotFoundError", 404, shape))
            return
        if script.status is not None:
            kind = "ServiceUnavailableError" if script.status == 503 else "InternalServerError"
            err = _error_body(script.error_message, kind, script.status, shape)
            await _respond(send, script.status, err)
            return
        if self.max_model_len is not None:
            prompt_tokens = _prompt_tokens(body)
            wanted = int(body.get("max_tokens") or 0)
            if prompt_tokens + wanted > self.max_model_len:
                # vLLM's own words (serving_engine._validate_input).
                msg = (
                    f"This model's maximum context length is {self.max_model_len} tokens. "
                    f"However, you requested {prompt_tokens + wanted} tokens ({prompt_tokens} "
                    f"in the messages, {wanted} in the completion). Please reduce the length "
                    "of the messages or completion."
                )
                await _respond(send, 400, _error_body(msg, "BadRequestError", 400, shape))
                return
        if script.queue_delay:
            await asyncio.sleep(script.queue_delay)
        tokens = self._tokens(script, body)
        limit = int(body.get("max_tokens") or body.get("max_completion_tokens") or 1 << 30)
        finish = script.finish_reason
        if len(tokens) > limit:
            tokens, finish = tokens[:limit], "length"
        if not body.get("stream"):
            await self._complete(body, model, tokens, finish, send)
            return
        await self._stream(body, model, tokens, finish, script, receive, send)

    def _tokens(self, script: Script, body: dict[str, Any]) -> list[str]:
        if script.tokens is not None:
            return list(script.tokens)
        if script.text is not None:
            return _TOKEN.findall(script.text)
        n = self.default_tokens
        return [(" " if i else "") + _LOREM[i % len(_LOREM)] for i in range(n)]

    async def _complete(
        self, body: dict[str, Any], model: str, tokens: list[str], finish: str, send: Send
    ) -> None:
        prompt_tokens = _prompt_tokens(body)
        payload = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(tokens)},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "total_tokens": prompt_tokens + len(tokens),
                "completion_tokens": len(tokens),
            },
        }
        await _respond(send, 200, json.dumps(payload).encode())

    async def _stream(
        self,
        body: dict[str, Any],
        model: str,
        tokens: list[str],
        finish: str,
        script: Script,
        receive: Receive,
        send: Send,
    ) -> None:
        gone = asyncio.Event()
        self._gone_events.add(gone)
        watcher = asyncio.get_running_loop().create_task(_watch_disconnect(receive, gone))
        self.active += 1
        try:
            chunks = _Chunks(model)
            completed = await self._emit(body, chunks, tokens, finish, script, send, gone)
        finally:
            self.active -= 1
            watcher.cancel()
            self._gone_events.discard(gone)
        if completed:
            self.completed += 1
        elif gone.is_set():
            self.disconnects += 1

    async def _emit(
        self,
        body: dict[str, Any],
        chunks: _Chunks,
        tokens: list[str],
        finish: str,
        script: Script,
        send: Send,
        gone: asyncio.Event,
    ) -> bool:
        """Send the stream; True when it ran to ``[DONE]``."""
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream; charset=utf-8")],
            }
        )

        async def line(data: str) -> None:
            await send({"type": "http.response.body", "body": f"data: {data}\n\n".encode(),
                        "more_body": True})  # fmt: skip

        await line(chunks.delta({"role": "assistant", "content": ""}))
        delay = script.first_token_delay or self.ttft
        if delay and await _wait_gone(gone, delay):
            return False
        tps = self.tps if script.tps is None else script.tps
        start = time.monotonic()
        n = len(tokens)
        for i, token in enumerate(tokens):
            if i == script.cut_after:
                return False  # uvicorn closes a response left incomplete: a cut connection
            if i == script.stall_after:
                await _wait_gone(gone, _FOREVER)
                return False
            if i == script.error_after:
                err = {"object": "error", "message": script.error_message,
                       "type": "InternalServerError", "param": None, "code": 500}  # fmt: skip
                await line(json.dumps({"error": err}))
                await line("[DONE]")
                await _finish_body(send)
                return True
            if i == script.malformed_after:
                await line('{"id": "chatcmpl-broken", "choices": [')
            if i and tps and await _wait_gone(gone, start + i / tps - time.monotonic()):
                return False
            if gone.is_set():
                return False
            if i == n - 1 and script.text_on_finish:
                await line(chunks.delta({"content": token}, finish))
            else:
                await line(chunks.delta({"content": token}))
        if not (tokens and script.text_on_finish):
            await line(chunks.delta({"content": ""}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            await line(chunks.usage(_prompt_tokens(body), n))
        await line("[DONE]")
        await _finish_body(send)
        return True


class _Chunks:
    """vLLM's ``chat.completion.chunk`` objects for one response."""

    def __init__(self, model: str) -> None:
        self.head = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

    def delta(self, delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        if finish is not None:
            choice["stop_reason"] = None
        return json.dumps({**self.head, "choices": [choice]}, separators=(",", ":"))

    def usage(self, prompt_tokens: int, completion_tokens: int) -> str:
        usage = {
            "prompt_tokens": prompt_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "completion_tokens": completion_tokens,
        }
        return json.dumps({**self.head, "choices": [], "usage": usage}, separators=(",", ":"))


def _prompt_tokens(body: dict[str, Any]) -> int:
    return sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))


async def _read_body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(parts)


async def _respond(send: Send, status: int, body: bytes, ctype: str = "application/json") -> None:
    headers = [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _finish_body(send: Send) -> None:
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _watch_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            return


async def _wait_gone(gone: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless the client leaves first; True when it left."""
    if seconds <= 0:
        return gone.is_set()
    if seconds < 0.5:  # the common per-token pause: a plain sleep is cheapest
        await asyncio.sleep(seconds)
        return gone.is_set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(gone.wait(), seconds)
    return gone.is_set()


@contextlib.asynccontextmanager
async def fake_vllm(**kwargs: Any) -> AsyncIterator[FakeVLLM]:
    """``async with fake_vllm(tps=100) as fake:`` — a started server in the running loop."""
    fake = FakeVLLM(**kwargs)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001, help="0 picks a free port")
    parser.add_argument("--tps", type=float, default=50.0, help="tokens per second per stream")
    parser.add_argument("--tokens", type=int, default=50, help="tokens in the default reply")
    parser.add_argument("--ttft", type=float, default=0.0, help="seconds before the 1st token")
    parser.add_argument("--model", action="append", help="served model name (repeatable)")
    parser.add_argument("--any-model", action="store_true", help="accept every model name")
    args = parser.parse_args(argv)
    fake = FakeVLLM(
        host=args.host,
        port=args.port,
        tps=args.tps,
        tokens=args.tokens,
        ttft=args.ttft,
        models=tuple(args.model or DEFAULT_MODELS),
        any_model=args.any_model,
        keep_requests=1000,
    )
    sock = fake._bind()

    async def serve() -> None:
        server = _Server(fake._config(loop="auto", http="auto"))
        task = await server.serve_until_ready([sock])
        print(f"vllm_fake listening on {fake.url}", flush=True)
        await task

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        asyncio.run(serve())
    else:
        uvloop.run(serve())


if __name__ == "__main__":
    main()
