"""The authors' prompts are read byte for byte from the installed `collabllm` wheel."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from collab_models.published_prompts import (
    PACKAGES,
    PATH_VARIABLE,
    PackageNotInstalled,
    PublishedPromptError,
    published_prompt,
)

REPO = Path(__file__).resolve().parents[2]
SITE = Path(sysconfig.get_paths()["purelib"])
PROMPTS = ("system_prompt", "proact_instruction", "user_simulator", "extract_multiturn_completion")


def installed_bytes(name: str) -> bytes:
    """The file as pip put it on disk, found without the reader under test."""
    return (SITE / "collabllm" / "prompts" / f"{name}.txt").read_bytes()


@pytest.mark.parametrize("name", PROMPTS)
def test_reads_the_installed_file_byte_for_byte(name: str) -> None:
    prompt = published_prompt(f"collabllm:{name}")
    data = installed_bytes(name)
    assert prompt.text.encode("utf-8") == data
    assert prompt.sha256 == hashlib.sha256(data).hexdigest()
    assert prompt.package_version == "0.0.8"
    assert prompt.source == f"collabllm:{name}"


def test_the_known_shapes_of_the_authors_texts() -> None:
    assert len(published_prompt("collabllm:system_prompt").text) == 1708
    proact = published_prompt("collabllm:proact_instruction").text
    for slot in ("{chat_history}", "{additional_info}", "{max_new_tokens}"):
        assert slot in proact
    simulator = published_prompt("collabllm:user_simulator").text
    for slot in ("{task_desc}", "{single_turn_prompt}", "{chat_history}", "{terminal_signal}"):
        assert slot in simulator


def test_reading_does_not_import_the_package() -> None:
    code = (
        "import sys\n"
        "from collab_models.published_prompts import published_prompt\n"
        "published_prompt('collabllm:proact_instruction')\n"
        "assert 'collabllm' not in sys.modules, sorted(m for m in sys.modules if 'collab' in m)\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_a_missing_package_names_the_pip_command(tmp_path: Path) -> None:
    with pytest.raises(PackageNotInstalled, match=r"pip install --no-deps collabllm==0\.0\.8"):
        published_prompt("collabllm:system_prompt", path=[str(tmp_path)])


def test_the_path_variable_points_the_reader_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PATH_VARIABLE, str(tmp_path))
    with pytest.raises(PackageNotInstalled):
        published_prompt("collabllm:system_prompt")
    monkeypatch.setenv(PATH_VARIABLE, str(SITE))
    assert published_prompt("collabllm:system_prompt").text.encode() == installed_bytes(
        "system_prompt"
    )


@pytest.mark.parametrize(
    "source", ["collabllm", "other:system_prompt", "collabllm:../setup", "collabllm:nope"]
)
def test_unknown_sources_are_refused(source: str) -> None:
    with pytest.raises(PublishedPromptError, match=r"collabllm"):
        published_prompt(source)


def test_a_file_edited_after_installation_is_refused(tmp_path: Path) -> None:
    """A copy of the installed distribution with one prompt changed by a byte."""
    dist_info = next(SITE.glob("collabllm-0.0.8.dist-info"))
    shutil.copytree(dist_info, tmp_path / dist_info.name)
    shutil.copytree(SITE / "collabllm" / "prompts", tmp_path / "collabllm" / "prompts")
    edited = tmp_path / "collabllm" / "prompts" / "system_prompt.txt"
    edited.write_bytes(edited.read_bytes() + b" ")
    with pytest.raises(PublishedPromptError, match="RECORD"):
        published_prompt("collabllm:system_prompt", path=[str(tmp_path)])
    untouched = published_prompt("collabllm:user_simulator", path=[str(tmp_path)])
    assert untouched.text.encode() == installed_bytes("user_simulator")


def test_the_project_set_up_installs_the_pinned_wheel_without_dependencies() -> None:
    makefile = (REPO / "Makefile").read_text()
    pinned = PACKAGES["collabllm"][1]
    assert f"COLLABLLM_VERSION := {pinned}" in makefile
    assert "--no-deps collabllm==$(COLLABLLM_VERSION)" in makefile
