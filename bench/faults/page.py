"""What the writing page holds, applied frame by frame as static/js/writing.js applies them.

The scripted participants decide what to do from it (send, rate, press Retry), and the
accounting replays a participant's recorded frames through it, so both read the frames exactly
as the page does: a numbered frame at or below the last applied seq is ignored, a ``state``
frame replaces the conversation and sets the seq, a reply is rebuilt from its deltas. Plain
replies only: the benchmark's arm has no side-by-side turns and its participants never
regenerate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

Frame = dict[str, Any]


@dataclass
class Shown:
    """One message on the page: its text and, for a reply, its generation and how it ended."""

    text: str
    generation_id: str = ""
    status: str = "done"  # "done", "streaming", "failed" or "stopped"


@dataclass
class Streaming:
    generation_id: str
    turn: int
    text: str = ""


@dataclass
class Anomaly:
    """A reply whose deltas did not add up to the text its ``turn_end`` carried."""

    kind: str  # "duplicated" (the text or part of it arrived twice) or "garbled"
    generation_id: str
    turn: int


# How often a send refused for now is sent again by the page (writing.js's MAX_SEND_RETRIES).
MAX_SEND_RETRIES = 40


@dataclass
class Page:
    last_seq: int | None = None
    epoch: str | None = None  # the epoch last_seq counts in (a Redis restart begins a new one)
    messages: dict[tuple[int, str], Shown] = field(default_factory=dict)
    streaming: Streaming | None = None
    retry_turn: int | None = None
    rating_due: int | None = None
    pending_send: tuple[str, str] | None = None  # (client_msg_id, text) sent, not acknowledged
    unsent: str | None = None  # text left in the input box: the participant must send it again
    resend: tuple[str, str] | None = None  # sent again by the page itself after a reconnect
    # A send refused for now (an error with retry_after): the page sends it again by itself
    # at this time.monotonic(), with its id, as writing.js does.
    resend_at: float | None = None
    send_retries: int = 0
    rating_sending: bool = False
    doc_version: int = 0
    doc_sending: bool = False
    got_state: bool = False
    closed_for_good: bool = False
    anomalies: list[Anomaly] = field(default_factory=list)
    refusals: list[Frame] = field(default_factory=list)  # error frames the page showed

    # -- what the participant may do --------------------------------------------------------
    def completed_turns(self) -> int:
        """Replies shown that neither stream nor failed (writing.js's ``turnsCompleted``)."""
        return sum(
            1
            for (_, role), shown in self.messages.items()
            if role == "assistant" and shown.status in ("done", "stopped")
        )

    def unanswered(self) -> int | None:
        """The latest turn whose message the page shows with no reply, nothing streaming and
        no Retry offered: its participant waits for a reply."""
        if self.streaming is not None or self.retry_turn is not None:
            return None
        turns = [
            turn
            for turn, role in self.messages
            if role == "user" and (turn, "assistant") not in self.messages
        ]
        return max(turns, default=None)

    def waiting(self) -> bool:
        """Whether the page waits for the server before the participant can do anything."""
        return (
            not self.got_state
            or self.streaming is not None
            or self.pending_send is not None
            or self.rating_sending
            or self.unanswered() is not None
        )

    def resend_due(self, now: float) -> tuple[str, str] | None:
        """The send the page sends again by itself now (refused for now), if any."""
        if self.resend_at is None or now < self.resend_at or not self.got_state:
            return None
        self.resend_at = None
        return self.pending_send

    # -- the socket -------------------------------------------------------------------------
    def connection_lost(self) -> None:
        # The page keeps a message it sent in its input box until the state after the
        # reconnect says whether it was stored, and so does a rating sent (writing.js).
        self.got_state = False

    def sent(self, frame: Frame) -> None:
        """The participant sent ``frame`` on the socket."""
        kind = frame.get("type")
        if kind == "send":
            sending = (str(frame.get("client_msg_id", "")), str(frame.get("text", "")))
            if sending != self.pending_send:
                self.send_retries = 0
            self.pending_send = sending
            self.unsent = None
            self.resend_at = None
        elif kind == "rate":
            self.rating_sending = True
        elif kind == "doc":
            self.doc_sending = True

    # -- frames from the server -------------------------------------------------------------
    def apply(self, frame: Frame) -> None:
        seq = frame.get("seq")
        if isinstance(seq, int):
            same_epoch = (frame.get("epoch") or None) == self.epoch
            if same_epoch and self.last_seq is not None and seq <= self.last_seq:
                return  # already applied
            self.last_seq = seq
            self.epoch = frame.get("epoch") or None
        handler = getattr(self, f"_on_{frame.get('type')}", None)
        if handler is not None:
            handler(frame)

    def _on_state(self, f: Frame) -> None:
        generation = f.get("generation") or None
        streaming = self.streaming
        same = (
            streaming is not None
            and generation is not None
            and generation.get("generation_id") == streaming.generation_id
            and f.get("last_seq") == self.last_seq
        )
        keep = streaming.text if same and streaming is not None else ""
        early_user = None
        listed = {(m.get("turn"), m.get("role")) for m in f.get("messages", [])}
        if keep and streaming is not None and (streaming.turn, "user") not in listed:
            early_user = self.messages.get((streaming.turn, "user"))
        self.messages = {}
        for m in f.get("messages", []):
            status = "stopped" if m.get("finish_reason") == "cancelled" else "done"
            self.messages[(m["turn"], m["role"])] = Shown(
                m.get("text", ""), str(m.get("generation_id") or ""), status
            )
        if early_user is not None and streaming is not None:
            self.messages[(streaming.turn, "user")] = early_user
        self.streaming = None
        if generation is not None:
            self._start(int(generation.get("turn", 0)), str(generation["generation_id"]), keep)
        self.rating_due = f.get("rating_due")
        if not self.got_state:  # a rating sent before the reconnect: stored, or due again
            self.rating_sending = False
        self.retry_turn = f.get("retry_turn")
        self.last_seq = f.get("last_seq")
        self.epoch = f.get("epoch") or None
        # A state on a socket that had one (a new epoch) comes before the ack of a send.
        if self.pending_send is not None and not self.got_state:
            client_msg_id = self.pending_send[0]
            stored = any(m.get("client_msg_id") == client_msg_id for m in f.get("messages", []))
            # Not stored yet: the page sends it again with its id (writing.js), by itself.
            self.resend = None if stored else self.pending_send
            self.resend_at = None
            self.unsent = None
            if stored:
                self.pending_send = None
        self.doc_version = int((f.get("document") or {}).get("version") or 0)
        self.doc_sending = False  # a save the server did not confirm is sent again
        self.got_state = True

    def _on_ack(self, f: Frame) -> None:
        if f.get("of") == "send":
            if self.pending_send is not None and self.pending_send[0] == f.get("client_msg_id"):
                self._ensure_user(int(f["turn"]), self.pending_send[1])
                self.pending_send = None
        elif f.get("of") == "rate":
            self.rating_sending = False
            self.rating_due = None

    def _on_turn_start(self, f: Frame) -> None:
        self._ensure_user(int(f["turn"]), str(f.get("user_text", "")))
        self.retry_turn = None
        self._start(int(f["turn"]), str(f["generation_id"]), "")

    def _on_delta(self, f: Frame) -> None:
        if self.streaming is not None:
            self.streaming.text += str(f.get("text", ""))
            self.messages[(self.streaming.turn, "assistant")].text = self.streaming.text

    def _on_turn_end(self, f: Frame) -> None:
        turn, generation_id, text = int(f["turn"]), str(f["generation_id"]), str(f["text"])
        streaming = self.streaming
        if streaming is not None and streaming.generation_id == generation_id:
            self._check_rebuilt(streaming, text)
            self.streaming = None
        status = "stopped" if f.get("finish_reason") == "cancelled" else "done"
        self.messages[(turn, "assistant")] = Shown(text, generation_id, status)

    def _on_turn_error(self, f: Frame) -> None:
        shown = self.messages.get((int(f["turn"]), "assistant"))
        if shown is not None and shown.generation_id == f.get("generation_id"):
            shown.status = "failed"
        if self.streaming is not None and self.streaming.generation_id == f.get("generation_id"):
            self.streaming = None
        self.retry_turn = int(f["turn"])

    def _on_turn_withdrawn(self, f: Frame) -> None:
        turn = int(f["turn"])
        shown = self.messages.get((turn, "assistant"))
        if shown is not None and shown.generation_id == f.get("generation_id"):
            del self.messages[(turn, "assistant")]
        if self.streaming is not None and self.streaming.generation_id == f.get("generation_id"):
            self.streaming = None
        if (turn, "assistant") not in self.messages:
            self.messages.pop((turn, "user"), None)

    def _on_rating_due(self, f: Frame) -> None:
        self.rating_due = int(f["turn"])

    def _on_doc_saved(self, f: Frame) -> None:
        self.doc_version = int(f.get("version") or 0)
        self.doc_sending = False

    def _on_error(self, f: Frame) -> None:
        code = f.get("code")
        if code in ("unauthorized", "not_writing"):
            self.closed_for_good = True
            return
        if code == "not_generating":
            return
        of = f.get("of")
        retry_after = f.get("retry_after")
        retryable = of == "send" and self.pending_send is not None and retry_after is not None
        if retryable and self.send_retries < MAX_SEND_RETRIES:
            self.send_retries += 1
            self.resend_at = time.monotonic() + min(30.0, float(retry_after or 3.0))
            return
        self.refusals.append(f)
        if of == "send" and self.pending_send is not None:
            self.unsent = self.pending_send[1]
            self.pending_send = None
        elif of == "rate":
            self.rating_sending = False
        elif of == "doc":
            self.doc_sending = False

    # -- helpers ----------------------------------------------------------------------------
    def _ensure_user(self, turn: int, text: str) -> None:
        self.messages.setdefault((turn, "user"), Shown(text))

    def _start(self, turn: int, generation_id: str, text: str) -> None:
        self.streaming = Streaming(generation_id, turn, text)
        self.messages[(turn, "assistant")] = Shown(text, generation_id, "streaming")

    def _check_rebuilt(self, streaming: Streaming, final: str) -> None:
        rebuilt = streaming.text
        if rebuilt == final:
            return
        # A reply's first token is sent at once: a reply that ends with nothing shown lost it.
        kind = "duplicated" if len(rebuilt) > len(final) and final in rebuilt else "garbled"
        if kind == "garbled" and len(rebuilt) > len(final) and rebuilt.startswith(final[:20]):
            kind = "duplicated"  # text past the reply's end: a part of it came twice
        self.anomalies.append(Anomaly(kind, streaming.generation_id, streaming.turn))
