"""Keyed pseudonyms and the redaction of platform ids.

Platform ids (PROLIFIC_PID, workerId, STUDY_ID, SESSION_ID, assignmentId, hitId) never leave the
database in analysis or training exports. A participation is known outside only by its keyed
pseudonym: HMAC-SHA256 under the study's own secret, so the same person gets unrelated
pseudonyms in two studies and nobody without the secret can test a guessed id.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from studyapp.participants.pseudonyms import PSEUDONYM_HEX_CHARS, participant_pseudonym
from studyapp.scoring.raters import RATER_PREFIX

__all__ = [
    "PSEUDONYM_HEX_CHARS",
    "REDACTED",
    "Redactor",
    "participant_pseudonym",
    "platform_ids",
    "rater_pseudonym",
    "scorer_public_label",
]
REDACTED = "[platform id]"
# Keys of Participation.platform_data that hold an address, not an identifier.
_NOT_IDS = frozenset({"turkSubmitTo"})
# Shorter strings (a pilot label such as "p1") would blank ordinary words out of the text.
_MIN_REDACT_CHARS = 4


def platform_ids(*, external_id: str, platform_data: Mapping[str, Any]) -> list[str]:
    """Every identifier the platform gave this participation (values worth redacting)."""
    ids = [external_id]
    ids += [
        str(value)
        for key, value in (platform_data or {}).items()
        if key not in _NOT_IDS and isinstance(value, str | int) and not isinstance(value, bool)
    ]
    return [i for i in dict.fromkeys(ids) if len(i) >= _MIN_REDACT_CHARS]


@dataclass(frozen=True)
class Redactor:
    """Replaces a participation's own platform ids in free text (people paste their id in chat)."""

    pattern: re.Pattern[str] | None

    @classmethod
    def for_ids(cls, ids: Iterable[str]) -> Redactor:
        ids = sorted(set(ids), key=len, reverse=True)
        if not ids:
            return cls(pattern=None)
        return cls(pattern=re.compile("|".join(re.escape(i) for i in ids), re.IGNORECASE))

    def __call__(self, text: str | None) -> str | None:
        if not text or self.pattern is None:
            return text
        return self.pattern.sub(REDACTED, text)


RATER_PSEUDONYM_PREFIX = "rater-"
_RATER_HEX_CHARS = 12


def rater_pseudonym(*, study_id: int, user_key: str) -> str:
    """A staff rater as exports name them: keyed by the site's secret, the study and the
    account (its id, or its username once the account is gone), so the label is stable within
    a study, differs between studies, and does not reveal who rated."""
    message = f"rater\n{study_id}\n{user_key}".encode()
    digest = hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()
    return f"{RATER_PSEUDONYM_PREFIX}{digest[:_RATER_HEX_CHARS]}"


def scorer_public_label(
    *, label: str, study_id: int, rater_ids: Mapping[str, int]
) -> str:
    """A judge's name as is; a staff rater (``staff:<username>``) as its pseudonym.
    ``rater_ids`` maps usernames to account ids."""
    if not label.startswith(RATER_PREFIX):
        return label
    username = label[len(RATER_PREFIX):]
    user_id = rater_ids.get(username)
    user_key = f"id:{user_id}" if user_id is not None else f"username:{username}"
    return rater_pseudonym(study_id=study_id, user_key=user_key)
