"""The co-writing page's WebSocket, spoken as docs/protocol.md describes it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

Frame = dict[str, Any]


class ChatClosed(Exception):
    """The server closed the socket for good (4401, 4409) or sent what the client cannot use."""


class ChatTimeout(Exception):
    """The frame waited for did not come in time (the message says which, and what came)."""


class ChatSocket:
    """One socket of one simulated participant: hello, frames in order, seq and epoch kept."""

    def __init__(self, url: str, origin: str, *, wait_s: float) -> None:
        self.url, self.origin, self.wait_s = url, origin, wait_s
        self.conn: ClientConnection | None = None
        self.last_seq: int | None = None
        self.epoch: str | None = None
        self.rating_due: int | None = None
        self.doc_version = 0
        self.seen: list[str] = []  # the latest frames' types, for timeout reports

    async def open(self) -> Frame:
        """Connect and say hello (with the position of any earlier socket); the state frame."""
        self.conn = await connect(
            self.url, origin=self.origin, compression=None, proxy=None, max_size=2**22  # type: ignore[arg-type]
        )
        await self.send({"type": "hello", "last_seq": self.last_seq, "epoch": self.epoch})
        return await self.until(lambda f: f["type"] == "state", what="state")

    def _open(self) -> ClientConnection:
        if self.conn is None:
            raise ChatClosed("the socket is not open")
        return self.conn

    async def send(self, frame: Frame) -> None:
        await self._open().send(json.dumps(frame))

    async def send_message(self, text: str) -> str:
        msg_id = uuid.uuid4().hex
        await self.send({"type": "send", "text": text, "client_msg_id": msg_id})
        return msg_id

    async def recv(self, wait_s: float | None = None) -> Frame:
        raw = await asyncio.wait_for(self._open().recv(), wait_s or self.wait_s)
        frame: Frame = json.loads(raw)
        self.seen = [*self.seen[-5:], f"{frame.get('type')}#{frame.get('seq', '-')}"]
        self._apply(frame)
        return frame

    def _apply(self, frame: Frame) -> None:
        kind = frame.get("type")
        if kind == "state":
            self.last_seq, self.epoch = frame["last_seq"], frame["epoch"]
            self.rating_due = frame.get("rating_due")
            self.doc_version = frame["document"]["version"]
        elif isinstance(frame.get("seq"), int):
            self.last_seq = frame["seq"]
        if kind == "rating_due":
            self.rating_due = frame["turn"]
        elif kind == "rating_given" and self.rating_due == frame.get("turn"):
            self.rating_due = None
        elif kind == "doc_saved":
            self.doc_version = frame["version"]
        elif kind == "error" and frame.get("code") in ("unauthorized", "not_writing"):
            raise ChatClosed(f"{frame.get('code')}: {frame.get('message')}")

    async def until(
        self, predicate: Callable[[Frame], bool], wait_s: float | None = None, *, what: str = ""
    ) -> Frame:
        """Read frames up to and including the first that satisfies ``predicate``."""
        limit = wait_s or self.wait_s
        deadline = time.monotonic() + limit
        while True:
            try:
                frame = await self.recv(max(0.05, deadline - time.monotonic()))
            except TimeoutError:
                raise ChatTimeout(
                    f"no {what} within {limit:.0f} s; last frames: {', '.join(self.seen)}"
                ) from None
            if predicate(frame):
                return frame

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None
