import pytest

from tests.exports.conftest import export_dir, study_data  # noqa: F401
from tests.participants.journey import load_reference


@pytest.fixture
def version(db):
    """The reference study as ``demo`` (its arms' backends are never called on these pages)."""
    return load_reference()

