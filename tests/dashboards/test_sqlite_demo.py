"""The dashboards on SQLite (the ``make run`` demo), in a subprocess with its own database."""

import pytest

from tests.sqlite_demo_db import run_on_sqlite


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return run_on_sqlite("tests.dashboards.sqlite_demo", tmp_path_factory.mktemp("sqlite-demo"))


def test_every_dashboard_page_renders_on_sqlite_with_a_single_rating(demo):
    assert demo["status"] == {
        "index": 200,
        "study": 200,
        "study_itt": 200,
        "monitor": 200,
        "conversation": 200,
    }


def test_a_lone_in_chat_rating_is_plotted_apart_without_an_interval_on_sqlite(demo):
    (arm,) = [name for name, (turns, _, _) in demo["engagement"].items()
              if turns and "(n <" not in name]
    assert demo["engagement"][arm] == [[3], [None], [1]]  # not joined to the line
    assert demo["engagement"][f"{arm} (n < 3)"] == [[3], [7.0], [1]]
