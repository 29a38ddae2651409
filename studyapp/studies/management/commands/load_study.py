from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from studyapp.studies.services import study_load
from studyapp.studies.spec import StudySpecError


class Command(BaseCommand):
    help = "Load a study file (YAML) as a new version of its study."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--slug", help="load under this slug instead of the file's")
        parser.add_argument(
            "--offline",
            action="store_true",
            help="run every arm on the offline backend and allow pilot links (a demo)",
        )
        parser.add_argument(
            "--if-changed", action="store_true", help="skip when the file is unchanged"
        )

    def handle(self, *args, file: Path, slug, offline, if_changed, **options):
        if not file.is_file():
            raise CommandError(f"no such study file: {file}")
        try:
            result = study_load(
                text=file.read_text(), slug=slug, offline=offline, if_changed=if_changed
            )
        except StudySpecError as exc:
            raise CommandError(f"{file}: {exc}") from exc
        version = result.version
        verb = "loaded" if result.created else "unchanged"
        names = ", ".join(c.name for c in version.conditions.all())
        self.stdout.write(f"{verb}: {version.study.slug} version {version.number} ({names})")
