from django.core.management.base import BaseCommand, CommandError

from studyapp.feedback.models import DocumentScore
from studyapp.participants.models import Participation, Status
from studyapp.scoring.judge import JudgeConfigError
from studyapp.scoring.services import document_score
from studyapp.studies.models import Study


class Command(BaseCommand):
    help = "Score the final documents of a study's completed participations with its judge."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--retry-errors", action="store_true",
                            help="score again where the judge failed before")
        parser.add_argument("--all", action="store_true", help="score again everything")

    def handle(self, *args, slug, retry_errors, all, **options):
        study = Study.objects.filter(slug=slug).first()
        if study is None:
            raise CommandError(f"no study with slug {slug!r}")
        participations = Participation.objects.filter(
            study=study, status=Status.COMPLETED
        ).select_related("version").order_by("pk")
        done = {
            pk for pk, error in DocumentScore.objects.filter(
                participation__study=study
            ).values_list("participation_id", "error")
            if not (retry_errors and error)
        }
        todo = [p for p in participations if all or p.pk not in done]
        self.stdout.write(f"{len(todo)} documents to score")
        scored = failed = 0
        for i, participation in enumerate(todo, start=1):
            try:
                result = document_score(participation=participation)
            except JudgeConfigError as exc:
                raise CommandError(str(exc)) from exc
            if result is None:
                raise CommandError(f"study version {participation.version.number} has no judge")
            scored += result.score is not None
            failed += result.score is None
            self.stdout.write(f"[{i}/{len(todo)}] score={result.score} {result.error}".rstrip())
        self.stdout.write(self.style.SUCCESS(f"scored {scored}, failed {failed}"))
