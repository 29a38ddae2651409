"""The study file's simulation block, and reading the user simulator's answers."""

from __future__ import annotations

import pytest

from collab_models.user_simulator import (
    parse_choice,
    parse_scale,
    parse_simulator_reply,
)
from studyapp.studies.spec import StudySpecError, parse_study_file
from tests.conftest import REFERENCE_STUDY


def test_the_reference_study_names_the_authors_user_simulator():
    simulation = parse_study_file(REFERENCE_STUDY.read_text())["simulation"]
    assert simulation["prompt"] == "collabllm:user_simulator"
    assert simulation["simulator"]["backend"] == "openai"
    assert simulation["terminal_signal"] == "[[TERMINATE CHAT]]"


def test_the_demo_runs_its_simulator_offline_like_its_arms():
    simulation = parse_study_file(REFERENCE_STUDY.read_text(), offline=True)["simulation"]
    assert simulation["simulator"]["backend"] == "offline"
    assert "endpoints" not in simulation["simulator"]


def test_an_unknown_simulation_key_is_refused():
    text = REFERENCE_STUDY.read_text() + "\n  simulater_typo: 1\n"
    with pytest.raises(StudySpecError, match="simulation: unknown keys"):
        parse_study_file(text)


def test_the_simulator_reply_is_read_from_its_json_wherever_it_sits():
    raw = 'Sure.\n```json\n{"current_answer": "x", "thought": "y", "response": "Shorter?"}\n```'
    reply = parse_simulator_reply(raw)
    assert (reply.response, reply.thought) == ("Shorter?", "y")
    assert parse_simulator_reply("just words").response == "just words"
    assert parse_simulator_reply('{"response": "[[TERMINATE CHAT]]"}').is_terminal()


def test_rubric_answers_stay_on_the_scale_and_among_the_choices():
    assert parse_scale('{"answer": 14}', low=1, high=10) == 10
    assert parse_scale("I would say 3", low=1, high=10) == 3
    assert parse_scale("no idea", low=1, high=10) == 5
    choices = ["Strongly agree", "Somewhat agree", "Somewhat disagree"]
    assert parse_choice('{"answer": "somewhat disagree"}', choices) == "Somewhat disagree"
    assert parse_choice("I pick: Somewhat agree.", choices) == "Somewhat agree"
    assert parse_choice("none", choices) == "Strongly agree"
