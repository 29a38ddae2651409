"""A simulation run: N simulated participants, C at a time, with a progress bar and a summary."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from studyapp.participants.models import Participation, Platform
from studyapp.simulation.brains import Brain
from studyapp.simulation.journey import Journey, JourneyResult
from studyapp.studies.models import Study

BrainFactory = Callable[[int, str], Brain]


@dataclass
class RunSummary:
    results: list[JourneyResult]
    arms: dict[str, Counter[str]] = field(default_factory=dict)  # arm -> outcome -> n

    @property
    def outcomes(self) -> Counter[str]:
        return Counter(r.outcome for r in self.results)

    @property
    def errors(self) -> list[JourneyResult]:
        return [r for r in self.results if r.outcome == "failed"]

    def lines(self) -> list[str]:
        n = len(self.results)
        out = Counter(self.outcomes)
        ended = n - out["failed"]
        lines = [
            f"{n} simulated participants: {ended} went through, {out['failed']} failed",
            "  journeys: " + ", ".join(f"{k} {v}" for k, v in sorted(out.items())),
            "  personas: " + ", ".join(
                f"{k} {v}" for k, v in sorted(Counter(r.persona for r in self.results).items())
            ),
        ]
        acts = {
            "stop clicks": sum(r.stop_clicks for r in self.results),
            "replies stopped": sum(r.stops for r in self.results),
            "reloads": sum(r.reloads for r in self.results),
            "regenerations": sum(r.regenerations for r in self.results),
            "ratings": sum(r.ratings for r in self.results),
        }
        lines.append("  actions: " + ", ".join(f"{k} {v}" for k, v in acts.items()))
        for arm, counts in sorted(self.arms.items()):
            total = sum(counts.values())
            detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            lines.append(f"  arm {arm}: {total} assigned (in the app: {detail})")
        for r in self.errors[:20]:
            lines.append(f"  error {r.label} ({r.persona}): {r.error}")
        return lines


def new_labels(n: int) -> list[str]:
    run = secrets.token_hex(4)
    return [f"sim-{run}-{i:04d}" for i in range(n)]


async def run_simulation(
    *, base_url: str, study: Study, spec: dict[str, Any], labels: list[str],
    brain_for: BrainFactory, concurrency: int, wait_s: float,
    progress: Callable[[JourneyResult], None] = lambda r: None,
) -> list[JourneyResult]:  # fmt: skip
    """Walk every label through the study, at most ``concurrency`` at a time."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(index: int, label: str) -> JourneyResult:
        async with gate:
            journey = Journey(
                base_url=base_url, slug=study.slug, key=study.simulation_key, label=label,
                brain=brain_for(index, label), spec=spec, wait_s=wait_s,
            )  # fmt: skip
            result = await journey.run()
        progress(result)
        return result

    return list(await asyncio.gather(*(one(i, label) for i, label in enumerate(labels))))


def arm_outcomes(*, study: Study, labels: list[str]) -> dict[str, Counter[str]]:
    """Per arm, the simulated participations of this run by status or outcome (read back)."""
    arms: dict[str, Counter[str]] = {}
    rows = Participation.objects.filter(
        study=study, platform=Platform.SIMULATED, external_id__in=labels
    ).values_list("condition__name", "status", "outcome")
    for arm, status, outcome in rows:
        arms.setdefault(arm or "(not assigned)", Counter())[outcome or status] += 1
    return arms


class Progress:
    """tqdm when it is installed, else a line every tenth of the run."""

    def __init__(self, total: int, stream: IO[str]) -> None:
        self.total, self.stream, self.done = total, stream, 0
        try:
            from tqdm import tqdm
        except ImportError:
            self.bar = None
        else:
            self.bar = tqdm(total=total, file=stream, unit="participant", dynamic_ncols=True)

    def __call__(self, result: JourneyResult) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(f"last: {result.outcome}", refresh=False)
            self.bar.update(1)
        elif self.done == self.total or self.done % max(1, self.total // 10) == 0:
            self.stream.write(f"{self.done}/{self.total} participants done\n")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
