"""bench/relay.py's CPU accounting by process role, on real processes."""

import subprocess
import sys

from bench.relay import ROLES, MachineBusy, cpu_by_role

# Spins 0.4 s of CPU, says so, then sleeps (a process's CPU is read while it lives).
SPIN = (
    "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\n"
    "print('spun', flush=True)\ntime.sleep(30)"
)


def _spinner() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.PIPE, text=True)


def test_the_cpu_a_process_uses_is_counted_under_its_role():
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    busy = MachineBusy(lambda: cpu_by_role(idle.pid, model.pid))
    model = _spinner()
    busy.start()
    other = _spinner()
    try:
        assert model.stdout.readline() == other.stdout.readline() == "spun\n"
        busy.stop()
    finally:
        for process in (idle, model, other):
            process.kill()
            process.wait()
    assert set(busy.cpu_s) == set(ROLES)
    assert busy.cpu_s["model server"] >= 0.2  # most of its spin fell within the window
    assert busy.cpu_s["other"] >= 0.3  # an unrelated process: all of its spin
    assert busy.cpu_s["uvicorn"] < 0.1  # "the app": asleep
    assert 0 < busy.percent <= 100
