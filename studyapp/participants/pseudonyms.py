"""A participation's keyed pseudonym: how it is named outside the database (exports, logs).

HMAC-SHA256 of its platform id under the study's own secret, so the same person gets unrelated
pseudonyms in two studies and nobody without the secret can test a guessed id.
"""

from __future__ import annotations

import hashlib
import hmac

from studyapp.participants.models import Participation

PSEUDONYM_HEX_CHARS = 16


def participant_pseudonym(*, secret: str, platform: str, external_id: str) -> str:
    digest = hmac.new(
        secret.encode(), f"{platform}:{external_id}".encode(), hashlib.sha256
    ).hexdigest()
    return digest[:PSEUDONYM_HEX_CHARS]


def participation_pseudonym(participation: Participation) -> str:
    """``participation``'s pseudonym (its study is read if not loaded)."""
    return participant_pseudonym(
        secret=participation.study.pseudonym_secret,
        platform=participation.platform,
        external_id=participation.external_id,
    )
