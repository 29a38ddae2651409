"""The live monitor's JSON: who is writing, who is stuck, who hits model errors, latency."""

from datetime import timedelta

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone

from studyapp.participants.models import Status
from studyapp.writing.models import Message
from tests.dashboards.builders import ARMS, reply_ttfts


@pytest.fixture
def monitor(staff_client, known):
    response = staff_client.get(reverse("dashboards:monitor", args=[known.study.slug]))
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]
    return response.json()


def built(known, *, status, arm):
    return next(b for b in known.built if b.spec.status == status and b.spec.arm == arm)


def test_writing_now_lists_recently_seen_writers_with_their_turn(monitor, known):
    writer = built(known, status=Status.WRITING, arm="base")  # seen a minute ago, 4 turns
    assert monitor["counts"]["writing_now"] == 1
    (row,) = monitor["writing_now"]
    assert row["public_id"] == str(writer.participation.public_id)
    assert row["arm"] == "base"
    assert row["turn"] == 4
    assert 55 <= row["seen_seconds_ago"] <= 120


def test_stuck_lists_writers_not_seen_for_a_while(monitor, known):
    stuck = built(known, status=Status.WRITING, arm="collabllm")  # seen 45 minutes ago
    assert monitor["counts"]["stuck"] == 1
    assert [r["public_id"] for r in monitor["stuck"]] == [str(stuck.participation.public_id)]
    assert monitor["stuck"][0]["turn"] == 6


def test_erroring_lists_writing_sessions_with_recent_model_errors(monitor, known):
    stuck = built(known, status=Status.WRITING, arm="collabllm")
    (row,) = monitor["erroring"]  # the completed participant's error is not a live problem
    assert row["public_id"] == str(stuck.participation.public_id)
    assert row["recent_errors"] == 1
    assert row["last_error"] == "model timed out"


def test_recent_latency_and_errors_by_arm(monitor, known):
    for arm in ARMS:
        specs = [b.spec for b in known.built if b.spec.arm == arm]
        ttft = [t for s in specs for t in reply_ttfts(s)]
        stats = monitor["latency_recent"][arm]
        assert stats["replies"] == sum(s.turns + len(s.errors) for s in specs)
        assert stats["errors"] == sum(len(s.errors) for s in specs)
        assert stats["ttft_p50"] == pytest.approx(np.percentile(ttft, 50))
        assert stats["ttft_p95"] == pytest.approx(np.percentile(ttft, 95))


def test_old_replies_fall_out_of_the_recent_window(staff_client, known):
    Message.objects.filter(participation__study=known.study).update(
        created_at=timezone.now() - timedelta(hours=2)
    )
    data = staff_client.get(reverse("dashboards:monitor", args=[known.study.slug])).json()
    assert data["latency_recent"] == {}
    assert data["erroring"] == []


def test_monitor_query_count_is_bounded(staff_client, known, django_assert_max_num_queries):
    with django_assert_max_num_queries(10):
        staff_client.get(reverse("dashboards:monitor", args=[known.study.slug]))
