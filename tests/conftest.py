from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REFERENCE_STUDY = REPO / "deploy" / "studies" / "collabllm-cowriting.yaml"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database, whose teardown first ends every other session on it.

    pytest-django closes only the main thread's connection before it drops the database; the
    database worker processes and the threads that ran database calls for the ASGI tests keep
    theirs, and PostgreSQL then refuses to drop it (and it is left behind)."""
    yield
    from django.db import connection

    if connection.vendor == "postgresql":
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture
def demo_version(db):
    """The reference study loaded as ``demo`` on the offline backend."""
    from studyapp.studies.services import study_load

    return study_load(text=REFERENCE_STUDY.read_text(), slug="demo", offline=True).version


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Llama with a chat template, built on disk (no downloads)."""
    from tests.tiny_llm import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_adapter(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LoRA adapter for ``tiny_model``, built with peft: random (not zero) weights, so
    that it changes what the model writes."""
    from tests.tiny_llm import build_tiny_adapter

    return build_tiny_adapter(tiny_model, tmp_path_factory.mktemp("tiny-adapter"))


@pytest.fixture
def hf_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """transformers and the hub never try the network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
