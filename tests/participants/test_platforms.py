import pytest

from studyapp.participants.models import Platform
from studyapp.participants.platforms import EntryLinkError, parse_entry_link

PID = "5f0c1a2b3c4d5e6f7a8b9c0d"


def test_prolific_link_carries_pid_and_platform_ids():
    link = parse_entry_link({"PROLIFIC_PID": PID, "STUDY_ID": "s1", "SESSION_ID": "x9"})
    assert link.platform == Platform.PROLIFIC
    assert link.external_id == PID
    assert link.platform_data == {"STUDY_ID": "s1", "SESSION_ID": "x9"}
    assert not link.is_preview
    assert not link.is_test


@pytest.mark.parametrize(
    "query",
    [
        {"PROLIFIC_PID": "abc", "STUDY_ID": "s1"},
        {"PROLIFIC_PID": "", "STUDY_ID": "s1", "SESSION_ID": "x"},
        {"PROLIFIC_PID": "{{%PROLIFIC_PID%}}", "STUDY_ID": "s1", "SESSION_ID": "x"},
        {"PROLIFIC_PID": "a" * 101, "STUDY_ID": "s1", "SESSION_ID": "x"},
        # Not Prolific's shape (24 hexadecimal characters): made up.
        {"PROLIFIC_PID": "5f0c1a", "STUDY_ID": "s1", "SESSION_ID": "x"},
        {"PROLIFIC_PID": PID + "0", "STUDY_ID": "s1", "SESSION_ID": "x"},
        {"PROLIFIC_PID": "PID1" + PID[4:], "STUDY_ID": "s1", "SESSION_ID": "x"},
        {"workerId": "W1", "assignmentId": "A1", "hitId": "H1"},
        {"workerId": "W1", "assignmentId": "A1", "hitId": "H1",
         "turkSubmitTo": "https://evil.example.com"},
        {"workerId": "W1", "assignmentId": "A1", "hitId": "H1",
         "turkSubmitTo": "http://www.mturk.com"},
        {"participant_label": "has space"},
        {},
    ],
)
def test_incomplete_or_malformed_links_are_refused(query):
    with pytest.raises(EntryLinkError):
        parse_entry_link(query)


def test_mturk_preview_needs_no_worker():
    link = parse_entry_link({"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE", "hitId": "H1"})
    assert link.is_preview
    assert link.external_id == ""


def test_mturk_link_keeps_assignment_and_validated_submit_host():
    link = parse_entry_link(
        {"workerId": "W1", "assignmentId": "A1", "hitId": "H1",
         "turkSubmitTo": "https://www.mturk.com/"}
    )
    assert link.platform == Platform.MTURK
    assert link.external_id == "W1"
    assert link.platform_data == {
        "assignmentId": "A1", "hitId": "H1", "turkSubmitTo": "https://www.mturk.com"
    }


def test_participant_label_is_a_test_run():
    link = parse_entry_link({"participant_label": "pilot-01"})
    assert link.platform == Platform.PILOT
    assert link.is_test


def test_a_study_file_can_relax_the_prolific_id_shape():
    link = parse_entry_link(
        {"PROLIFIC_PID": "panel-7", "STUDY_ID": "s1", "SESSION_ID": "x"}, strict_prolific=False
    )
    assert link.external_id == "panel-7"


def test_a_pilot_link_carries_its_key():
    link = parse_entry_link({"participant_label": "pilot-01", "pilot_key": "k3y"})
    assert link.pilot_key == "k3y"
