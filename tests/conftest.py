from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REFERENCE_STUDY = REPO / "deploy" / "studies" / "collabllm-cowriting.yaml"


@pytest.fixture
def demo_version(db):
    """The reference study loaded as ``demo`` on the offline backend."""
    from studyapp.studies.services import study_load

    return study_load(text=REFERENCE_STUDY.read_text(), slug="demo", offline=True).version
