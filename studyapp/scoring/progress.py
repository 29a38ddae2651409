"""Scoring a whole study on demand, and how far it has got (for the dashboard's button)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from django.db import transaction

from studyapp.feedback.models import DocumentScore
from studyapp.participants.models import Participation, Status
from studyapp.scoring.judge import JudgeConfigError, judges_for
from studyapp.scoring.services import documents_score_enqueue
from studyapp.studies.models import Study


@dataclass(frozen=True)
class ScoringProgress:
    judges: int  # judges of the study's documents (over all its versions)
    total: int  # scores owed: every completed document times every judge of its version
    scored: int  # good scores among them
    errors: int  # scores that failed (retried by the periodic job until out of attempts)

    @property
    def pending(self) -> int:
        return self.total - self.scored - self.errors

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "pending": self.pending}


def study_scoring_progress(*, study: Study) -> ScoringProgress:
    """Counts over every (completed document, judge) pair; staff raters are not counted."""
    labels: set[str] = set()
    total = scored = errors = 0
    for version in study.versions.order_by("number"):
        try:
            judges = judges_for(version)
        except JudgeConfigError:
            continue
        done = Participation.objects.filter(version=version, status=Status.COMPLETED)
        n_done = done.count() if judges else 0
        for judge in judges:
            labels.add(judge.label)
            rows = DocumentScore.objects.filter(
                participation__in=done.values("pk"), judge=judge.label,
                rubric_version=judge.rubric,
            )
            total += n_done
            scored += rows.filter(score__isnull=False).count()
            errors += rows.filter(score__isnull=True).exclude(error="").count()
    return ScoringProgress(judges=len(labels), total=total, scored=scored, errors=errors)


def study_scoring_start(*, study: Study) -> int:
    """Queue every completed document of the study for its judges (the task asks only those
    still owing a good score). Returns how many documents were queued."""
    with transaction.atomic():
        done = Participation.objects.filter(study=study, status=Status.COMPLETED)
        return documents_score_enqueue(
            participation_ids=done.order_by("pk").values_list("pk", flat=True)
        )
