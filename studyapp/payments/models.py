"""The bonus ledger and the payment batches exported to the platform."""

from django.conf import settings
from django.db import models


class BonusBatch(models.Model):
    """One bulk-bonus file handed to the platform; its entries are paid by it."""

    study = models.ForeignKey(
        "studies.Study", on_delete=models.PROTECT, related_name="bonus_batches"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )

    class Meta:
        verbose_name_plural = "bonus batches"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.study.slug} batch {self.pk}"


class BonusLedgerEntry(models.Model):
    """A bonus owed to one participation. ``paid_batch`` is set when it leaves in a file."""

    participation = models.ForeignKey(
        "participants.Participation", on_delete=models.PROTECT, related_name="bonus_entries"
    )
    amount = models.DecimalField(max_digits=8, decimal_places=2)
    reason = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)
    paid_batch = models.ForeignKey(
        BonusBatch, on_delete=models.PROTECT, null=True, blank=True, related_name="entries"
    )

    class Meta:
        verbose_name_plural = "bonus ledger entries"
        constraints = [
            # Granting the same bonus twice (a retried task, a double click) is a no-op.
            models.UniqueConstraint(
                fields=["participation", "reason"], name="one_bonus_per_reason"
            ),
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="bonus_positive"),
        ]
        indexes = [models.Index(fields=["paid_batch"])]

    def __str__(self) -> str:
        return f"{self.participation_id}: {self.amount} ({self.reason})"
