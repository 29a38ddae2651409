"""Export benchmark: stream 300,000 messages to CSV, JSON Lines and Parquet in constant memory.

    python -m bench.export [--participations 10000] [--turns 15] [--keep]

Creates a scratch PostgreSQL database ``collabstudy_bench_export`` (dropped first; the server
is the one in ``DATABASE_URL``, default ``postgres://postgres@127.0.0.1:5432``), fills it with
COPY (participations x turns x 2 messages; 10,000 x 15 x 2 = 300,000), then runs the messages
export once per format, each in a fresh process, and reports wall time and that process's peak
resident memory (``ru_maxrss``) next to its resident memory before the export began. Goal: peak
below 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DB_NAME = "collabstudy_bench_export"
FORMATS = ("csv", "jsonl", "parquet")
# Also measured: the SFT dataset (whole conversations, read 200 participations at a time).
RUNS = (*FORMATS, "sft")
GOAL_MB = 300
REPO = Path(__file__).resolve().parent.parent
WORDS = [
    "the", "draft", "could", "open", "with", "a", "short", "story", "about", "first", "trip",
    "then", "move", "to", "three", "practical", "tips", "readers", "can", "use", "tomorrow",
    "keep", "tone", "warm", "and", "little", "funny", "end", "an", "invitation", "share",
    "their", "own", "budget", "travel", "habits", "in", "comments",
]  # fmt: skip


def _server_url() -> str:
    raw = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    parts = urlsplit(raw)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def _db_url() -> str:
    return f"{_server_url()}/{DB_NAME}"


def _setup_django() -> None:
    os.environ["DATABASE_URL"] = _db_url()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studyapp.settings")
    import django

    django.setup()


def _rss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def recreate_database() -> None:
    import psycopg

    with psycopg.connect(f"{_server_url()}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}"')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def _copy(model, rows) -> int:
    """COPY rows (dicts by attname) into ``model``'s table; other columns take defaults."""
    from django.db import connection

    fields = [
        f for f in model._meta.concrete_fields
        if not f.primary_key and not getattr(f, "generated", False)
    ]
    columns = ", ".join(f'"{f.column}"' for f in fields)
    count = 0
    with connection.cursor() as cursor:
        sql = f'COPY "{model._meta.db_table}" ({columns}) FROM STDIN'
        with cursor.cursor.copy(sql) as copy:
            for row in rows:
                values = []
                for f in fields:
                    value = row[f.attname] if f.attname in row else f.get_default()
                    values.append(f.get_db_prep_save(value, connection))
                copy.write_row(values)
                count += 1
    return count


def fill(participations: int, turns: int) -> dict[str, float]:
    from django.core.management import call_command

    from studyapp.participants.models import Participation
    from studyapp.studies.services import study_load
    from studyapp.writing.models import Message

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    text = (REPO / "deploy/studies/collabllm-cowriting.yaml").read_text()
    version = study_load(text=text, slug="bench", offline=True).version
    conditions = list(version.conditions.all())
    rng = random.Random(7)
    now = datetime.now(UTC)

    def people():
        for i in range(participations):
            yield {
                "public_id": uuid.uuid4(), "study_id": version.study_id,
                "version_id": version.pk, "condition_id": conditions[i % 3].pk,
                "platform": "prolific", "external_id": f"{i:024x}",
                "platform_data": {"STUDY_ID": "5f" * 12, "SESSION_ID": f"{i:024x}"},
                "document_type": "blog_post", "topic": "Travelling on a tight budget",
                "status": "completed", "entered_at": now - timedelta(minutes=40),
                "completed_at": now, "outcome": "completed",
            }

    _copy(Participation, people())
    ids = list(Participation.objects.order_by("pk").values_list("pk", flat=True))

    def messages():
        for pid in ids:
            for turn in range(1, turns + 1):
                yield {"participation_id": pid, "generation_id": uuid.uuid4(), "turn": turn,
                       "role": "user", "text": _text(rng, 25), "created_at": now}
                reply = _text(rng, 160)
                yield {
                    "participation_id": pid, "generation_id": uuid.uuid4(), "turn": turn,
                    "role": "assistant", "text": reply, "raw_output": reply,
                    "backend": "openai", "model": "meta-llama/Llama-3.1-8B-Instruct",
                    "sampling": {"temperature": 0.8, "top_p": 1.0, "max_tokens": 1024},
                    "prompt_tokens": 300 * turn, "completion_tokens": 210, "ttft_ms": 61.0,
                    "duration_ms": 1700.0, "finish_reason": "stop", "created_at": now,
                }

    rows = _copy(Message, messages())
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        cursor.execute("SELECT pg_total_relation_size('writing_message')")
        size = cursor.fetchone()[0]
    return {"messages": rows, "fill_s": time.perf_counter() - started,
            "messages_table_mb": size / 2**20}


