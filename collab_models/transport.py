"""The one network seam: every HTTP call in ``collab_models`` goes through here.

:func:`open_stream` makes a streamed request (the token streams), :func:`start_stream` sends
one before anything is awaited and opens it later; :func:`get_client` gives an
httpx client for everything else (probes). Streams to plain ``http://`` servers use the lean
client of :mod:`collab_models.http1`; ``https://``, a custom client factory, or
``COLLAB_MODELS_FAST_HTTP=0`` route them through httpx instead. Both raise
:class:`TransportError` for network failures.

Clients are kept per running event loop (an httpx client's connections belong to the loop that
opened them). Each loop holds a few clients ("shards") handed out in turn: httpcore's connection
pool does work proportional to the square of its connections on every request, so one pool
with 200 open streams spends most of its time bookkeeping. Shards of a dozen connections each
keep that cost negligible (``COLLAB_MODELS_POOL_SHARDS``, default 16).

TLS: ``https://`` endpoints are verified against certifi's roots plus, when set, the CA file
named by ``VLLM_CA_BUNDLE`` (a model server with a certificate from a private CA); a
certificate that does not verify fails with a message that names that variable.

Proxies: off unless ``COLLAB_MODELS_TRUST_ENV=1``; then ``HTTP_PROXY``/``HTTPS_PROXY``/
``NO_PROXY`` apply to every request alike, streams included (a stream that a proxy would carry
goes through httpx, which speaks to proxies, rather than the lean client).

Tests and benchmarks point backends at a real local server; code that needs a different
transport (``httpx.MockTransport``, a client certificate) installs a factory with
:func:`use_client_factory`.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import urllib.request
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Protocol

import httpx

from collab_models.http1 import (
    H1Pool,
    Outgoing,
    Sink,
    TransportError,
    check_header,
    parse_origin,
)

__all__ = [
    "ClientFactory",
    "Exchange",
    "StartedStream",
    "TransportError",
    "aclose_client",
    "get_client",
    "open_stream",
    "set_client_factory",
    "set_fast_http",
    "start_stream",
    "use_client_factory",
]

ClientFactory = Callable[[], httpx.AsyncClient]

USER_AGENT = "collabstudy-collab-models/0.1"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


CA_BUNDLE_ENV = "VLLM_CA_BUNDLE"


def _ssl_context() -> ssl.SSLContext:
    return _ssl_context_for(os.environ.get(CA_BUNDLE_ENV, "").strip())


@cache
def _ssl_context_for(ca_bundle: str) -> ssl.SSLContext:
    # Built once per bundle: loading a CA bundle is slow, and every shard would otherwise do it.
    import certifi

    context = ssl.create_default_context(cafile=certifi.where())
    if ca_bundle:
        try:
            context.load_verify_locations(cafile=ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise TransportError(f"{CA_BUNDLE_ENV}={ca_bundle!r} cannot be read: {exc}") from None
    return context


def _trust_env() -> bool:
    return os.environ.get("COLLAB_MODELS_TRUST_ENV", "") in {"1", "true", "yes"}


def _proxied(url: httpx.URL) -> bool:
    """Whether the environment's proxy settings, when honoured, send ``url`` via a proxy."""
    if not _trust_env():
        return False
    proxies = urllib.request.getproxies_environment()
    if url.scheme not in proxies and "all" not in proxies:
        return False
    return not urllib.request.proxy_bypass(url.host)  # NO_PROXY (and the OS settings elsewhere)


def _shards() -> int:
    return max(1, _env_int("COLLAB_MODELS_POOL_SHARDS", 16))


