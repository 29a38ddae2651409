"""bench/faults/stack.py: the servers' ERROR lines and tracebacks counted in a log."""

from bench.faults.stack import count_log


def test_error_lines_and_tracebacks_are_counted_in_a_log():
    log = "\n".join([
        "INFO:     connection open",
        "ERROR studyapp.writing.consumers writing socket: send frame failed",
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in f',
        "WARNING studyapp.writing.consumers writing socket: frames not delivered",
        "Traceback (most recent call last):",
        "ERROR:    Exception in ASGI application",
        "[2025-01-01 00:00:00,000: ERROR/MainProcess] consumer: Cannot connect to redis",
        "INFO a message that mentions ERROR in passing",
    ])  # fmt: skip
    counted = count_log(log)
    assert (counted.lines, counted.errors, counted.tracebacks) == (9, 3, 2)
