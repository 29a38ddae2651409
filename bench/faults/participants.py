"""Scripted participants: honest ones that write with the assistant, and fuzzers.

An honest participant acts only on what the page (bench/faults/page.py) offers: it sends its
next message when the page allows one, rates when a rating is due, presses Retry when the page
shows it, and reconnects when the socket closes, with the page's backoff and ``hello``. Anything
else is a human's act and is recorded as such: pressing Send again after a refusal, or reloading
the page when it has waited for the server longer than ``stuck_after`` seconds with no fault
in progress. Every frame it sends and receives is recorded (bench/faults/accounting.py).

Fuzzers each hold a valid participation and send hostile frames (bench/faults/hostile.py), one
at a time, recording the answer to each.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import websockets

from bench import wsclient
from bench.faults.accounting import Answer, Entry
from bench.faults.hostile import Hostile
from bench.faults.page import Page

CONNECT_LIMIT_S = 15.0
HEARTBEAT_S = 15.0  # the page's heartbeat
PRESS_SPACING_S = 2.0  # between two presses of a button the server refused
# How often a participant presses a button whose press was refused before it waits (and, if
# the page stays stuck, reloads): Retry per turn, a rating per turn, Send per message.
PRESSES = {"retry": 10, "rate": 3, "resend": 5}
RELOADS = 2  # then the participant gives up: the scenario has shown what it can


@dataclass
class FaultClock:
    """When the scenario's fault last ended: a page is not judged stuck while one is on."""

    active: bool = False
    quiet_since: float = 0.0
    started_at: float | None = None  # the first fault's start, for the time to recover

    def start(self) -> None:
        self.active = True
        if self.started_at is None:
            self.started_at = time.monotonic()

    def end(self) -> None:
        self.active, self.quiet_since = False, time.monotonic()


@dataclass
class Plan:
    """What one participant does: ``turns`` turns, cutting its socket in the middle of the
    replies of ``drops`` (turn -> deltas to read first; 0: right after ``turn_start``)."""

    turns: int
    drops: dict[int, int] = field(default_factory=dict)
    doc_every: int = 2
    think_s: tuple[float, float] = (0.2, 1.0)


def cut(ws: wsclient.LeanSocket) -> None:
    """Abort the connection, with no close frame, as a lost network does."""
    if ws.transport is not None:
        ws.transport.abort()


def closing(ws: wsclient.LeanSocket) -> bool:
    return ws.transport is None or ws.transport.is_closing()


async def open_socket(port: int, path: str) -> wsclient.LeanSocket:
    """bench/wsclient.py's ``connect``, giving up (and closing the connection) after
    ``CONNECT_LIMIT_S``: a server without its database may never answer the handshake."""
    loop = asyncio.get_running_loop()
    key = base64.b64encode(os.urandom(16))
    _, ws = await asyncio.wait_for(
        loop.create_connection(lambda: wsclient.LeanSocket(key), "127.0.0.1", port),
        CONNECT_LIMIT_S,
    )
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode()}",
        "Sec-WebSocket-Version: 13",
        f"Origin: http://127.0.0.1:{port}",
    ]
    assert ws.transport is not None
    ws.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin1"))
    try:
        await asyncio.wait_for(asyncio.shield(ws.upgraded), CONNECT_LIMIT_S)
    except BaseException:
        cut(ws)
        # The handshake's outcome, read so that asyncio does not report it as never read.
        ws.upgraded.add_done_callback(lambda done: done.cancelled() or done.exception())
        raise
    return ws


class Participant:
    def __init__(
        self,
        *,
        marker: str,
        token: str,
        path: str,
        ports: Callable[[], list[int]],
        first_port: int,
        plan: Plan,
        clock: FaultClock,
        stuck_after: float,
    ) -> None:
        self.marker, self.ports, self.port = marker, ports, first_port
        self.path = f"{path}?token={token}"
        self.plan, self.clock, self.stuck_after = plan, clock, stuck_after
        self.log: list[Entry] = []
        self.page = Page()
        self.ws: wsclient.LeanSocket | None = None
        self.changed = asyncio.Event()
        self.attempts = 0
        self.last_progress = time.monotonic()
        self.messages_sent = 0
        self.docs_sent = 0
        self.next_send_at: float | None = None
        self.next_press_at = 0.0
        self.presses: Counter[tuple[str, object]] = Counter()
        self.dropped: set[int] = set()
        self.deltas = 0
        self.last_heartbeat = time.monotonic()
        self.done = False
        self.reloads = 0

    # -- the loop -----------------------------------------------------------------------------
    async def run(self, deadline: float) -> None:
        try:
            while time.monotonic() < deadline and not self.page.closed_for_good:
                if self.ws is None or closing(self.ws):
                    await self._reconnect(deadline)
                    continue
                if self._finished():
                    self.done = True
                    self._record("done")
                    return
                if self.reloads > RELOADS:
                    self._record("gave_up")
                    return
                if not await self._act():
                    await self._pause(0.25)
        finally:
            if self.ws is not None:
                with contextlib.suppress(Exception):
                    await self.ws.close(limit_s=2)

    def _finished(self) -> bool:
        page = self.page
        return (
            page.completed_turns() >= self.plan.turns
            and not page.waiting()
            and page.rating_due is None
            and page.retry_turn is None
            and not page.doc_sending
        )

    async def _act(self) -> bool:
        """Do the next thing the page allows, or reload a page stuck with nothing to do (a
        human's act); False when there is nothing to do now."""
        now = time.monotonic()
        again = self.page.resend_due(now)
        if again is not None:  # the page's own resend of a send refused for now
            self._send({"type": "send", "text": again[1], "client_msg_id": again[0]})
            return True
        if self._next_step(now):
            self.last_progress = now
            return True
        if self._stuck(now):
            self.reloads += 1
            if self.reloads <= RELOADS:
                await self._reload("waited for the server with no fault in progress")
            return True
        self._heartbeat(now)
        return False

    def _next_step(self, now: float) -> bool:
        page = self.page
        if page.waiting():
            return False
        if page.rating_due is not None:
            return self._press("rate", page.rating_due, now, {"turn": page.rating_due, "value": 7})
        if page.retry_turn is not None:  # Retry, as the page offers it
            return self._press("retry", page.retry_turn, now, {})
        if page.unsent is not None:
            # A human's act: the page left the message in its box after a refusal or a lost
            # socket, and the participant presses Send again.
            frame = {"text": page.unsent, "client_msg_id": uuid.uuid4().hex}
            return self._press("resend", page.unsent, now, frame)
        if self._doc_due():
            self._save_document()
            return True
        if page.completed_turns() < self.plan.turns:
            return self._send_next(now)
        return False

    def _stuck(self, now: float) -> bool:
        if self.clock.active or self._finished():
            return False
        return now - max(self.last_progress, self.clock.quiet_since) > self.stuck_after

    # -- what the participant does ------------------------------------------------------------
    def _send_next(self, now: float) -> bool:
        if self.next_send_at is None:
            self.next_send_at = now + random.uniform(*self.plan.think_s)
        if now < self.next_send_at:
            return False
        self.next_send_at = None
        self.messages_sent += 1
        text = f"{self.marker} message {self.messages_sent}: help me write about a cheap trip."
        self._send({"type": "send", "text": text, "client_msg_id": uuid.uuid4().hex})
        return True

    def _press(self, kind: str, key: object, now: float, fields: dict) -> bool:
        """Press a button the page shows (again, a while later, if it was refused)."""
        if now < self.next_press_at or self.presses[kind, key] >= PRESSES[kind]:
            return False
        self.presses[kind, key] += 1
        self.next_press_at = now + PRESS_SPACING_S
        if kind != "rate":
            self._record(kind)
        self._send({"type": "send" if kind == "resend" else kind, **fields})
        return True

    def _doc_due(self) -> bool:
        page = self.page
        due = page.completed_turns() // self.plan.doc_every
        return not page.doc_sending and due > self.docs_sent

    def _save_document(self) -> None:
        self.docs_sent += 1
        text = f"A cheap trip, draft {self.docs_sent} by {self.marker}."
        edit = {"t": int(time.time() * 1000), "type": "insertText", "at": 0,
                "delta": len(text), "len": len(text), "data": text[:200]}  # fmt: skip
        self._send(
            {"type": "doc", "text": text, "version_base": self.page.doc_version, "edits": [edit]}
        )

    def _heartbeat(self, now: float) -> None:
        if self.page.got_state and now - self.last_heartbeat > HEARTBEAT_S:
            self.last_heartbeat = now
            self._send({"type": "heartbeat", "focused": True})

    async def _reload(self, why: str) -> None:
        """A human's act: reload the page (a fresh page, a new socket, ``hello`` with no seq)."""
        self._record("reload", why)
        if self.ws is not None:
            cut(self.ws)
            self.ws = None
        self.page = Page()
        self.attempts = 0
        self.last_progress = time.monotonic()
        self.presses.clear()

    # -- the socket ---------------------------------------------------------------------------
    async def _reconnect(self, deadline: float) -> None:
        if self.ws is not None:
            self._record("lost", str(self.ws.close_code))
            self.page.connection_lost()
            self.ws = None
            self.attempts += 1
        if self.attempts:  # the page's backoff: 0.5 s, 1 s, 2 s, ... up to 10 s, with jitter
            delay = min(10.0, 0.5 * 2 ** (self.attempts - 1)) * random.uniform(0.75, 1.25)
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        for port in self._servers():
            try:
                ws = await open_socket(port, self.path)
            except (OSError, TimeoutError, wsclient.HandshakeError):
                continue
            self.ws, self.port = ws, port
            ws.on_text = self._on_text
            self._record("open", str(port))
            self._send(
                {
                    "type": "hello",
                    "last_seq": self.page.last_seq,
                    "epoch": self.page.epoch,
                    "focused": True,
                }
            )
            return
        self.attempts += 1

    def _servers(self) -> list[int]:
        """The server the participant was on first, then the others at random (a balancer)."""
        others = [p for p in self.ports() if p != self.port]
        random.shuffle(others)
        return [self.port, *others] if self.attempts == 0 else [*others, self.port]

    def _on_text(self, text: str, now: float) -> None:
        if self.ws is None or closing(self.ws):
            return  # read from the socket's buffer after the participant cut it: never seen
        self._record("recv", text)
        frame = json.loads(text)
        self.page.apply(frame)
        self.last_progress = time.monotonic()
        if frame.get("type") == "state":
            self.attempts = 0
            if self.page.resend is not None:  # the page's own resend, as writing.js does
                client_msg_id, message = self.page.resend
                self.page.resend = None
                self._send({"type": "send", "text": message, "client_msg_id": client_msg_id})
        self._maybe_drop(frame)
        self.changed.set()

    def _maybe_drop(self, frame: dict) -> None:
        streaming = self.page.streaming
        if streaming is None or frame.get("type") not in ("turn_start", "delta"):
            return
        self.deltas = 0 if frame["type"] == "turn_start" else self.deltas + 1
        after = self.plan.drops.get(streaming.turn)
        if after is None or streaming.turn in self.dropped or self.deltas < after:
            return
        self.dropped.add(streaming.turn)
        self._record("drop")
        self.page.connection_lost()
        assert self.ws is not None
        cut(self.ws)

    def _send(self, frame: dict) -> None:
        text = json.dumps(frame)
        self._record("send", text)
        self.page.sent(frame)
        if self.ws is not None:
            self.ws.send_text(text)

    def _record(self, kind: str, data: str = "") -> None:
        self.log.append(Entry(kind, data, time.monotonic()))

    async def _pause(self, seconds: float) -> None:
        self.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.changed.wait(), seconds)


