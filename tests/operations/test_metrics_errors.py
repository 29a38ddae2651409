"""/metrics' model errors: the kind is stored with each failed reply and the scrape counts them
in one grouped query, however many there are."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from prometheus_client.parser import text_string_to_metric_families

from studyapp.writing.models import Message
from studyapp.writing.services import turn_record
from tests.factories import ParticipationFactory

TOKEN = "scrape-me"


@pytest.fixture(autouse=True)
def _metrics_token(settings):
    settings.METRICS_TOKEN = TOKEN


def _fail(participation, turn: int, error: str) -> Message:
    record = {"finish_reason": "error", "text": "", "error": error}
    return turn_record(
        participation_id=participation.pk, turn=turn, generation_id=uuid.uuid4().hex,
        record=record, seed=None,
    )  # fmt: skip


def _reads_error_texts(sql: str) -> bool:
    """Whether a query brings stored error texts back (rather than counts)."""
    columns = sql.split(" FROM ", 1)[0]
    return '"writing_message"."error"' in columns


def _scrape() -> tuple[dict[tuple[str, str, str], float], int]:
    with CaptureQueriesContext(connection) as queries:
        response = Client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    errors = {
        (s.labels["study"], s.labels["arm"], s.labels["kind"]): s.value
        for family in text_string_to_metric_families(response.content.decode())
        for s in family.samples
        if s.name == "collabstudy_model_errors_total"
    }
    assert not [q["sql"] for q in queries.captured_queries if _reads_error_texts(q["sql"])]
    return errors, len(queries)


@pytest.mark.django_db
def test_a_failed_reply_is_stored_with_the_kind_of_its_error(demo_version):
    participation = ParticipationFactory(version=demo_version, status="writing")
    assert _fail(participation, 1, "HTTP 503 from the model server").error_kind == "http_5xx"
    assert _fail(participation, 2, "ConnectError: connection refused").error_kind == "connect"
    assert _fail(participation, 3, "").error_kind == "other"  # stored as "model error"
    ok = turn_record(participation_id=participation.pk, turn=4, generation_id=uuid.uuid4().hex,
                     record={"finish_reason": "stop", "text": "hi"}, seed=None)  # fmt: skip
    assert (ok.error, ok.error_kind) == ("", "")


@pytest.mark.django_db
def test_the_scrape_counts_errors_by_kind_in_queries_that_do_not_grow_with_them(demo_version):
    base = demo_version.conditions.get(name="base")
    first = ParticipationFactory(version=demo_version, condition=base, status="writing")
    _fail(first, 1, "HTTP 503 from the model server")
    errors, queries_with_one = _scrape()
    assert errors == {("demo", "base", "http_5xx"): 1}

    others = demo_version.conditions.exclude(pk=base.pk)
    texts = ("HTTP 503", "ReadTimeout: timed out", "ConnectError: refused", "odd", "HTTP 429")
    for i in range(40):
        condition = others[i % others.count()] if others.exists() and i % 2 else base
        participation = ParticipationFactory(
            version=demo_version, condition=condition, status="writing"
        )
        _fail(participation, 1, texts[i % len(texts)])
    errors, queries_with_many = _scrape()

    assert queries_with_many == queries_with_one
    assert sum(errors.values()) == 41
    assert errors[("demo", "base", "http_5xx")] >= 2
    assert {kind for _, _, kind in errors} == {
        "http_5xx",
        "http_4xx",
        "timeout",
        "connect",
        "other",
    }
