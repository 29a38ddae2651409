from django.core.management.base import BaseCommand, CommandError

from studyapp.payments.prolific import ProlificError, prolific_client
from studyapp.payments.prolific_sync import ProlificSyncError
from studyapp.payments.runs import ACTIONS
from studyapp.studies.models import Study


class Command(BaseCommand):
    help = (
        "Talk to Prolific's API for a study linked to a Prolific study (admin): import "
        "submissions and their statuses, approve/reject them as the app recorded, or pay the "
        "ledger's unpaid bonuses (never twice). Needs PROLIFIC_API_TOKEN."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("action", choices=sorted(ACTIONS))

    def handle(self, *args, slug: str, action: str, **options):
        study = Study.objects.filter(slug=slug).first()
        if study is None:
            raise CommandError(f"no study with slug {slug!r}")
        try:
            with prolific_client() as client:
                self.stdout.write(ACTIONS[action](study, client))
        except (ProlificError, ProlificSyncError) as exc:
            raise CommandError(str(exc)) from exc
