"""Streaming client for OpenAI-compatible Chat Completions servers (vLLM).

What it relies on of vLLM's stream (``POST /v1/chat/completions`` with ``"stream": true``):
``data: {json}`` lines, a first chunk whose delta is ``{"role": "assistant", "content": ""}``,
content deltas, a chunk with ``finish_reason`` that may carry text too, one chunk with
``"choices": []`` and ``usage`` (asked for with ``stream_options.include_usage``), and
``data: [DONE]``. Errors come as a 4xx/5xx JSON body before the stream, in the older
``{"object": "error", "message": ...}`` or the newer ``{"error": {...}}`` shape, or as
``data: {"error": ...}`` inside a 200 stream. Closing the connection aborts the request.

Retries and fail-over happen only before the stream: on a connection that fails and on a 5xx
(or 408/425/429) answer. A request that was accepted keeps its place in the server's queue: its
first token is awaited once, for ``Timeouts.first_token`` (sized for a queued vLLM), never by
giving up and asking again at the back of the queue. Once a delta has gone to the caller the
turn either completes or fails. A context-length error is permanent here, marked with
``kind="context_length"``: the arm shortens the conversation and asks again
(collab_models/context.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from collab_models.base import ChatMessage, FinishReason, ModelError, SamplingParams, TurnRecord
from collab_models.context import CONTEXT_LENGTH, is_context_error
from collab_models.http1 import Sink, check_header
from collab_models.streaming import ProducerStream
from collab_models.transport import Exchange, StartedStream, TransportError, start_stream

# An error body is read up to this many bytes, room for any JSON error vLLM sends; a server that
# sends more cannot make the app hold it.
MAX_ERROR_BODY = 64 * 1024
MAX_ERROR_TEXT = 1000  # characters of the server's message kept in the error


@dataclass(frozen=True)
class Timeouts:
    """Seconds. ``first_token`` counts from sending the request of one attempt and covers the
    server's queue, so it is long and a timeout is not retried; ``between_tokens`` is the
    longest silence allowed once text flows (a stalled reply is reported that soon);
    ``total`` bounds the whole turn, retries included."""

    connect: float = 5.0
    first_token: float = 120.0
    between_tokens: float = 15.0
    total: float = 300.0

    @classmethod
    def from_config(cls, raw: Mapping[str, Any] | None) -> Timeouts:
        raw = dict(raw or {})
        unknown = set(raw) - {"connect", "first_token", "between_tokens", "total"}
        if unknown:
            raise ValueError(f"unknown timeouts {sorted(unknown)}")
        values = {k: float(v) for k, v in raw.items()}
        if any(v <= 0 for v in values.values()):
            raise ValueError("timeouts must be positive")
        return cls(**values)


# -- replicas and their health --------------------------------------------------------------------
@dataclass
class _Health:
    failures: int = 0  # consecutive
    last_failure: float = 0.0
    inflight: int = 0


# Shared by every arm in the process: a replica that fails for one arm is down for all.
_HEALTH: dict[str, _Health] = {}


def normalize_base_url(url: str) -> str:
    """``http://host:8001/v1/`` → ``http://host:8001`` (requests add ``/v1/...`` themselves)."""
    url = url.strip().rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"endpoint {url!r} must start with http:// or https://")
    return url


def endpoint_health(url: str) -> dict[str, Any]:
    """A snapshot of what the pool knows about ``url`` (for dashboards and logs)."""
    h = _HEALTH.get(normalize_base_url(url), _Health())
    return {"failures": h.failures, "last_failure": h.last_failure, "inflight": h.inflight}


def reset_health() -> None:
    """Forget all failures (tests; or after an operator fixed a replica)."""
    _HEALTH.clear()