def default_client_factory() -> httpx.AsyncClient:
    """One shard: a client sized for its share of hundreds of concurrent streams.

    ``trust_env`` is off so that an ``HTTP_PROXY`` meant for the internet never captures traffic
    to model servers on the local network; set ``COLLAB_MODELS_TRUST_ENV=1`` to honour it.
    """
    shards = _shards()
    limits = httpx.Limits(
        max_connections=max(1, _env_int("COLLAB_MODELS_MAX_CONNECTIONS", 4096) // shards),
        max_keepalive_connections=max(1, _env_int("COLLAB_MODELS_MAX_KEEPALIVE", 512) // shards),
        keepalive_expiry=30.0,
    )
    return httpx.AsyncClient(
        limits=limits,
        # Per-request timeouts are set by the callers; this is only the fallback.
        timeout=httpx.Timeout(30.0, connect=5.0),
        headers={"user-agent": USER_AGENT},
        verify=_ssl_context(),
        trust_env=_trust_env(),
    )


@dataclass
class _LoopClients:
    factory: ClientFactory
    clients: list[httpx.AsyncClient] = field(default_factory=list)
    turn: int = 0
    h1: H1Pool = field(default_factory=H1Pool)


_factory: ClientFactory = default_client_factory
_fast_http = os.environ.get("COLLAB_MODELS_FAST_HTTP", "1") not in {"0", "false", "no"}
_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients] = (
    weakref.WeakKeyDictionary()
)
_background: set[asyncio.Task[None]] = set()


def _entry() -> _LoopClients:
    loop = asyncio.get_running_loop()
    entry = _loops.get(loop)
    if entry is None or entry.factory is not _factory:
        if entry is not None:  # the factory changed (tests, set-up): retire the old clients
            _close_later(loop, entry.clients)
            entry.h1.close()
        entry = _LoopClients(_factory)
        _loops[loop] = entry
    return entry


def get_client() -> httpx.AsyncClient:
    """A client of the running event loop (shards created on first use, handed out in turn)."""
    entry = _entry()
    if len(entry.clients) < _shards():
        entry.clients.append(entry.factory())
        entry.turn = len(entry.clients) - 1
    else:
        entry.turn = (entry.turn + 1) % len(entry.clients)
    client = entry.clients[entry.turn]
    if client.is_closed:
        client = entry.clients[entry.turn] = entry.factory()
    return client


def _close_later(loop: asyncio.AbstractEventLoop, clients: list[httpx.AsyncClient]) -> None:
    for client in clients:
        if not client.is_closed:
            task = loop.create_task(client.aclose())
            _background.add(task)
            task.add_done_callback(_background.discard)


async def aclose_client() -> None:
    """Close the running loop's clients (call on shutdown; the next call makes new ones)."""
    entry = _loops.pop(asyncio.get_running_loop(), None)
    if entry is not None:
        entry.h1.close()
        for client in entry.clients:
            await client.aclose()


def set_client_factory(factory: ClientFactory | None) -> ClientFactory:
    """Install ``factory`` (``None``: the default) and return the previous one.

    Each loop's clients are replaced on their next use; open streams on the old ones end.
    """
    global _factory
    previous = _factory
    _factory = factory or default_client_factory
    return previous


@contextmanager
def use_client_factory(factory: ClientFactory) -> Iterator[None]:
    """Use ``factory`` for clients created inside the ``with`` block."""
    previous = set_client_factory(factory)
    try:
        yield
    finally:
        set_client_factory(previous)


def set_fast_http(enabled: bool) -> bool:
    """Use the lean HTTP/1.1 client for ``http://`` streams (default) or httpx; returns the
    previous setting."""
    global _fast_http
    previous = _fast_http
    _fast_http = enabled
    return previous


class Exchange(Protocol):
    """A streamed response: its status, then its body read whole or pumped to a sink."""

    status: int

    async def read_body(self, limit: int) -> bytes:
        """The body, e.g. an error message, up to ``limit`` bytes: the rest is not read."""
        ...

    async def pump(self, sink: Sink, limit: Callable[[], float]) -> None:
        """Feed the body to ``sink`` until it ends; :class:`TimeoutError` once the event-loop
        time passes ``limit()`` (re-read as data flows)."""
        ...

    async def aclose(self) -> None:
        """Release the connection (closing it when the body was not read to the end)."""
        ...


class _HttpxExchange:
    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code

    async def read_body(self, limit: int) -> bytes:
        kept = bytearray()
        try:
            async for chunk in self._response.aiter_bytes():
                kept.extend(chunk[: limit - len(kept)])
                if len(kept) >= limit:
                    break  # aclose() then drops the connection with the unread rest
            return bytes(kept)
        except httpx.HTTPError as exc:
            raise TransportError(_describe(exc)) from None

    async def pump(self, sink: Sink, limit: Callable[[], float]) -> None:
        loop = asyncio.get_running_loop()
        when = limit()
        try:
            async with asyncio.timeout_at(when) as timer:
                async for chunk in self._response.aiter_bytes():
                    sink(chunk)
                    # Move the timer only when it drifted by 10% of what is left: a timer per
                    # chunk costs more than the chunk. It may thus fire up to 10% early.
                    new = limit()
                    if new < when or new - when > 0.1 * (new - loop.time()):
                        when = new
                        timer.reschedule(when)
        except httpx.HTTPError as exc:
            raise TransportError(_describe(exc)) from None

    async def aclose(self) -> None:
        await self._response.aclose()


def _describe(exc: httpx.HTTPError) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            f"the model server's TLS certificate is not trusted ({text}); if a private CA "
            f"signed it, set {CA_BUNDLE_ENV} to that CA's certificate file"
        )
    return text


