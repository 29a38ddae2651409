"""Reads for the end of the journey: may the chat end, which code does a participant get."""

from __future__ import annotations

from urllib.parse import urlencode

from studyapp.participants.models import Participation
from studyapp.writing.models import Message, Role

PROLIFIC_COMPLETE_URL = "https://app.prolific.com/submissions/complete"


def assistant_turns_completed(*, participation: Participation) -> list[int]:
    """Turns with an active assistant reply that did not fail, in order."""
    return list(
        Message.objects.filter(
            participation=participation, role=Role.ASSISTANT, is_active=True, error=""
        )
        .order_by("turn")
        .values_list("turn", flat=True)
        .distinct()
    )


def completion_code_for(*, participation: Participation) -> str:
    """The code the participant takes back to the platform ("" when the outcome has none)."""
    if participation.completion_code:
        return participation.completion_code
    codes = participation.version.spec["completion_codes"]
    return codes.get(participation.outcome, "") if participation.outcome else ""


def prolific_completion_url(*, code: str) -> str:
    return f"{PROLIFIC_COMPLETE_URL}?{urlencode({'cc': code})}"
