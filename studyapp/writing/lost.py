"""Replies whose server process died: stored as failed turns and ended, from any process.

A generation refreshes its in-flight marker (studyapp/realtime/framestore.py) with every frame.
When the process that runs it dies (kill -9, a crash, a stop past its drain) the marker expires
while the replay buffer still holds the generation, begun and never ended. Whichever process
notices first claims it in Redis: its sweep over the participations its sockets watch, a
``stop``, or the check before a new reply begins. The claimer stores it as a failed turn (its
partial text, an error saying the process stopped; the write is idempotent per generation id)
and ends it with ``turn_error`` (``retry: true``), once, so the page offers Retry by itself.
A side-by-side pair fails as a pair; a regeneration fails and keeps the earlier reply.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError

from studyapp.participants.models import Participation
from studyapp.realtime import framebus
from studyapp.realtime.dbcalls import in_db_worker
from studyapp.realtime.dbretry import db_retry, keepalive_s
from studyapp.realtime.framestore import Frame, frame_store
from studyapp.realtime.outage import Outage, redis_unavailable
from studyapp.sidebyside.services import PairRefused
from studyapp.studies.spec import rating_turns
from studyapp.writing import frames as out
from studyapp.writing.alternatives.services import pair_store, regeneration_record
from studyapp.writing.models import Message, Role
from studyapp.writing.services import turn_record

log = logging.getLogger(__name__)
_sweep_outage = Outage(log, "lost replies sweep")

INTERRUPTED_MESSAGE = "The reply was interrupted. Please press Retry to try again."
REGENERATE_INTERRUPTED = "The new reply was interrupted. Your earlier reply is kept."
LOST_ERROR = "the server process streaming the reply stopped before the reply ended"


def sweep_interval_s() -> float:
    return keepalive_s()


async def lost_sweep() -> None:
    """Resolve, every few seconds, the lost replies of the participations this process's
    sockets watch (run for the server's life: studyapp/realtime/lifespan.py)."""
    while True:
        await asyncio.sleep(sweep_interval_s())
        try:
            await lost_sweep_once()
        except Exception as exc:
            if not redis_unavailable(exc):
                log.exception("lost replies: sweep failed")
            else:  # the next sweep tries again
                _sweep_outage.failed(exc)
        else:
            _sweep_outage.ok()


async def lost_sweep_once() -> int:
    """One sweep (one Redis round trip when nothing is lost); the number of replies resolved."""
    keys = framebus.watched()
    if not keys:
        return 0
    claimed = await frame_store().lost(keys)
    results = await asyncio.gather(
        *(_resolve(key, frames) for key, frames in claimed.items()), return_exceptions=True
    )
    for key, result in zip(claimed, results, strict=True):
        if isinstance(result, BaseException):
            log.error("lost reply of %s not resolved", key, exc_info=result)
    return len(claimed)


async def lost_resolve(public_id: str) -> bool:
    """Resolve ``public_id``'s reply if its process died; True if this call resolved it."""
    claimed = await frame_store().lost([public_id])
    if public_id not in claimed:
        return False
    await _resolve(public_id, claimed[public_id])
    return True


async def _resolve(key: str, frames: list[Frame]) -> None:
    start = frames[0]
    log.warning("reply %s of %s was lost with its process", start["generation_id"], key)
    try:
        outcome = await db_retry(
            lambda: in_db_worker(generation_lost_record)(
                public_id=key, start=start, texts=_texts(frames)
            )
        )
    except Exception:  # the participant still gets the end: nothing else would send it
        log.exception("lost reply %s could not be recorded", start["generation_id"])
        outcome = LostOutcome("failed")
    await framebus.end_lost(key, start["generation_id"], _end_frames(start, outcome))


def _texts(frames: list[Frame]) -> dict[int | None, str]:
    """The text each candidate (None: the only one) had streamed, from its delta frames."""
    texts: dict[int | None, list[str]] = {}
    for frame in frames:
        if frame["type"] == "delta":
            texts.setdefault(frame.get("candidate"), []).append(frame["text"])
    return {candidate: "".join(parts) for candidate, parts in texts.items()}


@dataclass(frozen=True)
class LostOutcome:
    """What the database holds for a lost generation once it is recorded."""

    state: str  # "failed"; "answered": it was stored as a reply; "withdrawn": no user message
    text: str = ""
    finish_reason: str = ""
    rating_due: bool = False
    regenerations_left: int | None = None


def _end_frames(start: Frame, outcome: LostOutcome) -> list[Frame]:
    turn, generation_id = start["turn"], start["generation_id"]
    if outcome.state == "withdrawn":
        return [out.turn_withdrawn(turn=turn, generation_id=generation_id)]
    if outcome.state == "answered":
        end = out.turn_end(
            turn=turn,
            generation_id=generation_id,
            finish_reason=outcome.finish_reason,
            text=outcome.text,
        )
        return [end, out.rating_due(turn=turn)] if outcome.rating_due else [end]
    if start.get("regenerate"):
        return [
            out.turn_error(
                turn=turn,
                generation_id=generation_id,
                message=REGENERATE_INTERRUPTED,
                retry=False,
                regenerate=True,
                kept=start["replaces"],
                regenerations_left=outcome.regenerations_left,
            )
        ]
    return [
        out.turn_error(
            turn=turn, generation_id=generation_id, message=INTERRUPTED_MESSAGE, retry=True
        )
    ]


def generation_lost_record(
    *, public_id: str, start: Frame, texts: dict[int | None, str]
) -> LostOutcome:
    """Store a generation whose process died (``start``: its start frame; ``texts``: what it
    had streamed) as a failed turn. Idempotent: a generation stored already is left as it is,
    and a reply stored by it before its process died is reported as ``answered``."""
    participation = Participation.objects.select_related("condition", "version").get(
        public_id=public_id
    )
    config = participation.condition.config if participation.condition else {}
    record = {
        "finish_reason": "error",
        "error": LOST_ERROR,
        "permanent": False,
        "backend": config.get("backend", ""),
        "model": config.get("model", ""),
    }
    if start["type"] == "pair_start":
        return _pair_lost(participation, start, texts, record)
    if start.get("regenerate"):
        return _regeneration_lost(participation, start, {**record, "text": texts.get(None, "")})
    turn = start["turn"]
    if not Message.objects.filter(participation=participation, turn=turn, role=Role.USER).exists():
        return LostOutcome("withdrawn")  # a reply begun before its message, never stored
    stored = turn_record(
        participation_id=participation.pk,
        turn=turn,
        generation_id=start["generation_id"],
        record={**record, "text": texts.get(None, "")},
        seed=None,
    )
    if stored.is_active and stored.finish_reason != "error":
        due = rating_turns(participation.version.spec, turn)
        return LostOutcome("answered", stored.text, stored.finish_reason, due)
    return LostOutcome("failed")


def _pair_lost(
    participation: Participation,
    start: Frame,
    texts: dict[int | None, str],
    record: dict[str, Any],
) -> LostOutcome:
    candidates: list[tuple[str, dict[str, Any], int | None]] = [
        (c["generation_id"], {**record, "text": texts.get(c["candidate"], "")}, None)
        for c in start["candidates"]
    ]
    try:
        pair_store(participation_id=participation.pk, turn=start["turn"], candidates=candidates)
    except (IntegrityError, PairRefused):  # stored already (a claim taken over), or answered
        log.info("lost pair %s was stored already", start["generation_id"])
    return LostOutcome("failed")


def _regeneration_lost(
    participation: Participation, start: Frame, record: dict[str, Any]
) -> LostOutcome:
    try:
        done = regeneration_record(
            participation_id=participation.pk,
            turn=start["turn"],
            replaces=start["replaces"],
            generation_id=start["generation_id"],
            record=record,
            seed=None,
        )
    except IntegrityError:  # stored already (a claim taken over)
        return LostOutcome("failed")
    return LostOutcome("failed", regenerations_left=done.left)
