from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from studyapp.exports.codebook import codebook_generic, codebook_json, codebook_markdown


class Command(BaseCommand):
    help = (
        "Write the study-independent codebook of the analysis export (docs/codebook.md and "
        ".json). Each export also writes its own, with the study's values filled in."
    )

    def add_arguments(self, parser):
        parser.add_argument("--out", type=Path, default=Path("docs/codebook.md"),
                            help="Markdown path; the JSON goes beside it")

    def handle(self, *args, out: Path, **options):
        if not out.parent.is_dir():
            raise CommandError(f"directory {out.parent} does not exist")
        book = codebook_generic()
        out.write_text(codebook_markdown(book), encoding="utf-8")
        out.with_suffix(".json").write_text(codebook_json(book), encoding="utf-8")
        self.stdout.write(f"wrote {out} and {out.with_suffix('.json')}")
