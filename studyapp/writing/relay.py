"""The writing app's replies on top of the real-time generations (studyapp/realtime).

A turn's reply is a generation (:mod:`studyapp.realtime.generations`): it streams the model's
reply as numbered frames to every socket of the participation. This module says what the
generation answers and what its end stores: the turn is written to the database once, when it
ends (retried while the database is unreachable: studyapp/realtime/dbretry.py), and its end
frames say whether it was stored, failed or is due a rating. A socket may begin a reply before
the database has stored its user message (:class:`EarlyReply`): it streams at once, and is
recorded only if the stored turn is the one it was begun for, else withdrawn
(``turn_withdrawn``). Replies still streaming when the server stops end as failed turns the
participant may retry; those of a process that died are ended by another
(studyapp/writing/lost.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from studyapp.realtime.dbcalls import in_db_worker
from studyapp.realtime.dbretry import db_retry
from studyapp.realtime.framebus import Lease
from studyapp.realtime.framestore import Frame
from studyapp.realtime.generations import (
    Generation,
    ModelCall,
    ServerStopping,
    generation_end,
    generation_marker,
    generation_timeout_s,
)
from studyapp.realtime.generations import generation_launch as _generation_launch
from studyapp.writing import frames as out
from studyapp.writing import lost
from studyapp.writing.services import TurnPlan, failed_turn_settle, turn_record

log = logging.getLogger(__name__)

MODEL_ERROR_MESSAGE = (
    "Sorry, the assistant could not reply just now. Please press Retry to try again."
)
TECHNICAL_PROBLEM_MESSAGE = (
    "Sorry, the assistant has a technical problem and cannot continue. You will now be taken "
    "to the end of the study, where you get your completion code."
)


async def generation_start(plan: TurnPlan) -> str:
    """Mark a generation in flight for ``plan``, announce it, and start it as its own task."""
    start = out.turn_start(turn=plan.turn, user_text=plan.user_text)
    return await generation_launch(plan, start, _generation_run)


Runner = Callable[[Any, Lease, asyncio.Event], Coroutine[Any, Any, None]]


async def generation_launch(
    plan: TurnPlan, start: Frame, run: Runner, marker_extra: dict[str, Any] | None = None
) -> str:
    """Mark a generation in flight, publish its ``start`` frame (given its ``generation_id``)
    and run ``run(plan, lease, stop_event)`` as its own task (the lease writes its frames).
    Side-by-side pairs and regenerations (studyapp/writing/alternatives) start through here
    too."""
    generation_id, _ = await _launch(plan, start, run, marker_extra)
    return generation_id


async def _launch(
    plan: TurnPlan, start: Frame, run: Runner, marker_extra: dict[str, Any] | None = None
) -> tuple[str, asyncio.Task[None]]:
    marker = {"turn": plan.turn, **(marker_extra or {})}
    return await _generation_launch(plan.public_id, marker, start, functools.partial(run, plan))


class EarlyReply:
    """A reply begun before the database has stored its user message.

    The socket starts it the moment a message arrives, with the turn and history it expects
    (:func:`early_start`), so the participant sees the model's first token without waiting for
    the database. The generation streams at once but records nothing until the turn is
    confirmed: :meth:`adopt` hands it the stored turn's plan, and :meth:`withdraw` (a refused
    message, or a stored turn other than the one expected) stops it and ends it with
    ``turn_withdrawn`` instead of ``turn_end``: the page then takes the turn back.
    """

    def __init__(self, plan: TurnPlan, call: ModelCall) -> None:
        self.plan = plan
        self.call = call
        self.confirmed: asyncio.Future[TurnPlan | None] = (
            asyncio.get_running_loop().create_future()
        )
        self.task: asyncio.Task[None] | None = None

    def adopt(self, plan: TurnPlan) -> bool:
        """Confirm the reply with the stored turn's plan (a new turn, or a resend whose reply
        is due); False (nothing confirmed) when the stored turn is not the one this reply was
        begun for."""
        fits = (
            plan.starts_reply
            and not plan.candidates
            and plan.turn == self.plan.turn
            and self.call.fits(plan.condition_config, plan.history)
        )
        if not fits or self.confirmed.done():
            return False
        self.confirmed.set_result(plan)
        return True

    def abandon(self) -> None:
        """Withdraw without waiting (the socket's handler is being cancelled)."""
        if not self.confirmed.done():
            self.confirmed.set_result(None)

    async def withdraw(self, limit_s: float = 10.0) -> None:
        """Stop the reply, end it with ``turn_withdrawn`` and wait until that is published."""
        self.abandon()
        if self.task is not None:
            await asyncio.wait({self.task}, timeout=limit_s)


async def early_start(
    *, participation_id: int, public_id: str, user_text: str, call: ModelCall
) -> EarlyReply:
    """Begin the reply to ``user_text`` before the database has stored it (see
    :class:`EarlyReply`); raises ``GenerationBusy`` when another reply is in flight.

    Only the launch is tried here: if it raises, ``call`` is still the caller's, to launch
    again (Redis away for a moment) or to discard."""
    turn = sum(m["role"] == "user" for m in call.history)
    provisional = TurnPlan(
        participation_id=participation_id,
        public_id=public_id,
        turn=turn,
        user_text=user_text,
        history=call.history,
        condition_config=call.config,
    )
    early = EarlyReply(provisional, call)
    start = out.turn_start(turn=turn, user_text=user_text)
    _, early.task = await _launch(provisional, start, functools.partial(_early_run, early=early))
    return early


async def generation_in_flight(public_id: str) -> bool:
    """Whether a reply of ``public_id`` streams. Asked before a new one begins: a reply whose
    process died is first stored and ended, so the new one cannot erase it unrecorded."""
    if await generation_marker(public_id) is not None:
        return True
    await lost.lost_resolve(public_id)
    return False


async def generation_lost_resolve(public_id: str) -> bool:
    """End ``public_id``'s reply if the process streaming it died (studyapp/writing/lost.py);
    True if this call ended it (its ``turn_error`` reaches the participation's sockets)."""
    return await lost.lost_resolve(public_id)


class _Generation(Generation):
    """A generation that answers ``plan``'s turn."""

    def __init__(
        self,
        plan: TurnPlan,
        lease: Lease,
        stop_event: asyncio.Event,
        call: ModelCall | None = None,
        generation_id: str | None = None,
    ) -> None:
        super().__init__(
            lease, plan.condition_config, plan.history, stop_event, call, generation_id
        )
        self.plan = plan


async def _generation_run(plan: TurnPlan, lease: Lease, stop_event: asyncio.Event) -> None:
    generation = _Generation(plan, lease, stop_event)
    await _generation_finish(plan, generation, await generation.run())


async def _early_run(
    plan: TurnPlan, lease: Lease, stop_event: asyncio.Event, early: EarlyReply
) -> None:
    def withdrawn(confirmed: asyncio.Future[TurnPlan | None]) -> None:
        if confirmed.cancelled() or confirmed.result() is None:
            stop_event.set()

    early.confirmed.add_done_callback(withdrawn)
    generation = _Generation(plan, lease, stop_event, early.call)
    generation_id = lease.generation_id
    record = await generation.run()
    try:
        confirmed = await asyncio.wait_for(
            asyncio.shield(early.confirmed), generation_timeout_s()
        )
    except (TimeoutError, asyncio.CancelledError):
        log.warning("generation %s: its turn was never confirmed", generation_id)
        confirmed = None
    if confirmed is None:
        withdrawn = out.turn_withdrawn(turn=plan.turn, generation_id=generation_id)
        await generation_end(lease, [withdrawn])
    else:
        await _generation_finish(confirmed, generation, record)


async def _generation_finish(
    plan: TurnPlan, generation: _Generation, record: dict[str, Any]
) -> None:
    """Store the ended reply as the turn's (retried while the database is unreachable) and
    publish its end frames."""
    generation_id = generation.generation_id
    failed = out.turn_error(
        turn=plan.turn, generation_id=generation_id, message=_error_message(generation), retry=True
    )
    frames: list[Frame]
    try:
        stored = await db_retry(
            lambda: in_db_worker(turn_record)(
                participation_id=plan.participation_id,
                turn=plan.turn,
                generation_id=generation_id,
                record=record,
                seed=generation.seed,
            ),
            key=plan.public_id,
        )
        if record["finish_reason"] == "error":
            frames = [await _failure_frame(plan, record, failed)]
        elif stored.finish_reason == "error":
            # Stored as failed by another process (this one's marker had expired): say the same.
            frames = [failed]
        else:
            end = out.turn_end(
                turn=plan.turn,
                generation_id=generation_id,
                finish_reason=record["finish_reason"],
                text=record["text"],
            )
            frames = [end, out.rating_due(turn=plan.turn)] if plan.rating_checkpoint else [end]
    except Exception:
        # The turn could not be stored; the participant can retry it (it is still unanswered).
        log.exception("generation %s could not be recorded", generation_id)
        frames = [failed]
    await generation_end(generation.lease, frames)


async def _failure_frame(plan: TurnPlan, record: dict[str, Any], failed: Frame) -> Frame:
    """The frame that ends a failed reply: Retry, or, when no retry can help
    (``failed_turn_settle``), the page with the technical-problem code."""
    settled = await db_retry(
        lambda: in_db_worker(failed_turn_settle)(
            participation_id=plan.participation_id, turn=plan.turn, record=record
        ),
        key=plan.public_id,
    )
    # Named by pseudonym only: the platform id never reaches the server log.
    log.warning(
        "model error for participant %s, turn %d (%s, permanent=%s%s): %s",
        settled.pseudonym,
        plan.turn,
        record.get("endpoint") or record.get("backend") or "?",
        bool(record.get("permanent")),
        ", participation ended" if settled.next_url else "",
        record.get("error") or "model error",
    )
    if settled.next_url is None:
        return failed
    return {
        **failed,
        "message": TECHNICAL_PROBLEM_MESSAGE,
        "retry": False,
        "next_url": settled.next_url,
    }


def _error_message(generation: _Generation) -> str:
    if isinstance(generation.error, ServerStopping):
        return lost.INTERRUPTED_MESSAGE
    return MODEL_ERROR_MESSAGE
