from django.core.management.base import BaseCommand, CommandError

from studyapp.feedback.models import DocumentScore
from studyapp.participants.models import Participation, Status
from studyapp.scoring.judge import JudgeConfigError, judges_for
from studyapp.scoring.services import document_score
from studyapp.studies.models import Study


class Command(BaseCommand):
    help = (
        "Score the final documents of a study's completed participations with each of its "
        "judges (the study file's and those added with judge_add). A failed re-score never "
        "replaces a good score."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--judge", help="only this judge (its label, or an added judge's name)")
        parser.add_argument("--retry-errors", action="store_true",
                            help="score again where the judge failed before")
        parser.add_argument("--all", action="store_true", help="score again everything")

    def handle(self, *args, slug, judge, retry_errors, all, **options):
        study = Study.objects.filter(slug=slug).first()
        if study is None:
            raise CommandError(f"no study with slug {slug!r}")
        participations = Participation.objects.filter(
            study=study, status=Status.COMPLETED
        ).select_related("version").order_by("pk")
        previous = {
            (pk, label, rubric): error for pk, label, rubric, error in
            DocumentScore.objects.filter(participation__study=study).values_list(
                "participation_id", "judge", "rubric_version", "error")
        }
        todo = []
        for participation in participations:
            try:
                judges = judges_for(participation.version)
            except JudgeConfigError as exc:
                raise CommandError(str(exc)) from exc
            for j in judges:
                if judge and j.label != judge:
                    continue
                key = (participation.pk, j.label, j.rubric)
                if all or key not in previous or (retry_errors and previous[key]):
                    todo.append((participation, j))
        if not todo and not any(judges_for(v) for v in study.versions.all()):
            raise CommandError(f"study {slug} has no judge: add one with manage.py judge_add")
        self.stdout.write(f"{len(todo)} scores to make")
        scored = failed = kept = 0
        for i, (participation, j) in enumerate(todo, start=1):
            result = document_score(participation=participation, judge=j)
            if result is None:  # only without a judge, which todo never holds
                continue
            if result.rescore_error and result.score is not None:
                kept += 1
                note = f"kept {result.score} ({result.rescore_error})"
            else:
                scored += result.score is not None
                failed += result.score is None
                note = f"score={result.score} {result.error}".rstrip()
            self.stdout.write(f"[{i}/{len(todo)}] {j.label}: {note}")
        self.stdout.write(self.style.SUCCESS(
            f"scored {scored}, failed {failed}, kept {kept} good scores a re-score failed"
        ))
