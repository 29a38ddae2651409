"""The study page: statistics table, population filters, offline flag, query budget."""

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from scipy import stats as sps

from studyapp.participants.models import Participation, Status
from tests.dashboards.builders import ARMS, build_known_study, build_participation, completer

STUDY_PAGE_MAX_QUERIES = 22  # 21 today: session, user, study, one per aggregate, the access log


def url_of(known):
    return reverse("dashboards:study", args=[known.study.slug])


def holm_by_hand(pvalues):
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


OUTCOME_VALUES = {
    "document_quality": lambda s: s.document_quality,
    "overall": lambda s: s.overall,
    "time_spent_min": lambda s: s.minutes,
    "chat_time_min": lambda s: s.chat_minutes,
    # Active time is counted until the end: only those who completed have a whole one.
    "active_time_min": lambda s: s.active_minutes if s.minutes is not None else None,
    "interaction_mean": lambda s: np.mean(list(s.interaction.values())) if s.interaction else None,
}


def expected_groups(known, key, **select):
    groups = {arm: [] for arm in ARMS}
    for b in known.select(**select):
        value = OUTCOME_VALUES[key](b.spec)
        if value is not None:
            groups[b.spec.arm].append(float(value))
    return groups


@pytest.mark.parametrize("key", list(OUTCOME_VALUES))
def test_statistics_table_matches_scipy_and_hand_holm(staff_client, known, key):
    report = staff_client.get(url_of(known)).context["report"]
    outcome = next(o for o in report.outcomes if o.key == key)
    groups = expected_groups(known, key)
    for arm in ARMS:
        summary = outcome.summaries[arm]
        assert summary.n == len(groups[arm])
        assert summary.mean == pytest.approx(np.mean(groups[arm]))
        assert summary.median == pytest.approx(np.median(groups[arm]))
        assert summary.ci_low <= summary.mean <= summary.ci_high
    pairs = [(c.a, c.b) for c in outcome.comparisons]
    assert pairs == [
        ("base", "proactive_base"),
        ("base", "collabllm"),
        ("proactive_base", "collabllm"),
    ]
    mwu = [sps.mannwhitneyu(groups[a], groups[b], alternative="two-sided") for a, b in pairs]
    welch = [sps.ttest_ind(groups[a], groups[b], equal_var=False) for a, b in pairs]
    mwu_holm = holm_by_hand([r.pvalue for r in mwu])
    welch_holm = holm_by_hand([r.pvalue for r in welch])
    for i, c in enumerate(outcome.comparisons):
        assert c.mwu_u == pytest.approx(mwu[i].statistic)
        assert c.mwu_p == pytest.approx(mwu[i].pvalue)
        assert c.mwu_p_holm == pytest.approx(mwu_holm[i])
        assert c.rank_biserial == pytest.approx(
            2 * mwu[i].statistic / (len(groups[c.a]) * len(groups[c.b])) - 1
        )
        assert c.welch_t == pytest.approx(welch[i].statistic)
        assert c.welch_p == pytest.approx(welch[i].pvalue)
        assert c.welch_p_holm == pytest.approx(welch_holm[i])
        # The second arm relative to the first, with an interval from an independent
        # bootstrap (scipy's, resampling each arm on its own).
        a, b = np.array(groups[c.a]), np.array(groups[c.b])
        assert c.relative == pytest.approx(b.mean() / a.mean() - 1)
        ref = sps.bootstrap(
            (a, b), lambda x, y, axis: y.mean(axis=axis) / x.mean(axis=axis) - 1,
            method="percentile", n_resamples=20000, random_state=1, vectorized=True,
        ).confidence_interval
        span = ref.high - ref.low
        assert c.relative_low == pytest.approx(ref.low, abs=0.1 * span + 1e-9)
        assert c.relative_high == pytest.approx(ref.high, abs=0.1 * span + 1e-9)


