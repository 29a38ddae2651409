"""/healthz, /readyz and /metrics: each dependency reported, each down in turn."""

from __future__ import annotations

import httpx
import pytest
from django.test import AsyncClient, Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

from studyapp.operations import health
from tests.factories import MessageFactory, ParticipationFactory
from tests.tcp_proxy import CuttableProxy
from tests.writing.conftest import (
    LiveServer,
    _database_url,
    database_address,
    db,
    free_port,
    make_participation,
    open_client,
    remote_condition,
    token_for,
)

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "scrape-me"
AUTH = {"headers": {"Authorization": f"Bearer {TOKEN}"}}


@pytest.fixture(autouse=True)
def _metrics_token(settings):
    settings.METRICS_TOKEN = TOKEN


@pytest.fixture(autouse=True)
def _fresh_model_checks():
    health._model_cache = None
    yield
    health._model_cache = None


@override_settings(ALLOWED_HOSTS=["study.example.org"], SECURE_SSL_REDIRECT=True)
def test_healthz_answers_a_probe_by_address_over_plain_http():
    response = Client().get("/healthz", HTTP_HOST="10.1.2.3:8000")
    assert (response.status_code, response.content) == (200, b"ok\n")
    # Any other page from that address is still refused (400) or redirected to HTTPS.
    assert Client().get("/", HTTP_HOST="10.1.2.3:8000").status_code in (301, 400)


