"""Reads for the end of the journey: may the chat end, which code does a participant get."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from studyapp.participants.models import Participation
from studyapp.writing.models import DocumentVersion, Message, Role

PROLIFIC_COMPLETE_URL = "https://app.prolific.com/submissions/complete"


def words(text: str) -> int:
    """Whitespace-separated words, as the page counts them."""
    return len(text.split())


def counted_turns(messages: Sequence[Message], spec: dict[str, Any]) -> list[int]:
    """The turns that count toward ``writing.min_turns``, in order: a user message of at least
    ``writing.min_message_words`` words whose active reply succeeded and shows some text.

    ``messages`` are the active ones: a stopped reply with no word, a failed one or a short
    message buys no turn, however fast it is sent.
    """
    least = spec["writing"]["min_message_words"]
    asked = {m.turn for m in messages if m.role == Role.USER and words(m.text) >= least}
    return sorted(
        {
            m.turn
            for m in messages
            if m.role == Role.ASSISTANT and not m.error and m.turn in asked and words(m.text)
        }
    )


def assistant_turns_completed(*, participation: Participation) -> list[int]:
    """The turns that count toward the study's minimum (see ``counted_turns``), in order."""
    messages = Message.objects.filter(participation=participation, is_active=True)
    return counted_turns(list(messages), participation.version.spec)


def document_words(*, participation: Participation) -> int:
    """Words in the latest saved document (0 when none was saved)."""
    document = (
        DocumentVersion.objects.filter(participation=participation).order_by("-number").first()
    )
    return words(document.text) if document else 0


def completion_code_for(*, participation: Participation) -> str:
    """The code the participant takes back to the platform ("" when the outcome has none)."""
    if participation.completion_code:
        return participation.completion_code
    codes = participation.version.spec["completion_codes"]
    return codes.get(participation.outcome, "") if participation.outcome else ""


def prolific_completion_url(*, code: str) -> str:
    return f"{PROLIFIC_COMPLETE_URL}?{urlencode({'cc': code})}"
