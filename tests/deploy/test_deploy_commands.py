"""The exact commands the image, compose.yaml and the systemd units run, run from a fresh
virtualenv built by the Dockerfile's own build commands, against a temporary SQLite database."""

from __future__ import annotations

import json
import re
import shlex
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import pytest
from deploy_helpers import (
    DEPLOY,
    Install,
    clean_env,
    dockerfile_stages,
    env_file,
    exec_form,
    load_yaml,
    unit_file,
)

from primero_progres.store import generate_key
from tls_helpers import make_tls_files

# the first test here builds the image's virtualenv (conftest.py's fresh_install, a pip
# install bounded at 900 s): over a minute on a loaded machine, past the suite's 120 s when the
# suite runs in parallel; the commands each test runs keep their own 60-120 s limits
pytestmark = pytest.mark.timeout(1020)

INBOX_TOKEN = "deploy-test-token"
#: peers that are not there: the flows' jobs just wait and retry
PEERS = {
    "primero_url": "http://127.0.0.1:9",
    "primero_username": "bridge",
    "dtp_url": "https://127.0.0.1:9",
    "poll_interval_seconds": 3600.0,
}


def _image_env(install: Install) -> dict[str, str]:
    """The final stage's ENV, with $PATH expanded and the image's paths mapped."""
    env = clean_env()
    for key, value in dockerfile_stages()[-1].env().items():
        env[key] = install.map(value.replace("$PATH", env.get("PATH", "")))
    return env


def _write_secrets(install: Install, directory: str, names: dict[str, str], database: str) -> None:
    """The secret files compose.yaml and the env example point to, with test values."""
    tls = make_tls_files(install.root / "tls")
    values = {
        "database_url": f"sqlite:///{install.map('/var/lib/primero-progres')}/{database}",
        "encryption_key": generate_key(),
        "inbox_tokens": INBOX_TOKEN,
        "primero_password": "unused",
        "dtp_subscription_key": "unused",
        "postgres_password": "unused",
    }
    target = Path(install.map(directory))
    target.mkdir(parents=True, exist_ok=True)
    for name, file_name in names.items():
        path = target / file_name
        if name == "dtp_client_cert":
            path.write_bytes(tls.client_cert.read_bytes())
        elif name == "dtp_client_key":
            path.write_bytes(tls.client_key.read_bytes())
        else:
            path.write_text(values[name])


def _write_settings(install: Install, target: str, port: int) -> None:
    """deploy/primero-progres.toml as an operator fills it in: peers set, a free port."""
    text = (DEPLOY / "primero-progres.toml").read_text(encoding="utf-8")
    for key, value in {**PEERS, "port": port}.items():
        line = f"{key} = {json.dumps(value)}"
        text, found = re.subn(rf"^(# )?{key} = .*$", line, text, count=1, flags=re.MULTILINE)
        assert found, f"{key} is not in the example"
    path = Path(install.map(target))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    log_file: Path

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def until(self, check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 90
        while not check():
            assert self.process.poll() is None, f"exited, {what}; log:\n{self.log()}"
            assert time.monotonic() < deadline, f"{what}; log:\n{self.log()}"
            time.sleep(0.2)


@contextmanager
def _running(command: list[str], env: dict[str, str], cwd: Path) -> Iterator[Running]:
    """Start ``command``; stop it with SIGTERM (docker stop, systemctl stop), expect exit 0."""
    cwd.mkdir(parents=True, exist_ok=True)
    log = cwd / f"{Path(command[0]).name}-{command[1]}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=sink, stderr=sink)
        running = Running(process, log)
        try:
            yield running
            assert process.poll() is None, running.log()
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=60)
    assert code == 0, running.log()


def _health_check(install: Install, env: dict[str, str]) -> Callable[[], bool]:
    """The image's HEALTHCHECK command, as the container engine would run it."""
    command = exec_form(dockerfile_stages()[-1].last("HEALTHCHECK").split("CMD", 1)[1])

    def check() -> bool:
        return subprocess.run(command, env=env, capture_output=True, timeout=60).returncode == 0

    return check


def _assert_inbox_queues(port: int) -> None:
    answer = httpx.post(
        f"http://127.0.0.1:{port}/api/v1/dtp/messages",
        json={
            "request_type": "PrimeroOutgoingReferral",
            "interventions": [{"progres_interventionnumber": "DPL-26-PRTITV-0000001"}],
        },
        headers={"Authorization": f"Bearer {INBOX_TOKEN}"},
    )
    assert (answer.status_code, answer.json()["status"]) == (202, "queued")


def test_every_command_answers_help(fresh_install: Install) -> None:
    cli = str(fresh_install.bin / "primero-progres")
    for command in (
        ["serve"], ["worker"], ["healthcheck"], ["db", "upgrade"], ["db", "backup"], ["keygen"],
    ):  # fmt: skip
        result = subprocess.run(
            [cli, *command, "--help"], env=clean_env(), capture_output=True, timeout=120
        )
        assert result.returncode == 0, (command, result.stderr)


