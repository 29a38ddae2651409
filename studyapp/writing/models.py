"""What happens on the co-writing page: chat messages, document versions and edit batches."""

import uuid
from typing import Any

from django.db import models

from studyapp.writing.errorkinds import error_kind
from studyapp.writing.sql import WordCount


class Role(models.TextChoices):
    USER = "user"
    ASSISTANT = "assistant"


class Message(models.Model):
    """One chat message. Assistant messages carry the full record of the generation.

    ``turn`` counts user turns (the reply to the k-th user message has turn k). Alternatives
    for the same context (regenerations, side-by-side candidates) share ``alternative_group``;
    only ``is_active`` messages form the conversation the model and the participant see.
    """

    participation = models.ForeignKey(
        "participants.Participation", on_delete=models.CASCADE, related_name="messages"
    )
    generation_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    turn = models.PositiveIntegerField()
    role = models.CharField(max_length=20, choices=Role.choices)
    text = models.TextField(blank=True)
    # Kept by the database so dashboards sum words without re-reading every text.
    word_count = models.GeneratedField(
        expression=WordCount("text"), output_field=models.IntegerField(), db_persist=True
    )
    # The page's id for a user message, so a resend after a dropped connection is not stored twice.
    client_msg_id = models.CharField(max_length=64, blank=True)
    is_active = models.BooleanField(default=True)
    alternative_group = models.UUIDField(null=True, blank=True)
    chosen = models.BooleanField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # Generation record (assistant messages only).
    raw_output = models.TextField(blank=True)
    backend = models.CharField(max_length=40, blank=True)
    model = models.CharField(max_length=200, blank=True)
    adapter = models.CharField(max_length=200, blank=True)
    sampling = models.JSONField(default=dict, blank=True)
    seed = models.BigIntegerField(null=True, blank=True)
    prompt_version = models.CharField(max_length=100, blank=True)
    # The sha256 of the prompt text sent with this reply (its template, before the chat).
    prompt_sha256 = models.CharField(max_length=64, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    # Time to the first character the participant saw, and to the model's first token (the
    # two differ for a JSON arm, whose hidden fields come first). Dashboards use the first.
    ttft_ms = models.FloatField(null=True, blank=True)
    model_ttft_ms = models.FloatField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    finish_reason = models.CharField(max_length=40, blank=True)
    error = models.TextField(blank=True)
    # ``error``'s kind (studyapp/writing/errorkinds.py), kept with it by ``save``.
    error_kind = models.CharField(max_length=20, blank=True)
    # The model server that answered (base URL of the replica).
    endpoint = models.CharField(max_length=300, blank=True)
    # Older exchanges left out of the prompt to fit the model's window (collab_models/context.py).
    dropped_turns = models.PositiveIntegerField(default=0)
    # Something odd about a turn that still succeeded (e.g. a JSON reply that had to be repaired).
    warning = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["participation", "client_msg_id"],
                condition=~models.Q(client_msg_id=""),
                name="unique_client_msg_id",
            ),
            models.UniqueConstraint(
                fields=["participation", "turn", "role"],
                condition=models.Q(is_active=True),
                name="one_active_message_per_turn_and_role",
            ),
        ]
        indexes = [
            models.Index(fields=["participation", "turn"]),
            # The live dashboard reads the replies of the last hour.
            models.Index(fields=["created_at"], name="message_created_at"),
            # Dashboards total whole studies from these two (index-only scans), never reading
            # the message texts.
            models.Index(
                fields=["participation", "role", "is_active", "word_count", "completion_tokens"],
                name="message_totals_cover",
            ),
            models.Index(
                fields=["participation", "ttft_ms", "finish_reason"],
                condition=models.Q(role="assistant"),
                name="message_reply_latency_cover",
            ),
        ]
        ordering = ["participation", "turn", "id"]

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Stored, not derived at read time: /metrics then counts failed replies by kind in one
        # grouped query instead of reading every error text at each scrape.
        self.error_kind = error_kind(self.error)
        super().save(*args, **kwargs)


class DocumentVersion(models.Model):
    """The full document text at every save."""

    participation = models.ForeignKey(
        "participants.Participation", on_delete=models.CASCADE, related_name="document_versions"
    )
    number = models.PositiveIntegerField()
    text = models.TextField(blank=True)
    word_count = models.GeneratedField(
        expression=WordCount("text"), output_field=models.IntegerField(), db_persist=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["participation", "number"], name="unique_document_version_number"
            )
        ]
        ordering = ["participation", "number"]


class EditBatch(models.Model):
    """Editor events batched by the page (for replaying how the document was written)."""

    participation = models.ForeignKey(
        "participants.Participation", on_delete=models.CASCADE, related_name="edit_batches"
    )
    document_version = models.ForeignKey(
        DocumentVersion, on_delete=models.CASCADE, null=True, blank=True
    )
    events = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