# -- fuzzers ----------------------------------------------------------------------------------
@dataclass
class FuzzResult:
    marker: str
    answers: list[Answer] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)  # every frame received, as text


async def fuzzer(
    *, marker: str, token: str, path: str, ports: list[int], corpus: list[Hostile],
    until: Callable[[], bool], answer_s: float = 5.0,
) -> FuzzResult:  # fmt: skip
    """Send the corpus's frames one by one (in a random order, over and over) until ``until()``
    says stop, each after a ``hello`` on a socket of its own."""
    result = FuzzResult(marker)
    rng = random.Random(marker)
    while not until():
        port = rng.choice(ports)
        url = f"ws://127.0.0.1:{port}{path}?token={token}"
        try:
            origin = {"Origin": f"http://127.0.0.1:{port}"}
            async with websockets.connect(
                url, additional_headers=origin, max_size=2**22, open_timeout=15
            ) as ws:
                await _hello(ws, result)
                for hostile in rng.sample(corpus, len(corpus)):
                    if until():
                        return result
                    answer = await _answer(ws, hostile, result, answer_s)
                    result.answers.append(answer)
                    if answer.closed:
                        break
        except (OSError, TimeoutError, websockets.WebSocketException):
            await asyncio.sleep(1.0)
    return result


async def _hello(ws: websockets.ClientConnection, result: FuzzResult) -> None:
    await ws.send(json.dumps({"type": "hello", "last_seq": None, "focused": True}))
    while True:
        text = await asyncio.wait_for(ws.recv(), 30)
        result.frames.append(str(text))
        if json.loads(text).get("type") == "state":
            return


async def _answer(
    ws: websockets.ClientConnection, hostile: Hostile, result: FuzzResult, answer_s: float
) -> Answer:
    """Send one hostile frame and read until its answer: the first frame that is not part of a
    reply (a hostile ``send`` the server accepts starts one)."""
    try:
        await ws.send(hostile.payload)
        deadline = time.monotonic() + answer_s
        while True:
            text = await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
            result.frames.append(str(text))
            frame = json.loads(text)
            if "seq" not in frame:
                error = frame.get("type") == "error"
                return Answer(hostile.name, str(frame.get("code", "")) if error else "")
    except TimeoutError:
        return Answer(hostile.name, None)
    except websockets.ConnectionClosed:
        return Answer(hostile.name, None, closed=True)
