"""Writes for side-by-side turns: store both candidates, then the participant's pick.

The consumer of the writing page calls, for a turn where ``side_by_side_due`` is true:

1. ``side_by_side_candidates(participation=...)`` -> two candidates (condition block + seed),
   generated like any reply (``build_arm(c.config).reply(history, seed=c.seed)``);
2. ``pair_record(participation_id=..., turn=..., candidates=[(generation_id, record, seed),
   ...])`` once both streams have ended, in the order they were shown;
3. ``pair_choose(participation_id=..., group=..., generation_id=...)`` when the participant
   picks one; the chat continues from it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from studyapp.participants.models import Participation, Status
from studyapp.refusals import Refused
from studyapp.writing.models import Message, Role

_RECORD_FIELDS = (
    "raw_output", "backend", "model", "adapter", "prompt_version", "prompt_sha256",
    "sampling", "prompt_tokens", "completion_tokens", "ttft_ms", "duration_ms", "finish_reason",
)  # fmt: skip


class PairRefused(Refused):
    """The pick cannot be taken; ``code`` is a protocol error code, the message is for people."""


@dataclass(frozen=True)
class PairRecorded:
    group: uuid.UUID
    messages: list[Message]  # in the order shown
    # True when the participant must pick; False when fewer than two replies succeeded (one
    # success is then simply the turn's reply; none leaves the turn to the usual retry).
    awaiting_choice: bool


def record_usable(record: dict[str, Any]) -> bool:
    """A generation worth showing as a reply: it did not fail and wrote something."""
    return record.get("finish_reason") != "error" and bool((record.get("text") or "").strip())


def record_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The generation record's fields as ``Message`` stores them."""
    return {k: record[k] for k in _RECORD_FIELDS if record.get(k) is not None}


def _locked(participation_id: int) -> Participation:
    participation = Participation.objects.select_for_update(of=("self",)).get(
        pk=participation_id
    )
    if participation.status != Status.WRITING:
        raise PairRefused("not_writing", "This chat has ended.")
    return participation


def pair_record(
    *,
    participation_id: int,
    turn: int,
    candidates: list[tuple[str, dict[str, Any], int | None]],
) -> PairRecorded:
    """Store the candidate replies to ``turn`` (each ``(generation_id, record, seed)``, where
    ``record`` is ``TurnRecord.as_dict()``) as inactive messages sharing one group.

    Precondition: the user message of ``turn`` is stored and the turn has no active reply.
    """
    group = uuid.uuid4()
    usable = [c for c in candidates if record_usable(c[1])]
    with transaction.atomic():
        _locked(participation_id)
        if Message.objects.filter(participation_id=participation_id, turn=turn,
                                  role=Role.ASSISTANT, is_active=True).exists():
            raise PairRefused("turn_answered", "This turn already has a reply.")
        messages = []
        for generation_id, record, seed in candidates:
            failed = not record_usable(record)
            problem = record.get("error") or ""
            messages.append(
                Message.objects.create(
                    participation_id=participation_id,
                    generation_id=generation_id,
                    turn=turn,
                    role=Role.ASSISTANT,
                    text=record.get("text") or "",
                    # A lone success is the turn's reply: there is nothing to choose between.
                    is_active=len(usable) == 1 and not failed,
                    alternative_group=group,
                    seed=seed,
                    error=(problem or "model error") if failed else "",
                    # A reply that succeeded with a complaint (e.g. repaired JSON) is a warning.
                    warning="" if failed else problem,
                    **record_fields(record),
                )
            )
    return PairRecorded(group=group, messages=messages, awaiting_choice=len(usable) >= 2)


def pair_choose(*, participation_id: int, group: uuid.UUID | str, generation_id: str) -> Message:
    """Mark ``generation_id`` chosen in its pair and make it the turn's reply.

    The other candidates stay inactive with ``chosen = False``. Picking the same one again
    returns it unchanged (double click); picking another once chosen is refused.
    """
    with transaction.atomic():
        _locked(participation_id)
        members = list(
            Message.objects.select_for_update()
            .filter(participation_id=participation_id, alternative_group=group,
                    role=Role.ASSISTANT)
            .order_by("id")
        )
        picked = next((m for m in members if str(m.generation_id) == str(generation_id)), None)
        if picked is None or picked.error:
            raise PairRefused("bad_choice", "That reply is not one of the candidates.")
        already = next((m for m in members if m.chosen), None)
        if already is not None:
            if already.pk == picked.pk:
                return picked
            raise PairRefused("already_chosen", "A reply was already picked for this turn.")
        for member in members:
            member.chosen = member.pk == picked.pk
            member.is_active = member.pk == picked.pk
        Message.objects.bulk_update(members, ["chosen", "is_active"])
    return picked
