"""Writes for alternative replies: regenerations, side-by-side pairs and the participant's pick.

A regeneration asks for a new sample of the participant's own arm for the context of the latest
reply. When it succeeds the old reply becomes an inactive alternative in the same
``alternative_group`` and the new one is the turn's reply (the dpo export then takes the active
reply as chosen and each discarded one as rejected). It is not a new turn: turn counts, rating
checkpoints and the Finish rule see one reply per turn throughout.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from studyapp.feedback.ratings import interaction_rating_due
from studyapp.participants.models import EventKind, Participation, ParticipationEvent
from studyapp.sidebyside.selectors import pair_pending
from studyapp.sidebyside.services import (
    PairRecorded,
    PairRefused,
    pair_choose,
    pair_record,
    record_fields,
    record_usable,
)
from studyapp.writing.alternatives.selectors import (
    latest_reply,
    max_regenerations,
    regenerations_used,
)
from studyapp.writing.models import Message, Role
from studyapp.writing.selectors import active_messages, model_history, pending_turn
from studyapp.writing.services import (
    TurnPlan,
    WritingRefused,
    generation_event_log,
    locked_for_writing,
)

CHOICE_REQUIRED = "Please pick one of the two replies first."


@dataclass(frozen=True)
class RegenerationPlan(TurnPlan):
    """A new sample for the latest reply's context (``turn`` is that reply's turn)."""

    replaces: str = ""  # generation id of the reply the new one would replace


def reply_regenerate(*, participation_id: int, turn: int) -> RegenerationPlan:
    """Plan a new sample for the latest reply, if the chat allows one now.

    Precondition: the caller has checked that no generation is in flight (``busy``).
    """
    with transaction.atomic():
        participation = locked_for_writing(participation_id)
        messages = active_messages(participation_id=participation.pk)
        if pending_turn(messages) is not None:
            if pair_pending(participation_id=participation.pk) is not None:
                raise WritingRefused("choice_required", CHOICE_REQUIRED)
            raise WritingRefused("retry_required", "The last reply did not arrive; retry it.")
        reply = latest_reply(messages)
        if reply is None:
            raise WritingRefused("nothing_to_regenerate", "There is no reply to regenerate yet.")
        if reply.turn != turn:
            raise WritingRefused("not_regenerable", "Only the latest reply can be regenerated.")
        if reply.chosen:
            raise WritingRefused(
                "not_regenerable", "A reply picked from two cannot be regenerated."
            )
        due = interaction_rating_due(participation=participation)
        if due is not None:
            raise WritingRefused("rating_required", f"Please rate the conversation (turn {due}).")
        limit = max_regenerations(participation.version.spec)
        if regenerations_used(message=reply) >= limit:
            raise WritingRefused(
                "regenerate_limit", f"This reply cannot be regenerated more than {limit} times."
            )
        context = [m for m in messages if m.pk != reply.pk]
        return RegenerationPlan(
            participation_id=participation.pk,
            public_id=participation.public_id.hex,
            turn=turn,
            user_text=context[-1].text,
            history=model_history(
                participation_id=participation.pk,
                spec=participation.version.spec,
                messages=context,
            ),
            condition_config=participation.condition.config,
            replaces=str(reply.generation_id),
        )


@dataclass(frozen=True)
class Regenerated:
    message: Message
    # The new reply replaced the old one (False: it failed or was stopped before any text, and
    # the old reply stays the turn's reply).
    replaced: bool
    left: int  # regenerations still allowed for this turn


def regeneration_record(
    *,
    participation_id: int,
    turn: int,
    replaces: str,
    generation_id: str,
    record: dict[str, Any],
    seed: int | None,
) -> Regenerated:
    """Store a finished regeneration once and, if usable, make it the turn's reply."""
    usable = record_usable(record)
    failed = record.get("finish_reason") == "error"
    problem = record.get("error") or ""
    warning = "" if failed else problem
    with transaction.atomic():
        participation = (
            Participation.objects.select_for_update(of=("self",))
            .select_related("version")
            .get(pk=participation_id)
        )
        old = (
            Message.objects.select_for_update()
            .filter(participation_id=participation_id, turn=turn, role=Role.ASSISTANT,
                    is_active=True)
            .first()
        )  # fmt: skip
        current = old is not None and str(old.generation_id) == replaces
        group = None
        if current:
            group = old.alternative_group or uuid.uuid4()
            old.alternative_group = group
            old.is_active = not usable  # before the insert: one active reply per turn
            old.save(update_fields=["alternative_group", "is_active"])
        message = Message.objects.create(
            participation_id=participation_id,
            generation_id=generation_id,
            turn=turn,
            role=Role.ASSISTANT,
            text=record.get("text") or "",
            is_active=current and usable,
            alternative_group=group,
            seed=seed,
            error=(problem or "model error") if failed else "",
            warning=warning if current else f"{warning} superseded: the reply changed".strip(),
            **record_fields(record),
        )
        ParticipationEvent.objects.create(
            participation_id=participation_id,
            kind=EventKind.REGENERATE,
            data={"turn": turn, "replaces": replaces, "generation_id": generation_id,
                  "replaced": message.is_active},
        )  # fmt: skip
        generation_event_log(participation_id=participation_id, message=message, record=record)
        left = max_regenerations(participation.version.spec) - regenerations_used(
            message=message
        )
    return Regenerated(message=message, replaced=current and usable, left=max(0, left))


