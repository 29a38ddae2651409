"""Prepare the demo for `make run`: a researcher login and the links to try the study with."""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from studyapp.studies.models import Study

DEMO_USERNAME = "researcher"
# Documented in the README; override with DEMO_PASSWORD for anything reachable by others.
DEFAULT_PASSWORD = "collabstudy"  # noqa: S105


class Command(BaseCommand):
    help = "Create the demo researcher login (idempotent) and print the demo study's links."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--slug", default="demo")

    def handle(self, *args, host: str, port: int, slug: str, **options):
        study = Study.objects.filter(slug=slug).first()
        if study is None:
            raise CommandError(
                f"no study {slug!r}: load it first with "
                f"`python manage.py load_study deploy/studies/collabllm-cowriting.yaml "
                f"--slug {slug} --offline`"
            )
        password = os.environ.get("DEMO_PASSWORD") or DEFAULT_PASSWORD
        created = self._researcher(password)
        base = f"http://{host}:{port}"
        entry = f"{base}/study/{study.slug}/"
        pid = secrets.token_hex(12)
        label = f"demo-{secrets.token_hex(4)}"
        pilot = f"{entry}?participant_label={label}&pilot_key={study.pilot_key}"
        version = study.versions.order_by("-number").first()
        if version is None or not version.spec.get("allow_pilot"):
            pilot = "(off: the study file does not allow pilot links)"
        lines = [
            "",
            f"CollabStudy demo ready ({'created' if created else 'updated'} researcher login)",
            f"  Researcher login:             {DEMO_USERNAME} / {password}",
            f"  Dashboards:                   {base}/dashboard/",
            f"  Admin:                        {base}/admin/",
            f"  Participant (pilot):          {pilot}",
            f"  Participant (Prolific-style): {entry}?PROLIFIC_PID={pid}"
            f"&STUDY_ID=demo-study&SESSION_ID={secrets.token_hex(8)}",
            "  Each link is one participant; change the label or PROLIFIC_PID for another.",
            "",
        ]
        self.stdout.write("\n".join(lines))

    def _researcher(self, password: str) -> bool:
        user, created = get_user_model().objects.get_or_create(username=DEMO_USERNAME)
        user.is_staff = True
        user.is_superuser = True
        user.set_password(password)
        user.save()
        return created
