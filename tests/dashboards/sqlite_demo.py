"""The dashboards on SQLite, as ``make run`` serves them: run in its own process by
test_sqlite_demo.py (the suite's database is PostgreSQL).

Usage: ``python -m tests.dashboards.sqlite_demo`` with DATABASE_URL naming an empty SQLite file;
prints a JSON object of what each page answered.
"""

import json
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studyapp.settings")
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402

from tests.dashboards.builders import PSpec, build_participation  # noqa: E402
from tests.dashboards.helpers import figures_of  # noqa: E402
from tests.sqlite_demo_db import demo_version  # noqa: E402


def main() -> dict:
    version = demo_version()
    arms = {c.name: c for c in version.conditions.all()}
    # One completer with a single in-chat rating: one rating per (arm, turn) group.
    spec = PSpec(
        arm=next(iter(arms)),
        document_quality=7,
        overall=6,
        interaction={3: 7},
        minutes=20.0,
        turns=3,
        ttft=[120.0, 130.0, 140.0],
        tokens=[10, 20, 30],
        documents=["A draft", "The final draft"],
        judge=6.5,
        attention_passed=True,
    )
    participation = build_participation(version, arms, spec, 0)
    staff = get_user_model().objects.create_user("researcher", password="pw", is_staff=True)
    client = Client(HTTP_HOST="localhost")
    client.force_login(staff)
    study_url = reverse("dashboards:study", args=["demo"])
    pages = {
        "index": reverse("dashboards:index"),
        "study": study_url,
        "study_itt": f"{study_url}?view=itt&include_test=1",
        "monitor": reverse("dashboards:monitor", args=["demo"]),
        "conversation": reverse("dashboards:conversation", args=["demo", participation.public_id]),
    }
    out: dict = {"status": {}}
    for name, url in pages.items():
        response = client.get(url)
        out["status"][name] = response.status_code
        if name == "study" and response.status_code == 200:
            engagement = figures_of(response)["engagement"]["data"]
            out["engagement"] = {t["name"]: [t["x"], t["y"], t["customdata"]] for t in engagement}
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
