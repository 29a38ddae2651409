"""The relay benchmark's lean WebSocket client against the ``websockets`` library's server."""

from __future__ import annotations

import asyncio

import pytest
import websockets

from bench import wsclient


async def _echo(ws) -> None:
    async for message in ws:
        if message == "ping me":
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 5)
            await ws.send("pong received")
        elif message == "fragment":
            await ws.send(iter(["frag", "mented ", "reply"]))
        elif message == "close":
            await ws.close(4001, "asked to")
            return
        else:
            await ws.send(f"echo:{message}")


def _collect(
    socket: wsclient.LeanSocket, count: int
) -> tuple[list[str], asyncio.Future[None]]:
    got: list[str] = []
    enough = asyncio.get_running_loop().create_future()

    def on_text(text: str, at: float) -> None:
        got.append(text)
        if len(got) == count and not enough.done():
            enough.set_result(None)

    socket.on_text = on_text
    return got, enough


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65_535, 65_536, 300_000])
async def test_text_round_trip_at_every_length_encoding(size):
    async with websockets.serve(_echo, "127.0.0.1", 0, max_size=2**22) as server:
        port = server.sockets[0].getsockname()[1]
        socket = await wsclient.connect("127.0.0.1", port, "/", {"Origin": "http://x"})
        got, enough = _collect(socket, 1)
        text = ("é" * size)[:size] if size else ""
        socket.send_text(text)
        await asyncio.wait_for(enough, 10)
        assert got == [f"echo:{text}"]
        await socket.close()
        assert socket.close_code == 1000


async def test_fragmented_message_ping_and_server_close():
    async with websockets.serve(_echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        socket = await wsclient.connect("127.0.0.1", port, "/")
        got, enough = _collect(socket, 3)
        socket.send_text("fragment")
        socket.send_text("ping me")
        socket.send_text("after the ping")
        await asyncio.wait_for(enough, 10)
        assert got == ["fragmented reply", "pong received", "echo:after the ping"]
        socket.send_text("close")
        assert await asyncio.wait_for(socket.closed, 10) == 4001


async def test_refused_upgrade_is_an_error():
    async def reject(connection, request):
        return connection.respond(403, "no\n")

    async with websockets.serve(_echo, "127.0.0.1", 0, process_request=reject) as server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(wsclient.HandshakeError, match="403"):
            await wsclient.connect("127.0.0.1", port, "/")
