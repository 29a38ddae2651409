"""Studies, their immutable versions (snapshots of the study file) and their conditions."""

import secrets

from django.conf import settings
from django.db import models


def _new_secret() -> str:
    return secrets.token_hex(32)


def new_pilot_key() -> str:
    return secrets.token_urlsafe(18)


def new_simulation_key() -> str:
    return secrets.token_urlsafe(24)


class Study(models.Model):
    slug = models.SlugField(unique=True)
    title = models.CharField(max_length=200)
    is_open = models.BooleanField(default=True)
    # Keyed pseudonyms in exports are HMACs of platform ids under this per-study secret.
    pseudonym_secret = models.CharField(max_length=64, default=_new_secret, editable=False)
    # Pilot links (when the study file allows them) must carry this key, or come from a staff login.
    pilot_key = models.CharField(max_length=64, default=new_pilot_key)
    # Simulated participants' links carry this key: only who can read it (the researchers, the
    # simulate_participants command) can mark a participation as simulated.
    simulation_key = models.CharField(max_length=64, default=new_simulation_key)
    # MTurk previews store nothing about the person; only how many there were.
    preview_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    # The pre-registration in force when the study opened (its first real participant entered):
    # sha256 of the canonical block (spec.preregistration_hash) and the version it came from.
    # A later version declaring another one is flagged on the dashboard, never re-frozen.
    preregistration_sha256 = models.CharField(max_length=64, blank=True, editable=False)
    preregistration_frozen_at = models.DateTimeField(null=True, blank=True, editable=False)
    preregistration_version = models.PositiveIntegerField(null=True, blank=True, editable=False)
    # A researcher chose to see the primary outcome's p-value before the target n (also logged
    # in the participants app's DataAccess).
    primary_unlocked_at = models.DateTimeField(null=True, blank=True, editable=False)
    primary_unlocked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", editable=False,
    )

    class Meta:
        verbose_name_plural = "studies"

    def __str__(self) -> str:
        return self.slug


class StudyVersion(models.Model):
    """One load of a study file. Never edited: loading again makes a new version."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    spec = models.JSONField()
    source_text = models.TextField()
    source_sha256 = models.CharField(max_length=64)
    # What the model sees besides its prompt: chat, chat+task or chat+task+document.
    model_context = models.CharField(max_length=40, default="chat")
    # Per arm, the prompt it sends: {name: {version, sha256, package_version, fallback_for}}.
    prompts = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["study", "number"], name="unique_version_number")
        ]
        ordering = ["study", "number"]

    def __str__(self) -> str:
        return f"{self.study.slug} v{self.number}"


class Condition(models.Model):
    """One arm of a study version. Its name is for researchers only, never for participants."""

    version = models.ForeignKey(StudyVersion, on_delete=models.CASCADE, related_name="conditions")
    name = models.CharField(max_length=100)
    weight = models.PositiveIntegerField(default=1)
    backend = models.CharField(max_length=40)
    # The condition's block of the study file: model, endpoints, prompt, sampling, ...
    config = models.JSONField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["version", "name"], name="unique_condition_name"),
            models.CheckConstraint(
                condition=models.Q(weight__gt=0), name="condition_weight_positive"
            ),
        ]
        ordering = ["version", "id"]

    def __str__(self) -> str:
        return f"{self.version} / {self.name}"
