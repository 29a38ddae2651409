"""The bonus ledger and the payment batches exported to the platform."""

from django.conf import settings
from django.db import models


class PayState(models.TextChoices):
    CSV = "csv"  # written as a file for the researcher to upload by hand
    NEW = "new"  # to be set up through Prolific's API; nothing sent yet
    SET_UP = "set_up"  # Prolific holds a bulk bonus under ``prolific_payment_id``; unpaid
    PAY_SENT = "pay_sent"  # the pay call left (or may have left): it is never sent again
    PAID = "paid"  # Prolific answered the pay call, or its submissions show the bonuses


class BonusBatch(models.Model):
    """One bulk bonus handed to the platform (a file or an API payment) that pays its entries."""

    study = models.ForeignKey(
        "studies.Study", on_delete=models.PROTECT, related_name="bonus_batches"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    # Prolific's pay call is not idempotent: the bulk id and the state are committed before
    # each call, so a crash or a timeout can never lead to a second pay for the same id.
    pay_state = models.CharField(max_length=20, choices=PayState.choices, default=PayState.CSV)
    prolific_payment_id = models.CharField(max_length=100, blank=True)
    pay_sent_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    pay_error = models.TextField(blank=True)

    class Meta:
        verbose_name_plural = "bonus batches"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["prolific_payment_id"], condition=~models.Q(prolific_payment_id=""),
                name="one_batch_per_prolific_payment",
            ),
        ]

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


class ProlificStudy(models.Model):
    """Links a study to its Prolific study, whose submissions and bonuses go through the API."""

    study = models.OneToOneField(
        "studies.Study", on_delete=models.CASCADE, related_name="prolific"
    )
    prolific_study_id = models.CharField(max_length=100)
    synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "Prolific studies"

    def __str__(self) -> str:
        return f"{self.study.slug} -> {self.prolific_study_id}"


class ProlificSubmission(models.Model):
    """Prolific's view of one participation: its submission, status and our review of it."""

    participation = models.OneToOneField(
        "participants.Participation", on_delete=models.CASCADE, related_name="prolific_submission"
    )
    submission_id = models.CharField(max_length=100, unique=True)
    status = models.CharField(max_length=40)  # Prolific's own words: "AWAITING REVIEW", ...
    bonus_cents = models.PositiveIntegerField(default=0)  # paid on Prolific, as it reports
    synced_at = models.DateTimeField()
    review_action = models.CharField(max_length=10, blank=True)  # APPROVE or REJECT, once sent
    reviewed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.submission_id}: {self.status}"


class RunState(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ProlificRun(models.Model):
    """One dashboard request to talk to Prolific (import, review, pay), run by a worker."""

    study = models.ForeignKey(
        "studies.Study", on_delete=models.CASCADE, related_name="prolific_runs"
    )
    action = models.CharField(max_length=20)
    state = models.CharField(max_length=10, choices=RunState.choices, default=RunState.QUEUED)
    message = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.study.slug} {self.action}: {self.state}"
