"""What is left of a participant who withdrew: that an erasure happened, and nothing about them."""

from django.conf import settings
from django.db import models


class ErasureRecord(models.Model):
    """One erased participation. No platform id, no pseudonym, no text: only the study, the arm
    and status it had (so the flow can still count it), who erased it and when."""

    study = models.ForeignKey("studies.Study", on_delete=models.PROTECT, related_name="erasures")
    version_number = models.PositiveIntegerField()
    arm = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=20)
    is_test = models.BooleanField(default=False)
    # Rows deleted per table, e.g. {"writing.message": 24}.
    deleted = models.JSONField(default=dict)
    export_jobs_removed = models.PositiveIntegerField(default=0)
    erased_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    via = models.CharField(max_length=20)
    erased_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-erased_at", "-id"]
