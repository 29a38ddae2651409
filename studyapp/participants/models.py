"""Participations: one person's walk through one study, and its event log."""

import uuid

from django.conf import settings
from django.db import models


class Platform(models.TextChoices):
    PROLIFIC = "prolific"
    MTURK = "mturk"
    PILOT = "pilot"
    SIMULATED = "simulated"  # simulate_participants: a scripted or LLM participant


class Status(models.TextChoices):
    ENTERED = "entered"
    CONSENTED = "consented"
    WRITING = "writing"
    FINISHED = "finished"  # chat finished, final questions pending
    COMPLETED = "completed"
    DECLINED = "declined"
    RETURNED = "returned"
    TIMED_OUT = "timed_out"
    EXCLUDED = "excluded"
    # The model could not answer (a permanent error, or failures that did not clear): the
    # participant is sent on with the study's technical-problem code, so they are paid.
    TECHNICAL_PROBLEM = "technical_problem"


TERMINAL_STATUSES = frozenset(
    {
        Status.COMPLETED,
        Status.DECLINED,
        Status.RETURNED,
        Status.TIMED_OUT,
        Status.EXCLUDED,
        Status.TECHNICAL_PROBLEM,
    }
)


class Outcome(models.TextChoices):
    COMPLETED = "completed"
    DECLINED = "declined"
    FAILED_ATTENTION = "failed_attention"
    TIMED_OUT = "timed_out"
    RETURNED = "returned"
    EXCLUDED = "excluded"
    TECHNICAL_PROBLEM = "technical_problem"


class Participation(models.Model):
    # Public, unguessable id used in URLs and tokens; the integer pk never leaves the server.
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    study = models.ForeignKey(
        "studies.Study", on_delete=models.PROTECT, related_name="participations"
    )
    version = models.ForeignKey("studies.StudyVersion", on_delete=models.PROTECT)
    condition = models.ForeignKey(
        "studies.Condition", on_delete=models.PROTECT, null=True, blank=True
    )
    platform = models.CharField(max_length=20, choices=Platform.choices)
    external_id = models.CharField(max_length=200)
    # Platform ids: STUDY_ID/SESSION_ID (Prolific), assignmentId/hitId/turkSubmitTo (MTurk).
    platform_data = models.JSONField(default=dict, blank=True)
    is_test = models.BooleanField(default=False, help_text="pilot or researcher test run")
    # Simulated participants are test runs too (is_test: no quota, no pay, no real code), and a
    # population of their own: balanced among themselves, left out of analyses unless asked.
    is_simulated = models.BooleanField(default=False, help_text="simulated participant")

    document_type = models.CharField(max_length=100, blank=True)
    topic = models.CharField(max_length=300, blank=True)

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ENTERED)
    entered_at = models.DateTimeField(auto_now_add=True)
    consented_at = models.DateTimeField(null=True, blank=True)
    assigned_at = models.DateTimeField(null=True, blank=True)
    writing_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    declined_at = models.DateTimeField(null=True, blank=True)
    returned_at = models.DateTimeField(null=True, blank=True)
    timed_out_at = models.DateTimeField(null=True, blank=True)
    excluded_at = models.DateTimeField(null=True, blank=True)
    technical_problem_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    # The participant's last action (not a heartbeat): the idle time limit counts from it.
    acted_at = models.DateTimeField(null=True, blank=True)

    active_seconds = models.FloatField(default=0)
    focus_losses = models.PositiveIntegerField(default=0)
    attention_passed = models.BooleanField(null=True, blank=True)
    outcome = models.CharField(max_length=30, choices=Outcome.choices, blank=True)
    completion_code = models.CharField(max_length=100, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["study", "platform", "external_id"], name="unique_platform_id_per_study"
            ),
        ]
        indexes = [
            models.Index(fields=["study", "status"]),
            models.Index(fields=["study", "condition"]),
            models.Index(fields=["last_seen_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.study_id}:{self.platform}:{self.public_id}"

    @property
    def total_seconds(self) -> float | None:
        end = self.completed_at or self.finished_at
        return (end - self.entered_at).total_seconds() if end else None


class EventKind(models.TextChoices):
    FOCUS = "focus"
    BLUR = "blur"
    HEARTBEAT = "heartbeat"
    CONNECT = "connect"
    RECONNECT = "reconnect"
    DISCONNECT = "disconnect"
    STOP = "stop"
    PROTOCOL_ERROR = "protocol_error"
    MODEL_ERROR = "model_error"
    REGENERATE = "regenerate"  # asked for a new sample of the latest reply
    CHOOSE = "choose"  # picked one of two side-by-side replies
    REFUSED_RETURN = "refused_return"  # its id was opened elsewhere without the session's ids
    STAY = "stay"  # answered a time-limit warning with "I'm still here"
    TAKEN_OVER = "taken_over"  # another browser took it over before anyone consented
    TECHNICAL_PROBLEM = "technical_problem"  # ended because the model could not answer


class ParticipationEvent(models.Model):
    participation = models.ForeignKey(
        Participation, on_delete=models.CASCADE, related_name="events"
    )
    kind = models.CharField(max_length=30, choices=EventKind.choices)
    at = models.DateTimeField(auto_now_add=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [models.Index(fields=["participation", "at"])]


class AllocationSlot(models.Model):
    """One place in a permuted block of a study version's conditions.

    Blocks are drawn ahead of time and stored so that the sequence survives restarts and is the
    same for every web worker; an arrival takes the earliest free slot. A slot freed by a
    timed-out participation is simply taken by the next arrival, which keeps the arms balanced.
    """

    version = models.ForeignKey(
        "studies.StudyVersion", on_delete=models.CASCADE, related_name="allocation_slots"
    )
    # Simulated participants draw from blocks of their own, so they never shift real allocation.
    simulated = models.BooleanField(default=False)
    block = models.PositiveIntegerField()
    position = models.PositiveIntegerField()
    condition = models.ForeignKey("studies.Condition", on_delete=models.CASCADE)
    participation = models.OneToOneField(
        Participation,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="allocation_slot",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["version", "simulated", "block", "position"],
                name="unique_allocation_slot_per_population",
            )
        ]
        indexes = [
            models.Index(fields=["version", "simulated", "participation", "block", "position"])
        ]
        ordering = ["version", "simulated", "block", "position"]


class StatusChange(models.Model):
    """A researcher's decision about a participation (excluded, marked returned): the audit trail.

    ``reason`` is one of the study file's ``exclusion_reasons`` keys (empty for a return).
    """

    participation = models.ForeignKey(
        Participation, on_delete=models.CASCADE, related_name="status_changes"
    )
    from_status = models.CharField(max_length=20, choices=Status.choices)
    to_status = models.CharField(max_length=20, choices=Status.choices)
    reason = models.CharField(max_length=100, blank=True)
    note = models.TextField(blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Where the researcher made the change: "dashboard", "admin" or "command".
    via = models.CharField(max_length=20)
    changed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-changed_at", "-id"]


class DataAccess(models.Model):
    """One researcher's access to participant data: a page, an export, a download.

    ``participation`` is the public id of the one participation viewed, if any; it links to
    nothing once that participation is erased.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True)  # kept if the account is deleted
    study_slug = models.CharField(max_length=50, blank=True)
    action = models.CharField(max_length=40)
    participation = models.UUIDField(null=True, blank=True)
    detail = models.CharField(max_length=300, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "data accesses"
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["study_slug", "-at"])]
