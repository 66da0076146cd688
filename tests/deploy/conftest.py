"""The fresh install the deploy tests run their commands on.

The image cannot be built here (no container engine), so the tests do what the
image and the units would: they run the Dockerfile's own build commands into a
fresh virtualenv, with the image's paths mapped onto a temporary directory,
and then the exact commands the image, compose.yaml and the systemd units start.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_helpers import REPO, Install, clean_env, dockerfile_stages


@pytest.fixture(scope="session")
def fresh_install(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Install]:
    """The build stage of deploy/Dockerfile, run as written into a fresh virtualenv."""
    install = Install(tmp_path_factory.mktemp("image"))
    build = dockerfile_stages()[0]
    workdir = Path(install.map(build.last("WORKDIR")))
    workdir.mkdir(parents=True)
    for instruction, args in build.instructions:
        if instruction == "COPY":
            *sources, target = args.split()
            destination = workdir / target
            for source in sources:
                origin = REPO / source
                if origin.is_dir():
                    shutil.copytree(
                        origin, destination, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    destination.mkdir(parents=True, exist_ok=True)
                    shutil.copy(origin, destination / origin.name)
        elif instruction == "RUN":
            # the image's python is python3.11 on PATH; here it is the interpreter of the suite
            command = install.map(args)
            command = command.replace("python -m venv", f"{shlex.quote(sys.executable)} -m venv", 1)
            subprocess.run(
                ["bash", "-euo", "pipefail", "-c", command],
                cwd=workdir,
                env=clean_env(**build.env()),
                check=True,
                capture_output=True,
                timeout=900,
            )
    assert (install.bin / "primero-progres").is_file()
    yield install
