"""Check a study's arms and judge before launch, as the study will use them."""

from __future__ import annotations

import asyncio
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from collab_models.arms import ConfigError, build_arm
from collab_models.base import ModelError
from collab_models.probes import ProbeResult
from collab_models.transport import aclose_client
from studyapp.scoring.judge import Judge, JudgeConfigError, judge_for
from studyapp.scoring.parse import ScoreParseError, parse_score
from studyapp.scoring.rubrics import rubric_load
from studyapp.studies.models import Study, StudyVersion
from studyapp.studies.selectors import study_current_version
from studyapp.studies.spec import STUDY_FILES_DIR

SAMPLE_DOCUMENT = (
    "Cooking at home taught me patience. Last week I made bread with friends, and the kitchen "
    "smelled wonderful. Try it: it is cheaper than eating out and far more fun."
)


def _arm(config: dict[str, Any]):
    return build_arm(
        config, base_dir=STUDY_FILES_DIR, offline_rate=settings.OFFLINE_TOKENS_PER_SECOND
    )


def _judge(version: StudyVersion) -> Judge | str | None:
    """The study's judge, its configuration error, or None when it has none."""
    try:
        return judge_for(version)
    except JudgeConfigError as exc:
        return str(exc)


async def _judge_check(judge: Judge | str | None) -> list[ProbeResult]:
    """The judge scores a short sample document and its reply holds a score."""
    if judge is None:
        return []
    if isinstance(judge, str):
        return [ProbeResult("judge", "-", False, f"config: {judge}")]
    try:
        rubric = rubric_load(judge.rubric)
        arm = _arm(judge.arm_config)
    except (ConfigError, OSError) as exc:
        return [ProbeResult("judge", "-", False, f"config: {exc}")]
    prompt = rubric.render(document_type="blog post", topic="Cooking at home",
                           document=SAMPLE_DOCUMENT)  # fmt: skip
    label = ",".join(arm.endpoints) or arm.backend.name
    stream = arm.reply([{"role": "user", "content": prompt}])
    try:
        text = "".join([delta async for delta in stream])
        parsed = parse_score(text, low=rubric.low, high=rubric.high)
    except (ModelError, ScoreParseError) as exc:
        return [ProbeResult("judge", label, False, f"{type(exc).__name__}: {exc}")]
    return [ProbeResult("judge", label, True, f"scored the sample {parsed.score:g}")]


class Command(BaseCommand):
    help = (
        "Check every arm of a study before launch as the study will use it (reachable, model "
        "or adapter served, a short multi-turn exchange with the arm's prompt, sampling and "
        "response format, time to first token and tokens/s), and its judge."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")

    def handle(self, *args, slug: str, **options):
        study = Study.objects.filter(slug=slug).first()
        if study is None:
            raise CommandError(f"no study with slug {slug!r}")
        version = study_current_version(study=study)
        conditions = [(c.name, c.backend, c.config) for c in version.conditions.all()]
        # One event loop for every check: a backend's threads and connections belong to it.
        failures = asyncio.run(self._check_all(conditions, _judge(version)))
        if failures:
            raise CommandError(f"{failures} check(s) failed for study {slug!r}")
        self.stdout.write(self.style.SUCCESS(f"all arms of {slug!r} answered"))

    async def _check_all(self, conditions, judge: Judge | str | None) -> int:
        failures = 0
        try:
            for name, backend, config in conditions:
                self.stdout.write(f"{name} ({backend}):")
                try:
                    arm = _arm(config)
                except ConfigError as exc:
                    failures += 1
                    self.stdout.write(f"  [FAIL] config: {exc}")
                    continue
                failures += self._report(await arm.probe())
            judged = await _judge_check(judge)
            if judged:
                self.stdout.write("judge:")
            failures += self._report(judged)
        finally:
            await aclose_client()
        return failures

    def _report(self, results: list[ProbeResult]) -> int:
        for result in results:
            self.stdout.write(f"  {result}")
        return sum(not r.ok for r in results)
