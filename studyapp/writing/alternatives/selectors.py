"""Reads for alternative replies: the pair waiting for a pick, what Regenerate may still do."""

from __future__ import annotations

from typing import Any

from studyapp.sidebyside.selectors import pair_pending
from studyapp.sidebyside.services import record_usable
from studyapp.writing.models import Message, Role


def max_regenerations(spec: dict[str, Any]) -> int:
    # Versions frozen before the option existed had no Regenerate button: keep it that way.
    return int(spec["writing"].get("max_regenerations", 0))


def candidate_public(index: int, message: Message) -> dict[str, Any]:
    """One candidate of a pair as the participant may see it (nothing about its arm)."""
    return {
        "candidate": index,
        "generation_id": str(message.generation_id),
        "text": message.text,
        "finish_reason": message.finish_reason,
        "failed": bool(message.error),
    }


def pair_public(*, participation_id: int) -> dict[str, Any] | None:
    """The pair shown and not picked from yet, in display order, or None."""
    group = pair_pending(participation_id=participation_id)
    if group is None:
        return None
    members = Message.objects.filter(
        participation_id=participation_id, alternative_group=group, role=Role.ASSISTANT
    ).order_by("id")  # pair_record stores them in the order shown
    candidates = [candidate_public(i, m) for i, m in enumerate(members)]
    return {"turn": members[0].turn, "group": str(group), "candidates": candidates}


def regenerations_used(*, message: Message) -> int:
    """How many regenerations replaced a reply to ``message``'s context so far."""
    if message.alternative_group is None:
        return 0
    members = Message.objects.filter(
        participation_id=message.participation_id,
        alternative_group=message.alternative_group,
        role=Role.ASSISTANT,
    ).only("text", "finish_reason", "error")
    # Failed or empty attempts replaced nothing, so they do not count.
    usable = sum(
        1 for m in members if not m.error and record_usable(
            {"text": m.text, "finish_reason": m.finish_reason}
        )
    )
    return max(0, usable - 1)


def latest_reply(messages: list[Message]) -> Message | None:
    """The reply to the latest user turn, if it has one (``messages`` active, in order)."""
    last = messages[-1] if messages else None
    return last if last is not None and last.role == Role.ASSISTANT else None


def regenerate_public(*, messages: list[Message], spec: dict[str, Any]) -> dict[str, Any] | None:
    """``{"turn", "left"}`` when the latest reply may be regenerated at all, else None.

    A reply picked from a side-by-side pair is not regenerated: its group is the pair's.
    """
    reply = latest_reply(messages)
    maximum = max_regenerations(spec)
    if reply is None or reply.chosen or maximum <= 0:
        return None
    return {"turn": reply.turn, "left": max(0, maximum - regenerations_used(message=reply))}
