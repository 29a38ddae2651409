"""A lean HTTP/1.1 client for streamed responses from plain ``http://`` model servers.

Token streams are the hot path of the app: 200 participants at 50 tokens/s is 10,000 small
chunks a second. Through httpx each chunk passes h11 (pure Python) and several async-generator
layers, about 50-80 µs of CPU; here the C parser of ``httptools`` (installed with
``uvicorn[standard]``) hands each chunk straight to a callback in ``data_received``, about
a fifth of that, and the waiting coroutine wakes only when the response ends or a deadline
passes.

Only what talking to vLLM needs is supported: one request per connection at a time,
``Content-Length`` or chunked bodies, keep-alive reuse (idle connections are dropped before
the server's 5 s keep-alive timeout), no TLS, no proxies. :mod:`collab_models.transport`
falls back to httpx for everything else.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

import httptools

Sink = Callable[[bytes], None]
IDLE_SECONDS = 4.0  # uvicorn (and so vLLM) closes idle keep-alive connections after 5 s
MAX_IDLE_PER_ORIGIN = 256


class TransportError(Exception):
    """The connection failed: refused, timed out, reset, or closed mid-response."""


class _Connection(asyncio.Protocol):
    """One TCP connection and the state of the exchange in progress on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.origin: tuple[str, int] = ("", 0)
        self.closed = False
        self.idle_since = 0.0
        self.reset()

    def reset(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done: asyncio.Future[None] = self.loop.create_future()
        self.complete: asyncio.Future[None] = self.loop.create_future()
        self.sink: Sink | None = None
        self.buffer: list[bytes] = []
        self.got_bytes = False
        self.keep_alive = False
        self.sink_error: BaseException | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP transport; uvloop's does not subclass asyncio.Transport, hence no isinstance.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(self.sink_error or TransportError(f"bad HTTP response: {exc}"))
            return
        if self.sink_error is not None:
            self.fail(self.sink_error)

    def eof_received(self) -> bool | None:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete.done():
            detail = f": {exc}" if exc else ""
            self.fail(TransportError(f"connection closed by the server{detail}"))

    # -- httptools callbacks -----------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        if not self.headers_done.done():
            self.headers_done.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.sink is None:
            self.buffer.append(body)
            return
        if self.sink_error is None:
            try:
                self.sink(body)
            except BaseException as exc:  # reported to the waiting coroutine by fail()
                self.sink_error = exc

    def on_message_complete(self) -> None:
        if not self.complete.done() and self.sink_error is None:
            self.complete.set_result(None)

    # -- helpers ------------------------------------------------------------------------------
    def fail(self, exc: BaseException) -> None:
        for future in (self.headers_done, self.complete):
            if not future.done():
                future.set_exception(exc)
                future.exception()  # mark retrieved: the caller may be gone (cancelled)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    @property
    def reusable(self) -> bool:
        done = self.complete.done() and not self.complete.cancelled()
        return done and self.complete.exception() is None and self.keep_alive


class H1Exchange:
    """One request's response: status, then the body either read whole or pumped to a sink."""

    def __init__(self, conn: _Connection, pool: H1Pool) -> None:
        self._conn = conn
        self._pool = pool
        self.status = conn.status

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode()
        for key, value in self._conn.headers:
            if key == wanted:
                return value.decode("latin-1")
        return None

    async def read_body(self, limit: int) -> bytes:
        """The whole (short) body, e.g. an error message; at most ``limit`` bytes are kept."""
        await self._conn.complete
        return b"".join(self._conn.buffer)[:limit]

    async def pump(self, sink: Sink, limit: Callable[[], float]) -> None:
        """Hand body bytes to ``sink`` as they arrive until the response ends.

        ``limit()`` gives the current deadline (event-loop time); it may move while data flows
        and is checked only when it may have passed, so its cost does not scale with chunks.
        Raises :class:`TimeoutError` once it passes, :class:`TransportError` if the connection
        breaks, or whatever ``sink`` raised.
        """
        conn = self._conn
        for piece in conn.buffer:
            sink(piece)
        conn.buffer.clear()
        conn.sink = sink
        loop = conn.loop
        while not conn.complete.done():
            remaining = limit() - loop.time()
            if remaining <= 0:
                raise TimeoutError
            await asyncio.wait([conn.complete], timeout=remaining)
        conn.complete.result()

    async def aclose(self) -> None:
        """Give the connection back for reuse, or close it if the response did not finish."""
        conn = self._conn
        conn.sink = None
        if conn.reusable and not conn.closed:
            self._pool.release(conn)
        else:
            conn.close()


class H1Pool:
    """Idle keep-alive connections of one event loop, per (host, port)."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def _connect(self, host: str, port: int, timeout_s: float) -> tuple[_Connection, bool]:
        idle = self._idle.get((host, port), [])
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_SECONDS:
                return conn, True
            conn.close()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                _, conn = await loop.create_connection(lambda: _Connection(loop), host, port)
        except TimeoutError:
            raise TransportError(
                f"connect to {host}:{port} timed out after {timeout_s:g}s"
            ) from None
        except OSError as exc:
            raise TransportError(f"cannot connect to {host}:{port}: {exc}") from None
        conn.origin = (host, port)
        return conn, False

    def release(self, conn: _Connection) -> None:
        idle = self._idle.setdefault(conn.origin, [])
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            conn.close()
            return
        conn.reset()
        conn.idle_since = time.monotonic()
        idle.append(conn)

    async def request(
        self,
        method: str,
        host: str,
        port: int,
        target: str,
        *,
        headers: Mapping[str, str],
        body: bytes,
        connect_timeout: float,
    ) -> H1Exchange:
        """Send one request and wait for the response headers.

        A reused connection that the server had closed meanwhile is retried once on a fresh one.
        Cancelling the wait closes the connection.
        """
        name = f"[{host}]" if ":" in host else host  # an IPv6 literal
        host_header = name if port == 80 else f"{name}:{port}"
        lines = [f"{method} {target} HTTP/1.1", f"host: {host_header}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append(f"content-length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        for attempt in (0, 1):
            conn, reused = await self._connect(host, port, connect_timeout)
            assert conn.transport is not None  # noqa: S101 (set by connection_made)
            conn.transport.write(head + body)
            try:
                await conn.headers_done
            except TransportError:
                if reused and not conn.got_bytes and attempt == 0:
                    continue  # a stale keep-alive connection: the request never arrived
                raise
            except BaseException:
                conn.close()
                raise
            return H1Exchange(conn, self)
        raise TransportError("unreachable")  # pragma: no cover

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


def parse_origin(url: Any) -> tuple[str, int, str]:
    """(host, port, path+query) of an ``httpx.URL``."""
    port = url.port or 80
    target = url.raw_path.decode("ascii") or "/"
    return url.host, port, target