class EndpointPool:
    """Health-aware choice among the replicas of one arm.

    A replica that failed recently is avoided for a cool-down that doubles with each consecutive
    failure (``cooldown`` seconds up to 8 times that); among the others the least busy is taken,
    round-robin on ties. With ``probe`` a replica coming out of cool-down must answer
    ``GET /health`` before it gets a request.
    """

    def __init__(self, urls: Sequence[str], *, cooldown: float = 10.0, probe: bool = False) -> None:
        if not urls:
            raise ValueError("an openai arm needs at least one endpoint")
        self.urls = tuple(dict.fromkeys(normalize_base_url(u) for u in urls))
        self.cooldown = cooldown
        self.probe = probe
        self._turn = 0

    def _health(self, url: str) -> _Health:
        return _HEALTH.setdefault(url, _Health())

    def cooling(self, url: str, now: float | None = None) -> bool:
        h = self._health(url)
        if h.failures == 0:
            return False
        now = time.monotonic() if now is None else now
        backoff = min(1 << (h.failures - 1), 8)
        return now < h.last_failure + self.cooldown * backoff

    def ranked(self, tried: Sequence[str] = ()) -> list[str]:
        """Replicas best first: untried, not cooling, least busy, then round-robin."""
        self._turn += 1
        now = time.monotonic()
        n = len(self.urls)
        order = {u: (i - self._turn) % n for i, u in enumerate(self.urls)}
        return sorted(
            self.urls,
            key=lambda u: (u in tried, self.cooling(u, now), self._health(u).inflight, order[u]),
        )

    def mark_ok(self, url: str) -> None:
        self._health(url).failures = 0

    def mark_failure(self, url: str) -> None:
        h = self._health(url)
        h.failures += 1
        h.last_failure = time.monotonic()

    def suspect(self, url: str) -> bool:
        """Failed before and now out of cool-down: worth a health probe first."""
        return self._health(url).failures > 0 and not self.cooling(url)

    def begin(self, url: str) -> None:
        self._health(url).inflight += 1

    def end(self, url: str) -> None:
        h = self._health(url)
        h.inflight = max(0, h.inflight - 1)


# -- errors -------------------------------------------------------------------------------------
class _Transient(Exception):
    """Worth trying again (on this or another replica), provided nothing was shown yet."""


def error_message(body: Any) -> str:
    """The message in either of vLLM's error shapes (or FastAPI's ``detail``)."""
    if not isinstance(body, dict):
        return ""
    err = body.get("error")
    if isinstance(err, dict):
        return str(err.get("message") or err.get("type") or err)
    if isinstance(err, str):
        return err
    for key in ("message", "detail"):
        if body.get(key):
            return str(body[key])
    return ""


def _error_code(body: Any) -> int | None:
    if not isinstance(body, dict):
        return None
    err = body.get("error")
    code = err.get("code") if isinstance(err, dict) else body.get("code")
    try:
        return int(code) if code is not None else None
    except (TypeError, ValueError):
        return None


def _transient_status(status: int) -> bool:
    return status >= 500 or status in (408, 425, 429)


def _http_error(status: int, raw: bytes, url: str, model: str) -> Exception:
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    message = (error_message(body) or raw.decode("utf-8", "replace").strip())[:MAX_ERROR_TEXT]
    if status == 404 or "does not exist" in message.lower():
        return ModelError(
            f"model {model!r} is not served at {url} (HTTP {status}: {message}); check the "
            "condition's `model` (a LoRA adapter is requested by its --lora-modules name)",
            permanent=True,
        )
    text = f"HTTP {status} from {url}: {message or 'no message'}"
    if _transient_status(status):
        return _Transient(text)
    if status == 400 and is_context_error(message):
        return ModelError(text, permanent=True, kind=CONTEXT_LENGTH)
    return ModelError(text, permanent=True)


# -- the backend ----------------------------------------------------------------------------------
@dataclass
class _Attempt:
    emitted: bool = False  # a content delta went to the caller: no retry from here on
    finish: str | None = None
    done: bool = False  # [DONE] seen
    usage: dict[str, Any] = field(default_factory=dict)
    pending: bytes = b""  # a line split across reads
    last: float = 0.0  # event-loop time of the last read


@dataclass
class _Request:
    """One attempt's request, sent, and the SSE reader (``sink``, filling ``state``) that takes
    its body from the first byte."""

    started: StartedStream
    state: _Attempt
    sink: Sink


@dataclass
class _FirstAttempt:
    """A turn's first request, sent as its stream starts (before its task has run), on the
    best replica of ``ranked`` unless that one must answer a health probe first. The producer
    takes ``request`` over; ``drop`` closes it if the producer never did."""

    ranked: list[str] = field(default_factory=list)
    url: str = ""
    request: _Request | None = None

    def drop(self) -> None:
        if self.request is not None:
            self.request.started.close()
            self.request = None


