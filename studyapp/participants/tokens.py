"""Signed per-participation tokens: the only credential the WebSocket accepts."""

from __future__ import annotations

from django.conf import settings
from django.core import signing

_SALT = "collabstudy.participation-socket"


def participation_token(*, public_id: str) -> str:
    return signing.TimestampSigner(salt=_SALT).sign(str(public_id))


def participation_id_from_token(token: str) -> str | None:
    """The participation's public id, or None when the token is forged, altered or expired."""
    try:
        return signing.TimestampSigner(salt=_SALT).unsign(
            token, max_age=settings.PARTICIPANT_TOKEN_MAX_AGE
        )
    except signing.BadSignature:
        return None
