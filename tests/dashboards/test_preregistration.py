"""A pre-registered study: the declared test, correction and exclusions on the primary result,
its p-value hidden until the target n, a logged unlock, and the frozen hash."""

import math

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from scipy import stats as sps

from studyapp.dashboards.report import OUTCOMES
from studyapp.participants.audit import Action
from studyapp.participants.models import DataAccess, Participation, Platform, Status
from studyapp.participants.platforms import EntryLink
from studyapp.participants.services import participation_enter
from studyapp.studies.services import study_load
from studyapp.studies.spec import (
    PREREG_OUTCOMES,
    StudySpecError,
    parse_study_file,
    preregistration_hash,
)
from tests.conftest import REFERENCE_STUDY
from tests.dashboards.builders import ARMS, build_known_study, build_participation, completer

PREREG_YAML = """
preregistration:
  primary: document_quality
  secondary: [overall]
  test: {test}
  alpha: 0.05
  correction: bonferroni
  exclusions: [failed_attention, researcher]
  target_n_per_arm: {target}
"""


def block(**overrides):
    base = {
        "primary": "document_quality",
        "secondary": ["overall"],
        "test": "welch",
        "alpha": 0.05,
        "correction": "bonferroni",
        "exclusions": ["failed_attention", "researcher"],
        "target_n_per_arm": 3,
        "population": "completers",
        "comparisons": [["base", "collabllm"], ["proactive_base", "collabllm"]],
    }
    return {**base, **overrides}


def preregistered_known(**overrides):
    known = build_known_study()
    known.version.spec = {**known.version.spec, "preregistration": block(**overrides)}
    known.version.save(update_fields=["spec"])
    return known


def page(client, known, **params):
    return client.get(reverse("dashboards:study", args=[known.study.slug]), params)


def values(known, key, *, keep):
    groups = {arm: [] for arm in ARMS}
    for b in known.built:
        value = {"document_quality": b.spec.document_quality, "overall": b.spec.overall}[key]
        if b.spec.arm and value is not None and keep(b):
            groups[b.spec.arm].append(float(value))
    return groups


# --- the study file ------------------------------------------------------------------------


def reference_with(extra: str) -> str:
    return REFERENCE_STUDY.read_text() + extra


def test_study_file_declares_a_preregistration(db):
    spec = parse_study_file(reference_with(PREREG_YAML.format(test="mann_whitney", target=50)),
                            offline=True)
    declared = spec["preregistration"]
    assert declared["primary"] == "document_quality"
    assert declared["test"] == "mann_whitney"
    assert declared["correction"] == "bonferroni"
    assert declared["target_n_per_arm"] == 50
    names = [c["name"] for c in spec["conditions"]]
    assert len(declared["comparisons"]) == len(names) * (len(names) - 1) // 2


@pytest.mark.parametrize(
    ("bad", "message"),
    [("test: t_test", "preregistration.test"), ("target_n_per_arm: 1", "target_n_per_arm"),
     ("primary: happiness", "preregistration.primary"), ("correction: fdr", "correction")],
)
def test_a_bad_preregistration_is_refused(db, bad, message):
    text = PREREG_YAML.format(test="welch", target=50)
    key = bad.split(":")[0]
    text = "\n".join(f"  {bad}" if line.strip().startswith(f"{key}:") else line
                     for line in text.splitlines())
    with pytest.raises(StudySpecError, match=message):
        parse_study_file(reference_with(text), offline=True)


def test_the_hash_is_of_the_canonical_block():
    assert preregistration_hash(block()) == preregistration_hash(dict(reversed(block().items())))
    assert preregistration_hash(block()) != preregistration_hash(block(alpha=0.01))
    assert preregistration_hash(None) == ""


def test_a_preregistration_names_only_the_dashboards_outcomes():
    assert set(PREREG_OUTCOMES) == {o.key for o in OUTCOMES}


# --- freezing ------------------------------------------------------------------------------


def prolific(i: int) -> EntryLink:
    return EntryLink(platform=Platform.PROLIFIC, external_id=f"{i:024x}",
                     platform_data={"STUDY_ID": "s" * 24, "SESSION_ID": f"{i:024x}"})