async def test_readyz_reports_each_dependency_and_each_arm(demo_version, fake_vllm):
    await db(remote_condition, demo_version, fake_vllm.url)
    response = await AsyncClient().get("/readyz", **AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["ready"] is True
    assert set(body["checks"]) == {"database", "redis", "model:demo/remote"}
    assert body["checks"]["model:demo/remote"] == {"ok": True, "detail": "1 endpoint(s) ok"}


async def test_readyz_fails_on_an_arm_whose_server_is_down_unless_models_are_skipped(
    demo_version, fake_vllm
):
    await db(remote_condition, demo_version, fake_vllm.url)
    fake_vllm.healthy = False
    response = await AsyncClient().get("/readyz", **AUTH)
    assert response.status_code == 503
    check = response.json()["checks"]["model:demo/remote"]
    assert check["ok"] is False
    assert "HTTP 503" in check["detail"]

    skipped = await AsyncClient().get("/readyz?models=0", **AUTH)
    assert skipped.status_code == 200
    assert set(skipped.json()["checks"]) == {"database", "redis"}


async def test_readyz_fails_when_redis_is_down(demo_version):
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"):
        response = await AsyncClient().get("/readyz", **AUTH)
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["redis"]["ok"] is False
    assert checks["database"]["ok"] is True


def test_readyz_fails_when_the_database_is_down(django_db_blocker, tmp_path):
    proxy = CuttableProxy(database_address())
    server = LiveServer(
        100, database_url=_database_url("127.0.0.1", proxy.port), METRICS_TOKEN=TOKEN
    )
    try:
        server.wait_ready()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.get(f"{server.url}/readyz", timeout=20).status_code == 200
        proxy.cut()
        assert httpx.get(f"{server.url}/readyz", timeout=20).json() == {"ready": False}
        response = httpx.get(f"{server.url}/readyz", headers=headers, timeout=20)
        assert response.status_code == 503
        checks = response.json()["checks"]
        assert checks["database"]["ok"] is False
        assert checks["redis"]["ok"] is True
        assert httpx.get(f"{server.url}/healthz", timeout=20).status_code == 200
    finally:
        proxy.close()
        server.stop()


def test_metrics_are_off_without_a_token_and_refuse_a_wrong_one(settings):
    assert Client().get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics").status_code == 404


async def test_readyz_tells_an_outsider_only_whether_the_app_is_ready(demo_version, fake_vllm):
    await db(remote_condition, demo_version, fake_vllm.url)
    fake_vllm.healthy = False
    response = await AsyncClient().get("/readyz", headers={"Authorization": "Bearer nope"})
    assert (response.status_code, response.json()) == (503, {"ready": False})


def _scrape() -> dict[str, list]:
    response = Client().get("/metrics", **AUTH)
    assert response.status_code == 200
    return {
        family.name: family.samples
        for family in text_string_to_metric_families(response.content.decode())
    }


def _value(samples, name: str, **labels: str) -> float:
    (match,) = [s.value for s in samples if s.name == name and s.labels == labels]
    return match


def test_metrics_expose_the_study_series_with_the_database_numbers(demo_version):
    base = demo_version.conditions.get(name="base")
    writing = [ParticipationFactory(version=demo_version, condition=base, status="writing")]
    ParticipationFactory(version=demo_version, condition=base, status="completed")
    ParticipationFactory(version=demo_version, condition=base, status="completed")
    for turn, ttft, tokens, ms in ((1, 300.0, 40, 1000.0), (2, 1500.0, 100, 2000.0)):
        MessageFactory(
            participation=writing[0], turn=turn, role="assistant", ttft_ms=ttft,
            completion_tokens=tokens, duration_ms=ms, finish_reason="stop",
        )  # fmt: skip
    MessageFactory(
        participation=writing[0], turn=3, role="assistant", is_active=False,
        finish_reason="error",
        error="HTTP 503 from the model server",
    )  # fmt: skip

    families = _scrape()
    people = families["collabstudy_participants"]
    assert _value(people, "collabstudy_participants", study="demo", step="completed") == 2
    assert _value(people, "collabstudy_participants", study="demo", step="writing") == 1

    replies = families["collabstudy_replies"]
    arm = {"study": "demo", "arm": "base"}
    assert _value(replies, "collabstudy_replies_total", **arm, outcome="stop") == 2
    assert _value(replies, "collabstudy_replies_total", **arm, outcome="error") == 1
    errors = families["collabstudy_model_errors"]
    assert _value(errors, "collabstudy_model_errors_total", **arm, kind="http_5xx") == 1

    first = families["collabstudy_first_visible_seconds"]
    name = "collabstudy_first_visible_seconds_bucket"
    assert _value(first, name, **arm, le="0.25") == 0
    assert _value(first, name, **arm, le="0.5") == 1
    assert _value(first, name, **arm, le="2.0") == 2
    assert _value(first, name, **arm, le="+Inf") == 2
    assert _value(first, "collabstudy_first_visible_seconds_sum", **arm) == pytest.approx(1.8)
    speed = families["collabstudy_tokens_per_second"]
    assert _value(speed, "collabstudy_tokens_per_second_bucket", **arm, le="30.0") == 0
    assert _value(speed, "collabstudy_tokens_per_second_bucket", **arm, le="50.0") == 2

    for process_series in (
        "collabstudy_sockets_open",
        "collabstudy_replies_in_flight",
        "collabstudy_frames_replayed",
        "process_cpu_seconds",
    ):
        assert process_series in families, process_series


async def _process_values() -> dict[str, float]:
    response = await AsyncClient().get("/metrics", **AUTH)
    text = response.content.decode()
    wanted = {
        "collabstudy_sockets_open",
        "collabstudy_replies_in_flight",
        "collabstudy_frames_replayed_total",
    }
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in wanted
    }


async def test_metrics_count_this_process_sockets_and_replies(
    demo_version, drain_generations, monkeypatch
):
    monkeypatch.setenv("OFFLINE_TOKENS_PER_SECOND", "20")
    participation = await db(make_participation, demo_version)
    before = await _process_values()
    client, _ = await open_client("demo", token_for(participation))
    await client.send({"type": "send", "text": "Write a blog post about budget travel"})
    await client.until_type("delta")
    streaming = await _process_values()
    assert streaming["collabstudy_sockets_open"] == before["collabstudy_sockets_open"] + 1
    assert streaming["collabstudy_replies_in_flight"] == 1

    await client.until_type("turn_end")
    await client.close()
    closed = await _process_values()
    assert closed["collabstudy_sockets_open"] == before["collabstudy_sockets_open"]
    assert closed["collabstudy_replies_in_flight"] == 0