class OpenAIBackend:
    """Streams from one model name served by one or more OpenAI-compatible replicas."""

    name = "openai"

    def __init__(
        self,
        *,
        endpoints: Sequence[str],
        model: str,
        timeouts: Timeouts | None = None,
        retries: int = 2,
        api_key: str | None = None,
        health_check: bool = False,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        if not model:
            raise ValueError("an openai arm needs a model name")
        self.model = model
        self.pool = EndpointPool(endpoints, probe=health_check)
        self.timeouts = timeouts or Timeouts()
        self.retries = max(0, retries)
        self.api_key = api_key or None
        if self.api_key:
            try:
                check_header("authorization", f"Bearer {self.api_key}")
            except ValueError:
                raise ValueError("the api_key has a control character (CR, LF, ...)") from None
        self.extra_body = dict(extra_body or {})

    @property
    def endpoints(self) -> tuple[str, ...]:
        return self.pool.urls

    def request_body(self, messages: list[ChatMessage], sampling: SamplingParams) -> dict[str, Any]:
        """The JSON body: sampling values always explicit (vLLM otherwise applies each model
        repository's own generation_config)."""
        body: dict[str, Any] = {
            **self.extra_body,
            "model": self.model,
            "messages": list(messages),
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
        }
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        return body

    def stream(self, messages: list[ChatMessage], sampling: SamplingParams) -> ProducerStream:
        payload = json.dumps(self.request_body(messages, sampling), ensure_ascii=False).encode()
        draft = TurnRecord(
            text="", raw_output="", backend=self.name, model=self.model, sampling=sampling.as_dict()
        )
        first = _FirstAttempt()

        def prepare(stream: ProducerStream) -> Callable[[], None] | None:
            first.ranked = self.pool.ranked()
            url = first.ranked[0]
            if self.pool.probe and self.pool.suspect(url):
                return None  # it must answer a health probe first: the producer chooses
            first.url = url
            first.request = self._send(stream, url, payload)
            return first.drop

        async def produce(stream: ProducerStream) -> None:
            await self._produce(stream, payload, first)

        return ProducerStream(produce, draft, prepare=prepare)

    # -- one turn: attempts over replicas ------------------------------------------------------
    async def _produce(self, stream: ProducerStream, payload: bytes, first: _FirstAttempt) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeouts.total
        tried: list[str] = []
        errors: list[str] = []
        for attempt in range(self.retries + 1):
            sent = None
            if attempt == 0 and first.request is not None:
                # Taken over: ``first`` no longer holds the sink, which holds the stream (no
                # cycle, so a finished turn is freed without the garbage collector).
                url, sent, first.request = first.url, first.request, None
            else:
                url = await self._choose(tried, first.ranked if attempt == 0 else None)
            tried.append(url)
            try:
                await self._attempt(stream, url, payload, deadline, sent)
            except ModelError as exc:
                if not exc.permanent:  # failed mid-reply: the replica is suspect
                    self.pool.mark_failure(url)
                raise
            except _Transient as exc:
                self.pool.mark_failure(url)
                errors.append(str(exc))
                # Another replica is tried at once; the same one again after a short pause.
                fresh = any(u not in tried for u in self.pool.urls)
                wait = 0.0 if fresh else min(0.2 * 2**attempt, 2.0)
                if attempt == self.retries or loop.time() + wait >= deadline:
                    break
                await asyncio.sleep(wait)
            else:
                self.pool.mark_ok(url)
                return
        raise ModelError(f"no reply after {len(errors)} attempt(s): " + "; ".join(errors))

    async def _choose(self, tried: Sequence[str], ranked: list[str] | None = None) -> str:
        ranked = ranked or self.pool.ranked(tried)
        if self.pool.probe:
            for url in ranked:
                if not self.pool.suspect(url):
                    return url
                from collab_models.probes import probe_health  # probes build on this module

                result = await probe_health(url, timeout_s=min(self.timeouts.connect, 2.0))
                if result.ok:
                    return url
                self.pool.mark_failure(url)
        return ranked[0]

    @staticmethod
    def _chat_url(url: str) -> str:
        return f"{url}/v1/chat/completions"

    def _headers(self) -> dict[str, str]:
        headers = {"accept": "text/event-stream"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return headers

    async def _attempt(
        self,
        stream: ProducerStream,
        url: str,
        payload: bytes,
        deadline: float,
        sent: _Request | None = None,
    ) -> None:
        """One request to ``url``: ``sent`` when the stream's start sent it already."""
        t = self.timeouts
        loop = asyncio.get_running_loop()
        first_deadline = min(loop.time() + t.first_token, deadline)
        request = sent or self._send(stream, url, payload)
        stream.draft.endpoint = url
        self.pool.begin(url)
        exchange: Exchange | None = None
        try:
            try:
                async with asyncio.timeout_at(first_deadline):
                    exchange = await request.started.open(
                        connect_timeout=t.connect, read_timeout=t.total
                    )
                    if exchange.status >= 400:
                        raw = await exchange.read_body(MAX_ERROR_BODY)
                        raise _http_error(exchange.status, raw, url, self.model)
            except TimeoutError:
                # The request may be queued: asking again would only wait at the back.
                raise ModelError(f"no response from {url} within {t.first_token:g}s") from None
            except TransportError as exc:
                raise _Transient(f"{url}: {exc}") from None
            await self._read_events(stream, request, exchange, url, first_deadline, deadline)
        finally:
            if exchange is not None:
                await exchange.aclose()  # mid-stream this closes the connection: vLLM aborts
            self.pool.end(url)

    def _send(self, stream: ProducerStream, url: str, payload: bytes) -> _Request:
        """Send one attempt's request. Its body goes to the SSE reader as it arrives, so the
        first token reaches the caller without waiting for a turn of the producer's task
        (several turns, the first time a connection is used)."""
        state = _Attempt()
        sink = self._event_sink(stream, state, url)
        started = start_stream(
            self._chat_url(url), body=payload, headers=self._headers(), sink=sink
        )
        return _Request(started, state, sink)

    def _event_sink(self, stream: ProducerStream, state: _Attempt, url: str) -> Sink:
        """What reads one attempt's body: SSE lines to ``stream``, the rest into ``state``."""
        loop = asyncio.get_running_loop()
        handle = self._handle_event

        def sink(chunk: bytes) -> None:
            """Split the body into SSE lines; runs once per network read, so keep it lean."""
            if state.done:
                return  # the end of the body after [DONE]
            lines = (state.pending + chunk if state.pending else chunk).split(b"\n")
            state.pending = lines.pop()
            for line in lines:
                if line.startswith(b"data:"):
                    handle(stream, state, line[5:].strip(), url)
                    if state.done:
                        break
            state.last = loop.time()

        return sink

    async def _read_events(
        self,
        stream: ProducerStream,
        request: _Request,
        exchange: Exchange,
        url: str,
        first_deadline: float,
        deadline: float,
    ) -> None:
        silence = self.timeouts.between_tokens
        state = request.state

        def limit() -> float:
            if state.done:  # only the body's end is missing: it is due at once
                return min(state.last + 1.0, deadline)
            if not state.emitted:
                return first_deadline
            return min(state.last + silence, deadline)

        try:
            await exchange.pump(request.sink, limit)
        except TimeoutError:
            if not state.done:
                # Never retried: before the first token the request holds its queue place.
                raise ModelError(self._timeout_text(state, limit(), deadline, url)) from None
        except TransportError as exc:
            if not state.done:
                raise self._fail(state, f"connection to {url} lost: {exc}") from None
        if not state.done and state.pending.startswith(b"data:"):
            self._handle_event(stream, state, state.pending[5:].strip(), url)
        if not state.done and state.finish is None:
            raise self._fail(state, f"stream from {url} ended before [DONE]")
        usage = state.usage
        if isinstance(usage.get("prompt_tokens"), int):
            stream.draft.prompt_tokens = usage["prompt_tokens"]
        if isinstance(usage.get("completion_tokens"), int):
            stream.draft.completion_tokens = usage["completion_tokens"]
        stream.draft.finish_reason = _finish_reason(state.finish)

    def _timeout_text(self, state: _Attempt, limit: float, deadline: float, url: str) -> str:
        t = self.timeouts
        if limit >= deadline:
            return f"turn exceeded the total timeout of {t.total:g}s ({url})"
        if state.emitted:
            return f"{url} went silent for {t.between_tokens:g}s mid-reply"
        return f"no first token from {url} within {t.first_token:g}s"

    @staticmethod
    def _fail(state: _Attempt, text: str, *, permanent: bool = False) -> Exception:
        """Before the first token a transient failure may be retried; after it, never."""
        if state.emitted or permanent:
            return ModelError(text, permanent=permanent)
        return _Transient(text)

    def _handle_event(
        self, stream: ProducerStream, state: _Attempt, payload: bytes, url: str
    ) -> None:
        """One ``data:`` payload (other SSE lines, blank or ``: keep-alive``, are skipped)."""
        if payload == b"[DONE]":
            state.done = True
            return
        shown = payload[:200].decode("utf-8", "replace")
        try:
            chunk = json.loads(payload)
        except ValueError:
            raise self._fail(state, f"malformed line from {url}: {shown!r}") from None
        if not isinstance(chunk, dict):
            raise self._fail(state, f"malformed chunk from {url}: {shown!r}")
        if "error" in chunk:
            message = error_message(chunk) or shown
            code = _error_code(chunk)
            permanent = code is not None and not _transient_status(code) and code >= 400
            raise self._fail(state, f"error from {url} mid-stream: {message}", permanent=permanent)
        if isinstance(chunk.get("model"), str):
            stream.draft.model = chunk["model"]
        if isinstance(chunk.get("usage"), dict):
            state.usage = chunk["usage"]
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            if "usage" in chunk:
                return
            raise self._fail(state, f"malformed chunk from {url}: {shown!r}")
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str) and content:
                state.emitted = True
                stream.emit(content)
            if choice.get("finish_reason"):
                state.finish = str(choice["finish_reason"])


def _finish_reason(raw: str | None) -> FinishReason:
    if raw == "length":
        return "length"
    if raw in (None, "stop", "eos", "stop_sequence", "end_turn"):
        return "stop"
    if raw == "abort":
        return "error"
    return "stop"
