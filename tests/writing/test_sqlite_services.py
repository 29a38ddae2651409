"""The chat's plain-SQL send path on SQLite (the ``make run`` demo), in a subprocess with its
own database: no row locks there, and no UPDATE inside WITH."""

from tests.sqlite_demo_db import run_on_sqlite


def test_a_message_its_reply_and_presence_are_stored_on_sqlite(tmp_path):
    stored = run_on_sqlite("tests.writing.sqlite_services", tmp_path)
    assert stored["plan"] == [1, True, [{"role": "user", "content": "Hello"}]]
    assert stored["messages"] == [[1, "user", "Hello", "m-1"], [1, "assistant", "Hi there", ""]]
    assert stored["events"] == ["connect"]
    assert stored["active_seconds"] == 3
