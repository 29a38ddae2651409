"""Reads for the end of the journey: may the chat end, which code does a participant get."""

from __future__ import annotations

from urllib.parse import urlencode

from studyapp.participants.models import Participation
from studyapp.writing.selectors import active_messages, counted_turns, latest_document, words

PROLIFIC_COMPLETE_URL = "https://app.prolific.com/submissions/complete"


def assistant_turns_completed(*, participation: Participation) -> list[int]:
    """The turns that count toward the study's minimum (see ``counted_turns``), in order."""
    messages = active_messages(participation_id=participation.pk)
    return counted_turns(messages, participation.version.spec)


def document_words(*, participation: Participation) -> int:
    """Words in the latest saved document (0 when none was saved)."""
    document = latest_document(participation_id=participation.pk)
    return words(document.text) if document else 0


def completion_code_for(*, participation: Participation) -> str:
    """The code the participant takes back to the platform ("" when the outcome has none)."""
    if participation.completion_code:
        return participation.completion_code
    codes = participation.version.spec["completion_codes"]
    return codes.get(participation.outcome, "") if participation.outcome else ""


def prolific_completion_url(*, code: str) -> str:
    return f"{PROLIFIC_COMPLETE_URL}?{urlencode({'cc': code})}"
