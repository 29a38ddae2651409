"""Writes the dashboards make: unlocking a pre-registered primary outcome before its target n."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from studyapp.participants.audit import Action, data_access_record
from studyapp.studies.models import Study


def primary_unlock(*, study: Study, by: AbstractBaseUser) -> bool:
    """Show the primary outcome's p-value before the target n; logged (who, when) in the
    access log. False when it was unlocked already (the first unlock is the one kept)."""
    with transaction.atomic():
        locked = Study.objects.select_for_update().get(pk=study.pk)
        if locked.primary_unlocked_at is not None:
            return False
        locked.primary_unlocked_at = timezone.now()
        locked.primary_unlocked_by = by  # type: ignore[assignment]
        locked.save(update_fields=["primary_unlocked_at", "primary_unlocked_by"])
        frozen = locked.preregistration_sha256 or "not frozen"
        data_access_record(user=by, action=Action.PRIMARY_UNLOCKED, study_slug=study.slug,
                           detail=f"preregistration {frozen}")
    return True
