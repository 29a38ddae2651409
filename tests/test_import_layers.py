"""The study apps import downward only; the real-time package imports none of them; the model
library imports nothing of the project.

A study app may use the apps below it in ``LAYERS`` and every app's ``models`` (the schema is
shared: a rating names the message it rates). The co-writing page sits on top of the journey's
rules (ratings, side-by-side pairs), and researchers' tools sit on top of everything they read.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

LAYERS = {
    "studies": 0,
    "participants": 1,
    "sidebyside": 2,
    "feedback": 3,
    "writing": 4,
    "scoring": 5,
    "payments": 5,
    "dashboards": 6,
    "exports": 7,
    "erasure": 8,
    "simulation": 8,
}


def _imports(path: Path, package: str | None = None) -> list[str]:
    """The modules ``path`` imports; relative imports are resolved when ``package`` (the dotted
    package ``path`` is in) is given, and left out otherwise."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, package)
            if module:
                names += [module] + [f"{module}.{alias.name}" for alias in node.names]
    return names


def _absolute(node: ast.ImportFrom, package: str | None) -> str | None:
    if node.level == 0:
        return node.module
    if package is None:
        return None
    base = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _sources(package: str, root: Path = REPO) -> list[Path]:
    return [p for p in (root / package).rglob("*.py") if "migrations" not in p.parts]


def upward_imports(root: Path = REPO) -> list[str]:
    """Each import of a study app by a lower (or unrelated) one, as ``file: module``."""
    problems = []
    for path in _sources("studyapp", root):
        parts = path.relative_to(root).parts
        app = parts[1] if len(parts) > 2 else None
        if app not in LAYERS:
            continue
        for name in _imports(path):
            target = name.split(".")
            if target[0] != "studyapp" or len(target) < 2 or target[1] not in LAYERS:
                continue
            if target[1] == app or (len(target) > 2 and target[2] == "models"):
                continue
            if LAYERS[target[1]] >= LAYERS[app]:
                problems.append(f"{path.relative_to(root)}: {name}")
    return sorted(set(problems))


def test_study_apps_import_only_the_apps_below_them():
    assert upward_imports() == []


def test_the_layer_check_sees_an_upward_import(tmp_path):
    app = tmp_path / "studyapp" / "participants"
    app.mkdir(parents=True)
    (app / "services.py").write_text("from studyapp.writing.services import message_send\n")
    (app / "admin.py").write_text("from studyapp.writing.models import Message\n")
    assert upward_imports(tmp_path) == [
        "studyapp/participants/services.py: studyapp.writing.services",
        "studyapp/participants/services.py: studyapp.writing.services.message_send",
    ]


def realtime_imports(root: Path = REPO) -> list[str]:
    """Each import of a study app by the real-time package, as ``file: module``."""
    problems = []
    for path in _sources("studyapp/realtime", root):
        package = ".".join(path.relative_to(root).parent.parts)
        for name in _imports(path, package):
            target = name.split(".")
            if target[0] == "studyapp" and len(target) > 1 and target[1] in LAYERS:
                problems.append(f"{path.relative_to(root)}: {name}")
    return sorted(set(problems))


def test_the_real_time_package_imports_no_study_app():
    assert realtime_imports() == []


def test_the_real_time_check_sees_a_study_app_import(tmp_path):
    package = tmp_path / "studyapp" / "realtime"
    package.mkdir(parents=True)
    (package / "lifespan.py").write_text(
        "from studyapp.realtime import dbcalls\n"
        "def hook():\n"
        "    from studyapp.writing import relay\n"
    )
    (package / "framebus.py").write_text("from ..feedback.models import Rating\n")
    assert realtime_imports(tmp_path) == [
        "studyapp/realtime/framebus.py: studyapp.feedback.models",
        "studyapp/realtime/framebus.py: studyapp.feedback.models.Rating",
        "studyapp/realtime/lifespan.py: studyapp.writing",
        "studyapp/realtime/lifespan.py: studyapp.writing.relay",
    ]


@pytest.mark.parametrize("package", ["collab_models"])
def test_the_model_library_imports_nothing_of_the_project(package):
    found = [
        f"{path.relative_to(REPO)}: {name}"
        for path in _sources(package)
        for name in _imports(path)
        if name.split(".")[0] in ("studyapp", "django")
    ]
    assert found == []
