from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REFERENCE_STUDY = REPO / "deploy" / "studies" / "collabllm-cowriting.yaml"


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


@pytest.fixture
def hf_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """transformers and the hub never try the network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
