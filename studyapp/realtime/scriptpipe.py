"""A lean, pipelined Redis connection for the relay's scripts (studyapp/realtime/framestore.py).

Every frame of every reply is one script call (``EVALSHA``): some 2,000 a second at 200
streams. Through redis-py's pipeline a call cost the event loop several times the CPU (its
command stack, packing, response callbacks and retry logic; hiredis did not change it). Here a
call is encoded straight into bytes, the calls made in one turn of the event loop go out in one
write, and the replies, which Redis sends in order, settle their futures as the socket's data is
parsed, in that data's own turn of the loop. A batch does not wait for the one before it to
come back.

Only what the scripts need: integer, status and bulk replies; an error reply fails its call
with :class:`ScriptError`. A script Redis has forgotten (``NOSCRIPT``: a restart, a
``SCRIPT FLUSH``) is sent again whole (``EVAL``, which loads it again). When the connection
fails, every call in flight fails with :class:`ConnectionError` and the next call connects again.
A call Redis has not answered within the pipe's timeout fails with :class:`CallTimeout`, and so
does every call behind it: replies can no longer be matched to calls, so the connection is
dropped and the next call opens a new one. :class:`RedisPyScripts` runs the same calls through
redis-py's asyncio client instead (``RELAY_SCRIPT_CLIENT=redis-py``).

Takes the same URLs as redis-py: ``redis://``, ``rediss://`` (TLS) and ``unix://``, with user,
password and database.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import math
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from redis.asyncio.connection import SSLConnection, parse_url

CONNECT_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 5.0
CLIENT_NAME = "collabstudy-relay-scripts"  # as CLIENT LIST shows it

Reply = int | str | bytes | None


class ScriptError(Exception):
    """Redis answered a call with an error."""


class ProtocolError(ConnectionError):
    """Redis sent what this connection cannot parse; the connection is dropped."""


class CallTimeout(ConnectionError, TimeoutError):
    """Redis did not answer a call in time; the connection is dropped."""


def encode(*args: Any) -> bytes:
    """One command in RESP: an array of bulk strings (``str`` arguments are UTF-8)."""
    parts = [f"*{len(args)}\r\n"]
    for arg in args:
        text = arg if type(arg) is str else str(arg)
        size = len(text) if text.isascii() else len(text.encode())
        parts.append(f"${size}\r\n{text}\r\n")
    return "".join(parts).encode()


@dataclass
class _Call:
    future: asyncio.Future[Reply]
    script: str = ""  # the script's body, to send again whole if Redis forgot it
    keys: tuple[Any, ...] = ()
    args: tuple[Any, ...] = ()
    deadline: float = math.inf  # event-loop time by which its reply is due


class _Replies(asyncio.Protocol):
    """The socket's side: replies parsed as they come and matched to calls in order."""

    def __init__(self, pipe: ScriptPipe) -> None:
        self.pipe = pipe
        self.transport: asyncio.Transport | None = None
        self.calls: collections.deque[_Call] = collections.deque()
        self.buffer = bytearray()
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        at = 0
        try:
            while at < len(self.buffer):
                parsed = _parse(self.buffer, at)
                if parsed is None:
                    break
                reply, at = parsed
                if not self.calls:
                    raise ProtocolError("a reply to no call")
                self._settle(self.calls.popleft(), reply)
        except ProtocolError as exc:
            self._drop(exc)
            return
        del self.buffer[:at]

    def _settle(self, call: _Call, reply: Reply | ScriptError) -> None:
        if isinstance(reply, ScriptError):
            if str(reply).startswith("NOSCRIPT") and call.script:
                body, call.script = call.script, ""  # once
                self.pipe.send(encode("EVAL", body, len(call.keys), *call.keys, *call.args), call)
                return
            if not call.future.done():
                call.future.set_exception(reply)
        elif not call.future.done():  # else its caller was cancelled; the call still ran
            call.future.set_result(reply)

    def _drop(self, exc: Exception) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        self.lost = True
        while self.calls:
            future = self.calls.popleft().future
            if not future.done():
                future.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"Redis connection lost: {exc or 'closed by the server'}"))


def _parse(buffer: bytearray, at: int) -> tuple[Reply | ScriptError, int] | None:
    """The reply that starts at ``at`` in ``buffer`` and where the next one starts, or None
    if it has not all arrived."""
    end = buffer.find(b"\r\n", at + 1)
    if end < 0:
        return None
    kind, line = buffer[at], bytes(buffer[at + 1 : end])
    if kind == 0x3A:  # ":" integer
        return int(line), end + 2
    if kind == 0x2B:  # "+" status
        return line.decode(), end + 2
    if kind == 0x2D:  # "-" error
        return ScriptError(line.decode("utf-8", "replace")), end + 2
    if kind == 0x24:  # "$" bulk string
        length = int(line)
        if length < 0:
            return None, end + 2
        stop = end + 2 + length
        if len(buffer) < stop + 2:
            return None
        return bytes(buffer[end + 2 : stop]), stop + 2
    raise ProtocolError(f"unexpected Redis reply type {chr(kind)!r}")


