"""Every number inside the study page's plotly figures, against values computed from the spec."""

import numpy as np
import pytest
from django.urls import reverse
from scipy import stats as sps

from studyapp.dashboards.figures import MIN_N_PER_POINT, arm_colours
from studyapp.participants.models import Status
from tests.dashboards.builders import ARMS, consented, reply_ttfts
from tests.dashboards.helpers import array, figures_of, traces


@pytest.fixture
def page(staff_client, known):
    response = staff_client.get(reverse("dashboards:study", args=[known.study.slug]))
    assert response.status_code == 200
    return figures_of(response)


def by_arm(known, value, **select):
    out = {arm: [] for arm in ARMS}
    for b in known.select(**select):
        v = value(b.spec)
        if v is not None:
            out[b.spec.arm].append(v)
    return out


def test_document_quality_violins_hold_each_completers_rating(page, known):
    expected = by_arm(known, lambda s: s.document_quality)
    fig = traces(page["document_quality"])
    assert list(fig) == list(ARMS)
    for arm in ARMS:
        assert fig[arm]["type"] == "violin"
        assert sorted(array(fig[arm]["y"])) == sorted(expected[arm])
        assert fig[arm]["meanline"]["visible"] is True
    assert sorted(array(fig["base"]["y"])) == [
        4,
        5,
        6,
        7,
    ]  # the hand-written spec, as a sanity anchor


def test_time_spent_boxes_hold_minutes_from_entry_to_completion(page, known):
    expected = by_arm(known, lambda s: s.minutes)
    fig = traces(page["time_spent"])
    for arm in ARMS:
        assert fig[arm]["type"] == "box"
        assert sorted(array(fig[arm]["y"])) == pytest.approx(sorted(expected[arm]), abs=1e-6)


@pytest.mark.parametrize(
    ("key", "value"),
    [("chat_time", lambda s: s.chat_minutes), ("active_time", lambda s: s.active_minutes)],
)
def test_chat_and_active_time_boxes_hold_each_completers_minutes(page, known, key, value):
    expected = by_arm(known, value)
    fig = traces(page[key])
    for arm in ARMS:
        assert fig[arm]["type"] == "box"
        assert sorted(array(fig[arm]["y"])) == pytest.approx(sorted(expected[arm]), abs=1e-6)


def test_overall_rating_bars_are_means_with_their_bootstrap_interval(page, known):
    expected = by_arm(known, lambda s: s.overall)
    bar = page["overall"]["data"][0]
    assert bar["x"] == list(ARMS)
    assert bar["y"] == pytest.approx([np.mean(expected[a]) for a in ARMS])
    assert bar["customdata"] == [len(expected[a]) for a in ARMS]
    for arm, plus, minus, mean in zip(
        ARMS, bar["error_y"]["array"], bar["error_y"]["arrayminus"], bar["y"], strict=True
    ):
        assert plus >= 0, arm
        assert minus >= 0, arm
        low, high = mean - minus, mean + plus
        assert min(expected[arm]) <= low <= mean <= high <= max(expected[arm])


def test_engagement_is_the_mean_rating_per_checkpoint_with_a_t_interval(page, known):
    fig = traces(page["engagement"])
    for arm in ARMS:
        per_turn = {}
        for b in known.select():
            if b.spec.arm == arm:
                for turn, value in b.spec.interaction.items():
                    per_turn.setdefault(turn, []).append(value)
        turns = sorted(per_turn)
        trace = fig[arm]
        assert trace["x"] == turns
        assert trace["customdata"] == [len(per_turn[t]) for t in turns]
        # n is written under every point, not only on hover.
        assert trace["text"] == [
            f"n={len(per_turn[t])}" if len(per_turn[t]) >= MIN_N_PER_POINT else ""
            for t in turns
        ]
        for i, t in enumerate(turns):
            values = np.array(per_turn[t], dtype=float)
            if len(values) < MIN_N_PER_POINT:
                assert trace["y"][i] is None  # a gap in the line
                assert fig[f"{arm} (n < {MIN_N_PER_POINT})"]["y"][i] == pytest.approx(
                    values.mean()
                )
                continue
            assert trace["y"][i] == pytest.approx(values.mean())
            low, high = sps.t.interval(
                0.95, len(values) - 1, loc=values.mean(), scale=sps.sem(values)
            )
            low, high = max(low, 1), min(high, 10)  # the interval stays on the scale
            assert trace["error_y"]["array"][i] == pytest.approx(high - values.mean())
            assert trace["error_y"]["arrayminus"][i] == pytest.approx(values.mean() - low)
    assert fig["base"]["y"][0] == pytest.approx((6 + 5 + 7 + 5) / 4)


def test_engagement_sets_thin_points_apart_and_stays_on_the_scale(page, known):
    fig = traces(page["engagement"])
    thin = {name: t for name, t in fig.items() if "(n <" in name}
    # The fixture has late checkpoints reached by fewer than MIN_N_PER_POINT participants.
    assert thin
    for name, trace in thin.items():
        arm = name.split(" (n <")[0]
        assert "lines" not in trace["mode"]
        assert trace["legendgroup"] == arm
        for n, y, label in zip(trace["customdata"], trace["y"], trace["text"], strict=True):
            assert (y is not None) == (n < MIN_N_PER_POINT)
            assert label == (f"n={n}" if y is not None else "")
    layout = page["engagement"]["layout"]
    assert layout["yaxis"]["range"] == [1, 10]
    note = layout["annotations"][0]["text"]
    assert "survivors" in note
    assert f"n < {MIN_N_PER_POINT}" in note


