from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from studyapp.exports.analysis import study_export
from studyapp.exports.management.filters import add_filter_arguments, filter_from_options
from studyapp.exports.scope import ExportError, study_by_slug
from studyapp.exports.writers import WRITERS


class Command(BaseCommand):
    help = "Export a study's analysis tables (pseudonymised) and their codebook."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--out", type=Path, required=True, help="directory to write")
        parser.add_argument("--format", choices=sorted(WRITERS), default="csv")
        add_filter_arguments(parser)

    def handle(self, *args, slug, out: Path, format: str, **options):
        population = filter_from_options(options)
        if out.exists() and not out.is_dir():
            raise CommandError(f"--out {out} exists and is not a directory")

        def progress(done: int, total: int, message: str) -> None:
            pct = 100 * done / total if total else 100
            self.stdout.write(f"[{pct:5.1f}%] {message}")

        try:
            study = study_by_slug(slug)
            self.stdout.write(f"exporting {study.slug} ({population.describe()}) to {out}")
            result = study_export(
                study=study, out_dir=out, fmt=format, participation_filter=population,
                progress=progress,
            )
        except (ExportError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        for table, rows in result.counts.items():
            self.stdout.write(f"  {table}.{format}: {rows} rows")
        self.stdout.write(self.style.SUCCESS(f"wrote {len(result.files)} files to {out}"))
