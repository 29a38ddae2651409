"""Withdrawal and erasure of one participant's data.

Erasing deletes the participation and everything hanging from it (messages, document versions,
edit batches, ratings, survey answers, judge scores, events, the researchers' status changes,
bonus ledger entries) in one transaction, keeps an ``ErasureRecord`` without personal data,
deletes the study's export archives (they may hold the participant) and queues them again, so
the exports are re-made without them.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Literal

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction

from studyapp.dashboards.filters import ParticipationFilter
from studyapp.erasure.models import ErasureRecord
from studyapp.exports.models import ExportJob, JobStatus
from studyapp.exports.pseudonyms import participant_pseudonym
from studyapp.exports.services import export_job_cancel, export_job_create, export_job_remove
from studyapp.participants.models import Participation
from studyapp.payments.models import BonusLedgerEntry
from studyapp.studies.models import Study

Via = Literal["dashboard", "command"]


class ParticipantNotFound(LookupError):
    """No participation (or more than one) of the study matches the identifier."""


def participation_identify(*, study: Study, identifier: str) -> Participation:
    """The study's participation known by ``identifier``: its public id, its export pseudonym,
    or a platform id (PROLIFIC_PID, workerId)."""
    identifier = identifier.strip()
    candidates = Participation.objects.filter(study=study)
    found = list(candidates.filter(external_id=identifier).only("pk"))
    if not found:
        found = [p for p in candidates.only("public_id", "platform", "external_id")
                 if str(p.public_id) == identifier
                 or participant_pseudonym(secret=study.pseudonym_secret, platform=p.platform,
                                          external_id=p.external_id) == identifier]
    if len(found) != 1:
        raise ParticipantNotFound(
            f"{len(found)} participations of study {study.slug} match that identifier"
        )
    return candidates.select_related("study", "condition", "version").get(pk=found[0].pk)


def participation_erase(
    *,
    participation: Participation,
    by: AbstractBaseUser | AnonymousUser | None,
    via: Via,
) -> ErasureRecord:
    """Erase one participation's data for good; returns the record that it happened."""
    study = participation.study
    with transaction.atomic():
        locked = Participation.objects.select_for_update(of=("self",)).select_related(
            "condition", "version"
        ).get(pk=participation.pk)
        deleted: Counter[str] = Counter()
        # The ledger protects its rows from a cascade: a bonus is money, deleted only here.
        _, counts = BonusLedgerEntry.objects.filter(participation=locked).delete()
        deleted.update(counts)
        _, counts = locked.delete()
        deleted.update(counts)
        record = ErasureRecord.objects.create(
            study=study,
            version_number=locked.version.number,
            arm=locked.condition.name if locked.condition else "",
            status=locked.status,
            is_test=locked.is_test,
            deleted={label.lower(): n for label, n in sorted(deleted.items()) if n},
            erased_by=by if by is not None and by.is_authenticated else None,
            via=via,
        )
        record.export_jobs_removed = _exports_remake(study=study)
        record.save(update_fields=["export_jobs_removed"])
    return record


def _exports_remake(*, study: Study) -> int:
    """Delete the study's export archives and stop its running exports, then queue each
    distinct export again (it runs after the erasure commits, without the participant)."""
    jobs = list(
        ExportJob.objects.filter(
            study=study, status__in=(JobStatus.SUCCEEDED, JobStatus.QUEUED, JobStatus.RUNNING)
        ).select_related("study", "requested_by")
    )
    again: dict[tuple[str, str, str], ExportJob] = {}
    for job in jobs:
        if job.status == JobStatus.SUCCEEDED:
            export_job_remove(job=job, why="a participant's data was erased")
        else:
            export_job_cancel(job=job)
        again.setdefault((job.kind, job.format, json.dumps(job.params, sort_keys=True)), job)
    for job in again.values():
        export_job_create(
            study=study, kind=job.kind, fmt=job.format,
            participation_filter=ParticipationFilter.from_params(job.params.get("filter") or {}),
            options=job.params.get("options") or {}, requested_by=job.requested_by,
        )
    return len(jobs)