def test_engagement_thin_points_follow_the_study_files_threshold(staff_client, known):
    version = known.study.versions.order_by("-number").first()
    version.spec = {**version.spec, "analysis": {"min_n_per_point": 100}}
    version.save(update_fields=["spec"])
    page = figures_of(staff_client.get(reverse("dashboards:study", args=[known.study.slug])))
    fig = traces(page["engagement"])
    for arm in ARMS:
        assert all(y is None for y in fig[arm]["y"])
        assert all(y is not None for y in fig[f"{arm} (n < 100)"]["y"])


def test_overall_rating_axis_spans_the_rating_scale_not_zero(page):
    assert page["overall"]["layout"]["yaxis"]["range"] == [1, 10]
    bar = page["overall"]["data"][0]
    assert bar["text"] == [f"n={n}" for n in bar["customdata"]]


def test_every_figure_gives_an_arm_the_same_colour(page):
    colours = arm_colours(list(ARMS))
    sankey = page["flow"]["data"][0]
    nodes = dict(zip([label.split(" (n=")[0] for label in sankey["node"]["label"]],
                     sankey["node"]["color"], strict=True))
    engagement = traces(page["engagement"])
    violins = traces(page["document_quality"])
    bar = page["overall"]["data"][0]
    for i, arm in enumerate(ARMS):
        assert nodes[arm] == colours[arm]
        assert engagement[arm]["line"]["color"] == colours[arm]
        assert violins[arm]["marker"]["color"] == colours[arm]
        assert bar["marker"]["color"][i] == colours[arm]
    assert len(set(colours.values())) == len(ARMS)
    # Nodes that are not arms are grey, never an arm's colour.
    assert not {c for label, c in nodes.items() if label not in ARMS} & set(colours.values())


def test_conversation_panels_count_turns_words_tokens_and_document_words(page, known):
    measures = {
        "User turns": lambda s: s.turns,
        "Participant words": lambda s: sum(s.user_words),
        "Assistant words": lambda s: sum(len(t.split()) for t in s.assistant_texts),
        "Completion tokens": lambda s: sum(t for t in s.tokens if t is not None),
        "Final document words": lambda s: len(s.documents[-1].split()),
    }
    panels = {}
    for trace in page["conversation"]["data"]:
        panels.setdefault(trace["meta"], {})[trace["name"]] = array(trace["y"])
    assert list(panels) == list(measures)
    for title, measure in measures.items():
        expected = by_arm(known, measure)
        for arm in ARMS:
            assert sorted(panels[title][arm]) == sorted(expected[arm]), (title, arm)


def test_time_to_first_token_bars_are_percentiles_of_every_reply(page, known):
    expected = {arm: [] for arm in ARMS}
    for b in known.select():
        expected[b.spec.arm] += reply_ttfts(b.spec)
    p50, p95 = page["latency"]["data"]
    assert p50["x"] == list(ARMS)
    assert p50["y"] == pytest.approx([np.percentile(expected[a], 50) for a in ARMS])
    assert p95["y"] == pytest.approx([np.percentile(expected[a], 95) for a in ARMS])


def test_judge_scores_are_shown_per_arm(page, known):
    expected = by_arm(known, lambda s: s.judge)
    fig = traces(page["judge"])
    for arm in ARMS:
        assert sorted(array(fig[arm]["y"])) == pytest.approx(sorted(expected[arm]))
    assert "judge-a" in page["judge"]["layout"]["title"]["text"]


def test_flow_sankey_links_entered_to_consent_to_arms_to_outcomes(page, known):
    sankey = page["flow"]["data"][0]
    labels = sankey["node"]["label"]
    link = sankey["link"]
    flows = {
        (labels[s].split(" (")[0], labels[t].split(" (")[0]): v
        for s, t, v in zip(link["source"], link["target"], link["value"], strict=True)
    }
    real = [b.spec for b in known.built if not b.spec.is_test]
    assert labels[0] == f"Entered (n={len(real)})"
    status_label = {
        Status.COMPLETED: "Completed, analysed",
        Status.RETURNED: "Returned",
        Status.TIMED_OUT: "Timed out",
        Status.WRITING: "Still active",
    }
    expected = {}

    def add(key):
        expected[key] = expected.get(key, 0) + 1

    for spec in real:
        if consented(spec):
            add(("Entered", "Consented"))
        elif spec.status == Status.DECLINED:
            add(("Entered", "Declined consent"))
        elif spec.status == Status.ENTERED:
            add(("Entered", "Deciding on consent"))
        else:
            add(("Entered", "Left before consenting"))
        if spec.arm is not None:
            add(("Consented", spec.arm))
            failed = spec.status == Status.COMPLETED and spec.attention_passed is False
            add((spec.arm, "Excluded from analysis" if failed else status_label[spec.status]))
    assert flows == expected
    assert flows[("base", "Excluded from analysis")] == 1  # the failed attention check
    assert flows[("Consented", "base")] == 6
    assert flows[("Entered", "Left before consenting")] == 1


def test_figures_do_not_include_pilots_unless_asked(staff_client, known):
    url = reverse("dashboards:study", args=[known.study.slug])
    default = traces(figures_of(staff_client.get(url))["document_quality"])
    with_tests = traces(
        figures_of(staff_client.get(url, {"include_test": "1"}))["document_quality"]
    )
    assert 2 not in array(default["collabllm"]["y"])
    assert sorted(array(with_tests["collabllm"]["y"])) == sorted(
        [*array(default["collabllm"]["y"]), 2]
    )
