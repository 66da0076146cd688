"""The deploy/ files are well-formed and agree with the product: hadolint, the Compose schema,
systemd-analyze, and the settings examples checked against the Settings model."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from deploy_helpers import (
    DEPLOY,
    REPO,
    dockerfile_stages,
    env_file,
    exec_form,
    load_yaml,
    unit_file,
)

from primero_progres.settings import PREFIX, SECRET_FIELDS, Settings, env_name

COMPOSE_SCHEMA = REPO / "tests" / "data" / "compose-spec" / "compose-spec.json"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))


def _tool(name: str) -> str:
    """A linter installed with the project (the dev extra), next to this interpreter."""
    path = Path(sys.executable).with_name(name)
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"{name} is not installed: make install (it is in the dev extra)"
    return found


# --- Dockerfile --------------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [_tool("hadolint"), "--no-color", str(DEPLOY / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_hadolint_catches_what_it_is_here_for(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11\nRUN pip install primero-progres\nUSER root\n")
    result = subprocess.run(
        [_tool("hadolint"), "--no-color", str(bad)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert {"DL3013", "DL3042", "DL3002"} <= set(re.findall(r"DL\d{4}", result.stdout))


def test_image_is_multi_stage_non_root_and_runs_serve_with_a_health_check() -> None:
    build, final = dockerfile_stages()
    assert build.name and f"--from={build.name}" in " ".join(final.all("COPY"))
    user = final.last("USER").split(":")[0]
    assert user.isdigit() and int(user) != 0
    assert exec_form(final.last("ENTRYPOINT")) + exec_form(final.last("CMD")) == [
        "primero-progres",
        "serve",
    ]
    health = final.last("HEALTHCHECK")
    assert health.split("CMD", 1)[1].strip() == '["primero-progres", "healthcheck"]'
    # listens beyond the container's loopback; sets no other setting, which would override
    # the TOML file and the *_FILE secrets
    assert {k for k in final.env() if k.startswith(PREFIX)} == {f"{PREFIX}HOST"}
    assert final.env()[f"{PREFIX}HOST"] == "0.0.0.0"
    # the default SQLite file (relative to the working directory) is on the volume
    assert Settings.model_fields["database_url"].default == "sqlite:///./primero-progres.db"
    assert exec_form(final.last("VOLUME")) == [final.last("WORKDIR")]


def test_dockerignore_lets_through_exactly_what_the_image_copies() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied = set()
    for stage in dockerfile_stages():
        for args in stage.all("COPY"):
            if not args.startswith("--from"):
                copied.update(args.split()[:-1])
    assert copied == allowed


# --- compose.yaml --------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    compose = load_yaml(DEPLOY / "compose.yaml")
    assert isinstance(compose, dict)
    return compose


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(_compose())


def test_compose_schema_rejects_a_misspelt_key() -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    broken = _compose()
    broken["services"]["serve"]["dependson"] = broken["services"]["serve"].pop("depends_on")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate(broken)


def test_compose_runs_postgresql_one_serve_and_one_worker_with_secrets_from_files() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"db", "serve", "worker"}
    assert services["db"]["image"].startswith("postgres:")
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["db"]["volumes"])
    assert services["serve"]["command"] == ["serve"]
    assert services["worker"]["command"] == ["worker"]
    assert services["serve"]["image"] == services["worker"]["image"]
    assert services["worker"]["depends_on"]["serve"]["condition"] == "service_healthy"
    defined = set(compose["secrets"])
    for name, service in services.items():
        used = set(service.get("secrets", []))
        assert used <= defined, name
        for variable, value in service.get("environment", {}).items():
            if variable.endswith("_FILE") or str(value).startswith("/run/secrets/"):
                assert str(value).removeprefix("/run/secrets/") in used, variable
        for variable in service.get("environment", {}):
            if variable.startswith(PREFIX):
                _assert_is_a_setting(variable)
    # the secrets are secrets, never plain environment values
    bridge_env = services["serve"]["environment"]
    for field in SECRET_FIELDS:
        assert env_name(field) not in bridge_env
        assert f"{env_name(field)}_FILE" in bridge_env


def _assert_is_a_setting(variable: str) -> None:
    if variable in (f"{PREFIX}CONFIG", f"{PREFIX}SECRETS_DIR"):
        return
    name = variable.removeprefix(PREFIX).removesuffix("_FILE").lower()
    assert name in Settings.model_fields, f"{variable} names no setting"


# --- systemd units ---------------------------------------------------------------------------


def test_units_run_serve_and_workers_as_a_service_user() -> None:
    assert [u.name for u in UNITS] == ["primero-progres-worker@.service", "primero-progres.service"]
    commands = {}
    for path in UNITS:
        unit = unit_file(path)
        service = unit["Service"]
        assert service["User"] == ["primero-progres"]
        assert service["EnvironmentFile"] == ["/etc/primero-progres/primero-progres.env"]
        assert service["RestartPreventExitStatus"] == ["2"]  # configuration errors exit 2
        commands[path.name] = service["ExecStart"]
    assert commands == {
        "primero-progres.service": ["/opt/primero-progres/bin/primero-progres serve"],
        "primero-progres-worker@.service": ["/opt/primero-progres/bin/primero-progres worker"],
    }


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze (package systemd) is needed to check the units"
    # verify also checks that ExecStart is executable: point it at this interpreter's command
    command = Path(sys.executable).with_name("primero-progres")
    checked = []
    for path in UNITS:
        name = path.name.replace("@.service", "@1.service")
        text = path.read_text().replace("/opt/primero-progres/bin/primero-progres", str(command))
        (tmp_path / name).write_text(text)
        checked.append(str(tmp_path / name))
    result = subprocess.run(
        [analyze, "verify", *checked], capture_output=True, text=True, timeout=120
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


# --- settings examples ------------------------------------------------------------------------


def _default(field: str) -> Any:
    return Settings.model_fields[field].get_default(call_default_factory=True)


def test_toml_example_lists_every_setting_with_its_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable in [v for v in os.environ if v.startswith(PREFIX)]:
        monkeypatch.delenv(variable)
    text = (DEPLOY / "primero-progres.toml").read_text(encoding="utf-8")
    values = tomllib.loads(text)
    commented = set(re.findall(r"^# ([a-z0-9_]+) = ", text, flags=re.MULTILINE))
    problems = []
    for field in Settings.model_fields:
        default = _default(field)
        if default is None or default == []:
            if field not in commented:
                problems.append(f"{field}: no default, needs a commented '# {field} = ' line")
        elif field not in values:
            problems.append(f"{field}: missing, add '{field} = {default!r}'")
    assert problems == []
    assert set(values) <= set(Settings.model_fields)
    assert commented <= set(Settings.model_fields)
    loaded = Settings.load(DEPLOY / "primero-progres.toml", require_encryption_key=False)
    assert loaded.model_dump() == Settings.load(require_encryption_key=False).model_dump()


def test_env_example_names_only_settings_and_keeps_secrets_in_files() -> None:
    values = env_file(DEPLOY / "primero-progres.env")
    for variable in values:
        _assert_is_a_setting(variable)
    for field in SECRET_FIELDS:
        assert env_name(field) not in values
        assert values[f"{env_name(field)}_FILE"].startswith("/etc/primero-progres/secrets/")