def run_one(run: str, out_dir: str) -> dict[str, float]:
    """Child process: one export; prints its measurements as JSON."""
    _setup_django()
    from studyapp.dashboards.filters import ParticipationFilter
    from studyapp.exports.analysis import study_export
    from studyapp.exports.datasets.service import dataset_export
    from studyapp.exports.tables import MESSAGES
    from studyapp.studies.models import Study

    study = Study.objects.get(slug="bench")
    before = _current_rss_mb()
    started = time.perf_counter()
    if run == "sft":
        result = dataset_export(study=study, kind="sft", out_dir=Path(out_dir), fmt="jsonl",
                                participation_filter=ParticipationFilter())
        rows, path, label = result.rows["train"], Path(out_dir) / "train.jsonl", "sft jsonl"
    else:
        counts = study_export(study=study, out_dir=Path(out_dir), fmt=run,
                              participation_filter=ParticipationFilter(),
                              tables=[MESSAGES]).counts
        rows, path, label = counts["messages"], Path(out_dir) / f"messages.{run}", run
    seconds = time.perf_counter() - started
    return {
        "format": label, "rows": rows, "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
        "rss_before_mb": round(before, 1), "peak_rss_mb": round(_rss_mb(), 1),
        "file_mb": round(path.stat().st_size / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participations", type=int, default=10_000)
    parser.add_argument("--turns", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--run-one", choices=RUNS, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        print(json.dumps(run_one(args.run_one, args.out)))
        return

    recreate_database()
    _setup_django()
    filled = fill(args.participations, args.turns)
    print(f"filled {filled['messages']:,} messages in {filled['fill_s']:.1f}s "
          f"(messages table {filled['messages_table_mb']:.0f} MB on disk)")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in RUNS:
            out = Path(tmp) / run
            child = subprocess.run(
                [sys.executable, "-m", "bench.export", "--run-one", run, "--out", str(out)],
                cwd=REPO, capture_output=True, text=True, check=True,
                env={**os.environ, "DATABASE_URL": _db_url(), "LOG_LEVEL": "WARNING"},
            )
            results.append(json.loads(child.stdout.strip().splitlines()[-1]))
    print("\n| export | rows | time (s) | rows/s | RSS before (MB) | peak RSS (MB) | file (MB) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['format']} | {r['rows']:,} | {r['seconds']} | {r['rows_per_s']:,} | "
              f"{r['rss_before_mb']} | {r['peak_rss_mb']} | {r['file_mb']} |")
    worst = max(r["peak_rss_mb"] for r in results)
    verdict = "within" if worst < GOAL_MB else "OVER"
    print(f"\npeak RSS {worst} MB: {verdict} the {GOAL_MB} MB goal")
    if not args.keep:
        from django.db import connections

        connections.close_all()
        import psycopg

        with psycopg.connect(f"{_server_url()}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}"')
    if worst >= GOAL_MB:
        sys.exit(1)


if __name__ == "__main__":
    main()
