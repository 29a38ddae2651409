from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from studyapp.payments.models import BonusBatch
from studyapp.payments.selectors import bonus_batch_rows, bonus_csv_write, bonus_unpayable
from studyapp.payments.services import bonus_batch_create, bonus_completions_grant
from studyapp.studies.models import Study


class Command(BaseCommand):
    help = (
        "Write unpaid Prolific bonuses as a bulk-bonus file (participant_id,amount) and mark "
        "them paid, so no bonus is ever exported twice. Contains PROLIFIC_PIDs: keep it private."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--out", type=Path, required=True)
        parser.add_argument("--header", action="store_true",
                            help="write a participant_id,amount header line (Prolific's "
                            "bulk-bonus box wants none)")
        parser.add_argument("--batch", type=int,
                            help="print an earlier batch again instead of a new one")

    def handle(self, *args, slug, out: Path, header: bool, batch: int | None, **options):
        study = Study.objects.filter(slug=slug).first()
        if study is None:
            raise CommandError(f"no study with slug {slug!r}")
        if not out.parent.is_dir():
            raise CommandError(f"directory {out.parent} does not exist")
        if batch is not None:
            found = BonusBatch.objects.filter(study=study, pk=batch).first()
            if found is None:
                raise CommandError(f"study {slug} has no bonus batch {batch}")
            self._write(out, bonus_batch_rows(batch=found), header)
            self.stdout.write(f"batch {batch} written again to {out} (it was already paid)")
            return
        granted = bonus_completions_grant(study=study)
        if granted:
            self.stdout.write(f"granted the per-completion bonus to {granted} completers")
        temporary = out.with_name(out.name + ".partial")
        try:
            # The entries are marked paid only if the file is written, and the file appears
            # under its name only once they are.
            with transaction.atomic():
                created = bonus_batch_create(study=study)
                if created is not None:
                    rows = bonus_batch_rows(batch=created)
                    self._write(temporary, rows, header)
        except OSError as exc:
            if temporary.is_file():
                temporary.unlink()
            raise CommandError(f"could not write {out}: {exc}") from exc
        for platform, n in sorted(bonus_unpayable(study=study).items()):
            self.stdout.write(f"{n} unpaid {platform} bonus(es) are not in this file")
        if created is None:
            self.stdout.write("nothing to pay: every Prolific bonus is already in a batch")
            return
        temporary.replace(out)
        total = sum(amount for _, amount in rows)
        self.stdout.write(self.style.SUCCESS(
            f"batch {created.pk}: {len(rows)} participants, total {total:.2f}, written to {out}"
        ))

    def _write(self, path: Path, rows, header: bool) -> None:
        with path.open("w", newline="", encoding="utf-8") as handle:
            bonus_csv_write(rows, handle, header=header)
