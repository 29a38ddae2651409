"""The in-chat interaction rating: due every ``writing.rating_every`` turns, one per checkpoint.

A checkpoint turn's rating is due once its reply has ended (an active assistant message that
did not fail) and is required before the next message. The database's unique constraint on
(participation, scale, turn) is what finally guarantees one rating per checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import IntegrityError, transaction

from studyapp.feedback.models import Rating, Scale
from studyapp.participants.locks import participation_writing_locked
from studyapp.participants.models import Participation
from studyapp.refusals import Refused
from studyapp.studies.spec import rating_turns
from studyapp.writing.models import Message, Role


class RatingRefused(Refused):
    """The rating is not acceptable; ``code`` is the protocol's error code."""


def interaction_scale(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["scales"]["interaction"]


def interaction_rating_due(*, participation: Participation) -> int | None:
    """The earliest completed checkpoint turn that has no interaction rating yet."""
    return rating_due(participation_id=participation.pk, spec=participation.version.spec)


def rating_due(
    *, participation_id: int, spec: dict[str, Any], active: Sequence[Any] | None = None
) -> int | None:
    """:func:`interaction_rating_due` from the participation's id and study spec.

    ``active``: the participation's active messages (anything with ``role``, ``turn`` and
    ``error``) when the caller has just read them: one query fewer on the path of every
    message sent.
    """
    if active is None:
        completed: Iterable[int] = Message.objects.filter(
            participation_id=participation_id, role=Role.ASSISTANT, is_active=True, error=""
        ).values_list("turn", flat=True)
    else:
        completed = [m.turn for m in active if m.role == Role.ASSISTANT and not m.error]
    checkpoints = sorted({t for t in completed if rating_turns(spec, t)})
    if not checkpoints:
        return None
    rated = set(
        Rating.objects.filter(
            participation_id=participation_id, scale=Scale.INTERACTION, turn__in=checkpoints
        ).values_list("turn", flat=True)
    )
    return next((t for t in checkpoints if t not in rated), None)


def interaction_rating_submit(*, participation_id: int, turn: Any, value: Any) -> Rating:
    """Store the interaction rating for checkpoint ``turn``.

    Raises :class:`RatingRefused` (code ``bad_rating``) when the value is off the study's scale,
    the turn is not a checkpoint whose reply has ended, or it was already rated.
    """
    with transaction.atomic():
        participation = participation_writing_locked(
            participation_id, refused=RatingRefused, related=("version",)
        )
        scale = interaction_scale(participation.version.spec)
        _check_value(value, scale)
        if not isinstance(turn, int) or isinstance(turn, bool):
            raise RatingRefused("bad_rating", "turn must be a whole number.")
        if turn != interaction_rating_due(participation=participation):
            raise RatingRefused("bad_rating", f"No rating is due for turn {turn}.")
        try:
            with transaction.atomic():
                return Rating.objects.create(
                    participation=participation, scale=Scale.INTERACTION, turn=turn, value=value
                )
        except IntegrityError as exc:  # a concurrent submission for the same checkpoint won
            raise RatingRefused("bad_rating", f"Turn {turn} is already rated.") from exc


def _check_value(value: Any, scale: dict[str, Any]) -> None:
    low, high = scale["min"], scale["max"]
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise RatingRefused("bad_rating", f"The rating must be a whole number, {low} to {high}.")
