from django.core.management.base import BaseCommand, CommandError

from studyapp.erasure.services import (
    ParticipantNotFound,
    participation_erase,
    participation_identify,
)
from studyapp.studies.models import Study


class Command(BaseCommand):
    help = (
        "Erase one participant's data (a withdrawal): messages, documents, ratings, answers, "
        "events and platform ids. Only a record that an erasure happened is kept; the study's "
        "export files are deleted and queued again."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("identifier", help="platform id, export pseudonym or public id")

    def handle(self, *args, slug, identifier, **options):
        study = Study.objects.filter(slug=slug).first()
        if study is None:
            raise CommandError(f"no study with slug {slug!r}")
        try:
            participation = participation_identify(study=study, identifier=identifier)
        except ParticipantNotFound as exc:
            raise CommandError(str(exc)) from exc
        record = participation_erase(participation=participation, by=None, via="command")
        rows = sum(record.deleted.values())
        self.stdout.write(
            f"erased: {rows} rows deleted, {record.export_jobs_removed} export jobs removed "
            f"and queued again (erasure record {record.pk})"
        )
