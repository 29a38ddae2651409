"""Writes for studies: loading a study file as a new immutable version."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from studyapp.studies.models import Condition, Study, StudyVersion
from studyapp.studies.spec import (
    STUDY_FILES_DIR,
    parse_study_file,
    preregistration,
    preregistration_hash,
)


def condition_prompts(*, conditions: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Each arm's prompt as the version records it: version, sha256 of its text, package
    version, and the published prompt it stands in for where that package was missing."""
    from collab_models.arms import build_arm

    return {c["name"]: build_arm(c, base_dir=STUDY_FILES_DIR).prompt.describe() for c in conditions}


@dataclass(frozen=True)
class LoadResult:
    version: StudyVersion
    created: bool


def study_load(
    *, text: str, slug: str | None = None, offline: bool = False, if_changed: bool = False
) -> LoadResult:
    """Create a new version of the study described by ``text`` (creating the study if new).

    ``offline`` turns every arm into the offline backend and allows pilot links (the demo: no
    real model is reached and no real code is shown to a pilot). With ``if_changed`` an
    identical file does not create a new version.
    """
    spec = parse_study_file(text, offline=offline)
    if slug:
        spec["slug"] = slug
    if offline:
        spec["offline_demo"] = True
        spec["allow_pilot"] = True
    digest = hashlib.sha256(f"{offline}\n{text}".encode()).hexdigest()
    with transaction.atomic():
        study, _ = Study.objects.select_for_update().get_or_create(
            slug=spec["slug"], defaults={"title": spec["title"]}
        )
        latest = study.versions.order_by("-number").first()
        if if_changed and latest and latest.source_sha256 == digest:
            return LoadResult(version=latest, created=False)
        version = StudyVersion.objects.create(
            study=study,
            number=(latest.number + 1) if latest else 1,
            spec=spec,
            source_text=text,
            source_sha256=digest,
            model_context=spec["model_context"],
            prompts=condition_prompts(conditions=spec["conditions"]),
        )
        Condition.objects.bulk_create(
            Condition(
                version=version,
                name=c["name"],
                weight=c["weight"],
                backend=c["backend"],
                config=c,
            )
            for c in spec["conditions"]
        )
        if study.title != spec["title"]:
            study.title = spec["title"]
            study.save(update_fields=["title"])
    return LoadResult(version=version, created=True)


def preregistration_freeze(*, study: Study, version: StudyVersion) -> bool:
    """Freeze ``version``'s pre-registration hash on the study unless one is frozen already.

    Called when the first real participant enters (the study opens), with the study row
    locked; later calls change nothing. True when this call froze it.
    """
    if study.preregistration_frozen_at is not None:
        return False
    now = timezone.now()
    digest = preregistration_hash(preregistration(version.spec))
    updated = Study.objects.filter(pk=study.pk, preregistration_frozen_at__isnull=True).update(
        preregistration_sha256=digest, preregistration_frozen_at=now,
        preregistration_version=version.number,
    )
    if updated:
        study.preregistration_sha256 = digest
        study.preregistration_frozen_at = now
        study.preregistration_version = version.number
    return bool(updated)
