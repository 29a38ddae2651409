import json

import yaml
from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError

from studyapp.scoring.judge import JudgeConfigError
from studyapp.scoring.services import study_judge_add
from studyapp.studies.models import Study


class Command(BaseCommand):
    help = (
        "Add a judge to a study, after collection too: every completed document is queued for "
        "it. CONFIG is a study file's judge block in YAML or JSON, e.g. "
        "\"{backend: openai, endpoints: ['http://judge:8000'], model: M, rubric: "
        "document_quality_v1}\" or \"{condition: base}\"."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("name", help="a short slug; its scores are stored under it")
        parser.add_argument("config")

    def handle(self, *args, slug: str, name: str, config: str, **options):
        study = Study.objects.filter(slug=slug).first()
        if study is None:
            raise CommandError(f"no study with slug {slug!r}")
        try:
            block = yaml.safe_load(config)
        except yaml.YAMLError as exc:
            raise CommandError(f"CONFIG is not YAML or JSON: {exc}") from exc
        try:
            added = study_judge_add(study=study, name=name, config=block)
        except (JudgeConfigError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        except IntegrityError as exc:
            raise CommandError(f"study {slug} already has a judge named {name!r}") from exc
        self.stdout.write(self.style.SUCCESS(
            f"judge {added.name} added to {slug}: {json.dumps(block)}; documents queued"
        ))