def test_hash_is_frozen_by_the_first_real_participant_and_a_change_is_flagged(staff_client):
    text = reference_with(PREREG_YAML.format(test="welch", target=50))
    first = study_load(text=text, slug="prereg", offline=True).version
    study = first.study
    participation_enter(study=study, link=EntryLink(platform=Platform.PILOT, external_id="p1"),
                        staff=True)
    study.refresh_from_db()
    assert study.preregistration_frozen_at is None  # a pilot does not open the study
    participation_enter(study=study, link=prolific(1))
    study.refresh_from_db()
    frozen = preregistration_hash(first.spec["preregistration"])
    assert study.preregistration_sha256 == frozen
    assert study.preregistration_version == 1

    second = study_load(text=text.replace("alpha: 0.05", "alpha: 0.01"), slug="prereg",
                        offline=True).version
    participation_enter(study=study, link=prolific(2))
    study.refresh_from_db()
    assert study.preregistration_sha256 == frozen  # never re-frozen
    response = staff_client.get(reverse("dashboards:study", args=["prereg"]))
    prereg = response.context["report"].preregistered
    assert prereg.changed
    assert prereg.differing_versions == [second.number]
    assert b"data-prereg-changed" in response.content
    assert frozen.encode() in response.content


# --- the confirmatory result -----------------------------------------------------------------


def test_primary_result_uses_the_declared_test_exclusions_and_correction(staff_client):
    # Everyone assigned, the researcher's exclusions out but failed attention checks kept: not
    # the page's default population, so the result cannot be the page's own table.
    known = preregistered_known(population="itt", exclusions=["researcher"])
    excluded = known.built[0]
    Participation.objects.filter(pk=excluded.participation.pk).update(status=Status.EXCLUDED)
    keep = [b for b in known.built if not b.spec.is_test and b is not excluded]

    report = page(staff_client, known).context["report"]
    prereg = report.preregistered
    assert prereg.removed == {"researcher": 1}
    assert not prereg.primary_hidden
    raw = []
    for key in ("document_quality", "overall"):
        groups = values(known, key, keep=lambda b: b in keep)
        for a, b in block()["comparisons"]:
            raw.append(sps.ttest_ind(groups[a], groups[b], equal_var=False).pvalue)
    assert [t.p for t in prereg.tests] == pytest.approx(raw, rel=1e-12)
    assert [t.p_adjusted for t in prereg.tests] == pytest.approx(
        [min(1.0, 4 * p) for p in raw], rel=1e-12
    )
    assert [t.significant for t in prereg.tests] == [min(1.0, 4 * p) < 0.05 for p in raw]
    # The failed attention check (base, quality 10) counts: the rule was not declared.
    assert prereg.n_primary["base"] == 4
    roles = {o.key: o.role for o in report.outcomes}
    assert roles["document_quality"] == roles["overall"] == "confirmatory"
    assert roles["time_spent_min"] == "exploratory"


def test_mann_whitney_with_the_default_rules(staff_client):
    known = preregistered_known(test="mann_whitney", correction="holm", secondary=[])
    prereg = page(staff_client, known).context["report"].preregistered
    groups = values(known, "document_quality",
                    keep=lambda b: b.spec.status == Status.COMPLETED and not b.spec.is_test
                    and b.spec.attention_passed is not False)
    raw = [sps.mannwhitneyu(groups[a], groups[b], alternative="two-sided").pvalue
           for a, b in block()["comparisons"]]
    assert [t.p for t in prereg.tests] == pytest.approx(raw, rel=1e-12)
    low, high = sorted(raw)
    holm_by_hand = [2 * low, max(2 * low, high)]
    assert sorted(t.p_adjusted for t in prereg.tests) == pytest.approx(holm_by_hand)
    assert prereg.removed == {"failed_attention": 1, "researcher": 0}


# --- hidden until the target n, and the logged unlock ----------------------------------------