class ScriptPipe:
    """Script calls on one connection of the current event loop (see the module's text).

    Bound to the event loop that first calls it, like redis-py's connections.
    """

    def __init__(
        self, url: str, scripts: dict[str, str], *, timeout_s: float = CALL_TIMEOUT_S
    ) -> None:
        self.params = parse_url(url)
        self.timeout_s = timeout_s
        self.scripts = {
            name: (body, hashlib.sha1(body.encode()).hexdigest())  # noqa: S324 (Redis's name for it)
            for name, body in scripts.items()
        }
        self.replies: _Replies | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.outgoing: list[bytes] = []
        self.waiting: list[_Call] = []
        self.flush_due = False
        self.watchdog: asyncio.TimerHandle | None = None

    def call(self, name: str, keys: list[Any], args: list[Any]) -> asyncio.Future[Reply]:
        """Run script ``name`` (``EVALSHA``); the future has its reply."""
        body, sha = self.scripts[name]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Reply] = loop.create_future()
        call = _Call(future, body, tuple(keys), tuple(args), loop.time() + self.timeout_s)
        self.send(encode("EVALSHA", sha, len(keys), *keys, *args), call)
        return future

    def send(self, command: bytes, call: _Call) -> None:
        """Queue ``command`` for this turn of the event loop's write."""
        self.outgoing.append(command)
        self.waiting.append(call)
        if not self.flush_due:
            self.flush_due = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_due = False
        replies = self.replies
        if replies is None or replies.lost or replies.transport is None:
            if self.connecting is None or self.connecting.done():
                self.connecting = asyncio.get_running_loop().create_task(
                    self._connect(), name="framestore-scripts-connect"
                )
            return
        if not self.waiting:
            return
        data, self.outgoing = b"".join(self.outgoing), []
        replies.calls.extend(self.waiting)
        self.waiting = []
        replies.transport.write(data)
        if self.watchdog is None:
            self._watch()

    def _watch(self) -> None:
        """Drop the connection once its oldest unanswered call is overdue; Redis answers in
        order, so that one call stands for all behind it."""
        self.watchdog = None
        replies = self.replies
        if replies is None or replies.lost or not replies.calls:
            return
        loop = asyncio.get_running_loop()
        deadline = replies.calls[0].deadline
        if deadline > loop.time():
            self.watchdog = loop.call_at(deadline, self._watch)
            return
        replies._drop(
            CallTimeout(f"Redis at {self.where()} did not answer within {self.timeout_s:g} s")
        )

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        replies = _Replies(self)
        try:
            async with asyncio.timeout(min(CONNECT_TIMEOUT_S, self.timeout_s)):
                if "path" in self.params:
                    await loop.create_unix_connection(lambda: replies, self.params["path"])
                else:
                    await loop.create_connection(
                        lambda: replies,
                        self.params.get("host", "localhost"),
                        int(self.params.get("port", 6379)),
                        ssl=self._tls(),
                    )
                # Once per connection: its set-up is answered before any call goes out.
                for command in self._setup_commands():
                    future = loop.create_future()
                    replies.calls.append(_Call(future))
                    replies.transport.write(command)  # type: ignore[union-attr]
                    await future
        except (OSError, TimeoutError, ScriptError) as exc:
            if replies.transport is not None:
                replies.transport.abort()
            self._fail_waiting(ConnectionError(f"cannot use Redis at {self.where()}: {exc}"))
            return
        self.replies = replies
        self._flush()

    def where(self) -> str:
        """Where Redis is, without credentials (for error messages)."""
        if "path" in self.params:
            return str(self.params["path"])
        return f"{self.params.get('host', 'localhost')}:{self.params.get('port', 6379)}"

    def _setup_commands(self) -> list[bytes]:
        commands = [encode("CLIENT", "SETNAME", CLIENT_NAME)]
        password = self.params.get("password")
        if password:
            username = self.params.get("username")
            auth = ("AUTH", username, password) if username else ("AUTH", password)
            commands.insert(0, encode(*auth))
        if self.params.get("db"):
            commands.append(encode("SELECT", self.params["db"]))
        return commands

    def _tls(self) -> ssl.SSLContext | None:
        if self.params.get("connection_class") is not SSLConnection:
            return None
        ca_certs: Any = self.params.get("ssl_ca_certs")  # a query argument of the URL
        context = ssl.create_default_context(cafile=ca_certs)
        if str(self.params.get("ssl_cert_reqs", "required")).lower() in ("none", "cert_none"):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _fail_waiting(self, exc: Exception) -> None:
        waiting, self.waiting, self.outgoing = self.waiting, [], []
        for call in waiting:
            if not call.future.done():
                call.future.set_exception(exc)

    def close(self) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
        if self.replies is not None and self.replies.transport is not None:
            self.replies.transport.close()


class RedisPyScripts:
    """The same script calls through redis-py's asyncio client, the kept library: its own pool,
    each call bounded by ``timeout_s`` (a connection that timed out is dropped by redis-py)."""

    def __init__(
        self, url: str, scripts: dict[str, str], *, timeout_s: float = CALL_TIMEOUT_S
    ) -> None:
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=64,
            timeout=timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            client_name=CLIENT_NAME,
            driver_info=None,
        )
        self.client = redis.Redis(connection_pool=pool)
        self.scripts = {name: self.client.register_script(body) for name, body in scripts.items()}

    def call(self, name: str, keys: list[Any], args: list[Any]) -> Awaitable[Reply]:
        """Run script ``name`` (``EVALSHA``, loading it if Redis forgot it)."""
        reply: Awaitable[Reply] = self.scripts[name](keys=keys, args=args)
        return reply
