import asyncio
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from collab_models.arms import Arm, ConfigError, build_arm
from studyapp.studies.models import Study
from studyapp.studies.selectors import study_current_version
from studyapp.studies.spec import STUDY_FILES_DIR

PROBE_MESSAGES = [{"role": "user", "content": "Say hello in one short sentence."}]


async def _stream_once(arm: Arm) -> tuple[bool, str]:
    """One short reply through the arm itself (prompt, adapter and all), with its timings."""
    start = time.perf_counter()
    stream = arm.reply(PROBE_MESSAGES)
    chunks: list[str] = []
    try:
        async for delta in stream:
            chunks.append(delta)
            if len(chunks) >= 16:
                break
    except Exception as exc:  # any failure of the arm is reported, not raised
        return False, f"{type(exc).__name__}: {exc}"
    finally:
        await stream.aclose()
    record = stream.record
    ttft = f"{record.ttft_ms:.0f} ms" if record and record.ttft_ms is not None else "?"
    elapsed = (time.perf_counter() - start) * 1000
    text = "".join(chunks)
    return True, f"first token {ttft}, {len(chunks)} deltas in {elapsed:.0f} ms: {text!r}"


class Command(BaseCommand):
    help = "Check every arm of a study before launch: reachable, model served, one reply streamed."

    def add_arguments(self, parser):
        parser.add_argument("slug")

    def handle(self, *args, slug: str, **options):
        study = Study.objects.filter(slug=slug).first()
        if study is None:
            raise CommandError(f"no study with slug {slug!r}")
        version = study_current_version(study=study)
        failures = 0
        for condition in version.conditions.all():
            self.stdout.write(f"{condition.name} ({condition.backend}):")
            try:
                arm = build_arm(
                    condition.config,
                    base_dir=STUDY_FILES_DIR,
                    offline_rate=settings.OFFLINE_TOKENS_PER_SECOND,
                )
            except ConfigError as exc:
                failures += 1
                self.stdout.write(f"  [FAIL] config: {exc}")
                continue
            failures += self._check(arm)
        if failures:
            raise CommandError(f"{failures} check(s) failed for study {slug!r}")
        self.stdout.write(self.style.SUCCESS(f"all arms of {slug!r} answered"))

    def _check(self, arm: Arm) -> int:
        failures = 0
        if arm.endpoints:
            for result in asyncio.run(arm.probe()):
                self.stdout.write(f"  {result}")
                failures += not result.ok
            return failures
        ok, detail = asyncio.run(_stream_once(arm))
        self.stdout.write(f"  [{'ok  ' if ok else 'FAIL'}] reply      {detail}")
        return int(not ok)
