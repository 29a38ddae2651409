"""Assigning a consenting participant to a condition (arm) and a document type.

Two balanced methods, chosen by the study file's ``assignment.method``:

- ``permuted_blocks``: blocks of the version's conditions, each repeated by its weight and
  shuffled with the OS's cryptographic RNG, stored as AllocationSlot rows; arrivals take the
  earliest free slot. The sequence lives in the database, so it survives restarts.
- ``least_filled``: the arm with the fewest completers plus recently active starters, relative
  to its weight, with a random tie-break.

Both run under the study row's lock (``SELECT … FOR UPDATE``), so concurrent arrivals are
assigned one after another. Pilot and test runs get a weighted random arm and never consume a
block slot or count for balance. Simulated participants are balanced by the same method among
themselves only: blocks of their own, counts of their own.
"""

from __future__ import annotations

import math
import secrets
from collections import Counter
from functools import reduce

from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from studyapp.participants.models import AllocationSlot, Participation
from studyapp.participants.selectors import active_window_start, participations_counting
from studyapp.studies.models import Condition, Study, StudyVersion

_random = secrets.SystemRandom()


def assignment_assign(*, participation: Participation) -> Participation:
    """Give ``participation`` a condition and a document type; sticky once given.

    Call inside ``transaction.atomic`` (the caller's status change and the assignment commit
    together). Conditions are always drawn from the participation's own study version.
    """
    if participation.condition_id is not None:
        return participation
    # Serialises assignment per study on PostgreSQL; SQLite serialises writers by itself.
    Study.objects.select_for_update().only("id").get(pk=participation.study_id)
    version = participation.version
    conditions = list(version.conditions.order_by("id"))
    if participation.is_test and not participation.is_simulated:
        condition = _random.choices(conditions, weights=[c.weight for c in conditions])[0]
    elif version.spec["assignment"]["method"] == "least_filled":
        condition = _least_filled(participation=participation, conditions=conditions)
    else:
        condition = _take_block_slot(participation=participation, conditions=conditions)
    participation.condition = condition
    participation.document_type = _document_type(participation=participation, condition=condition)
    participation.assigned_at = timezone.now()
    participation.save(update_fields=["condition", "document_type", "assigned_at"])
    return participation


def assignment_release(*, participation: Participation) -> bool:
    """Give a timed-out or returned participation's block slot to the next arrival.

    Only when the study file's ``limits.free_slot_on_timeout`` is on. Returns whether a slot
    was freed. ``least_filled`` needs nothing: such participations stop counting by status.
    """
    if not participation.version.spec["limits"].get("free_slot_on_timeout"):
        return False
    with transaction.atomic():
        return AllocationSlot.objects.filter(participation=participation).update(
            participation=None
        ) > 0


def _take_block_slot(*, participation: Participation, conditions: list[Condition]) -> Condition:
    simulated = participation.is_simulated
    free = AllocationSlot.objects.select_related("condition").filter(
        version=participation.version, simulated=simulated, participation__isnull=True
    )
    slot = free.order_by("block", "position").first()
    if slot is None:
        _draw_block(version=participation.version, conditions=conditions, simulated=simulated)
        slot = free.order_by("block", "position").first()
    slot.participation = participation
    slot.save(update_fields=["participation"])
    return slot.condition


def _draw_block(
    *, version: StudyVersion, conditions: list[Condition], simulated: bool
) -> None:
    # Weights 2:2:2 make blocks of three, not six: smaller blocks keep the arms closer.
    divisor = reduce(math.gcd, (c.weight for c in conditions))
    block = [c for c in conditions for _ in range(c.weight // divisor)]
    _random.shuffle(block)
    last = version.allocation_slots.filter(simulated=simulated).aggregate(last=Max("block"))
    number = 0 if last["last"] is None else last["last"] + 1
    AllocationSlot.objects.bulk_create(
        AllocationSlot(
            version=version, simulated=simulated, block=number, position=i, condition=c
        )
        for i, c in enumerate(block)
    )


def _least_filled(*, participation: Participation, conditions: list[Condition]) -> Condition:
    spec = participation.version.spec
    since = active_window_start(spec=spec)
    # Arms are matched by name so that loading a new version of the study does not reset them.
    counts = Counter(
        dict(
            participations_counting(
                study=participation.study, since=since, simulated=participation.is_simulated
            )
            .filter(condition__name__in=[c.name for c in conditions])
            .values_list("condition__name")
            .annotate(n=Count("id"))
        )
    )
    load = {c.pk: counts[c.name] / c.weight for c in conditions}
    lowest = min(load.values())
    return _random.choice([c for c in conditions if load[c.pk] == lowest])


def _document_type(*, participation: Participation, condition: Condition) -> str:
    """The least used document type within the arm (random tie-break), so types stay balanced."""
    keys = [t["key"] for t in participation.version.spec["document_types"]]
    if participation.is_test and not participation.is_simulated:
        return _random.choice(keys)
    since = active_window_start(spec=participation.version.spec)
    counts = Counter(
        dict(
            participations_counting(
                study=participation.study, since=since, simulated=participation.is_simulated
            )
            .filter(condition__name=condition.name, document_type__in=keys)
            .exclude(pk=participation.pk)
            .values_list("document_type")
            .annotate(n=Count("id"))
        )
    )
    lowest = min(counts[k] for k in keys)
    return _random.choice([k for k in keys if counts[k] == lowest])
