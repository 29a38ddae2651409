"""Reads for studies."""

from __future__ import annotations

from studyapp.studies.models import Study, StudyVersion


def study_current_version(*, study: Study) -> StudyVersion:
    version = study.versions.order_by("-number").first()
    if version is None:
        raise StudyVersion.DoesNotExist(f"study {study.slug} has no version")
    return version