def pair_store(
    *, participation_id: int, turn: int, candidates: list[tuple[str, dict[str, Any], int | None]]
) -> PairRecorded:
    """``pair_record`` (studyapp.sidebyside) plus the event log of failed or stopped candidates."""
    with transaction.atomic():
        recorded = pair_record(participation_id=participation_id, turn=turn, candidates=candidates)
        for index, (message, (_, record, _)) in enumerate(
            zip(recorded.messages, candidates, strict=True)
        ):
            generation_event_log(
                participation_id=participation_id, message=message, record=record, candidate=index
            )
    return recorded


@dataclass(frozen=True)
class Picked:
    message: Message
    duplicate: bool  # the same pick again (a double click or a second tab): nothing changed
    rating_due: int | None


def pair_pick(*, participation_id: int, group: str, generation_id: str) -> Picked:
    """Take the participant's pick from the pair waiting for one.

    Refused (``WritingRefused``, nothing changed) with ``nothing_to_choose`` when no pair waits,
    ``bad_choice`` when ``group``/``generation_id`` do not name a usable candidate of it.
    """
    with transaction.atomic():
        participation = locked_for_writing(participation_id)
        pending = pair_pending(participation_id=participation.pk)
        group_id, picked_id = _uuid(group), _uuid(generation_id)
        if pending is None:
            done = None
            if group_id is not None and picked_id is not None:
                done = Message.objects.filter(
                    participation=participation, alternative_group=group_id,
                    generation_id=picked_id, chosen=True,
                ).first()  # fmt: skip
            if done is None:
                raise WritingRefused("nothing_to_choose", "There are no replies to pick from.")
            return Picked(message=done, duplicate=True, rating_due=None)
        if group_id != pending or picked_id is None:
            raise WritingRefused("bad_choice", "That reply is not one of the candidates.")
        try:
            picked = pair_choose(
                participation_id=participation.pk, group=pending, generation_id=str(picked_id)
            )
        except PairRefused as exc:
            raise WritingRefused(exc.code, exc.message) from exc
        ParticipationEvent.objects.create(
            participation=participation,
            kind=EventKind.CHOOSE,
            data={"turn": picked.turn, "group": str(pending), "generation_id": str(picked_id)},
        )
        due = interaction_rating_due(participation=participation)
        return Picked(message=picked, duplicate=False, rating_due=due)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
