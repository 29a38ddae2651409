"""The soak's topology: the fault campaign's stack (bench/faults/stack.py) with deploy/
compose.yaml's shape: Caddy in front of three ASGI processes, and two model replicas that the
app fails over between (VLLM_URL lists both)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from bench.faults.model import REQUEST_LINE
from bench.faults.services import AppProcess, ModelServer, free_port, stop_process, wait_port
from bench.faults.stack import Stack

APPS = 3
REPLICAS = 2


def caddyfile(port: int, upstreams: list[int]) -> str:
    """Plain HTTP on loopback, static upstreams (deploy/Caddyfile looks them up in DNS): a
    refused or dead upstream is skipped for ``fail_duration`` and the request tried on another."""
    hosts = " ".join(f"127.0.0.1:{u}" for u in upstreams)
    return (
        "{\n\tadmin off\n\tauto_https off\n}\n"
        f"http://127.0.0.1:{port} {{\n"
        f"\treverse_proxy {hosts} {{\n"
        "\t\tlb_policy least_conn\n"
        "\t\tlb_try_duration 5s\n"
        "\t\tfail_duration 10s\n"
        "\t}\n}\n"
    )


class Caddy:
    def __init__(self, root: Path, upstreams: list[int]) -> None:
        self.port = free_port()
        self.root, self.upstreams = root, upstreams
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("caddy")
        if binary is None:
            raise RuntimeError("no caddy binary on PATH (Debian: apt-get install caddy)")
        config = self.root / "Caddyfile"
        config.write_text(caddyfile(self.port, self.upstreams))
        env = {
            "HOME": str(self.root),
            "XDG_DATA_HOME": str(self.root / "caddy-data"),
            "XDG_CONFIG_HOME": str(self.root / "caddy-config"),
        }
        with (self.root / "logs" / "caddy.log").open("a") as log:
            self.process = subprocess.Popen(
                [binary, "run", "--config", str(config), "--adapter", "caddyfile"],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        wait_port(self.port, 30, self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


class SoakStack(Stack):
    """PostgreSQL, Redis, Celery, ``REPLICAS`` model servers, ``APPS`` ASGI processes behind
    Caddy; participants know only Caddy's port."""

    def __init__(self, *, tps: float, tokens: int, celery: bool = True) -> None:
        super().__init__(tps=tps, tokens=tokens, celery=celery)
        self.models = [self.model] + [
            ModelServer(self.logs, tps, tokens, name=f"model-{i}") for i in range(1, REPLICAS)
        ]
        self.env["VLLM_URL"] = ",".join(model.url() for model in self.models)
        self.apps = [
            AppProcess(f"asgi-{i}", self.env, self.logs / f"asgi-{i}.log") for i in range(APPS)
        ]
        self.proxy = Caddy(self.root, [app.port for app in self.apps])

    def start(self) -> None:
        super().start()
        self.proxy.start()

    def ports(self) -> list[int]:
        return [self.proxy.port]

    def model_requests(self) -> list[int]:
        """Chat requests from the app each replica has served so far (its log survives a
        restart: the server appends to it)."""
        counts = []
        for model in self.models:
            log = self.logs / f"{model.name}.log"
            text = log.read_text(errors="replace") if log.exists() else ""
            counts.append(text.count(f"{REQUEST_LINE} app\n"))
        return counts

    def close(self, keep: bool) -> None:
        self.proxy.stop()
        super().close(keep)
