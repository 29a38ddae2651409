import pytest

from studyapp.dashboards.filters import ParticipationFilter
from studyapp.participants.models import Participation, Status
from tests.factories import ConditionFactory, ParticipationFactory


@pytest.fixture
def population(db):
    arm = ConditionFactory()
    version = arm.version
    make = ParticipationFactory
    make(version=version, condition=arm, status=Status.COMPLETED)  # counted everywhere
    make(version=version, condition=arm, status=Status.COMPLETED, attention_passed=True)
    make(version=version, condition=arm, status=Status.COMPLETED, is_test=True)
    make(version=version, condition=arm, status=Status.COMPLETED, attention_passed=False)
    make(version=version, condition=arm, status=Status.WRITING)
    make(version=version, condition=arm, status=Status.RETURNED)
    make(version=version, condition=None, status=Status.ENTERED)  # never assigned
    return Participation.objects.filter(study=version.study)


def test_completers_excludes_tests_failed_attention_and_unfinished(population):
    assert ParticipationFilter().apply(population).count() == 2


def test_including_tests_and_failed_attention_adds_them(population):
    assert ParticipationFilter(include_test=True).apply(population).count() == 3
    assert ParticipationFilter(include_failed_attention=True).apply(population).count() == 3
    both = ParticipationFilter(include_test=True, include_failed_attention=True)
    assert both.apply(population).count() == 4


def test_itt_counts_every_assigned_participation(population):
    assert ParticipationFilter(view="itt").apply(population).count() == 4
    everyone = ParticipationFilter(view="itt", include_test=True, include_failed_attention=True)
    assert everyone.apply(population).count() == 6


def test_params_round_trip():
    f = ParticipationFilter(include_test=True, view="itt")
    assert ParticipationFilter.from_params(f.as_params()) == f
    v = ParticipationFilter(version=2)
    assert ParticipationFilter.from_params(v.as_params()) == v
    assert ParticipationFilter.from_params({"version": "all"}).version is None
    assert ParticipationFilter.from_params({}) == ParticipationFilter()
    parsed = ParticipationFilter.from_params({"include_failed_attention": "true"})
    assert parsed.include_failed_attention


@pytest.mark.parametrize(
    "params",
    [{"view": "everyone"}, {"include_test": "maybe"}, {"version": "0"}, {"version": "two"}],
)
def test_bad_params_raise(params):
    with pytest.raises(ValueError, match="must be"):
        ParticipationFilter.from_params(params)


def test_describe_names_the_population():
    assert "completed" in ParticipationFilter().describe()
    assert "available-case" in ParticipationFilter(view="itt").describe()
    assert "all study versions pooled" in ParticipationFilter().describe()
    assert "study version 3 only" in ParticipationFilter(version=3).describe()
    assert "test runs included" in ParticipationFilter(include_test=True).describe()
