from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from collab_models.real_user_reward import RewardWeights
from studyapp.exports.datasets.kinds import DOCUMENT_SOURCES, KINDS, DatasetOptions
from studyapp.exports.datasets.service import DATASET_FORMATS, dataset_export
from studyapp.exports.management.filters import add_filter_arguments, filter_from_options
from studyapp.exports.scope import ExportError, study_by_slug

_DEFAULTS = RewardWeights()


class Command(BaseCommand):
    help = "Export a study as training data (sft, dpo, kto, reward, collabllm) with a card."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--kind", choices=sorted(KINDS), required=True)
        parser.add_argument("--out", type=Path, required=True, help="directory to write")
        parser.add_argument("--format", choices=DATASET_FORMATS, default="jsonl")
        parser.add_argument(
            "--test-fraction", type=float, default=0.0,
            help="share of participants put in a test split (by pseudonym hash)",
        )
        add_filter_arguments(parser)
        kto = parser.add_argument_group("kto labels")
        kto.add_argument("--kto-desirable", type=int, default=7,
                         help="covering rating >= this is desirable (default 7)")
        kto.add_argument("--kto-undesirable", type=int, default=None,
                         help="covering rating <= this is undesirable (default desirable-1)")
        reward = parser.add_argument_group("real-user reward (reward, collabllm, dpo scores)")
        reward.add_argument("--window", type=int, default=_DEFAULTS.window)
        reward.add_argument("--w-rating", type=float, default=_DEFAULTS.rating)
        reward.add_argument("--w-document", type=float, default=_DEFAULTS.document)
        reward.add_argument("--w-cost", type=float, default=_DEFAULTS.cost)
        reward.add_argument("--token-lambda", type=float, default=_DEFAULTS.lam)
        reward.add_argument("--document-source", choices=DOCUMENT_SOURCES,
                            default="participant")

        pairs = parser.add_argument_group("collabllm alternatives")
        pairs.add_argument("--gap-side-by-side", type=float, default=1.0,
                           help="score gap below the kept reply for a side-by-side pick")
        pairs.add_argument("--gap-regeneration", type=float, default=0.5,
                           help="score gap for a regeneration (weaker evidence)")

    def handle(self, *args, slug, kind, out: Path, format: str, **o):
        population = filter_from_options(o)
        try:
            options = DatasetOptions(
                kto_desirable=o["kto_desirable"],
                kto_undesirable=o["kto_undesirable"],
                reward=RewardWeights(
                    window=o["window"], rating=o["w_rating"], document=o["w_document"],
                    cost=o["w_cost"], lam=o["token_lambda"],
                ),
                document_source=o["document_source"],
                test_fraction=o["test_fraction"],
                gap_side_by_side=o["gap_side_by_side"],
                gap_regeneration=o["gap_regeneration"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if out.exists() and not out.is_dir():
            raise CommandError(f"--out {out} exists and is not a directory")

        def progress(done: int, total: int, message: str) -> None:
            self.stdout.write(f"[{done}/{total}] {message}")

        try:
            study = study_by_slug(slug)
            self.stdout.write(f"building {kind} from {study.slug} ({population.describe()})")
            result = dataset_export(
                study=study, kind=kind, out_dir=out, fmt=format,
                participation_filter=population, options=options, progress=progress,
            )
        except (ExportError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        for split, rows in result.rows.items():
            self.stdout.write(f"  {split}: {rows} rows")
        self.stdout.write(self.style.SUCCESS(f"wrote {len(result.files)} files to {out}"))