def test_statistics_table_is_rendered(staff_client, known):
    html = staff_client.get(url_of(known)).content.decode()
    assert 'data-stats="document_quality"' in html
    assert 'data-pair="base|collabllm"' in html
    # base's document quality 5, 6, 7, 4 -> mean 5.50
    assert ('data-arm="base"><th scope="row">base</th><td class="n" data-n>4</td>'
            '<td class="n" data-missing>0</td>') in html
    assert '<td class="n" data-mean>5.50</td>' in html
    time = next(o for o in staff_client.get(url_of(known)).context["report"].outcomes
                if o.key == "time_spent_min")
    c = time.comparisons[1]  # base vs collabllm
    assert (f'data-relative>{100 * c.relative:.1f}% [{100 * c.relative_low:.1f}%, '
            f'{100 * c.relative_high:.1f}%]<') in html
    assert 'data-stats="chat_time_min"' in html
    assert 'data-stats="active_time_min"' in html


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"view": "itt"},
        {"include_test": "1"},
        {"include_failed_attention": "1"},
        {"view": "itt", "include_test": "1", "include_failed_attention": "1"},
    ],
)
def test_filters_change_the_population(staff_client, known, params):
    report = staff_client.get(url_of(known), params).context["report"]
    select = {
        "view": params.get("view", "completers"),
        "include_test": params.get("include_test") == "1",
        "include_failed_attention": params.get("include_failed_attention") == "1",
    }
    expected = {arm: 0 for arm in ARMS}
    for b in known.select(**select):
        expected[b.spec.arm] += 1
    assert report.n_by_arm == expected
    quality = next(o for o in report.outcomes if o.key == "document_quality")
    # Non-completers have no final rating: under ITT their n differs from the population's.
    assert {a: s.n for a, s in quality.summaries.items()} == {
        arm: len(v) for arm, v in expected_groups(known, "document_quality", **select).items()
    }
    # Those left out are counted, not dropped silently.
    assert {a: quality.summaries[a].n + quality.missing[a] for a in ARMS} == expected


def test_filters_change_n_as_expected(staff_client, known):
    def n(**params):
        return staff_client.get(url_of(known), params).context["report"].n_by_arm

    assert n() == {"base": 4, "proactive_base": 4, "collabllm": 4}
    assert n(view="itt") == {"base": 5, "proactive_base": 5, "collabllm": 6}
    assert n(include_test="1")["collabllm"] == 5
    assert n(include_failed_attention="1")["base"] == 5


def test_flow_counts_and_balance(staff_client, known):
    report = staff_client.get(url_of(known)).context["report"]
    flow = report.flow
    real = [b.spec for b in known.built if not b.spec.is_test]
    assert flow.entered == len(real)
    assert flow.assigned == sum(1 for s in real if s.arm)
    arms = {a.name: a for a in flow.arms}
    assert arms["base"].completed == 5
    assert arms["base"].failed_attention == 1
    assert arms["collabllm"].timed_out == 1
    assert arms["collabllm"].active == 1
    assert arms["proactive_base"].returned == 1
    assert flow.unassigned.declined == 1
    assert flow.unassigned.active == 1
    balance = {row.arm: row for row in report.balance}
    assert balance["base"].assigned == 6
    assert balance["base"].expected_share == pytest.approx(1 / 3)
    assert report.balance_p_assigned == pytest.approx(sps.chisquare([6, 5, 6]).pvalue)


def test_page_query_count_is_bounded(staff_client, known, django_assert_max_num_queries):
    with django_assert_max_num_queries(STUDY_PAGE_MAX_QUERIES):
        assert staff_client.get(url_of(known)).status_code == 200


def test_query_count_does_not_grow_with_participants(staff_client, known):
    def count_queries():
        with CaptureQueriesContext(connection) as ctx:
            staff_client.get(url_of(known), {"view": "itt"})
        return len(ctx.captured_queries)

    before = count_queries()
    for i in range(6):
        build_participation(
            known.version, known.arms, completer(ARMS[i % 3], 10 + i, 5, 5, {3: 5}, 20.0), 50 + i
        )
    assert count_queries() == before


def test_study_page_has_the_export_panel_with_the_pages_population(staff_client, known):
    slug = known.study.slug
    response = staff_client.get(url_of(known), {"view": "itt", "include_test": "1"})
    html = response.content.decode()
    assert 'href="#exports"' in html
    assert f'data-status-url="{reverse("exports:status", args=[slug])}"' in html
    form = html.split("data-export-form>")[1].split("</form>")[0]
    assert f'action="{reverse("exports:start", args=[slug])}"' in html
    assert "csrfmiddlewaretoken" in form
    assert 'name="kind"' in form
    assert 'name="format"' in form
    # The panel starts with the population the page shows.
    assert 'value="itt" checked' in form
    assert 'name="include_test" value="1" checked' in form
    assert 'name="include_failed_attention" value="1" >' in form
    assert f'value="{url_of(known)}?view=itt&amp;include_test=1#exports"' in form
    assert "exports/panel.js" in html


def test_offline_study_is_flagged(staff_client, db):
    offline = build_known_study(backend="offline", specs=[])
    real = build_known_study(backend="openai", specs=[])
    assert "data-offline-flag" in staff_client.get(url_of(offline)).content.decode()
    assert "data-offline-flag" not in staff_client.get(url_of(real)).content.decode()
    index = staff_client.get(reverse("dashboards:index")).content.decode()
    offline_row = index.split(f'data-study="{offline.study.slug}"')[1].split("</tr>")[0]
    real_row = index.split(f'data-study="{real.study.slug}"')[1].split("</tr>")[0]
    assert "data-offline-flag" in offline_row
    assert "data-offline-flag" not in real_row


