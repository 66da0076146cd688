"""Readers for the files in ``deploy/`` (Dockerfile, compose, units, env files), and the map
of the image's paths onto a temporary directory."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


@dataclass
class Stage:
    """One stage of a multi-stage Dockerfile: its instructions, in order."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [args for name, args in self.instructions if name == instruction]

    def last(self, instruction: str) -> str:
        found = self.all(instruction)
        assert found, f"no {instruction} in the stage {self.name or self.base}"
        return found[-1]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for args in self.all("ENV"):
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                values[key] = value
        return values


def dockerfile_stages(path: Path = DEPLOY / "Dockerfile") -> list[Stage]:
    """The Dockerfile's stages (continuation lines joined, comments dropped)."""
    stages: list[Stage] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        instruction, _, args = (pending + line).partition(" ")
        pending = ""
        instruction, args = instruction.upper(), " ".join(args.split())
        if instruction == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        else:
            stages[-1].instructions.append((instruction, args))
    return stages


def exec_form(args: str) -> list[str]:
    """An instruction's JSON exec form (``["a", "b"]``), which the image uses throughout."""
    import json

    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def unit_file(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit: section -> key -> values (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as systemd's EnvironmentFile and compose's env_file read them."""
    values: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


@dataclass(frozen=True)
class Install:
    """The image's (and the VM's) file system, mapped onto a temporary directory."""

    root: Path

    @property
    def paths(self) -> dict[str, str]:
        return {
            "/opt/primero-progres": str(self.root / "opt" / "primero-progres"),
            "/etc/primero-progres": str(self.root / "etc" / "primero-progres"),
            "/var/lib/primero-progres": str(self.root / "var" / "lib" / "primero-progres"),
            "/run/secrets": str(self.root / "run" / "secrets"),
            "/src": str(self.root / "src"),
        }

    def map(self, text: str) -> str:
        """An absolute path (or a command or URL holding one) of the image, here."""
        for image_path, here in self.paths.items():
            text = text.replace(image_path, here)
        return text

    @property
    def bin(self) -> Path:
        return Path(self.map("/opt/primero-progres/bin"))


def clean_env(**values: str) -> dict[str, str]:
    """This process's environment without any bridge setting, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIMERO_PROGRES_")}
    env.pop("VIRTUAL_ENV", None)
    env.update(values)
    return env
