"""Prompts that their authors publish in a package of their own, read without importing it.

The CollabLLM authors ship their exact texts in the ``collabllm`` wheel (``collabllm/prompts/
*.txt``). Importing that package pulls in vLLM, torch and litellm and runs code at import time,
so the texts are read from the installed distribution's files instead: the wheel is installed
without its dependencies (``pip install --no-deps collabllm==0.0.8``) and never imported. The
texts are never copied into this repository.

A source names a package and a prompt, ``"collabllm:user_simulator"``. The text comes back byte
for byte as the package ships it (no stripping: the authors format it as it is), with its sha256
and the package's version, which a study records next to every turn it sends it in.

``PUBLISHED_PROMPTS_PATH`` (directories separated by ``os.pathsep``) makes the reader look
there instead of ``sys.path``; an empty directory shows what happens where the package is absent.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata

PATH_VARIABLE = "PUBLISHED_PROMPTS_PATH"

# Where each package keeps its prompt files, and the version a study is written against.
PACKAGES: dict[str, tuple[str, str]] = {
    "collabllm": ("collabllm/prompts/{name}.txt", "0.0.8"),
}
_NAME = re.compile(r"^[a-z0-9_]+$")


class PublishedPromptError(LookupError):
    """A published prompt that cannot be read: unknown source, package missing, file altered."""


class PackageNotInstalled(PublishedPromptError):
    """The package that publishes the prompt is not installed where the reader looks."""


@dataclass(frozen=True)
class PublishedPrompt:
    """One published prompt: ``source`` (``"collabllm:system_prompt"``), its exact ``text``,
    the hex ``sha256`` of that text's UTF-8 bytes, and the installed ``package_version``."""

    source: str
    text: str
    sha256: str
    package_version: str


def parse_source(source: str) -> tuple[str, str]:
    """``"collabllm:proact_instruction"`` -> ``("collabllm", "proact_instruction")``."""
    package, sep, name = source.partition(":")
    if not sep or package not in PACKAGES or not _NAME.match(name):
        known = ", ".join(f"{p}:<prompt>" for p in PACKAGES)
        raise PublishedPromptError(f"unknown published prompt {source!r} (expected {known})")
    return package, name


def search_path() -> list[str]:
    """Where installed distributions are looked for: ``PUBLISHED_PROMPTS_PATH`` if set."""
    configured = os.environ.get(PATH_VARIABLE)
    if configured is None:
        return list(sys.path)
    return [p for p in configured.split(os.pathsep) if p]


def installed_version(package: str, *, path: Sequence[str] | None = None) -> str | None:
    """The installed version of ``package``, or ``None`` where it is not installed."""
    dist = _distribution(package, path)
    return None if dist is None else dist.version


def published_prompt(source: str, *, path: Sequence[str] | None = None) -> PublishedPrompt:
    """Read the prompt ``source`` names from its installed package, without importing it.

    ``path`` overrides :func:`search_path`. Raises :class:`PackageNotInstalled` (with the pip
    command that installs it) where the package is absent, and :class:`PublishedPromptError`
    for an unknown source, a prompt the package does not ship, or a file that no longer matches
    the hash the package's RECORD gives it.
    """
    package, name = parse_source(source)
    pattern, pinned = PACKAGES[package]
    dist = _distribution(package, path)
    if dist is None:
        raise PackageNotInstalled(
            f"{source}: the {package!r} package is not installed; install it without its "
            f"dependencies: pip install --no-deps {package}=={pinned}"
        )
    wanted = pattern.format(name=name)
    entry = next((f for f in dist.files or () if f.as_posix() == wanted), None)
    if entry is None:
        raise PublishedPromptError(f"{source}: {package} {dist.version} ships no {wanted}")
    data = entry.read_binary()
    _check_record(source, entry, data)
    return PublishedPrompt(
        source=source,
        text=data.decode("utf-8"),
        sha256=hashlib.sha256(data).hexdigest(),
        package_version=dist.version,
    )


def _distribution(package: str, path: Sequence[str] | None) -> metadata.Distribution | None:
    where = search_path() if path is None else list(path)
    return next(iter(metadata.distributions(name=package, path=where)), None)


def _check_record(source: str, entry: metadata.PackagePath, data: bytes) -> None:
    """Refuse a file edited after installation: a study must send what the authors published."""
    if entry.hash is None or entry.hash.mode != "sha256":
        return
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    if digest != entry.hash.value:
        raise PublishedPromptError(
            f"{source}: the installed file {entry} differs from the package's RECORD; "
            "reinstall the package"
        )
