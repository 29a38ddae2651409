"""A socket's view of its chat: enough to begin a reply before the database stores the message.

The socket that receives a message starts the model call at once, with the history it
expects (studyapp/writing/relay.py, ``EarlyReply``), if the chat's rules allow the message
now. It asks the rules (``services.send_refusal``) about this view: the database's state read
by its hello, advanced by every numbered frame it relays since (the frame store's, the one
source of what happened after). Only a guess that saves time: the relay checks the stored turn
and withdraws a reply begun for another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from studyapp.realtime.framestore import END_TYPES, START_TYPES, Frame
from studyapp.sidebyside.selectors import side_by_side_due
from studyapp.studies.spec import model_context_has
from studyapp.writing.selectors import ChatState
from studyapp.writing.services import send_refusal

NO_LIMIT = 2**31 - 1  # a study file without max_turns


@dataclass
class ChatView:
    config: dict[str, Any]
    history: list[dict[str, str]]
    spec: dict[str, Any]
    streaming: bool  # a generation is in flight (a reply, a pair or a regeneration)
    unanswered: bool  # the latest user turn has no reply (streaming, failed or to pick)
    choosing: bool  # a side-by-side pair awaits the pick
    due: int | None  # the turn whose rating is due
    # client_msg_ids of the user messages known to be stored: a resend of one is no new turn.
    stored_ids: set[str] = field(default_factory=set)
    # A reply ended for a turn this view never saw begin: a message was stored after the
    # hello's read, so the view can no longer tell a new message from a resend.
    missed: bool = False

    @classmethod
    def read(cls, state: ChatState, *, streaming: bool) -> ChatView:
        """The view of a socket whose hello read ``state`` (``streaming``: the store had a
        generation in flight)."""
        return cls(
            config=state.condition_config,
            history=state.history,
            spec=state.spec,
            streaming=streaming,
            unanswered=state.pending_turn is not None or state.pair is not None,
            choosing=state.pair is not None,
            due=state.rating_due,
            stored_ids={m["client_msg_id"] for m in state.messages if m.get("client_msg_id")},
        )

    # -- the facts the rules ask (services.SendFacts) -------------------------------------------
    def pending(self) -> bool:
        return self.unanswered

    def choice_pending(self) -> bool:
        return self.choosing

    def rating_due(self) -> int | None:
        return self.due

    def next_turn(self) -> int:
        return sum(m["role"] == "user" for m in self.history) + 1

    def max_turns(self) -> int:
        return int((self.spec.get("writing") or {}).get("max_turns", NO_LIMIT))

    # -- what the socket asks -------------------------------------------------------------------
    def next_call(self, text: str, client_msg_id: str = "") -> list[dict[str, str]] | None:
        """The history a reply to ``text`` would be given, if it may begin now: the rules
        allow the message, it is no resend, nothing streams, and its reply is a single one."""
        if self.streaming or self.missed or not self.config or client_msg_id in self.stored_ids:
            return None
        if model_context_has(self.spec, "document"):
            return None  # another tab may have saved a newer version: the stored turn decides
        if send_refusal(self) is not None:
            return None
        if side_by_side_due(spec=self.spec, turn=self.next_turn()):
            return None  # its two candidates make calls of their own
        return [*self.history, {"role": "user", "content": text}]

    def observe(self, frame: Frame) -> None:
        """Advance the view by a numbered frame the socket relays."""
        kind = frame.get("type")
        if kind in START_TYPES:
            self.streaming = True
        elif kind in END_TYPES:
            self.streaming = False
        if frame.get("regenerate"):  # a new sample of the latest reply: the same turn (§9)
            if kind == "turn_end" and self.history:
                self.history[-1] = {"role": "assistant", "content": frame.get("text", "")}
        elif kind in START_TYPES:
            self.unanswered = True
            user = {"role": "user", "content": frame.get("user_text", "")}
            if not self.history or self.history[-1] != user:
                self.history.append(user)
        elif kind in ("turn_end", "pair_chosen"):
            self.missed = self.missed or int(frame.get("turn") or 0) >= self.next_turn()
            self.unanswered = self.choosing = False
            self.history.append({"role": "assistant", "content": frame.get("text", "")})
        elif kind == "pair_end":
            self.choosing = True
        elif kind == "turn_withdrawn":  # a reply begun early whose message was not stored
            self.unanswered = False
            if self.history and self.history[-1]["role"] == "user":
                self.history.pop()
        elif kind == "rating_due":
            self.due = frame.get("turn")
        elif kind == "rating_given":  # another tab gave it
            self.due = None
