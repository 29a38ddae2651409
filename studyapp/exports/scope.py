"""Which participations an export covers, and how each one is named outside the database."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import QuerySet

from studyapp.dashboards.filters import ParticipationFilter
from studyapp.exports.pseudonyms import Redactor, participant_pseudonym, platform_ids
from studyapp.participants.models import Participation
from studyapp.studies.models import Study


class ExportError(Exception):
    """The export cannot run; the message says why (shown to researchers as is)."""


@dataclass(frozen=True)
class Person:
    pseudonym: str
    platform: str
    condition: str
    version: int
    redact: Redactor


@dataclass
class ExportScope:
    """The filtered participations of one study, keyed by primary key.

    ``people`` holds one small record per participation (pseudonym, arm, redactor) so that the
    large tables can be streamed without joining back to the participation table.
    """

    study: Study
    participation_filter: ParticipationFilter
    people: dict[int, Person] = field(default_factory=dict)

    @classmethod
    def build(cls, *, study: Study, participation_filter: ParticipationFilter) -> ExportScope:
        scope = cls(study=study, participation_filter=participation_filter)
        rows = scope.participations().values_list(
            "pk", "platform", "external_id", "platform_data", "condition__name", "version__number"
        )
        for pk, platform, external_id, platform_data, condition, version in rows.iterator(
            chunk_size=2000
        ):
            scope.people[pk] = Person(
                pseudonym=participant_pseudonym(
                    secret=study.pseudonym_secret, platform=platform, external_id=external_id
                ),
                platform=platform,
                condition=condition or "",
                version=version,
                redact=Redactor.for_ids(
                    platform_ids(external_id=external_id, platform_data=platform_data)
                ),
            )
        return scope

    def participations(self) -> QuerySet[Participation]:
        return self.participation_filter.apply(Participation.objects.filter(study=self.study))

    def participation_ids(self) -> QuerySet[Participation]:
        """A subquery of the covered primary keys, for filtering related tables."""
        return self.participations().values("pk")


def study_by_slug(slug: str) -> Study:
    try:
        return Study.objects.get(slug=slug)
    except Study.DoesNotExist as exc:
        known = ", ".join(Study.objects.order_by("slug").values_list("slug", flat=True)[:20])
        raise ExportError(f"no study with slug {slug!r} (known: {known or 'none'})") from exc