def test_demo_study_loaded_offline_is_flagged(staff_client, demo_version):
    response = staff_client.get(reverse("dashboards:study", args=["demo"]))
    assert "Offline backend." in response.content.decode()


def test_empty_study_renders(staff_client, db):
    empty = build_known_study(specs=[])
    response = staff_client.get(url_of(empty))
    assert response.status_code == 200
    assert response.context["report"].n_by_arm == {arm: 0 for arm in ARMS}


def test_index_lists_studies_with_counts(staff_client, known):
    from tests.factories import StudyVersionFactory

    StudyVersionFactory(study=known.study, number=2)  # a second version must not double counts
    html = staff_client.get(reverse("dashboards:index")).content.decode()
    row = html.split(f'data-study="{known.study.slug}"')[1].split("</tr>")[0]
    real = [b.spec for b in known.built if not b.spec.is_test]
    assert f'data-count="entered">{len(real)}<' in row
    completed = sum(1 for s in real if s.status == Status.COMPLETED)
    assert f'data-count="completed">{completed}<' in row
    assert 'data-count="test">1<' in row


def test_index_query_count_does_not_grow_with_studies(
    staff_client, known, django_assert_max_num_queries
):
    for _ in range(4):
        build_known_study(specs=[])
    with django_assert_max_num_queries(5):
        assert staff_client.get(reverse("dashboards:index")).status_code == 200


def _second_version(known):
    from tests.factories import ConditionFactory, StudyVersionFactory

    v2 = StudyVersionFactory(study=known.study, number=known.version.number + 1,
                             spec={"slug": "known"})
    arms = {name: ConditionFactory(version=v2, name=name, backend="openai", weight=1)
            for name in ARMS}
    for i in range(2):
        build_participation(v2, arms, completer("collabllm", i, 9, 9, {3: 9}, 20.0), 100 + i)
    return v2


def test_version_filter_keeps_one_version_and_pooling_says_so(staff_client, known):
    v2 = _second_version(known).number
    v1 = {arm: sum(1 for b in known.select() if b.spec.arm == arm) for arm in ARMS}
    pooled = staff_client.get(url_of(known))
    assert pooled.context["report"].n_by_arm == {**v1, "collabllm": v1["collabllm"] + 2}
    assert "all study versions pooled" in pooled.content.decode()

    only_1 = staff_client.get(url_of(known) + f"?version={known.version.number}")
    assert only_1.context["report"].n_by_arm == v1
    assert only_1.context["report"].flow.entered == len(
        [b for b in known.built if not b.spec.is_test]
    )
    only_2 = staff_client.get(url_of(known) + f"?version={v2}")
    assert only_2.context["report"].n_by_arm == {"base": 0, "proactive_base": 0, "collabllm": 2}
    assert only_2.context["report"].flow.entered == 2
    html = only_2.content.decode()
    assert f"study version {v2} only" in html
    assert f'<option value="{v2}" selected>' in html
    # The exports panel follows the page's version.
    assert f'<input type="hidden" name="version" value="{v2}">' in html
    assert staff_client.get(url_of(known) + "?version=zero").status_code == 400


def test_the_all_assigned_view_is_labelled_available_case(staff_client, known):
    html = staff_client.get(url_of(known) + "?view=itt").content.decode()
    assert "(ITT)" not in html
    assert "intention to treat" not in html
    assert "Everyone assigned (available-case)" in html
    assert "outcomes are available-case" in html


def test_flow_has_an_excluded_from_analysis_box(staff_client, known):
    # A researcher excludes one collabllm completer; base has one failed attention check.
    excluded = next(b for b in known.built if b.spec.arm == "collabllm" and not b.spec.is_test)
    Participation.objects.filter(pk=excluded.participation.pk).update(status=Status.EXCLUDED)
    response = staff_client.get(url_of(known))
    arms = {a.name: a for a in response.context["report"].flow.arms}
    assert (arms["base"].completed, arms["base"].completed_failed_attention) == (5, 1)
    assert arms["base"].analysed == 4  # "Completed, analysed" leaves the failed check out
    assert arms["base"].excluded_from_analysis == 1
    assert (arms["collabllm"].analysed, arms["collabllm"].excluded) == (3, 1)
    assert arms["collabllm"].excluded_from_analysis == 1
    # The analysed count is the page's own completers population.
    assert {a: arms[a].analysed for a in ARMS} == response.context["report"].n_by_arm
    html = response.content.decode()
    assert "Excluded from analysis: failed attention" in html
    sankey = response.context["report"].figures["flow"]["data"][0]
    assert "Excluded from analysis (n=2)" in sankey["node"]["label"]