@lru_cache(maxsize=256)
def _parsed(url: str) -> httpx.URL:
    """``url`` parsed once: an arm's few endpoints serve every reply, and httpx's parser would
    otherwise run on the event loop for each model request."""
    return httpx.URL(url)


class StartedStream:
    """A streamed POST begun by :func:`start_stream`; :meth:`open` waits for its response."""

    def __init__(
        self,
        url: httpx.URL,
        body: bytes,
        headers: dict[str, str],
        h1: tuple[H1Pool, Outgoing] | None = None,
    ) -> None:
        self._url, self._body, self._headers, self._h1 = url, body, headers, h1

    async def open(self, *, connect_timeout: float, read_timeout: float) -> Exchange:
        """Return once the response headers arrived. Cancel it (e.g. with ``asyncio.timeout``)
        to give up waiting; the connection is closed."""
        if self._h1 is not None:
            pool, outgoing = self._h1
            return await pool.response(outgoing, connect_timeout=connect_timeout)
        client = get_client()
        request = client.build_request(
            "POST",
            self._url,
            content=self._body,
            headers=self._headers,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout, pool=connect_timeout),
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise TransportError(_describe(exc)) from None
        return _HttpxExchange(response)

    def close(self) -> None:
        """Drop a request whose response nobody will read (nothing if it was opened)."""
        if self._h1 is not None:
            self._h1[1].close()


def start_stream(
    url: str, *, body: bytes, headers: Mapping[str, str], sink: Sink | None = None
) -> StartedStream:
    """Begin a streamed POST of ``body`` to ``url`` without awaiting anything.

    Through the lean client the request is already on its way when this returns, where it can
    be (see :meth:`collab_models.http1.H1Pool.send_now`), and ``sink`` takes a 2xx response's
    body as it arrives, before the response is opened; through httpx the request is sent by
    :meth:`StartedStream.open`. Open or close what this returns, and pump its body to ``sink``.
    A header with a control character (CR, LF, ...) in its value is refused with
    :class:`ValueError` before anything is sent.
    """
    entry = _entry()
    parsed = _parsed(url)
    all_headers = {"user-agent": USER_AGENT, "content-type": "application/json", **headers}
    lean = _fast_http and parsed.scheme == "http" and entry.factory is default_client_factory
    if lean and not _proxied(parsed):
        host, port, target = parse_origin(parsed)
        outgoing = entry.h1.send_now(
            "POST", host, port, target, headers=all_headers, body=body, sink=sink
        )
        return StartedStream(parsed, body, all_headers, (entry.h1, outgoing))
    for name, value in all_headers.items():  # as the lean client does, before anything is sent
        check_header(name, value)
    return StartedStream(parsed, body, all_headers)


async def open_stream(
    url: str,
    *,
    body: bytes,
    headers: Mapping[str, str],
    connect_timeout: float,
    read_timeout: float,
) -> Exchange:
    """POST ``body`` to ``url`` and return once the response headers arrived.

    Cancel it (e.g. with ``asyncio.timeout``) to give up waiting; the connection is closed.
    """
    started = start_stream(url, body=body, headers=headers)
    return await started.open(connect_timeout=connect_timeout, read_timeout=read_timeout)
