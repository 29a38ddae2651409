"""Staff raters: people who score the final documents blind, on the judges' rubric scale.

A rater's score is a DocumentScore under the judge name ``staff:<username>``, so it sits beside
the judges' scores (one per rater, document and rubric) and feeds the same agreement table.
Each rater sees the documents in an order of their own, and addresses a document by an opaque
key derived from their name, so neither the order nor the page reveals who wrote it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from uuid import UUID

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from studyapp.feedback.models import DocumentScore
from studyapp.participants.models import Participation, Status
from studyapp.scoring.judge import JudgeConfigError, judges_for
from studyapp.scoring.rubrics import DEFAULT_RUBRIC, Rubric, rubric_load
from studyapp.studies.models import Study
from studyapp.writing.models import DocumentVersion

RATER_PREFIX = "staff:"


class RatingRefused(ValueError):
    """The score or the document cannot be accepted from this rater."""


def rater_label(user: AbstractBaseUser) -> str:
    return f"{RATER_PREFIX}{user.get_username()}"[:200]


def is_rater(label: str) -> bool:
    return label.startswith(RATER_PREFIX)


def rater_rubric(*, study: Study) -> Rubric:
    """The rubric of the study's first judge (its scale and version), or the default one."""
    latest = study.versions.order_by("-number").first()
    try:
        judges = judges_for(latest) if latest is not None else []
    except JudgeConfigError:
        judges = []
    return rubric_load(judges[0].rubric if judges else DEFAULT_RUBRIC)


def _key(label: str, participation: Participation) -> str:
    return hashlib.sha256(f"{label}\n{participation.public_id}".encode()).hexdigest()[:20]


def rater_documents(*, study: Study, user: AbstractBaseUser) -> list[tuple[str, Participation]]:
    """The study's completed documents as (key, participation), in this rater's own order;
    test runs (pilots, simulated participants) are not worth a rater's time."""
    label = rater_label(user)
    done = Participation.objects.filter(
        study=study, status=Status.COMPLETED, is_test=False
    ).select_related("version")
    return sorted(((_key(label, p), p) for p in done), key=lambda pair: pair[0])


@dataclass(frozen=True)
class RatingItem:
    key: str
    position: int  # 1-based, in this rater's order
    total: int
    rated: int  # documents this rater has scored so far
    document_type: str
    topic: str
    text: str
    score: float | None  # this rater's score, if any
    previous: str | None  # keys of the neighbours in the rater's order
    next: str | None
    # For the data-access log only: never rendered, so the page stays blind.
    public_id: UUID = field(repr=False)


def _final_text(participation: Participation) -> str:
    final = (
        DocumentVersion.objects.filter(participation=participation).order_by("-number").first()
    )
    return final.text if final is not None else ""


def rating_item(
    *, study: Study, user: AbstractBaseUser, rubric: Rubric, key: str | None = None
) -> RatingItem | None:
    """The document ``key`` for this rater, or else the first one they have not scored (the
    first one when all are scored); None when the study has no completed document."""
    documents = rater_documents(study=study, user=user)
    if not documents:
        return None
    scores = _rater_scores(user=user, rubric=rubric, participations=[p for _, p in documents])
    keys = [k for k, _ in documents]
    if key is not None:
        if key not in keys:
            raise RatingRefused("no such document to rate")
        index = keys.index(key)
    else:
        index = next((i for i, (_, p) in enumerate(documents) if p.pk not in scores), 0)
    participation = documents[index][1]
    types = participation.version.spec.get("document_types", [])
    spec_type = next((t for t in types if t.get("key") == participation.document_type), {})
    return RatingItem(
        key=keys[index], position=index + 1, total=len(documents), rated=len(scores),
        document_type=str(spec_type.get("label") or participation.document_type),
        topic=participation.topic, text=_final_text(participation),
        score=scores.get(participation.pk),
        previous=keys[index - 1] if index > 0 else None,
        next=keys[index + 1] if index + 1 < len(keys) else None,
        public_id=participation.public_id,
    )


def _rater_scores(
    *, user: AbstractBaseUser, rubric: Rubric, participations: list[Participation]
) -> dict[int, float]:
    rows = DocumentScore.objects.filter(
        judge=rater_label(user), rubric_version=rubric.version, score__isnull=False,
        participation__in=participations,
    ).values_list("participation_id", "score")
    return {pid: score for pid, score in rows if score is not None}


def rater_score_submit(
    *, study: Study, user: AbstractBaseUser, key: str, score: int
) -> DocumentScore:
    """Store (or change) this rater's score of the document ``key`` on the study's rubric."""
    rubric = rater_rubric(study=study)
    if not rubric.low <= score <= rubric.high:
        raise RatingRefused(f"a score is a whole number from {rubric.low} to {rubric.high}")
    found = dict(rater_documents(study=study, user=user)).get(key)
    if found is None:
        raise RatingRefused("no such document to rate")
    with transaction.atomic():
        stored, _ = DocumentScore.objects.update_or_create(
            participation=found, judge=rater_label(user), rubric_version=rubric.version,
            defaults={"score": float(score), "error": "", "rescore_error": ""},
        )
    return stored
