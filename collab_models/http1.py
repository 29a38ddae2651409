"""A lean HTTP/1.1 client for streamed responses from plain ``http://`` model servers.

Token streams are the hot path of the app: 200 participants at 50 tokens/s is 10,000 small
chunks a second. Through httpx each chunk passes h11 (pure Python) and several async-generator
layers; here the C parser of ``httptools`` (installed with ``uvicorn[standard]``) hands each
chunk straight to a callback in ``data_received``, for a fraction of the CPU (bench/README.md,
Relay), and the waiting coroutine wakes only when the response ends or a deadline passes.

Only what talking to vLLM needs is supported: one request per connection at a time,
``Content-Length`` or chunked bodies, keep-alive reuse (idle connections are dropped before
the server's 5 s keep-alive timeout), no TLS, no proxies. :mod:`collab_models.transport`
falls back to httpx for everything else.

A request can be sent before anything is awaited (:meth:`H1Pool.send_now`): on a kept-alive
connection, or on a new socket to a numeric address, whose connect to a server on the same
machine or a near one has completed by the time the request is written. Its response is read
from then on too, by the event loop's watch on the socket, and a sink given with the request
takes the body as it comes. Under a burst of messages each await of the usual path (task
start, connect, transport set-up, the wake-up for the headers) waits behind every other
message's handling: the model server got its requests, and the app its first tokens, tens of
milliseconds late.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import os
import re
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

import httptools

Sink = Callable[[bytes], None]
IDLE_SECONDS = 4.0  # uvicorn (and so vLLM) closes idle keep-alive connections after 5 s
MAX_IDLE_PER_ORIGIN = 256


class TransportError(Exception):
    """The connection failed: refused, timed out, reset, or closed mid-response."""


class _Enough(Exception):
    """A body read up to its limit: the rest is not read."""


class _Closed:
    """Stands in for the parser of a closed connection."""

    def feed_data(self, data: bytes) -> None:
        raise httptools.HttpParserError("the connection is closed")


_NO_PARSER: Any = _Closed()
# What one read asks for. Not more: a larger request makes every read allocate beyond glibc's
# mmap threshold, ten times slower for a chunk of a few hundred bytes.
READ_SIZE = 64 * 1024


class _Connection:
    """One TCP connection and the state of the exchange in progress on it.

    A plain non-blocking socket that the event loop watches (``add_reader``) from the moment it
    is made: a response that arrives before any coroutine awaits it is parsed as it comes, and
    a sink given with the request (:meth:`H1Pool.send_now`) gets the body at once. A transport
    (``loop.create_connection(sock=...)``) would cost a task and two turns of the event loop
    before the first byte is read, and under a burst of messages each turn is long.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        origin: tuple[str, int],
        sink: Sink | None = None,
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.origin = origin
        self.closed = False
        self.reused = False  # it served an exchange before this one
        self.idle_since = 0.0
        self.outbox = memoryview(b"")  # what the socket has not taken yet (still connecting)
        self.flushed: asyncio.Future[None] | None = None
        self.reset(sink)
        loop.add_reader(self.fd, self._readable)

    def reset(self, sink: Sink | None = None) -> None:
        """Ready for the next exchange; ``sink`` takes its body if the status is 2xx."""
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done: asyncio.Future[None] = self.loop.create_future()
        self.complete: asyncio.Future[None] = self.loop.create_future()
        self.early_sink = sink
        self.sink: Sink | None = None
        self.buffer: list[bytes] = []
        self.got_bytes = False
        self.keep_alive = False
        self.sink_error: BaseException | None = None

    # -- the socket ---------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Send one request; what the socket cannot take now is sent when it becomes writable.
        (A connection is reused only once its last response is complete, so the request before
        has gone out whole.)"""
        if self.closed:
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):  # not connected yet, or a full buffer
            sent = 0
        except OSError as exc:
            self.lost(exc)
            return
        if sent < len(data):
            self.outbox = memoryview(data)[sent:]
            self.loop.add_writer(self.fd, self._writable)

    def _writable(self) -> None:
        try:
            sent = self.sock.send(self.outbox)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.lost(exc)
            return
        self.outbox = self.outbox[sent:]
        if not self.outbox:
            self.loop.remove_writer(self.fd)
            if self.flushed is not None and not self.flushed.done():
                self.flushed.set_result(None)

    async def sent(self) -> None:
        """Return once the socket has taken the whole request (it is connected)."""
        if self.outbox:
            self.flushed = self.loop.create_future()
            await self.flushed

    def _readable(self) -> None:
        try:
            data = self.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.lost(exc)
            return
        if data:
            self.data_received(data)
        else:
            self.lost(None)

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(self.sink_error or TransportError(f"bad HTTP response: {exc}"))
            return
        if self.sink_error is not None:
            self.fail(self.sink_error)

    def lost(self, exc: Exception | None) -> None:
        """The server closed the connection, or it broke."""
        if exc is not None and not self.got_bytes and not self.reused:
            host, port = self.origin
            self.fail(TransportError(f"cannot connect to {host}:{port}: {exc}"))
        else:
            detail = f": {exc}" if exc else ""
            self.fail(TransportError(f"connection closed by the server{detail}"))

    # -- httptools callbacks -----------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        if 200 <= self.status < 300 and self.early_sink is not None:
            self.sink = self.early_sink
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
        """End the exchange in progress with ``exc`` and close the connection."""
        self.close(exc)

    def close(self, exc: BaseException | None = None) -> None:
        """Close the connection; an exchange in progress ends with ``exc`` (or a "closed"
        error)."""
        if self.closed:
            return
        self.closed = True
        self.loop.remove_reader(self.fd)
        if self.outbox:
            self.loop.remove_writer(self.fd)
            self.outbox = memoryview(b"")
        self.sock.close()
        # The parser holds this connection (its callbacks): without the cycle, reference
        # counting frees a closed connection at once instead of leaving it to the garbage
        # collector, whose pauses grew with every closed connection (bench/README.md, Relay).
        self.parser = _NO_PARSER
        self.early_sink = self.sink = None
        error = exc if exc is not None else TransportError("the connection was closed")
        for future in (self.headers_done, self.complete, self.flushed):
            if future is not None and not future.done():
                future.set_exception(error)
                future.exception()  # mark retrieved: the caller may be gone (cancelled)

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
        """The body, e.g. an error message, up to ``limit`` bytes: past them the connection is
        closed, so a server cannot make the client hold a body of any size."""
        conn = self._conn
        kept = bytearray()

        def keep(piece: bytes) -> None:
            kept.extend(piece[: limit - len(kept)])
            if len(kept) >= limit:
                raise _Enough

        try:
            for piece in conn.buffer:
                keep(piece)
            conn.buffer.clear()
            conn.sink = keep
            await conn.complete
        except _Enough:
            conn.close()
        return bytes(kept)

    async def pump(self, sink: Sink, limit: Callable[[], float]) -> None:
        """Hand body bytes to ``sink`` as they arrive until the response ends.

        The sink given to :meth:`H1Pool.send_now`, if any, has had the body from its first byte
        and must be this one. ``limit()`` gives the current deadline (event-loop time); it may
        move while data flows and is checked only when it may have passed, so its cost does not
        scale with chunks. Raises :class:`TimeoutError` once it passes,
        :class:`TransportError` if the connection breaks, or whatever ``sink`` raised.
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
        conn.sink = conn.early_sink = None
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
        sink: Sink | None = None,
        conn: _Connection | None = None,
        error: TransportError | None = None,
    ) -> None:
        self.host, self.port, self.data, self.sink = host, port, data, sink
        self.conn = conn  # the request written on it (what the socket took so far)
        self.error = error
        self.claimed = False

    def close(self) -> None:
        if self.claimed:
            return
        self.claimed = True
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@functools.lru_cache(maxsize=256)
def _numeric(host: str) -> int | None:
    """The address family of an IP literal; None for a name (resolving it could block)."""
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return None


