"""Streams for alternative replies, beside ``studyapp.writing.relay``.

A side-by-side turn is one generation in the frame store (one marker, one stop, one ``seq``
stream) that runs two candidates concurrently: ``pair_start`` names them, their ``delta`` frames
carry ``candidate: 0|1``, each ends with ``candidate_end``, and once both have ended the pair is
stored (``pair_record``) and announced with ``pair_end`` (the participant picks), ``turn_end``
(only one candidate succeeded: it is the reply) or ``turn_error`` (none did: Retry). A
regeneration is a single generation whose ``turn_start``/``turn_end`` carry ``regenerate: true``.
Frames name candidates by index and generation id only, never by their arm.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import uuid
from typing import Any

from studyapp.realtime import generations
from studyapp.realtime.dbcalls import in_db_worker
from studyapp.realtime.framebus import Lease
from studyapp.realtime.framestore import Frame, Snapshot
from studyapp.realtime.generations import Resume, generation_end
from studyapp.sidebyside.selectors import Candidate
from studyapp.sidebyside.services import PairRecorded
from studyapp.writing import frames as out
from studyapp.writing import relay
from studyapp.writing.alternatives.selectors import candidate_public
from studyapp.writing.alternatives.services import (
    RegenerationPlan,
    pair_store,
    regeneration_record,
)
from studyapp.writing.relay import MODEL_ERROR_MESSAGE
from studyapp.writing.selectors import ChatState
from studyapp.writing.services import TurnPlan

log = logging.getLogger(__name__)

START_TYPES = frozenset({"turn_start", "pair_start"})
END_TYPES = frozenset({*generations.END_TYPES, "pair_end"})
REGENERATE_FAILED = (
    "Sorry, the assistant could not write a new reply just now. Your earlier reply is kept."
)
REGENERATE_STOPPED = "The new reply was stopped before it began. Your earlier reply is kept."


async def reply_start(plan: TurnPlan) -> str:
    """Start the reply to a user turn: one generation, or two candidates on a side-by-side turn."""
    if not plan.candidates:
        return await relay.generation_start(plan)
    ids = [str(uuid.uuid4()) for _ in plan.candidates]
    candidates = [{"candidate": i, "generation_id": g} for i, g in enumerate(ids)]
    start = out.pair_start(turn=plan.turn, user_text=plan.user_text, candidates=candidates)
    marker = {"kind": "pair", "candidates": candidates}
    return await relay.generation_launch(plan, start, functools.partial(_pair_run, ids=ids), marker)


async def regeneration_start(plan: RegenerationPlan) -> str:
    """Start a new sample for the latest reply's context."""
    start = out.turn_start(
        turn=plan.turn, user_text=plan.user_text, regenerate=True, replaces=plan.replaces
    )
    marker = {"kind": "regenerate", "replaces": plan.replaces}
    return await relay.generation_launch(plan, start, _regeneration_run, marker)


# -- side-by-side pairs -----------------------------------------------------------------------
class _Candidate(relay._Generation):
    """One of the two candidates: its own arm config and seed, its deltas tagged."""

    def __init__(
        self,
        plan: TurnPlan,
        index: int,
        generation_id: str,
        candidate: Candidate,
        lease: Lease,
        stop_event: asyncio.Event,
    ) -> None:
        own = dataclasses.replace(plan, condition_config=candidate.config, candidates=())
        super().__init__(own, lease, stop_event, generation_id=generation_id)
        self.index = index
        self.candidate_seed = candidate.seed
        self.delta_fields = {"candidate": index}

    async def run_and_announce(self) -> dict[str, Any]:
        # With the candidate's own seed; if the arm cannot be built, run() reports the error.
        plan = self.plan
        self.call = generations.call_open(plan.condition_config, plan.history, self.candidate_seed)
        record = await self.run()
        frame = out.candidate_end(
            turn=self.plan.turn,
            candidate=self.index,
            generation_id=self.generation_id,
            finish_reason=record["finish_reason"],
            text=record["text"],
        )
        try:
            await self.lease.append([frame])
        except Exception:  # the pair's end still tells the page everything
            log.exception("candidate %s could not publish its end", self.generation_id)
        return record


async def _pair_run(
    plan: TurnPlan, lease: Lease, stop_event: asyncio.Event, *, ids: list[str]
) -> None:
    pair_id = lease.generation_id
    generations = [
        _Candidate(plan, i, ids[i], candidate, lease, stop_event)
        for i, candidate in enumerate(plan.candidates)
    ]
    records = await asyncio.gather(*(g.run_and_announce() for g in generations))
    try:
        recorded = await in_db_worker(pair_store)(
            participation_id=plan.participation_id,
            turn=plan.turn,
            candidates=[
                (g.generation_id, record, g.seed)
                for g, record in zip(generations, records, strict=True)
            ],
        )
        frames = _pair_end_frames(plan, pair_id, recorded)
    except Exception:
        log.exception("pair %s could not be recorded", pair_id)
        frames = [_pair_failed(plan, pair_id)]
    await generation_end(lease, frames)


def _pair_end_frames(plan: TurnPlan, pair_id: str, recorded: PairRecorded) -> list[Frame]:
    if recorded.awaiting_choice:
        candidates = [candidate_public(i, m) for i, m in enumerate(recorded.messages)]
        return [
            out.pair_end(
                turn=plan.turn,
                generation_id=pair_id,
                group=str(recorded.group),
                candidates=candidates,
            )
        ]
    index, reply = next(
        ((i, m) for i, m in enumerate(recorded.messages) if m.is_active), (None, None)
    )
    if reply is None:
        return [_pair_failed(plan, pair_id)]
    end = out.turn_end(
        turn=plan.turn,
        generation_id=str(reply.generation_id),
        finish_reason=reply.finish_reason,
        text=reply.text,
        candidate=index,
    )
    return [end, out.rating_due(turn=plan.turn)] if plan.rating_checkpoint else [end]


