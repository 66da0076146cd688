"""Every runnable command block of the documentation runs, as written (see doc_blocks.py)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from doc_blocks import EXAMPLE_PORTS, Block, runnable_blocks

from primero_progres.sim.common import reserved_port

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
WITH_COMMANDS = [d for d in DOCUMENTS if runnable_blocks(d)]
LINKED = ("tests", "deploy", "docs", "src")


def _script(blocks: list[Block], ports: dict[str, str]) -> str:
    parts = ["set -euo pipefail"]
    for number, block in enumerate(blocks):
        code = block.code
        for example, port in ports.items():
            code = re.sub(rf"(?<![0-9]){example}(?![0-9])", port, code)
        # on a line of its own even after output that does not end with a newline
        parts += [f"printf '\\n@@block {number}\\n'", code]
    parts.append("printf '\\n@@end\\n'")
    return "\n".join(parts) + "\n"


def _run(document: Path, workdir: Path) -> tuple[int, str]:
    # the document's example ports, each held until it ends (reserved_port): the servers it
    # starts can bind them, no parallel test can take them first
    with contextlib.ExitStack() as held:
        ports = {
            example: str(held.enter_context(reserved_port())) for example in EXAMPLE_PORTS
        }
        return _run_on(document, workdir, ports)


def _run_on(document: Path, workdir: Path, ports: dict[str, str]) -> tuple[int, str]:
    for name in LINKED:
        (workdir / name).symlink_to(REPO / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIMERO_PROGRES_")}
    env.pop("VIRTUAL_ENV", None)
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    env.update(HOME=str(workdir))
    script = workdir / ".doc-commands.sh"
    script.write_text(_script(runnable_blocks(document), ports))
    output = workdir / ".doc-commands.out"
    with output.open("wb") as sink:
        # own process group: whatever the document left running in the background is stopped
        process = subprocess.Popen(
            ["bash", str(script)],
            cwd=workdir,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            code = process.wait(timeout=600)
        finally:
            _stop_group(process.pid)
    return code, output.read_text(errors="replace")


def _stop_group(group: int, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL what still runs after ``grace``: a server left behind by a failed
    or timed-out document would hold its port and CPU for the rest of the suite."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            os.killpg(group, 0)
            time.sleep(0.1)
        os.killpg(group, signal.SIGKILL)


@pytest.mark.parametrize("document", WITH_COMMANDS, ids=lambda d: d.name)
# a document starts servers and runs its commands one after another: minutes on a loaded
# machine (operate.md took over 120 s at load 7); its limit is _run's 600 s wait, not the
# suite's 120 s
@pytest.mark.timeout(660)
def test_runnable_commands_of(document: Path, tmp_path: Path) -> None:
    blocks = runnable_blocks(document)
    code, output = _run(document, tmp_path)
    outputs = re.split(r"^@@block \d+$|^@@end$", output, flags=re.MULTILINE)
    started = len(re.findall(r"^@@block \d+$", output, flags=re.MULTILINE))
    where = blocks[max(started, 1) - 1]
    assert code == 0 and output.rstrip().endswith("@@end"), (
        f"{document.name}: the block at line {where.line} failed (exit {code}):\n{output[-4000:]}"
    )
    for block, text in zip(blocks, outputs[1:], strict=False):
        for expected in block.expect:
            assert expected in text, f"{document.name}:{block.line}: no {expected!r} in:\n{text}"


def test_the_operator_documents_have_runnable_commands() -> None:
    names = {d.name for d in WITH_COMMANDS}
    assert {"install.md", "operate.md", "adopt.md", "cutover.md", "README.md"} <= names


def test_a_marker_must_precede_a_sh_block(tmp_path: Path) -> None:
    document = tmp_path / "bad.md"
    document.write_text("<!-- runnable -->\n```console\n$ true\n```\n")
    with pytest.raises(ValueError, match="must precede a sh block"):
        runnable_blocks(document)
    document.write_text("text\n<!-- runnable expect='ok' -->\n```sh\necho ok\n```\n")
    (block,) = runnable_blocks(document)
    assert (block.line, block.code, block.expect) == (3, "echo ok", ("ok",))
