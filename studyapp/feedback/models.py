"""Ratings, survey answers and automatic document scores."""

from django.db import models


class Scale(models.TextChoices):
    INTERACTION = "interaction"  # in-chat checkpoint rating
    DOCUMENT_QUALITY = "document_quality"  # final question
    OVERALL = "overall"  # final question
    THUMB = "thumb"  # optional thumbs on a single reply (+1 / -1)


# Final ratings are stored with turn 0 so one unique constraint covers every scale.
FINAL_TURN = 0


class Rating(models.Model):
    participation = models.ForeignKey(
        "participants.Participation", on_delete=models.CASCADE, related_name="ratings"
    )
    scale = models.CharField(max_length=30, choices=Scale.choices)
    turn = models.PositiveIntegerField()
    value = models.IntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["participation", "scale", "turn"], name="one_rating_per_checkpoint"
            ),
            models.CheckConstraint(
                condition=models.Q(value__gte=-1, value__lte=100), name="rating_value_sane"
            ),
        ]
        indexes = [models.Index(fields=["scale", "turn"])]


class SurveyKind(models.TextChoices):
    PREWRITING = "prewriting"
    FINAL = "final"


class SurveyResponse(models.Model):
    participation = models.ForeignKey(
        "participants.Participation", on_delete=models.CASCADE, related_name="survey_responses"
    )
    kind = models.CharField(max_length=20, choices=SurveyKind.choices)
    answers = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["participation", "kind"], name="one_survey_per_kind")
        ]


class DocumentScore(models.Model):
    """An automatic (LLM judge) score of a final document, stored beside the participant's."""

    participation = models.ForeignKey(
        "participants.Participation", on_delete=models.CASCADE, related_name="document_scores"
    )
    judge = models.CharField(max_length=200)
    rubric_version = models.CharField(max_length=50)
    score = models.FloatField(null=True, blank=True)
    rationale = models.TextField(blank=True)
    raw_output = models.TextField(blank=True)
    error = models.TextField(blank=True)
    # Tries so far; the periodic job retries an errored score until MAX_ATTEMPTS.
    attempts = models.PositiveSmallIntegerField(default=1)
    # The last re-score that failed while a good score was kept (cleared by a success).
    rescore_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["participation", "judge", "rubric_version"],
                name="one_score_per_judge_rubric",
            )
        ]
