"""Reads for side-by-side turns: when they happen, what generates the two candidates."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from studyapp.participants.models import Participation
from studyapp.writing.models import Message, Role

MODES = ("samples", "arms")
_random = secrets.SystemRandom()


@dataclass(frozen=True)
class Candidate:
    """One candidate to generate: the condition block to build the arm from, and its seed."""

    condition_name: str
    config: dict[str, Any]
    seed: int


def side_by_side_due(*, spec: dict[str, Any], turn: int) -> bool:
    """True when the reply to user turn ``turn`` is shown as two candidates."""
    return turn in (spec.get("side_by_side") or {}).get("turns", [])


def side_by_side_candidates(*, participation: Participation) -> list[Candidate]:
    """The two candidates for this participation, in the order to show them (random).

    ``samples`` (default): two samples from the participant's own arm with different seeds.
    ``arms``: one reply from each of the two conditions named in ``side_by_side.arms`` (this
    shows the participant another arm's reply: a deliberate break of the between-subjects
    design, for preference data only).
    """
    side = participation.version.spec.get("side_by_side") or {}
    mode = side.get("mode", "samples")
    if mode not in MODES:
        raise ValueError(f"side_by_side.mode must be one of {MODES}, got {mode!r}")
    if mode == "samples":
        own = participation.condition
        conditions = [own, own]
    else:
        names = list(side.get("arms") or [])
        if len(names) != 2:
            raise ValueError("side_by_side.arms must name exactly two conditions")
        by_name = {c.name: c for c in participation.version.conditions.filter(name__in=names)}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ValueError(f"side_by_side.arms: unknown conditions {missing}")
        conditions = [by_name[n] for n in names]
    seeds = _random.sample(range(1, 2**31), 2)
    candidates = [
        Candidate(condition_name=c.name, config=dict(c.config), seed=seed)
        for c, seed in zip(conditions, seeds, strict=True)
    ]
    _random.shuffle(candidates)  # no arm or sample always shown first
    return candidates


def pair_pending(*, participation_id: int) -> uuid.UUID | None:
    """The group of a pair shown but not yet picked from (the chat waits for the pick)."""
    answered = Message.objects.filter(
        participation_id=participation_id, role=Role.ASSISTANT, is_active=True
    ).values("turn")
    group = (
        Message.objects.filter(
            participation_id=participation_id, role=Role.ASSISTANT, is_active=False,
            alternative_group__isnull=False, chosen__isnull=True, error="",
        )
        .exclude(turn__in=answered)
        .order_by("-turn")
        .values_list("alternative_group", flat=True)
        .first()
    )
    return group
