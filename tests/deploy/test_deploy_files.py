"""The production stack's files: the compose file and the Caddyfile validate, the Kubernetes
manifests render, and checkov finds nothing in them or in the Dockerfile."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
# The app drains streaming replies this long on SIGTERM; a stop must leave that plus ~15 s.
SHUTDOWN_DRAIN_S = 20


def _tool(*names: str) -> list[str]:
    """The command for the first of ``names`` found (``make install-test`` and .ci/run install
    them); a missing tool fails the test rather than skipping it."""
    for name in names:
        local = REPO / ".tools" / "bin" / name
        if local.exists():
            return [str(local)]
        if found := shutil.which(name):
            return [found]
    pytest.fail(f"none of {names} is installed (make install-test, .ci/run)")


def _run(*command: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=300,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    assert result.returncode == 0, f"{command}: {result.stdout}\n{result.stderr}"
    return result.stdout


def _compose(tmp_path: Path, *args: str) -> str:
    """``docker compose`` (or docker-compose) on a copy of deploy/ with .env.example as .env."""
    shutil.copytree(DEPLOY, tmp_path / "deploy")
    env_file = (REPO / ".env.example").read_text()
    (tmp_path / "deploy" / ".env").write_text(
        env_file + "\nSTUDY_HOST=study.example.org\nPOSTGRES_PASSWORD=not-this-one\n"
    )
    try:
        _run("docker", "compose", "version")
        command = ["docker", "compose"]
    except AssertionError:
        command = _tool("docker-compose")
    return _run(*command, "-f", "compose.yaml", *args, cwd=tmp_path / "deploy")


def test_the_compose_stack_validates_and_stops_slowly_enough(tmp_path):
    config = yaml.safe_load(_compose(tmp_path, "--profile", "gpu", "config"))
    services = config["services"]
    assert set(services) == {
        "proxy", "app", "worker", "beat", "migrate", "postgres", "backup", "redis", "vllm",
    }  # fmt: skip
    assert services["app"]["deploy"]["replicas"] >= 2
    assert services["beat"]["deploy"]["replicas"] == 1
    grace = services["app"]["stop_grace_period"]
    assert int(str(grace).removesuffix("s")) >= SHUTDOWN_DRAIN_S + 15
    assert services["migrate"]["command"][-2:] == ["migrate", "--noinput"]
    assert "--max-lora-rank=32" in services["vllm"]["command"]


def test_the_caddyfile_validates():
    _run(
        *_tool("caddy"), "validate", "--adapter", "caddyfile",
        "--config", str(DEPLOY / "Caddyfile"), env={"STUDY_HOST": "study.example.org"},
    )  # fmt: skip


def _rendered() -> str:
    return _run(*_tool("kubectl"), "kustomize", str(DEPLOY / "k8s"))


def test_the_kubernetes_manifests_render_with_probes_and_a_drain_long_enough():
    docs = [d for d in yaml.safe_load_all(_rendered()) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for expected in [
        ("Deployment", "app"), ("Deployment", "worker"), ("Deployment", "beat"),
        ("Deployment", "vllm-arms"), ("HorizontalPodAutoscaler", "app"),
        ("PodDisruptionBudget", "app"), ("Ingress", "app"), ("Job", "migrate"),
        ("NetworkPolicy", "default-deny-ingress"),
    ]:  # fmt: skip
        assert expected in kinds, expected
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    app = by_name["Deployment", "app"]["spec"]["template"]["spec"]
    assert app["terminationGracePeriodSeconds"] >= SHUTDOWN_DRAIN_S + 15
    (container,) = app["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz?models=0"
    beat = by_name["Deployment", "beat"]["spec"]
    assert (beat["replicas"], beat["strategy"]["type"]) == (1, "Recreate")
    vllm = by_name["Deployment", "vllm-arms"]["spec"]["template"]["spec"]["containers"][0]
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "--enable-lora" in vllm["args"]


def _checkov_failures(*args: str) -> list[str]:
    result = subprocess.run(
        [*_tool("checkov"), *args, "--output", "json", "--quiet", "--compact"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},  # no internet: no guideline download
    )  # fmt: skip
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    return [
        f"{check['check_id']} {check['resource']}: {check['check_name']}"
        for report in reports
        for check in report.get("results", {}).get("failed_checks", [])
    ]


def test_checkov_finds_nothing_in_the_dockerfile():
    assert _checkov_failures("--file", "Dockerfile", "--framework", "dockerfile") == []


def test_checkov_finds_nothing_in_the_rendered_manifests(tmp_path):
    rendered = tmp_path / "k8s.yaml"
    rendered.write_text(_rendered())
    failures = _checkov_failures(
        "--file", str(rendered), "--framework", "kubernetes",
        "--config-file", str(DEPLOY / "k8s" / ".checkov.yaml"),
    )  # fmt: skip
    assert failures == []
