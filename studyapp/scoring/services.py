"""Writes for automatic scoring: ask the judges about a final document, store the results.

A document is scored by every judge of its study (the study file's and those added later);
a failed re-score never replaces a good score, and an errored score is retried by the periodic
job until MAX_ATTEMPTS.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from collab_models.base import ModelError
from studyapp.feedback.models import DocumentScore
from studyapp.participants.models import Participation, Status
from studyapp.scoring.judge import (
    Judge,
    JudgeConfigError,
    judge_ask,
    judge_build,
    judge_for,
    judges_for,
)
from studyapp.scoring.models import StudyJudge
from studyapp.scoring.parse import ScoreParseError, parse_score
from studyapp.scoring.rubrics import rubric_load
from studyapp.studies.models import Study, StudyVersion
from studyapp.writing.models import DocumentVersion

MAX_ATTEMPTS = 3


class JudgeUnavailable(Exception):
    """The judge could not be reached this time (worth retrying later)."""


def _store(
    participation: Participation, judge: Judge, *, score: float | None = None,
    rationale: str = "", raw_output: str = "", error: str = "",
) -> DocumentScore:
    with transaction.atomic():
        found, created = DocumentScore.objects.select_for_update().get_or_create(
            participation=participation, judge=judge.label, rubric_version=judge.rubric,
            defaults={"score": score, "rationale": rationale, "raw_output": raw_output,
                      "error": error},
        )
        if created:
            return found
        found.attempts += 1
        if error and found.score is not None:
            # A failed re-score never replaces a good score: keep it and say why it stayed.
            found.rescore_error = error
            found.save(update_fields=["attempts", "rescore_error"])
            return found
        found.score, found.rationale, found.raw_output = score, rationale, raw_output
        found.error, found.rescore_error = error, ""
        found.save()
        return found


def document_score(
    *, participation: Participation, judge: Judge | None = None, record_transient: bool = True
) -> DocumentScore | None:
    """Score ``participation``'s final document with ``judge`` (default: the study file's).

    Returns None when there is no judge. A judge that cannot be reached raises
    JudgeUnavailable unless ``record_transient``, in which case the error is stored; any other
    failure (bad configuration, no score in the reply) is stored as the score's ``error``,
    except over a good score, which stays (the failure goes to ``rescore_error``).
    """
    judge = judge or judge_for(participation.version)
    if judge is None:
        return None
    rubric = rubric_load(judge.rubric)
    final = (
        DocumentVersion.objects.filter(participation=participation).order_by("-number").first()
    )
    if final is None or not final.text.strip():
        return _store(participation, judge, error="empty document")
    doc_type = next(
        (t.get("label", t["key"]) for t in participation.version.spec["document_types"]
         if t["key"] == participation.document_type),
        participation.document_type,
    )
    prompt = rubric.render(document_type=str(doc_type).lower(), topic=participation.topic,
                           document=final.text)
    try:
        reply = judge_ask(judge, prompt)
    except ModelError as exc:
        if not exc.permanent and not record_transient:
            raise JudgeUnavailable(str(exc)) from exc
        return _store(participation, judge, error=f"judge failed: {exc}")
    except JudgeConfigError as exc:
        return _store(participation, judge, error=f"judge misconfigured: {exc}")
    try:
        parsed = parse_score(reply.text, low=rubric.low, high=rubric.high)
    except ScoreParseError as exc:
        return _store(participation, judge, raw_output=reply.raw_output, error=str(exc))
    return _store(participation, judge, score=parsed.score, rationale=parsed.rationale,
                  raw_output=reply.raw_output)


def _settled(judge: Judge) -> Exists:
    """A score row that needs no more work: a good score, or an error out of attempts."""
    return Exists(DocumentScore.objects.filter(
        participation=OuterRef("pk"), judge=judge.label, rubric_version=judge.rubric,
    ).filter(Q(score__isnull=False) | Q(attempts__gte=MAX_ATTEMPTS)))


def _judges_due(participation: Participation) -> list[Judge]:
    return [
        judge for judge in judges_for(participation.version)
        if not Participation.objects.filter(pk=participation.pk).filter(_settled(judge)).exists()
    ]


def document_scores_due(
    *, participation: Participation, record_transient: bool = True
) -> list[DocumentScore]:
    """Score the document with every judge that has no good score for it yet."""
    results = []
    for judge in _judges_due(participation):
        result = document_score(participation=participation, judge=judge,
                                record_transient=record_transient)
        if result is not None:
            results.append(result)
    return results


def _judged_versions() -> Iterable[StudyVersion]:
    with_added = StudyJudge.objects.filter(is_active=True).values("study_id")
    return StudyVersion.objects.filter(
        Q(spec__has_key="judge") | Q(study_id__in=with_added)
    ).order_by("pk")


def participations_unscored(*, limit: int = 100) -> list[int]:
    """Completed participations that some judge has not scored yet, or scored with an error
    and attempts left."""
    found: list[int] = []
    for version in _judged_versions():
        try:
            judges = judges_for(version)
        except JudgeConfigError:
            continue
        for judge in judges:
            ids = (
                Participation.objects.filter(version=version, status=Status.COMPLETED)
                .exclude(_settled(judge)).exclude(pk__in=found)
                .order_by("completed_at").values_list("pk", flat=True)[: limit - len(found)]
            )
            found += list(ids)
            if len(found) >= limit:
                return found
    return found


def documents_score_enqueue(*, participation_ids: Iterable[int]) -> int:
    """Queue scoring of these participations once the current transaction commits."""
    from studyapp.scoring.tasks import document_score_task

    ids = list(participation_ids)
    for pk in ids:
        transaction.on_commit(lambda pk=pk: document_score_task.delay(pk))
    return len(ids)


def study_judge_add(*, study: Study, name: str, config: dict[str, Any]) -> StudyJudge:
    """Add a judge to ``study`` (documents already collected included) and queue the scoring
    of every completed document it has not scored. The block is checked against the study's
    latest version first, so a typo fails here, not in the background."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,49}", name):
        raise JudgeConfigError(f"a judge's name is a short slug (a-z, 0-9, - and _), not {name!r}")
    latest = study.versions.order_by("-number").first()
    if latest is None:
        raise JudgeConfigError(f"study {study.slug} has no version")
    judge_build(config, version=latest, name=name)
    rubric_load(str(config.get("rubric") or "document_quality_v1"))
    with transaction.atomic():
        added = StudyJudge.objects.create(study=study, name=name, config=config)
        documents_score_enqueue(participation_ids=Participation.objects.filter(
            study=study, status=Status.COMPLETED).order_by("pk").values_list("pk", flat=True))
    return added