def _pair_failed(plan: TurnPlan, pair_id: str) -> Frame:
    """Neither candidate can be the reply (or the pair could not be stored): Retry."""
    return out.turn_error(
        turn=plan.turn, generation_id=pair_id, message=MODEL_ERROR_MESSAGE, retry=True
    )


# -- regenerations ----------------------------------------------------------------------------
async def _regeneration_run(
    plan: RegenerationPlan, lease: Lease, stop_event: asyncio.Event
) -> None:
    generation = relay._Generation(plan, lease, stop_event)
    generation_id = lease.generation_id
    base = {"turn": plan.turn, "generation_id": generation_id, "regenerate": True}
    kept = {"retry": False, "kept": plan.replaces}
    frames: list[Frame]
    try:
        record = await generation.run()
        done = await in_db_worker(regeneration_record)(
            participation_id=plan.participation_id,
            turn=plan.turn,
            replaces=plan.replaces,
            generation_id=generation_id,
            record=record,
            seed=generation.seed,
        )
        if done.replaced:
            end = {"finish_reason": record["finish_reason"], "text": record["text"]}
            frames = [out.turn_end(**base, **end, regenerations_left=done.left)]
        else:
            stopped = record["finish_reason"] == "cancelled"
            message = REGENERATE_STOPPED if stopped else REGENERATE_FAILED
            frames = [
                out.turn_error(**base, **kept, message=message, regenerations_left=done.left)
            ]
    except Exception:
        log.exception("regeneration %s could not be recorded", generation_id)
        frames = [out.turn_error(**base, **kept, message=REGENERATE_FAILED)]
    await generation_end(lease, frames)


# -- reconnects -------------------------------------------------------------------------------
def resume_plan(*, state: ChatState, snapshot: Snapshot, client_seq: int | None) -> Resume:
    """``generations.resume_plan`` that also knows pairs and regenerations (database read first).

    A regeneration leaves its turn answered (the old reply stays active until the new one is
    stored), so it is replayed by its marker, or whole when it ended between the two reads.
    """
    marker = snapshot.generation
    if state.pending_turn is None:
        shown = {m.get("generation_id") for m in state.messages}
        if marker is not None and marker.get("kind") == "regenerate":
            if marker["generation_id"] in shown:  # stored already; its turn_end is idempotent
                return generations.resume_plan(
                    pending_turn=None, snapshot=snapshot, client_seq=None
                )
            resume = generations.resume_plan(
                pending_turn=marker["turn"], snapshot=snapshot, client_seq=client_seq
            )
            return _described(resume, marker)
        stored = max((m["turn"] for m in state.messages), default=0)
        if marker is not None and "kind" not in marker and marker["turn"] > stored:
            # A reply begun before its user message was stored (relay.EarlyReply): its
            # turn_start carries the message; a turn_withdrawn follows if it is refused.
            return generations.resume_plan(
                pending_turn=marker["turn"], snapshot=snapshot, client_seq=client_seq
            )
        if marker is None:
            replay = _regeneration_ended_unseen(snapshot.frames, shown)
            if replay is None:  # or a reply begun early that was stored after our read
                replay = _ended_between_reads(snapshot.frames, stored + 1)
            if replay is not None:
                return replay
        return generations.resume_plan(pending_turn=None, snapshot=snapshot, client_seq=client_seq)
    if marker is None:
        replay = _ended_between_reads(snapshot.frames, state.pending_turn)
        if replay is not None:
            return replay
    resume = generations.resume_plan(
        pending_turn=state.pending_turn, snapshot=snapshot, client_seq=client_seq
    )
    return _described(resume, marker)


def _described(resume: Resume, marker: dict[str, Any] | None) -> Resume:
    """Say in ``state.generation`` what kind of generation is streaming."""
    if resume.generation is None or marker is None or "kind" not in marker:
        return resume
    extra = {k: marker[k] for k in ("kind", "candidates", "replaces") if k in marker}
    return dataclasses.replace(resume, generation={**resume.generation, **extra})


def _replay_from(frames: list[Frame], start: Frame) -> Resume:
    after = start["seq"] - 1
    return Resume(None, None, after, [f for f in frames if f["seq"] > after])


def _ended_between_reads(frames: list[Frame], turn: int) -> Resume | None:
    """The reply (or pair) of ``turn`` ended after the database read: replay it whole."""
    starts = [f for f in frames if f["type"] in START_TYPES and f["turn"] == turn]
    if starts and any(f["type"] in END_TYPES and f["seq"] > starts[-1]["seq"] for f in frames):
        return _replay_from(frames, starts[-1])
    return None


def _regeneration_ended_unseen(frames: list[Frame], shown: set[Any]) -> Resume | None:
    """A regeneration that replaced the reply after the database read: replay it whole."""
    starts = [f for f in frames if f["type"] == "turn_start" and f.get("regenerate")]
    if not starts:
        return None
    start = starts[-1]
    replaced = any(
        f["type"] == "turn_end" and f["generation_id"] == start["generation_id"] for f in frames
    )
    if replaced and start["replaces"] in shown and start["generation_id"] not in shown:
        return _replay_from(frames, start)
    return None
