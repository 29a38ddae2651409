"""A lean WebSocket client (RFC 6455, text frames) for the relay benchmark's participants.

The benchmark's clients share the machine's two cores with the app and the model server, so
their own cost per frame is part of what a participant is measured to wait. The direct clients
read the model server with the app's HTTP/1.1 client (a callback per chunk, no task switch);
this gives the participants the same shape: each text message is handed to a callback from the
protocol's ``data_received``, with the time it arrived, instead of through the ``websockets``
library's queue, reader task and ``recv()`` (a few task switches per frame, for 200 sockets).
It speaks only what the benchmark needs: no extensions, no subprotocols, no fragmented sends.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
import time
from collections.abc import Callable

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA

# Called with each text message and the perf_counter time its last byte was read.
OnText = Callable[[str, float], None]


class HandshakeError(Exception):
    pass


def _masked(opcode: int, payload: bytes) -> bytes:
    """One final client frame: clients must mask what they send."""
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    mask = os.urandom(4)
    return head + mask + _xor(payload, mask)


def _xor(payload: bytes, mask: bytes) -> bytes:
    if not payload:
        return payload
    key = (mask * (len(payload) // 4 + 1))[: len(payload)]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")
    return value.to_bytes(len(payload), "big")


class LeanSocket(asyncio.Protocol):
    """One client connection; text messages go to ``on_text`` as they complete."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.on_text: OnText = lambda text, at: None
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.fragments: list[bytes] = []
        self.fragment_opcode = TEXT
        self.upgraded = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded.done():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin1")
            del self.buffer[: end + 4]
            error = self._check_upgrade(head)
            if error:
                self.upgraded.set_exception(HandshakeError(error))
                self.transport.close()
                return
            self.upgraded.set_result(None)
        self._read_frames(time.perf_counter())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(self.close_code)

    # -- frames -------------------------------------------------------------------------------
    def _check_upgrade(self, head: str) -> str:
        status, *lines = head.split("\r\n")
        if " 101 " not in f"{status} ":
            return f"not upgraded: {status}"
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        accept = base64.b64encode(hashlib.sha1(self.key + GUID).digest()).decode()  # noqa: S324
        if headers.get("sec-websocket-accept") != accept:
            return "wrong Sec-WebSocket-Accept"
        return ""

    def _read_frames(self, now: float) -> None:
        buffer = self.buffer
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            size, offset = second & 0x7F, 2
            if size == 126:
                if len(buffer) < 4:
                    return
                size, offset = struct.unpack_from("!H", buffer, 2)[0], 4
            elif size == 127:
                if len(buffer) < 10:
                    return
                size, offset = struct.unpack_from("!Q", buffer, 2)[0], 10
            mask = b""
            if second & 0x80:  # servers must not mask, but unmask if one does
                mask, offset = bytes(buffer[offset : offset + 4]), offset + 4
            if len(buffer) < offset + size:
                return
            payload = bytes(buffer[offset : offset + size])
            del buffer[: offset + size]
            if mask:
                payload = _xor(payload, mask)
            self._frame(first & 0x80, first & 0x0F, payload, now)

    def _frame(self, final: int, opcode: int, payload: bytes, now: float) -> None:
        if opcode == PING:
            self._write(PONG, payload)
        elif opcode == CLOSE:
            self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            self._write(CLOSE, payload[:2])
            self.transport.close()
        elif opcode in (TEXT, BINARY, CONTINUATION):
            if opcode != CONTINUATION:
                self.fragment_opcode = opcode
            self.fragments.append(payload)
            if final:
                message, self.fragments = b"".join(self.fragments), []
                if self.fragment_opcode == TEXT:
                    self.on_text(message.decode("utf-8"), now)

    def _write(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_masked(opcode, payload))

    # -- for the caller -----------------------------------------------------------------------
    def send_text(self, text: str) -> None:
        self._write(TEXT, text.encode("utf-8"))

    async def close(self, code: int = 1000, limit_s: float = 5.0) -> None:
        """Send a close frame and wait for the server to close the connection."""
        if self.transport is None or self.closed.done():
            return
        self._write(CLOSE, struct.pack("!H", code))
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), limit_s)
        except TimeoutError:
            self.transport.abort()


async def connect(
    host: str, port: int, path: str, headers: dict[str, str] | None = None
) -> LeanSocket:
    """Open a WebSocket to ``ws://host:port/path`` and complete the handshake."""
    loop = asyncio.get_running_loop()
    key = base64.b64encode(os.urandom(16))
    _, protocol = await loop.create_connection(lambda: LeanSocket(key), host, port)
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode()}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    protocol.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin1"))
    await protocol.upgraded
    return protocol
