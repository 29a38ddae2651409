"""The web process starts without the heavy libraries that only exports, dashboards and
model backends use: each ASGI worker would otherwise carry them (tens of MB) for nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

HEAVY = ("numpy", "pandas", "pyarrow", "scipy", "torch", "transformers", "peft")

PROBE = """
import json, sys
import django
django.setup()
import studyapp.asgi  # noqa: F401
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def test_asgi_start_up_imports_no_heavy_library():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "studyapp.settings", "PYTHONPATH": str(REPO)}
    env.setdefault("SECRET_KEY", "x")
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
