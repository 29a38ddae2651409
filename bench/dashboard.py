"""Dashboard benchmark: server time of the study dashboard on a study of realistic size.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/collabstudy_test python -m bench.dashboard

Creates (or, with --reuse, keeps) a scratch database ``collabstudy_bench`` on the server named by
DATABASE_URL, migrates it, loads the reference study as ``bench`` and COPYs in 10,000
participations with 300,000 chat messages, their ratings, document versions and judge scores.
Then it times, in-process with Django's test client as a staff user, GET /dashboard/bench/
(completers and ITT views), the live monitor JSON, the study list and one conversation page.
Server time = the time from request to complete response, without network or browser.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
BENCH_DB = "collabstudy_bench"
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/collabstudy_test"
ARMS = ("base", "proactive_base", "collabllm")
GOAL_SECONDS = 1.0
DOCUMENT_TYPES = ("blog_post", "creative_writing", "personal_statement")


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def create_database(url: str, *, reuse: bool) -> bool:
    """(Re)create the scratch database; True when it already existed and is kept."""
    import psycopg

    admin = _with_database(url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone()
        if exists and reuse:
            return True
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    return False


def drop_database(url: str) -> None:
    import psycopg

    with psycopg.connect(_with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "studyapp.settings"
    os.environ.pop("REDIS_URL", None)  # the benchmark needs neither channels nor Celery
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.conf import settings

    # The test client's host; setup_test_environment() would also instrument template
    # rendering for assertions, which is not part of the server time being measured.
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]


# --- data ----------------------------------------------------------------------------------


def _copy(model: Any, rows: Iterable[dict[str, Any]]) -> int:
    """COPY rows into the model's table; fields a row omits get the model's default."""
    from django.db import connection
    from psycopg.types.json import Jsonb

    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return 0
    fields = [
        f
        for f in model._meta.concrete_fields
        if not (f.primary_key and f.attname not in first) and not f.generated
    ]
    defaults: dict[str, Callable[[], Any]] = {}
    for f in fields:
        if f.attname not in first:
            if f.has_default() and callable(f.default):
                defaults[f.attname] = f.get_default
            else:
                value = f.get_default()
                defaults[f.attname] = lambda value=value: value
    json_fields = {f.attname for f in fields if f.get_internal_type() == "JSONField"}
    columns = ", ".join(f'"{f.column}"' for f in fields)
    count = 0
    with connection.cursor() as cursor:
        raw = cursor.connection
        with (
            raw.cursor() as cur,
            cur.copy(f'COPY "{model._meta.db_table}" ({columns}) FROM STDIN') as copy,
        ):
            for row in _chain(first, rows):
                values = []
                for f in fields:
                    name = f.attname
                    value = row[name] if name in row else defaults[name]()
                    values.append(Jsonb(value) if name in json_fields else value)
                copy.write_row(values)
                count += 1
    return count


def _chain(first: dict, rest: Iterable[dict]) -> Iterable[dict]:
    yield first
    yield from rest


def _text_pool(rng: random.Random, size: int, low: int, high: int) -> list[str]:
    words = "the a draft story idea reader post tone garden budget travel habit letter city rain"
    vocabulary = [*words.split(), "lighthouse", "keeper", "paragraph", "opening", "ending"]
    return [
        " ".join(rng.choice(vocabulary) for _ in range(rng.randint(low, high))) for _ in range(size)
    ]


def populate(*, participations: int, messages: int, seed: int = 7) -> dict[str, int]:
    from django.db import connection

    from studyapp.feedback.models import FINAL_TURN, DocumentScore, Rating, Scale
    from studyapp.participants.models import Participation, Status
    from studyapp.studies.services import study_load
    from studyapp.writing.models import DocumentVersion, Message, Role

    rng = random.Random(seed)
    text = (REPO / "deploy" / "studies" / "collabllm-cowriting.yaml").read_text()
    version = study_load(text=text, slug="bench").version
    study = version.study
    conditions = {c.name: c.id for c in version.conditions.all()}
    now = datetime.now(UTC)

    statuses = (
        [Status.COMPLETED] * 70
        + [Status.WRITING] * 10
        + [Status.RETURNED] * 8
        + [Status.TIMED_OUT] * 5
        + [Status.EXCLUDED] * 2
        + [Status.DECLINED] * 3
        + [Status.ENTERED] * 2
    )
    people = []
    for i in range(participations):
        status = statuses[i % len(statuses)]
        assigned = status not in (Status.DECLINED, Status.ENTERED)
        entered = now - timedelta(days=rng.uniform(0, 14))
        live = status == Status.WRITING and i % 3 == 0
        if live:  # a third of the writers are on the page right now
            entered = now - timedelta(minutes=rng.uniform(5, 40))
        minutes = rng.uniform(12, 50)
        people.append(
            {
                "id": i + 1,
                "status": status,
                "arm": ARMS[i % 3] if assigned else None,
                "entered": entered,
                "completed": entered + timedelta(minutes=minutes)
                if status == Status.COMPLETED
                else None,
                "last_seen": (now - timedelta(seconds=rng.uniform(0, 120)))
                if live
                else entered + timedelta(minutes=minutes),
                "is_test": i % 100 == 0,
                "attention": i % 33 != 0,
            }
        )
    _copy(
        Participation,
        (
            {
                "id": p["id"],
                "study_id": study.id,
                "version_id": version.id,
                "condition_id": conditions[p["arm"]] if p["arm"] else None,
                "platform": "prolific",
                "external_id": f"BENCH{p['id']:06d}",
                "platform_data": {"STUDY_ID": "bench", "SESSION_ID": f"S{p['id']}"},
                "is_test": p["is_test"],
                "document_type": rng.choice(DOCUMENT_TYPES),
                "topic": "A topic",
                "status": p["status"],
                "entered_at": p["entered"],
                "consented_at": p["entered"] + timedelta(minutes=1)
                if p["status"] not in (Status.DECLINED, Status.ENTERED)
                else None,
                "assigned_at": p["entered"] + timedelta(minutes=1) if p["arm"] else None,
                "writing_at": p["entered"] + timedelta(minutes=3) if p["arm"] else None,
                "completed_at": p["completed"],
                "last_seen_at": p["last_seen"],
                "active_seconds": rng.uniform(300, 2400),
                "attention_passed": p["attention"] if p["arm"] else None,
                "outcome": "completed" if p["status"] == Status.COMPLETED else "",
            }
            for p in people
        ),
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('participants_participation', 'id'), %s)",
            [participations],
        )

    assigned = [p for p in people if p["arm"]]
    # Turns per conversation vary around the mean that yields the requested message count.
    base_turns = messages // (2 * len(assigned))
    turns = [base_turns + rng.choice((-4, -2, 0, 2, 4)) for _ in assigned]
    for i in range(len(assigned)):
        turns[i] = max(1, turns[i])
    while sum(turns) * 2 < messages:
        turns[rng.randrange(len(turns))] += 1
    while sum(turns) * 2 > messages:
        j = rng.randrange(len(turns))
        if turns[j] > 1:
            turns[j] -= 1
    user_pool = _text_pool(rng, 500, 5, 60)
    reply_pool = _text_pool(rng, 500, 40, 250)
    doc_pool = _text_pool(rng, 200, 150, 600)

    def message_rows() -> Iterable[dict[str, Any]]:
        for p, n in zip(assigned, turns, strict=True):
            start = p["entered"] + timedelta(minutes=3)
            end = p["last_seen"]
            step = (end - start) / (2 * n + 1)
            for turn in range(1, n + 1):
                at = start + step * (2 * turn - 1)
                yield {
                    "participation_id": p["id"],
                    "turn": turn,
                    "role": Role.USER,
                    "text": rng.choice(user_pool),
                    "created_at": at,
                }
                reply = {
                    "participation_id": p["id"],
                    "turn": turn,
                    "role": Role.ASSISTANT,
                    "created_at": at + step,
                    "backend": "openai",
                    "model": "meta-llama/Llama-3.1-8B-Instruct",
                    "sampling": {"temperature": 0.8, "top_p": 1.0},
                    "prompt_tokens": 200 + 150 * turn,
                    "ttft_ms": rng.lognormvariate(4.2, 0.35),
                    "duration_ms": rng.uniform(800, 4000),
                }
                if rng.random() < 0.01:
                    # As the relay stores a failed generation: inactive, then a retried reply.
                    yield {
                        **reply,
                        "text": "",
                        "is_active": False,
                        "finish_reason": "error",
                        "error": "upstream 503",
                    }
                yield {
                    **reply,
                    "text": rng.choice(reply_pool),
                    "completion_tokens": rng.randint(60, 400),
                    "finish_reason": "stop",
                }

    n_messages = _copy(Message, message_rows())

    def rating_rows() -> Iterable[dict[str, Any]]:
        for p, n in zip(assigned, turns, strict=True):
            for turn in range(3, n + 1, 3):
                yield {
                    "participation_id": p["id"],
                    "scale": Scale.INTERACTION,
                    "turn": turn,
                    "value": rng.randint(3, 10),
                    "created_at": p["entered"],
                }
            if p["status"] == Status.COMPLETED:
                for scale in (Scale.DOCUMENT_QUALITY, Scale.OVERALL):
                    yield {
                        "participation_id": p["id"],
                        "scale": scale,
                        "turn": FINAL_TURN,
                        "value": rng.randint(3, 10),
                        "created_at": p["completed"],
                    }

    n_ratings = _copy(Rating, rating_rows())
    n_versions = _copy(
        DocumentVersion,
        (
            {
                "participation_id": p["id"],
                "number": k,
                "text": rng.choice(doc_pool),
                "created_at": p["entered"] + timedelta(minutes=5 * k),
            }
            for p in assigned
            for k in range(1, 6)
        ),
    )
    n_scores = _copy(
        DocumentScore,
        (
            {
                "participation_id": p["id"],
                "judge": "llama-3.1-70b-judge",
                "rubric_version": "v1",
                "score": rng.uniform(3, 10),
                "created_at": p["completed"],
            }
            for p in assigned
            if p["status"] == Status.COMPLETED
        ),
    )
    with connection.cursor() as cursor:
        # What autovacuum does on a live server: statistics, and the visibility map that lets
        # index-only scans skip the table.
        cursor.execute("VACUUM ANALYZE")
    return {
        "participations": participations,
        "messages": n_messages,
        "ratings": n_ratings,
        "document_versions": n_versions,
        "judge_scores": n_scores,
    }


# --- timing --------------------------------------------------------------------------------


def time_get(client: Any, url: str, runs: int) -> dict[str, float]:
    first_start = time.perf_counter()
    response = client.get(url)
    first = time.perf_counter() - first_start
    if response.status_code != 200:
        raise SystemExit(f"GET {url} returned {response.status_code}")
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        client.get(url)
        times.append(time.perf_counter() - start)
    return {
        "first": first,
        "p50": statistics.median(times),
        "max": max(times),
        "bytes": len(response.content),
    }


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participations", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    parser.add_argument("--reuse", action="store_true", help="reuse a kept bench database")
    args = parser.parse_args(argv)

    server = os.environ.get("DATABASE_URL", DEFAULT_URL)
    url = _with_database(server, BENCH_DB)
    kept = create_database(server, reuse=args.reuse)
    setup_django(url)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client
    from django.urls import reverse

    from studyapp.participants.models import Participation
    from studyapp.writing.models import Message

    if not kept:
        print(f"bench: created database {BENCH_DB}; migrating", flush=True)
        call_command("migrate", verbosity=0)
        start = time.perf_counter()
        counts = populate(participations=args.participations, messages=args.messages)
        print(f"bench: loaded {counts} in {time.perf_counter() - start:.1f} s", flush=True)
    else:
        print(
            f"bench: reusing {BENCH_DB}: {Participation.objects.count()} participations, "
            f"{Message.objects.count()} messages",
            flush=True,
        )
    staff, _ = get_user_model().objects.get_or_create(
        username="bench-researcher", defaults={"is_staff": True}
    )
    client = Client()
    client.force_login(staff)
    some = Participation.objects.filter(study__slug="bench", status="completed").first()
    pages = [
        ("study dashboard (completers)", reverse("dashboards:study", args=["bench"])),
        (
            "study dashboard (ITT, with tests)",
            reverse("dashboards:study", args=["bench"])
            + "?view=itt&include_test=1&include_failed_attention=1",
        ),
        ("live monitor JSON", reverse("dashboards:monitor", args=["bench"])),
        ("study list", reverse("dashboards:index")),
        ("conversation viewer", reverse("dashboards:conversation", args=["bench", some.public_id])),
    ]
    header = f"{'page':38} {'first':>8} {'p50':>8} {'max':>8} {'KiB':>7}"
    print(f"\n{header}   (seconds, {args.runs} runs after the first)")
    worst = 0.0
    for label, page_url in pages:
        result = time_get(client, page_url, args.runs)
        worst = max(worst, result["p50"])
        print(
            f"{label:38} {result['first']:8.3f} {result['p50']:8.3f} {result['max']:8.3f} "
            f"{result['bytes'] / 1024:7.0f}"
        )
    verdict = "meets" if worst < GOAL_SECONDS else "MISSES"
    print(f"\nslowest p50 {worst:.3f} s: {verdict} the {GOAL_SECONDS:.0f} s goal")
    if not args.keep:
        from django.db import connections

        connections.close_all()
        drop_database(server)
        print(f"bench: dropped {BENCH_DB} (--keep keeps it for --reuse)")
    return 0 if worst < GOAL_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(run())
