"""The writing page's socket (protocol v1, docs/protocol.md).

Thin by design: authenticate by the signed token, parse and validate each frame, call one
service, and relay the participation's numbered frames. Generations run in the relay, never in
``receive()``, so a "stop" is handled at once and a dropped socket loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Awaitable
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from studyapp.clientlimits import socket_wait
from studyapp.dbunavailable import UNAVAILABLE_ERRORS
from studyapp.feedback.ratings import RatingRefused, interaction_rating_submit
from studyapp.operations.gauges import FRAMES_REPLAYED, SOCKETS_OPEN
from studyapp.participants.activity import active_increment, activity_record
from studyapp.participants.models import EventKind
from studyapp.realtime import framebus, generations, timeline
from studyapp.realtime.dbcalls import in_db_worker
from studyapp.realtime.dbretry import db_retry
from studyapp.realtime.eagerstart import start_now
from studyapp.realtime.framestore import Frame, GenerationBusy, frame_store
from studyapp.realtime.outage import Outage, redis_unavailable
from studyapp.realtime.redisretry import RedisAway, redis_retry
from studyapp.writing import frames as out
from studyapp.writing import protocol, relay
from studyapp.writing.alternatives import relay as alternatives
from studyapp.writing.alternatives.handlers import AlternativesHandlers
from studyapp.writing.chatview import ChatView
from studyapp.writing.protocol import ProtocolError, error_frame
from studyapp.writing.selectors import (
    chat_state,
    page_settings,
    participation_next_url,
    sent_message_turn,
    socket_access,
)
from studyapp.writing.services import (
    TurnPlan,
    WritingRefused,
    document_save,
    message_send,
    turn_retry,
)
from studyapp.writing.timelimits import writing_stay, writing_time_check

log = logging.getLogger(__name__)
# This process's sockets that could not read the store: one warning per outage for them all.
_store_outage = Outage(log, "writing socket frames")
# A send waits out a short Redis outage (studyapp/realtime/redisretry.py): one warning for all.
_send_outage = Outage(log, "writing socket sends")
# Seconds after which the page sends again, by itself, a send refused for now (protocol §5).
SEND_RETRY_AFTER_S = 3

# An alias with no entry in CHANNEL_LAYERS: channels then gives the consumer no channel layer.
NO_CHANNEL_LAYER = "none"
# The close code a consumer ended by an error is released with (no close frame was seen).
CLOSE_ABNORMAL = 1006


class _SocketClosed(Exception):
    """The page's socket closed before a frame could be sent on it (logged where it was met)."""