def test_the_image_entry_point_serves_and_passes_its_health_check(
    fresh_install: Install, child_port: int
) -> None:
    final = dockerfile_stages()[-1]
    port = child_port
    env = _image_env(fresh_install)
    # what `docker run -e ...` would add
    env.update(
        PRIMERO_PROGRES_PORT=str(port),
        PRIMERO_PROGRES_ENCRYPTION_KEY=generate_key(),
        PRIMERO_PROGRES_INBOX_TOKENS=INBOX_TOKEN,
        PRIMERO_PROGRES_PRIMERO_PASSWORD="unused",
        PRIMERO_PROGRES_DTP_SUBSCRIPTION_KEY="unused",
        **{f"PRIMERO_PROGRES_{k.upper()}": str(v) for k, v in PEERS.items()},
    )
    command = exec_form(final.last("ENTRYPOINT")) + exec_form(final.last("CMD"))
    workdir = Path(fresh_install.map(final.last("WORKDIR")))
    healthy = _health_check(fresh_install, env)
    assert not healthy()
    with _running(command, env, workdir) as serve:
        serve.until(healthy, "the image's health check never passed")
        _assert_inbox_queues(port)
    assert (workdir / "primero-progres.db").is_file()  # on the image's volume


def test_compose_services_start_with_their_secrets_and_settings(
    fresh_install: Install, child_port: int
) -> None:
    compose = load_yaml(DEPLOY / "compose.yaml")
    final = dockerfile_stages()[-1]
    entry = exec_form(final.last("ENTRYPOINT"))
    secrets = {name: Path(spec["file"]).name for name, spec in compose["secrets"].items()}
    # compose mounts each secret at /run/secrets/<secret name>
    _write_secrets(fresh_install, "/run/secrets", {name: name for name in secrets}, "compose.db")
    port = child_port
    (setting,) = compose["services"]["serve"]["configs"]
    _write_settings(fresh_install, setting["target"], port)
    workdir = Path(fresh_install.map(final.last("WORKDIR")))

    def service_env(name: str) -> dict[str, str]:
        env = _image_env(fresh_install)
        for key, value in compose["services"][name]["environment"].items():
            env[key] = fresh_install.map(str(value))
        return env

    serve_env = service_env("serve")
    with _running(entry + compose["services"]["serve"]["command"], serve_env, workdir) as serve:
        serve.until(_health_check(fresh_install, serve_env), "serve never became healthy")
        _assert_inbox_queues(port)
        command = entry + compose["services"]["worker"]["command"]
        with _running(command, service_env("worker"), workdir / "worker") as worker:
            worker.until(lambda: '"worker.started"' in worker.log(), "no worker started")
    # the message went to the database the database_url secret names, not the image's default
    with sqlite3.connect(fresh_install.map("/var/lib/primero-progres/compose.db")) as db:
        numbers = [
            row[0] for row in db.execute("SELECT intervention_numbers FROM inbound_messages")
        ]
    assert numbers == ['["DPL-26-PRTITV-0000001"]']


@pytest.mark.parametrize("unit", ["primero-progres.service", "primero-progres-worker@.service"])
def test_systemd_unit_commands_start_with_the_example_environment(
    fresh_install: Install, unit: str, child_port: int
) -> None:
    service = unit_file(DEPLOY / "systemd" / unit)["Service"]
    (environment_file,) = service["EnvironmentFile"]
    assert environment_file == "/etc/primero-progres/primero-progres.env"
    example = env_file(DEPLOY / "primero-progres.env")
    secret_files = {
        key.removeprefix("PRIMERO_PROGRES_").removesuffix("_FILE").lower(): Path(value).name
        for key, value in example.items()
        if value.startswith("/etc/primero-progres/secrets/")
    }
    _write_secrets(fresh_install, "/etc/primero-progres/secrets", secret_files, f"{unit}.db")
    port = child_port
    _write_settings(fresh_install, example["PRIMERO_PROGRES_CONFIG"], port)
    env = clean_env(**{k: fresh_install.map(v) for k, v in example.items()})
    (exec_start,) = service["ExecStart"]
    command = [fresh_install.map(word) for word in shlex.split(exec_start)]
    workdir = Path(fresh_install.map(service["WorkingDirectory"][0]))
    with _running(command, env, workdir) as started:
        if command[-1] == "serve":
            probe = [str(fresh_install.bin / "primero-progres"), "healthcheck"]
            started.until(
                lambda: subprocess.run(probe, env=env, capture_output=True).returncode == 0,
                "serve never became healthy",
            )
            _assert_inbox_queues(port)
        else:
            started.until(lambda: '"worker.started"' in started.log(), "no worker started")
