"""Writes for automatic scoring: ask the judge about a final document, store the result."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from collab_models.base import ModelError
from studyapp.feedback.models import DocumentScore
from studyapp.participants.models import Participation, Status
from studyapp.scoring.judge import Judge, JudgeConfigError, judge_ask, judge_for
from studyapp.scoring.parse import ScoreParseError, parse_score
from studyapp.scoring.rubrics import rubric_load
from studyapp.studies.models import StudyVersion
from studyapp.writing.models import DocumentVersion


class JudgeUnavailable(Exception):
    """The judge could not be reached this time (worth retrying later)."""


def _store(
    participation: Participation, judge: Judge, *, score: float | None = None,
    rationale: str = "", raw_output: str = "", error: str = "",
) -> DocumentScore:
    result, _ = DocumentScore.objects.update_or_create(
        participation=participation, judge=judge.label, rubric_version=judge.rubric,
        defaults={"score": score, "rationale": rationale, "raw_output": raw_output,
                  "error": error},
    )
    return result


def document_score(
    *, participation: Participation, record_transient: bool = True
) -> DocumentScore | None:
    """Score ``participation``'s final document with its study version's judge and rubric.

    Returns None when the study has no judge. A judge that cannot be reached raises
    JudgeUnavailable unless ``record_transient``, in which case the error is stored; any other
    failure (bad configuration, no score in the reply) is stored as the score's ``error``.
    """
    judge = judge_for(participation.version)
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


def participations_unscored(*, limit: int = 100) -> list[int]:
    """Completed participations whose version has a judge and no score from it yet."""
    found: list[int] = []
    for version in StudyVersion.objects.filter(spec__has_key="judge").order_by("pk"):
        try:
            judge = judge_for(version)
        except JudgeConfigError:
            continue
        if judge is None:
            continue
        found += list(
            Participation.objects.filter(version=version, status=Status.COMPLETED)
            .exclude(document_scores__judge=judge.label,
                     document_scores__rubric_version=judge.rubric)
            .order_by("completed_at")
            .values_list("pk", flat=True)[: limit - len(found)]
        )
        if len(found) >= limit:
            break
    return found


def documents_score_enqueue(*, participation_ids: Iterable[int]) -> int:
    """Queue scoring of these participations once the current transaction commits."""
    from studyapp.scoring.tasks import document_score_task

    ids = list(participation_ids)
    for pk in ids:
        transaction.on_commit(lambda pk=pk: document_score_task.delay(pk))
    return len(ids)
