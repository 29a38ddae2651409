"""Prometheus metrics of the study, beside prometheus_client's process metrics.

Counts that every process must report alike (participants by step, replies, model errors, time
to first visible character, tokens per second) are read from the database at scrape time, so
any process answers the same; what only a process knows (its open sockets, its replies in
flight, the frames it replayed) is its own, and each process is scraped on its own
(docs/operations.md, "Metrics")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import Count, F, FloatField, Q, QuerySet, Sum
from django.db.models.expressions import Combinable
from django.db.models.functions import Cast
from prometheus_client import REGISTRY
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from studyapp.operations.gauges import REPLIES_IN_FLIGHT
from studyapp.participants.models import Participation
from studyapp.realtime import generations
from studyapp.writing.errorkinds import OTHER
from studyapp.writing.models import Message, Role

FIRST_VISIBLE_BUCKETS_S = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
TOKENS_PER_SECOND_BUCKETS = (5, 10, 20, 30, 50, 75, 100, 200)


def _replies() -> Iterator[Metric]:
    assistant = Message.objects.filter(
        role=Role.ASSISTANT, participation__version__study__is_open=True
    )
    labels = ["study", "arm"]
    outcomes = CounterMetricFamily(
        "collabstudy_replies", "Replies stored, by how they ended.", labels=[*labels, "outcome"]
    )
    for row in assistant.values(
        s_slug=F("participation__version__study__slug"),
        a_name=F("participation__condition__name"),
        reason=F("finish_reason"),
    ).annotate(n=Count("id")):
        outcomes.add_metric([row["s_slug"], row["a_name"], row["reason"] or "unknown"], row["n"])
    yield outcomes

    errors = CounterMetricFamily(
        "collabstudy_model_errors", "Failed replies, by kind of error.", labels=[*labels, "kind"]
    )
    # The kind was stored with the reply (studyapp/writing/errorkinds.py): one grouped query.
    counts: dict[tuple[str, str, str], int] = {}
    for failed in (
        assistant.exclude(error="")
        .values(
            s_slug=F("participation__version__study__slug"),
            a_name=F("participation__condition__name"),
            kind=F("error_kind"),
        )
        .annotate(n=Count("id"))
    ):
        key = (failed["s_slug"], failed["a_name"], failed["kind"] or OTHER)
        counts[key] = counts.get(key, 0) + failed["n"]
    for key, n in sorted(counts.items()):
        errors.add_metric(list(key), n)
    yield errors

    yield _histogram(
        assistant.filter(ttft_ms__isnull=False),
        "collabstudy_first_visible_seconds",
        "Time from a message to the first character of its reply the participant saw.",
        Cast(F("ttft_ms"), FloatField()) / 1000.0,
        FIRST_VISIBLE_BUCKETS_S,
    )
    yield _histogram(
        assistant.filter(completion_tokens__gt=0, duration_ms__gt=0),
        "collabstudy_tokens_per_second",
        "Completion tokens per second of each finished reply.",
        Cast(F("completion_tokens"), FloatField()) * 1000.0 / F("duration_ms"),
        TOKENS_PER_SECOND_BUCKETS,
    )


def _histogram(
    queryset: QuerySet[Message],
    name: str,
    documentation: str,
    value: Combinable,
    buckets: tuple[float, ...],
) -> Metric:
    """A cumulative histogram by study and arm, counted by the database in one query."""
    family = HistogramMetricFamily(name, documentation, labels=["study", "arm"])
    aggregates = {f"le_{i}": Count("id", filter=Q(v__lte=b)) for i, b in enumerate(buckets)}
    rows = (
        queryset.annotate(v=value)
        .values(
            s_slug=F("participation__version__study__slug"),
            a_name=F("participation__condition__name"),
        )
        .annotate(n=Count("id"), total=Sum("v"), **aggregates)
    )
    row: dict[str, Any]
    for row in rows:  # type: ignore[assignment]
        counts = [
            (floatToGoString(b), row[f"le_{i}"])  # type: ignore[no-untyped-call]
            for i, b in enumerate(buckets)
        ]
        family.add_metric(
            [row["s_slug"], row["a_name"]], [*counts, ("+Inf", row["n"])], row["total"] or 0.0
        )
    return family


def _participants() -> Iterator[Metric]:
    family = GaugeMetricFamily(
        "collabstudy_participants", "Participations by step of the study.", labels=["study", "step"]
    )
    for row in (
        Participation.objects.filter(version__study__is_open=True)
        .values(s_slug=F("version__study__slug"), s_step=F("status"))
        .annotate(n=Count("id"))
    ):
        family.add_metric([row["s_slug"], row["s_step"]], row["n"])
    yield family


class StudyCollector(Collector):
    """The study's numbers, read from the database at each scrape."""

    def collect(self) -> Iterator[Metric]:
        yield from _participants()
        yield from _replies()

    def describe(self) -> list[Metric]:
        """The names, without asking the database (the registry asks when it is registered)."""
        return [
            GaugeMetricFamily("collabstudy_participants", ""),
            CounterMetricFamily("collabstudy_replies", ""),
            CounterMetricFamily("collabstudy_model_errors", ""),
            HistogramMetricFamily("collabstudy_first_visible_seconds", ""),
            HistogramMetricFamily("collabstudy_tokens_per_second", ""),
        ]


_registered = False


def register() -> None:
    """Add the study collector to the default registry, once per process."""
    global _registered
    if not _registered:
        REGISTRY.register(StudyCollector())
        REPLIES_IN_FLIGHT.set_function(generations.in_flight)
        _registered = True
