"""The access log: every researcher's look at participant data, and every export, recorded.

Views call ``data_access_record`` once per request that shows or hands out participant data;
the rows are read in the admin (read-only).
"""

from __future__ import annotations

from uuid import UUID

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from studyapp.participants.models import DataAccess


class Action:
    """What a researcher did with participant data (``DataAccess.action``)."""

    STUDY_DASHBOARD = "study_dashboard"
    MONITOR = "monitor"
    CONVERSATION = "conversation"
    RATING = "rating"  # a staff rater was shown a final document, blind
    EXPORT_STARTED = "export_started"
    EXPORT_DOWNLOADED = "export_downloaded"
    EXCLUDED = "excluded"
    MARKED_RETURNED = "marked_returned"
    ERASED = "erased"
    # A researcher saw the pre-registered primary outcome's p-value before the target n.
    PRIMARY_UNLOCKED = "primary_unlocked"
    ADMIN_LIST = "admin_list"
    ADMIN_RECORD = "admin_record"


def data_access_record(
    *,
    user: AbstractBaseUser | AnonymousUser | None,
    action: str,
    study_slug: str = "",
    participation: UUID | str | None = None,
    detail: str = "",
) -> DataAccess:
    known = user if user is not None and user.is_authenticated else None
    return DataAccess.objects.create(
        user=known,
        username=known.get_username() if known is not None else "",
        action=action,
        study_slug=study_slug,
        participation=participation,
        detail=detail[:300],
    )
