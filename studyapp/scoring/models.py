"""Judges defined apart from the study file, so they can be added after data was collected."""

from django.db import models


class StudyJudge(models.Model):
    """A judge of a study's final documents, scoring every version's documents.

    ``config`` takes the keys of a study file's ``judge`` block (an arm by ``condition``, or an
    endpoint with ``backend``, ``endpoints``, ``model``, ``sampling``, ``rubric``). Its scores
    are stored under ``name``, so several judges (and rubrics) score the same documents.
    """

    study = models.ForeignKey("studies.Study", on_delete=models.CASCADE, related_name="judges")
    name = models.SlugField(max_length=50)
    config = models.JSONField()
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["study", "name"], name="one_judge_name_per_study")
        ]
        ordering = ["study", "name"]

    def __str__(self) -> str:
        return f"{self.study.slug}:{self.name}"
