import pytest

from tests.participants.journey import load_reference


@pytest.fixture
def version(db):
    """The reference study as ``demo`` (its arms' backends are never called on these pages)."""
    return load_reference()


@pytest.fixture
def pilot_version(db):
    """The reference study as ``demo`` with pilot links allowed (each needs the pilot key)."""
    return load_reference(allow_pilot=True)
