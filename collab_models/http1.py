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

A request can be sent before anything is awaited (:meth:`H1Pool.send_now`): on a kept-alive
connection, or on a new socket to a numeric address, whose connect to a server on the same
machine or a near one has completed by the time the request is written. Under a burst of
messages, each await of the usual path (task start, connect, transport set-up) waits behind
every other message's handling, and the model server got its requests tens of milliseconds
late.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

import httptools

Sink = Callable[[bytes], None]
IDLE_SECONDS = 4.0  # uvicorn (and so vLLM) closes idle keep-alive connections after 5 s
MAX_IDLE_PER_ORIGIN = 256


class TransportError(Exception):
    """The connection failed: refused, timed out, reset, or closed mid-response."""


class _Closed:
    """Stands in for the parser of a closed connection."""

    def feed_data(self, data: bytes) -> None:
        raise httptools.HttpParserError("the connection is closed")


_NO_PARSER: Any = _Closed()


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
        # The parser holds this protocol (its callbacks): without the cycle, reference counting
        # frees a closed connection at once instead of leaving it to the garbage collector,
        # whose pauses grew with every closed connection (bench/README.md, Relay).
        self.parser = _NO_PARSER

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


class Outgoing:
    """A request handed to the network by :meth:`H1Pool.send_now`, its response not yet read.

    It owns its connection until :meth:`H1Pool.response` takes it; :meth:`close` drops an
    unclaimed one (a model call discarded before it was read).
    """

    def __init__(
        self,
        host: str,
        port: int,
        data: bytes,
        *,
        conn: _Connection | None = None,
        sock: socket.socket | None = None,
        unsent: bytes = b"",
        error: TransportError | None = None,
    ) -> None:
        self.host, self.port, self.data = host, port, data
        self.conn = conn  # a kept-alive connection, the request written on it
        self.sock = sock  # a new socket, connected or connecting; ``unsent`` still to write
        self.unsent = unsent
        self.error = error
        self.claimed = False

    def close(self) -> None:
        if self.claimed:
            return
        self.claimed = True
        if self.conn is not None:
            self.conn.close()
        if self.sock is not None:
            self.sock.close()


@functools.lru_cache(maxsize=256)
def _numeric(host: str) -> int | None:
    """The address family of an IP literal; None for a name (resolving it could block)."""
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return None


def _request_bytes(
    method: str, host: str, port: int, target: str, headers: Mapping[str, str], body: bytes
) -> bytes:
    name = f"[{host}]" if ":" in host else host  # an IPv6 literal
    host_header = name if port == 80 else f"{name}:{port}"
    lines = [f"{method} {target} HTTP/1.1", f"host: {host_header}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class H1Pool:
    """Idle keep-alive connections of one event loop, per (host, port)."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    def _idle_connection(self, host: str, port: int) -> _Connection | None:
        idle = self._idle.get((host, port), [])
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_SECONDS:
                return conn
            conn.close()
        return None

    async def _attach(self, out: Outgoing, timeout_s: float) -> _Connection:
        """The connection of a request not sent on a kept-alive one: connect (or finish
        connecting) and send what is still unsent."""
        loop = asyncio.get_running_loop()
        sock, out.sock = out.sock, None  # from here on the transport (or this function) closes it
        try:
            async with asyncio.timeout(timeout_s):
                if sock is None:  # a host name: connect the usual way, then send
                    _, conn = await loop.create_connection(
                        lambda: _Connection(loop), out.host, out.port
                    )
                    assert conn.transport is not None  # noqa: S101 (set by connection_made)
                    conn.transport.write(out.data)
                else:
                    if out.unsent:  # still connecting (a remote server), or a large body
                        await loop.sock_sendall(sock, out.unsent)
                    _, conn = await loop.create_connection(lambda: _Connection(loop), sock=sock)
        except TimeoutError:
            error = TransportError(
                f"connect to {out.host}:{out.port} timed out after {timeout_s:g}s"
            )
        except OSError as exc:
            error = TransportError(f"cannot connect to {out.host}:{out.port}: {exc}")
        except BaseException:
            if sock is not None:
                sock.close()
            raise
        else:
            conn.origin = (out.host, out.port)
            return conn
        if sock is not None:
            sock.close()
        raise error

    def release(self, conn: _Connection) -> None:
        idle = self._idle.setdefault(conn.origin, [])
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            conn.close()
            return
        conn.reset()
        conn.idle_since = time.monotonic()
        idle.append(conn)

    def send_now(
        self,
        method: str,
        host: str,
        port: int,
        target: str,
        *,
        headers: Mapping[str, str],
        body: bytes,
    ) -> Outgoing:
        """Send one request without awaiting anything; read its answer with :meth:`response`.

        The request goes out on a kept-alive connection, or on a new socket when ``host`` is an
        IP literal (a name is connected to later). What a connect still in progress or a full
        socket buffer holds back is sent by :meth:`response`, as is any error.
        """
        data = _request_bytes(method, host, port, target, headers, body)
        conn = self._idle_connection(host, port)
        if conn is not None:
            assert conn.transport is not None  # noqa: S101 (set by connection_made)
            conn.transport.write(data)
            return Outgoing(host, port, data, conn=conn)
        family = _numeric(host)
        if family is None:
            return Outgoing(host, port, data)
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            code = sock.connect_ex((host, port))
            if code not in (0, errno.EINPROGRESS):
                raise OSError(code, os.strerror(code))
            try:
                sent = sock.send(data)
            except BlockingIOError:  # not connected yet
                sent = 0
        except OSError as exc:
            sock.close()
            error = TransportError(f"cannot connect to {host}:{port}: {exc}")
            return Outgoing(host, port, data, error=error)
        return Outgoing(host, port, data, sock=sock, unsent=data[sent:])

    async def response(self, out: Outgoing, *, connect_timeout: float) -> H1Exchange:
        """Wait for the response headers of a request sent by :meth:`send_now`.

        A reused connection that the server had closed meanwhile is retried once on a fresh one.
        Cancelling the wait closes the connection.
        """
        if out.claimed:
            raise RuntimeError("this request's response was already taken")
        out.claimed = True
        if out.error is not None:
            raise out.error
        reused = out.conn is not None
        conn = out.conn if out.conn is not None else await self._attach(out, connect_timeout)
        try:
            await conn.headers_done
        except TransportError:
            if not reused or conn.got_bytes:
                raise
            # A stale keep-alive connection: the request never arrived. Once more, anew.
            fresh = Outgoing(out.host, out.port, out.data)
            return await self.response(fresh, connect_timeout=connect_timeout)
        except BaseException:
            conn.close()
            raise
        return H1Exchange(conn, self)

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
