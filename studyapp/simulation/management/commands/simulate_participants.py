"""manage.py simulate_participants <slug> --n N [--simulator scripted|llm] [--concurrency C]
[--url BASE]: simulated participants walk through the study over HTTP and its WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from studyapp.simulation.brains import Brain
from studyapp.simulation.runner import (
    Progress,
    RunSummary,
    arm_outcomes,
    new_labels,
    run_simulation,
)
from studyapp.simulation.scripted import ScriptedBrain, persona_for
from studyapp.simulation.server import serve_app
from studyapp.studies.models import Study
from studyapp.studies.selectors import study_current_version


class Command(BaseCommand):
    help = (
        "Simulated participants go through the study as people do (entry, consent, "
        "pre-writing, chat, ratings, edits, Finish, survey) over HTTP and the WebSocket. "
        "They are marked simulated: no quota, no pay, balanced among themselves, left out of "
        "analyses and exports unless asked. Without --url the app is served on a free "
        "loopback port for the run. The study's simulation key is read from the database."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--n", type=int, required=True, help="how many participants")
        parser.add_argument("--simulator", choices=("scripted", "llm"), default="scripted")
        parser.add_argument("--concurrency", type=int, default=4, help="participants at once")
        parser.add_argument("--url", default="", help="a running server's base URL")
        parser.add_argument(
            "--offline-rate", type=int, default=None,
            help="without --url: tokens per second of the offline backend (faster runs)",
        )
        parser.add_argument(
            "--wait", type=float, default=180.0, help="seconds to wait for any one answer"
        )
        parser.add_argument("--server-log", default="", help="without --url: the server's log")

    def handle(
        self, *args, slug: str, n: int, simulator: str, concurrency: int, url: str,
        offline_rate: int | None, wait: float, server_log: str, **options,
    ) -> None:  # fmt: skip
        if n < 1:
            raise CommandError("--n must be at least 1")
        study = Study.objects.filter(slug=slug).first()
        if study is None:
            raise CommandError(f"no study {slug!r}")
        spec = study_current_version(study=study).spec
        brain_for = self._brains(simulator, spec)
        labels = new_labels(n)
        # One line per request would bury the progress bar.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        log = Path(server_log) if server_log else None
        served = (
            contextlib.nullcontext(url)
            if url
            else serve_app(offline_rate=offline_rate, log=log)
        )
        progress = Progress(n, sys.stderr)
        with served as base_url:
            self.stdout.write(f"simulating {n} {simulator} participants of {slug} at {base_url}")
            try:
                results = asyncio.run(
                    run_simulation(
                        base_url=base_url, study=study, spec=spec, labels=labels,
                        brain_for=brain_for, concurrency=concurrency, wait_s=wait,
                        progress=progress,
                    )
                )  # fmt: skip
            finally:
                progress.close()
        summary = RunSummary(results=results, arms=arm_outcomes(study=study, labels=labels))
        for line in summary.lines():
            self.stdout.write(line)
        self.summary = summary  # for callers in the same process (tests, scripts)

    def _brains(self, simulator: str, spec: dict):
        if simulator == "scripted":

            def scripted(index: int, label: str) -> Brain:
                return ScriptedBrain(persona_for(index), seed=label)

            return scripted
        from studyapp.simulation.llm import llm_brain_factory

        try:
            return llm_brain_factory(spec)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