class WritingConsumer(AlternativesHandlers, AsyncWebsocketConsumer):
    # No channel layer: frames reach the socket through framebus, and nothing sends to a
    # writing socket over the layer. Listening on it anyway cost every socket a receive task;
    # with channels_redis about one socket in a few hundred never finished closing (its
    # cancelled receive went on polling Redis), which also held up the server's shutdown.
    channel_layer_alias = NO_CHANNEL_LAYER
    participation_id: int | None = None
    public_id = ""
    # Highest seq sent on this socket; None until hello (frames before it are replayed by it).
    sent_seq: int | None = None
    epoch: str | None = None  # the epoch of sent_seq (studyapp/realtime/framestore.py)
    # What the socket knows of its chat, to begin a reply before the database stores it.
    view: ChatView | None = None
    focused = False
    last_tick: float | None = None
    frame_pump: asyncio.Task[None] | None = None
    closed = False  # a send found the socket closed: its disconnect comes next
    released = False  # the disconnect path has run
    # The socket's last presence report, still being written (see ``_activity``).
    activity_pending: asyncio.Task[None] | None = None
    # The latest saved document version, and its announcement to the other tabs.
    doc_version_due: int | None = None
    doc_publish: asyncio.Future[None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.inbox: asyncio.Queue[list[Frame] | None] = asyncio.Queue()
        self.delivering = asyncio.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # An error that ended the consumer skipped websocket.disconnect: release anyway.
            await self.disconnect(CLOSE_ABNORMAL)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' dispatch first closes stale database connections, on Django's one
        # thread-sensitive thread, for every message: a hop to that thread for each frame the
        # page sends, queued behind every other socket's. This consumer never uses that
        # thread's connection; ``in_db_worker`` closes stale ones in the worker it uses.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # -- connection ---------------------------------------------------------------------------
    async def connect(self) -> None:
        slug = self.scope["url_route"]["kwargs"]["slug"]
        query = parse_qs(self.scope.get("query_string", b"").decode("latin1"))
        token = (query.get("token") or [""])[0]
        # Counted before the database is asked anything: a flood of handshakes costs it nothing.
        wait_s = await socket_wait(self.scope, rate=settings.SOCKET_RATE_LIMIT)
        if wait_s is not None:
            await self._refuse_connect(
                "rate_limited", protocol.CLOSE_RATE_LIMITED, retry_after=wait_s
            )
            return
        try:
            access = await in_db_worker(socket_access)(slug=slug, token=token)
        except UNAVAILABLE_ERRORS as exc:
            log.warning("writing socket refused, the database is unavailable: %r", exc)
            await self._refuse_connect("unavailable", protocol.CLOSE_UNAVAILABLE)
            return
        if access.error is not None:
            code = (
                protocol.CLOSE_NOT_WRITING
                if access.error == "not_writing"
                else protocol.CLOSE_UNAUTHORIZED
            )
            extra = {"next_url": access.next_url} if access.next_url else {}
            await self._refuse_connect(access.error, code, **extra)
            return
        await self.accept()
        self.participation_id = access.participation_id
        self.public_id = access.public_id
        SOCKETS_OPEN.inc()

    async def _refuse_connect(self, code: str, close_code: int, **extra: Any) -> None:
        """Accept, say why in one error frame, and close (docs/protocol.md §1)."""
        await self.accept()
        with contextlib.suppress(_SocketClosed, OSError):  # the page left first: nothing to say
            await self._send(error_frame(code, **extra))
            await self.close(code=close_code)

    async def disconnect(self, code: int) -> None:
        if self.participation_id is None or self.released:
            return
        self.released = True
        SOCKETS_OPEN.dec()
        if self.frame_pump is not None:
            # Not kept: a cancelled task holds its error, whose traceback holds this consumer,
            # a cycle that only the garbage collector would free.
            pump, self.frame_pump = self.frame_pump, None
            pump.cancel()
            try:
                await framebus.unwatch(self.public_id, self._frames_in)
            except Exception:  # Redis is unreachable: a stale watcher costs only a publish
                log.warning("writing socket: could not stop watching", exc_info=True)
        if self.sent_seq is not None:
            # In the background too, for its error handling: awaited just below.
            await self._activity(EventKind.DISCONNECT, data={"code": code}, background=True)
        await self._activity_flush()

    # -- frames from the page -----------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.participation_id is None:
            return
        with contextlib.suppress(_SocketClosed):  # websocket.disconnect comes next
            await self._answer(text_data, bytes_data)

    async def _answer(self, text_data: str | None, bytes_data: bytes | None) -> None:
        """Handle one frame of the page; a refused one is answered with an error frame."""
        kind = None
        try:
            frame = protocol.decode(text_data, bytes_data)
            kind = frame["type"]
            handler = self.HANDLERS.get(kind)
            if handler is None:
                raise ProtocolError("unknown_type", f"Unknown frame type {kind!r}.", field="type")
            if self.sent_seq is None and kind != "hello":
                raise ProtocolError("hello_required")
            await handler(self, frame)
        except _SocketClosed:
            raise
        except ProtocolError as exc:
            await self._send(error_frame(exc.code, exc.message, of=kind, field=exc.field))
        except (WritingRefused, RatingRefused) as exc:
            await self._refused(exc.code, exc.message, kind)
        except GenerationBusy:  # a reply began in another tab between our check and our start
            msg_id = frame.get("client_msg_id") if kind == "send" else None
            await self._send(self._busy(kind, msg_id))
        except RedisAway as exc:  # Redis stayed away past the wait: the page sends it again
            log.warning("writing socket: %s frame not handled, Redis unavailable: %s", kind, exc)
            await self._send(error_frame("unavailable", of=kind, retry_after=SEND_RETRY_AFTER_S))
        except UNAVAILABLE_ERRORS as exc:  # the database's outage, not a fault of ours: one line
            log.warning("writing socket: %s frame not handled, database unavailable: %r", kind, exc)
            await self._send(error_frame("unavailable", of=kind))
        except Exception:
            log.exception("writing socket: %s frame failed", kind)
            await self._send(error_frame("server_error", of=kind))

    @staticmethod
    def _busy(kind: str | None, client_msg_id: object = None) -> dict[str, Any]:
        """``busy``; for a send with an id, with ``retry_after``: the page sends it again."""
        if client_msg_id and isinstance(client_msg_id, str):
            return error_frame("busy", of=kind, retry_after=SEND_RETRY_AFTER_S)
        return error_frame("busy", of=kind)

    async def _refused(self, code: str, message: str, kind: str | None) -> None:
        extra = {}
        if code == "not_writing":
            next_url = await in_db_worker(participation_next_url)(
                participation_id=self.participation_id
            )
            extra = {"next_url": next_url} if next_url else {}
        await self._send(error_frame(code, message, of=kind, **extra))

    async def on_hello(self, frame: dict[str, Any]) -> None:
        hello = protocol.parse_hello(frame)
        if self.frame_pump is None:
            # Watch before reading anything: a frame numbered after the reads below arrives
            # live, one numbered before is in the replay.
            await framebus.watch(self.public_id, self._frames_in)
            self.frame_pump = asyncio.get_running_loop().create_task(self._frames_pump())
        # Live frames wait until the replay below has been sent and sets sent_seq.
        async with self.delivering:
            await self._hello_replay(hello)
        first = self.last_tick is None
        self.focused, self.last_tick = hello.focused, time.monotonic()
        opened = hello.last_seq is None and first
        kind = EventKind.CONNECT if opened else EventKind.RECONNECT
        # Not awaited: the page's first message must not wait for this write. Opening the
        # page is the participant's doing; a reconnect is the network's.
        await self._activity(
            kind, data={"last_seq": hello.last_seq}, background=True, acted=opened
        )

    async def _hello_replay(self, hello: protocol.Hello) -> None:
        state = await in_db_worker(chat_state)(participation_id=self.participation_id)
        snapshot = await frame_store().snapshot(self.public_id)
        # A seq of another epoch says nothing about what the client holds of this one.
        trusted = hello.epoch is None or hello.epoch == snapshot.epoch
        resume = alternatives.resume_plan(
            state=state, snapshot=snapshot, client_seq=hello.last_seq if trusted else None
        )
        await self._send(
            {
                "type": "state",
                "protocol": protocol.PROTOCOL_VERSION,
                "messages": state.messages,
                "turns_completed": state.turns_completed,
                "rating_due": state.rating_due,
                "generation": resume.generation,
                "retry_turn": resume.retry_turn,
                "pair": state.pair,
                "regenerate": state.regenerate,
                "time_left": state.time_left,
                "document": {"text": state.document_text, "version": state.document_version},
                "last_seq": resume.last_seq,
                "epoch": snapshot.epoch,
                **page_settings(spec=state.spec),
                "limits": {
                    "max_message_chars": settings.MAX_MESSAGE_CHARS,
                    "max_document_chars": settings.MAX_DOCUMENT_CHARS,
                    "max_frame_bytes": settings.MAX_WS_FRAME_BYTES,
                },
            }
        )
        self.sent_seq, self.epoch = resume.last_seq, snapshot.epoch
        self.view = ChatView.read(state, streaming=resume.generation is not None)
        FRAMES_REPLAYED.inc(len(resume.frames))
        for replayed in resume.frames:
            await self._deliver(replayed)

    async def on_send(self, frame: dict[str, Any]) -> None:
        send = protocol.parse_send(frame)
        timeline.mark("send_received", self.public_id)
        # When the rules allow the message by this socket's view of the chat, the reply begins
        # at once, with the history the socket expects, while the database stores the message;
        # the reply is withdrawn if the database refuses it or stores another turn.
        view = self.view
        history = view.next_call(send.text, send.client_msg_id) if view is not None else None
        early = None
        if view is not None and history is not None:
            early = await self._early_start(view, history, send.text)
        # Otherwise check before anything is stored: a regeneration in flight has no
        # unanswered turn in the database, so message_send would store a message it cannot
        # answer.
        if early is None and await redis_retry(
            functools.partial(relay.generation_in_flight, self.public_id), outage=_send_outage
        ):
            await self._busy_unless_stored(send.client_msg_id)
            return
        store = functools.partial(
            in_db_worker(message_send),
            participation_id=self.participation_id,
            text=send.text,
            client_msg_id=send.client_msg_id,
        )
        try:
            # A message with an id is stored at most once, so a database outage is waited out
            # (the early reply's marker kept alive) instead of asking for a resend by hand.
            plan = await (db_retry(store, key=self.public_id) if send.client_msg_id else store())
        except asyncio.CancelledError:
            if early is not None:
                early.abandon()
            raise
        except Exception as exc:
            if early is not None:
                await early.withdraw()
            # An unanswered turn is either still streaming (busy) or failed (retry first).
            code = exc.code if isinstance(exc, WritingRefused) else ""
            if code == "retry_required" and await relay.generation_in_flight(self.public_id):
                raise ProtocolError("busy") from exc
            raise
        timeline.mark("turn_stored", self.public_id)
        if early is not None and not early.adopt(plan):
            await early.withdraw()
            early = None
        if view is not None and send.client_msg_id:
            # Before the reply starts: should it not, the page's resend is no new turn.
            view.stored_ids.add(send.client_msg_id)
        if early is None and plan.starts_reply:
            await self._reply_start(plan)
        await self._send(
            out.ack(
                "send",
                turn=plan.turn,
                client_msg_id=send.client_msg_id,
                duplicate=plan.duplicate,
            )
        )

    async def _early_start(
        self, view: ChatView, history: list[dict[str, str]], text: str
    ) -> relay.EarlyReply | None:
        """Open the model call and begin the reply early; None when the call cannot open.

        Redis being away for a moment (a restart) is waited out, not the page's to redo. Only
        the launch is tried again: the call is opened once, and discarded once if the reply
        never begins (Redis stayed away, another reply is in flight, the handler was
        cancelled)."""
        call = generations.call_open(view.config, history, key=self.public_id)
        timeline.mark("model_call_opened", self.public_id)
        if call is None:
            return None
        launch = functools.partial(
            relay.early_start,
            participation_id=self.participation_id,
            public_id=self.public_id,
            user_text=text,
            call=call,
        )
        try:
            return await redis_retry(launch, outage=_send_outage)
        except BaseException:
            generations.call_discard(call)
            raise

    @staticmethod
    async def _reply_start(plan: TurnPlan) -> None:
        """Start the stored turn's reply, waiting out a short Redis outage. Past the wait,
        ``RedisAway`` answers the send ``unavailable`` with ``retry_after``: the message is
        stored, and the page's resend starts its reply (``TurnPlan.reply_due``)."""
        await redis_retry(functools.partial(alternatives.reply_start, plan), outage=_send_outage)

    async def _busy_unless_stored(self, client_msg_id: str) -> None:
        """Answer a send that came while a reply streams: a resend of a stored message (the
        page's own, after a reconnect whose state was read before the message was stored) is
        acknowledged as the duplicate it is, so the page does not ask its participant to send
        it again as a new turn; anything else is ``busy``."""
        turn = client_msg_id and await in_db_worker(sent_message_turn)(
            participation_id=self.participation_id, client_msg_id=client_msg_id
        )
        if not turn:
            # The reply in flight may be this very message's, begun early on a process that
            # died before storing it: the page sends it again by itself, under its id, until
            # that reply's marker expires and it is withdrawn (studyapp/writing/lost.py).
            await self._send(self._busy("send", client_msg_id))
            return
        if self.view is not None:
            self.view.stored_ids.add(client_msg_id)
        await self._send(out.ack("send", turn=turn, client_msg_id=client_msg_id, duplicate=True))

    async def on_retry(self, frame: dict[str, Any]) -> None:
        if await relay.generation_in_flight(self.public_id):
            raise ProtocolError("busy")
        plan = await in_db_worker(turn_retry)(participation_id=self.participation_id)
        await alternatives.reply_start(plan)
        await self._send(out.ack("retry", turn=plan.turn))

    async def on_stop(self, frame: dict[str, Any]) -> None:
        if await generations.generation_stop(self.public_id):
            return
        # A reply whose process died ends now, with a turn_error this socket receives.
        if not await relay.generation_lost_resolve(self.public_id):
            raise ProtocolError("not_generating")

    async def on_rate(self, frame: dict[str, Any]) -> None:
        rate = protocol.parse_rate(frame)
        await in_db_worker(interaction_rating_submit)(
            participation_id=self.participation_id, turn=rate.turn, value=rate.value
        )
        if self.view is not None:
            self.view.due = None
        await self._send(out.ack("rate", turn=rate.turn, value=rate.value))
        # Every other tab closes its rating box (numbered like any chat frame).
        await self._publish([out.rating_given(turn=rate.turn)])

    async def on_doc(self, frame: dict[str, Any]) -> None:
        doc = protocol.parse_doc(frame)
        saved = await in_db_worker(document_save)(
            participation_id=self.participation_id,
            text=doc.text,
            version_base=doc.version_base,
            edits=doc.edits,
        )
        answer = {"type": "doc_saved", "version": saved.version, "conflict": saved.conflict}
        if saved.replaced is not None:
            answer["replaced"] = saved.replaced
        await self._send(answer)
        if saved.changed:  # the other tabs load the new version unless they hold edits
            self.doc_version_due = saved.version
            if self.doc_publish is None or self.doc_publish.done():
                self.doc_publish = start_now(self._doc_version_publish(), "doc-version")

    async def _doc_version_publish(self) -> None:
        """Announce the latest saved version; saves made while it is published are announced
        by their latest version only."""
        sent = None
        while self.doc_version_due != sent:
            sent = self.doc_version_due
            await self._publish([out.doc_version(version=sent)])

    async def _publish(self, frames: list[Frame]) -> None:
        """Tell every socket of the participation; the frame's own answer is already sent."""
        try:
            await framebus.publish(self.public_id, frames)
        except Exception:  # the store is unreachable: the other tabs catch up on reconnect
            log.warning("writing socket: %s not published", frames[0]["type"], exc_info=True)

    async def on_focus(self, frame: dict[str, Any]) -> None:
        await self._activity(EventKind.FOCUS, focused_after=True)

    async def on_blur(self, frame: dict[str, Any]) -> None:
        await self._activity(EventKind.BLUR, focused_after=False, focus_lost=self.focused)

    async def on_heartbeat(self, frame: dict[str, Any]) -> None:
        focused = protocol.parse_heartbeat(frame)
        acted = protocol.heartbeat_active(frame)
        await self._activity(EventKind.HEARTBEAT, focused_after=focused, acted=acted)

    async def on_time(self, frame: dict[str, Any]) -> None:
        left = await in_db_worker(writing_time_check)(participation_id=self.participation_id)
        await self._send({"type": "time_left", **left})

    async def on_stay(self, frame: dict[str, Any]) -> None:
        left = await in_db_worker(writing_stay)(participation_id=self.participation_id)
        await self._send({"type": "time_left", "of": "stay", **left})

    HANDLERS = {
        "hello": on_hello,
        "send": on_send,
        "retry": on_retry,
        "stop": on_stop,
        "rate": on_rate,
        "doc": on_doc,
        "focus": on_focus,
        "blur": on_blur,
        "heartbeat": on_heartbeat,
        "time": on_time,
        "stay": on_stay,
        "choose": AlternativesHandlers.on_choose,
        "regenerate": AlternativesHandlers.on_regenerate,
    }

    # -- frames from the relay ----------------------------------------------------------------
    def _frames_in(self, frames: list[Frame] | None) -> None:
        if self._sendable_now(frames):
            start_now(self._frames_out(frames), "writing-frames")
            return
        self.inbox.put_nowait(frames)

    def _sendable_now(self, frames: list[Frame] | None) -> bool:
        """Whether ``frames`` can be sent in the bus's own turn of the event loop (the
        generation's) instead of the pump's next one, a turn of a loop that may be busy for
        tens of ms: they are the reply's next text, and nothing is queued or being sent before
        them. Other frames keep their place behind what a handler sends in its own turn (an
        ack before the ``turn_start`` of the reply it started), and a gap is filled by the
        pump, from the store."""
        if not frames or self.frame_pump is None or self.sent_seq is None:
            return False
        if not self.inbox.empty() or self.delivering.locked():
            return False
        head = frames[0]
        return (
            head["seq"] == self.sent_seq + 1
            and head.get("epoch") == self.epoch
            and all(frame["type"] == "delta" for frame in frames)
        )

    async def _frames_pump(self) -> None:
        """Send the frames the bus hands over, in order, beside the handlers of the page's
        frames (a handler that waits for the database does not hold the reply back)."""
        while True:
            await self._frames_out(await self.inbox.get())

    async def _frames_out(self, frames: list[Frame] | None) -> None:
        try:
            async with self.delivering:
                if frames is None:  # the bus may have missed some: take them from the store
                    if self.sent_seq is None:
                        return
                    snapshot = await frame_store().snapshot(self.public_id)
                    if self.epoch is not None and snapshot.epoch != self.epoch:
                        # Redis lost what this socket sent (a restart), perhaps the end of a
                        # reply that failed meanwhile: the page takes a fresh state.
                        await self._hello_replay(
                            protocol.Hello(last_seq=None, focused=self.focused)
                        )
                        return
                    frames = snapshot.frames
                for frame in frames:
                    await self._deliver(frame)
        except _SocketClosed:  # logged where it was met; the disconnect path ends the pump
            pass
        except Exception as exc:
            if redis_unavailable(exc):  # the next frame or resync fills the gap
                _store_outage.failed(exc)
            else:
                log.exception("writing socket %s: frames not delivered", self.public_id)

    async def _deliver(self, frame: Frame) -> None:
        """Send a numbered frame once, in order: drop what was sent, backfill a gap."""
        if self.sent_seq is None:
            return
        if frame.get("epoch") != self.epoch and not await self._follow_epoch(frame):
            return
        if frame["seq"] <= self.sent_seq:
            return
        if frame["seq"] > self.sent_seq + 1:
            # The bus skipped something (see studyapp/realtime/framebus.py): take it from the store.
            for missed in await frame_store().frames_after(self.public_id, self.sent_seq):
                if missed["seq"] < frame["seq"] and missed.get("epoch") == self.epoch:
                    FRAMES_REPLAYED.inc()
                    await self._send(missed)
                    if self.view is not None:
                        self.view.observe(missed)
        await self._send(frame)
        if frame["type"] == "delta":
            timeline.mark("delta_sent", self.public_id)
        self.sent_seq = frame["seq"]
        if self.view is not None:
            self.view.observe(frame)

    async def _follow_epoch(self, frame: Frame) -> bool:
        """Whether ``frame``, of another epoch than what this socket sent (the store's counter
        was lost or rolled back), may follow it. A socket that has sent no numbered frame takes
        the epoch as it comes; any other sends the page a fresh ``state`` and replay, as for a
        hello, and then goes on in the store's epoch."""
        if self.epoch is None and self.sent_seq == 0:
            self.epoch = frame.get("epoch")
            return True
        await self._hello_replay(protocol.Hello(last_seq=None, focused=self.focused))
        return frame.get("epoch") == self.epoch

    # -- helpers ------------------------------------------------------------------------------
    async def _send(self, frame: dict[str, Any]) -> None:
        if self.closed:
            raise _SocketClosed
        try:
            await self.send(text_data=json.dumps(frame))
        except OSError as exc:  # how an ASGI server says the socket has closed
            self.closed = True
            log.info("writing socket %s closed before a %s frame", self.public_id, frame["type"])
            raise _SocketClosed from exc

    async def _activity(
        self,
        kind: EventKind,
        *,
        focused_after: bool | None = None,
        focus_lost: bool = False,
        acted: bool = False,
        data: dict[str, Any] | None = None,
        background: bool = False,
    ) -> None:
        """Record a presence report; with ``background``, return before it is written (a
        later report, or the disconnect, waits for it: they are stored in order)."""
        now = time.monotonic()
        delta = active_increment(since=self.last_tick, now=now, focused=self.focused)
        self.last_tick = now
        if focused_after is not None:
            self.focused = focused_after
        await self._activity_flush()
        record = in_db_worker(activity_record)
        fields = {
            "kind": kind,
            "active_delta": delta,
            "focus_lost": focus_lost,
            "acted": acted,
            "data": data,
        }
        if not background:
            await record(participation_id=self.participation_id, **fields)
            return
        self.activity_pending = asyncio.get_running_loop().create_task(
            self._activity_background(record(participation_id=self.participation_id, **fields))
        )

    async def _activity_background(self, write: Awaitable[None]) -> None:
        # Logged here only: nothing that awaits this handles its error.
        try:
            await write
        except UNAVAILABLE_ERRORS as exc:  # one line: the cause is the database's, not ours
            log.warning("writing socket %s: presence not recorded: %r", self.public_id, exc)
        except Exception:
            log.exception("writing socket %s: presence not recorded", self.public_id)

    async def _activity_flush(self) -> None:
        """Wait for the presence report still being written, if any."""
        pending, self.activity_pending = self.activity_pending, None
        if pending is not None:
            # Shielded: a handler cancelled meanwhile must not cancel the write.
            await asyncio.shield(pending)
