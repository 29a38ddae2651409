"""Export jobs started from the dashboard and run by a Celery worker."""

from django.conf import settings
from django.db import models


class ExportKind(models.TextChoices):
    ANALYSIS = "analysis", "Analysis tables + codebook"
    SFT = "sft", "Dataset: SFT conversations"
    DPO = "dpo", "Dataset: DPO preference pairs"
    KTO = "kto", "Dataset: KTO labelled turns"
    REWARD = "reward", "Dataset: per-turn real-user reward"
    COLLABLLM = "collabllm", "Dataset: CollabLLM flat rows"


class ExportFormat(models.TextChoices):
    CSV = "csv"
    PARQUET = "parquet"
    JSONL = "jsonl"


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Its archive was deleted: past the retention period, or holding an erased participant.
    REMOVED = "removed"


FINISHED_STATUSES = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.REMOVED}
)


class ExportJob(models.Model):
    study = models.ForeignKey(
        "studies.Study", on_delete=models.CASCADE, related_name="export_jobs"
    )
    kind = models.CharField(max_length=20, choices=ExportKind.choices)
    format = models.CharField(max_length=10, choices=ExportFormat.choices)
    # ParticipationFilter.as_params() plus the dataset options (thresholds, weights, split).
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.FloatField(default=0.0)
    message = models.CharField(max_length=300, blank=True)
    # The finished archive (a .zip under settings.EXPORT_DIR).
    path = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # Written with every progress update: a running job without one for a while has lost its
    # worker and may be claimed again.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(progress__gte=0.0, progress__lte=1.0),
                name="export_progress_fraction",
            ),
            # Training datasets are JSONL or Parquet; CSV cannot hold message lists.
            models.CheckConstraint(
                condition=models.Q(kind="analysis") | ~models.Q(format="csv"),
                name="export_dataset_not_csv",
            ),
        ]
        indexes = [models.Index(fields=["study", "-created_at"])]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.study_id}:{self.kind}:{self.pk}"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES
