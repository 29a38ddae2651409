"""Researchers' decisions about a participation: excluded from analysis, or marked returned.

Each decision changes the status the flow and the analyses count by, and leaves a
``StatusChange`` row saying who decided, when, from which status, and why.
"""

from __future__ import annotations

from typing import Literal

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone

from studyapp.participants.assignment import assignment_release
from studyapp.participants.models import Outcome, Participation, Status, StatusChange
from studyapp.participants.selectors import IN_PROGRESS_STATUSES
from studyapp.studies.spec import exclusion_reasons

Via = Literal["dashboard", "admin", "command"]


class DecisionRefused(ValueError):
    """The decision does not apply to this participation; the message says why."""


def _locked(participation: Participation) -> Participation:
    return (
        Participation.objects.select_for_update(of=("self",))
        .select_related("version")
        .get(pk=participation.pk)
    )


def _user(user: AbstractBaseUser | AnonymousUser | None) -> AbstractBaseUser | None:
    return user if user is not None and user.is_authenticated else None  # type: ignore[return-value]


def participation_exclude(
    *,
    participation: Participation,
    reason: str,
    note: str = "",
    by: AbstractBaseUser | AnonymousUser | None,
    via: Via,
) -> StatusChange:
    """Exclude a participation from analysis, for one of its study file's exclusion reasons."""
    keys = [r["key"] for r in exclusion_reasons(participation.version.spec)]
    if reason not in keys:
        raise DecisionRefused(f"unknown exclusion reason {reason!r} (the study names {keys})")
    with transaction.atomic():
        locked = _locked(participation)
        if locked.status == Status.EXCLUDED:
            raise DecisionRefused("this participation is already excluded")
        change = StatusChange.objects.create(
            participation=locked, from_status=locked.status, to_status=Status.EXCLUDED,
            reason=reason, note=note, changed_by=_user(by), via=via,
        )
        locked.status = Status.EXCLUDED
        locked.outcome = Outcome.EXCLUDED
        locked.excluded_at = timezone.now()
        locked.save(update_fields=["status", "outcome", "excluded_at"])
    return change


def participation_mark_returned(
    *,
    participation: Participation,
    note: str = "",
    by: AbstractBaseUser | AnonymousUser | None,
    via: Via,
) -> StatusChange:
    """Record that the participant returned their submission (gave up) before finishing.

    Like a time-out, the participation stops holding a place, and its block slot goes to the
    next arrival when the study frees slots on time-outs.
    """
    with transaction.atomic():
        locked = _locked(participation)
        if locked.status not in IN_PROGRESS_STATUSES:
            raise DecisionRefused(f"only a participation in progress can be returned, not "
                                  f"one that is {locked.status}")
        change = StatusChange.objects.create(
            participation=locked, from_status=locked.status, to_status=Status.RETURNED,
            note=note, changed_by=_user(by), via=via,
        )
        locked.status = Status.RETURNED
        locked.outcome = Outcome.RETURNED
        locked.returned_at = timezone.now()
        locked.save(update_fields=["status", "outcome", "returned_at"])
        assignment_release(participation=locked)
    return change