# A CR or LF in a header would end it and begin another; other control characters (tab
# aside) are no more allowed in a value, nor anything but a token in a name.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def check_header(name: str, value: str) -> None:
    """Refuse (:class:`ValueError`) a header that a request cannot carry as given: a name that
    is not a token, or a value with a control character such as CR or LF."""
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid HTTP header name")
    if _CONTROL.search(value):
        raise ValueError(f"the HTTP header {name!r} has a control character (CR, LF, ...)")


def _request_bytes(
    method: str, host: str, port: int, target: str, headers: Mapping[str, str], body: bytes
) -> bytes:
    check_header("host", host)
    if _CONTROL.search(target) or " " in target:
        raise ValueError("an HTTP request target may not hold spaces or control characters")
    for name, value in headers.items():
        check_header(name, value)
    name = f"[{host}]" if ":" in host else host  # an IPv6 literal
    host_header = name if port == 80 else f"{name}:{port}"
    lines = [f"{method} {target} HTTP/1.1", f"host: {host_header}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _socket(family: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


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

    async def _connect(self, out: Outgoing) -> _Connection:
        """Resolve a host name, connect to its first address that answers and send."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(out.host, out.port, type=socket.SOCK_STREAM)
        error: OSError = OSError(f"no address for {out.host}")
        for family, _, _, _, address in infos:
            sock = _socket(family)
            try:
                await loop.sock_connect(sock, address)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            except BaseException:
                sock.close()
                raise
            conn = _Connection(loop, sock, (out.host, out.port), out.sink)
            conn.write(out.data)
            return conn
        raise error

    def release(self, conn: _Connection) -> None:
        idle = self._idle.setdefault(conn.origin, [])
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            conn.close()
            return
        conn.reset()
        conn.reused = True
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
        sink: Sink | None = None,
    ) -> Outgoing:
        """Send one request without awaiting anything; read its answer with :meth:`response`.

        The request goes out on a kept-alive connection, or on a new socket when ``host`` is an
        IP literal (a name is connected to later). What a connect still in progress or a full
        socket buffer holds back is sent as the socket can take it, and :meth:`response`
        reports any error. ``sink``, if given, takes a 2xx response's body as it arrives, from
        before anything awaits the response; :meth:`H1Exchange.pump` must then be given the
        same sink.
        """
        data = _request_bytes(method, host, port, target, headers, body)
        conn = self._idle_connection(host, port)
        if conn is not None:
            conn.reset(sink)
            conn.write(data)
            return Outgoing(host, port, data, sink=sink, conn=conn)
        return self._send_fresh(host, port, data, sink)

    def _send_fresh(self, host: str, port: int, data: bytes, sink: Sink | None) -> Outgoing:
        """``data`` on a new connection: connected and sent now to an IP literal, later (by
        :meth:`response`) to a host name."""
        family = _numeric(host)
        if family is None:
            return Outgoing(host, port, data, sink=sink)
        try:
            sock = _socket(family)
        except OSError as exc:  # e.g. out of file descriptors
            error = TransportError(f"cannot connect to {host}:{port}: {exc}")
            return Outgoing(host, port, data, error=error)
        code = sock.connect_ex((host, port))
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            error = TransportError(f"cannot connect to {host}:{port}: {os.strerror(code)}")
            return Outgoing(host, port, data, error=error)
        conn = _Connection(asyncio.get_running_loop(), sock, (host, port), sink)
        conn.write(data)
        return Outgoing(host, port, data, sink=sink, conn=conn)

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
        conn, out.conn = out.conn, None  # the exchange owns it from here on
        try:
            if conn is None or conn.outbox:
                conn = await self._connected(out, conn, connect_timeout)
            await conn.headers_done
        except TransportError:
            if conn is None or not conn.reused or conn.got_bytes:
                raise
            # A stale keep-alive connection: the request never arrived. Once more, anew.
            fresh = self._send_fresh(out.host, out.port, out.data, out.sink)
            return await self.response(fresh, connect_timeout=connect_timeout)
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        return H1Exchange(conn, self)

    async def _connected(
        self, out: Outgoing, conn: _Connection | None, timeout_s: float
    ) -> _Connection:
        """``conn`` once the request is all sent on it; connected first, for a host name."""
        try:
            async with asyncio.timeout(timeout_s):
                if conn is None:
                    conn = await self._connect(out)
                await conn.sent()
        except TimeoutError:
            where = f"{out.host}:{out.port}"
            error = TransportError(f"connect to {where} timed out after {timeout_s:g}s")
        except OSError as exc:
            error = TransportError(f"cannot connect to {out.host}:{out.port}: {exc}")
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        else:
            return conn
        if conn is not None:
            conn.close()
        raise error

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