def test_primary_p_value_is_hidden_until_target_n_and_an_unlock_is_logged(staff_client):
    known = preregistered_known(target_n_per_arm=5)
    response = page(staff_client, known)
    report = response.context["report"]
    prereg = report.preregistered
    assert prereg.primary_hidden
    assert prereg.n_primary == {"base": 4, "collabllm": 4, "proactive_base": 4}
    primary = [t for t in prereg.tests if t.role == "primary"]
    assert all(t.hidden and math.isnan(t.p) and math.isnan(t.statistic) for t in primary)
    # The exploratory table of the same outcome hides its tests too; effect sizes stay.
    quality = next(o for o in report.outcomes if o.key == "document_quality")
    assert quality.p_hidden
    assert all(math.isnan(c.mwu_p) and math.isnan(c.welch_p) for c in quality.comparisons)
    assert math.isnan(quality.omnibus.kruskal_p)
    assert b"data-primary-hidden" in response.content
    assert b'data-p-hidden="document_quality"' in response.content
    assert not DataAccess.objects.filter(action=Action.PRIMARY_UNLOCKED).exists()

    unlock = reverse("dashboards:unlock_primary", args=[known.study.slug])
    assert staff_client.post(unlock).status_code == 302
    staff_client.post(unlock)  # a second click changes nothing
    log = DataAccess.objects.get(action=Action.PRIMARY_UNLOCKED)
    assert log.username == "researcher"
    assert log.study_slug == known.study.slug
    known.study.refresh_from_db()
    assert known.study.primary_unlocked_by.username == "researcher"

    response = page(staff_client, known)
    prereg = response.context["report"].preregistered
    assert not prereg.primary_hidden
    groups = values(known, "document_quality",
                    keep=lambda b: b.spec.status == Status.COMPLETED and not b.spec.is_test
                    and b.spec.attention_passed is not False)
    a, b = block()["comparisons"][0]
    assert prereg.tests[0].p == pytest.approx(
        sps.ttest_ind(groups[a], groups[b], equal_var=False).pvalue
    )
    assert b"data-primary-unlocked" in response.content


def test_the_unlock_needs_a_post_from_staff(client, db):
    known = preregistered_known(target_n_per_arm=5)
    unlock = reverse("dashboards:unlock_primary", args=[known.study.slug])
    assert client.post(unlock).status_code == 302  # to the login page
    known.study.refresh_from_db()
    assert known.study.primary_unlocked_at is None


def test_reaching_the_target_shows_the_primary_without_an_unlock(staff_client):
    prereg = page(staff_client, preregistered_known(target_n_per_arm=4)).context[
        "report"
    ].preregistered
    assert prereg.target_reached
    assert not prereg.primary_hidden
    assert all(math.isfinite(t.p) for t in prereg.tests)
    assert not DataAccess.objects.filter(action=Action.PRIMARY_UNLOCKED).exists()


def test_a_study_without_preregistration_has_no_confirmatory_panel(staff_client):
    response = page(staff_client, build_known_study())
    assert response.context["report"].preregistered is None
    assert b"data-preregistration" not in response.content


def test_query_count_does_not_grow_with_participants(staff_client):
    # itt: the declared population is not the page's, so the panel reads its own rows.
    known = preregistered_known(population="itt", target_n_per_arm=50)

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert page(staff_client, known).status_code == 200
        return len(ctx.captured_queries)

    before = count()
    for i in range(6):
        build_participation(known.version, known.arms,
                            completer(ARMS[i % 3], 10 + i, 5, 5, {3: 5}, 20.0), 50 + i)
    assert count() == before


def test_admin_shows_the_frozen_hash_read_only(admin_client):
    text = reference_with(PREREG_YAML.format(test="welch", target=50))
    study = study_load(text=text, slug="prereg", offline=True).version.study
    participation_enter(study=study, link=prolific(1))
    study.refresh_from_db()
    response = admin_client.get(reverse("admin:studies_study_change", args=[study.pk]))
    assert response.status_code == 200
    assert study.preregistration_sha256 in response.content.decode()
    assert b'name="preregistration_sha256"' not in response.content  # not an input
