"""The convention for documentation commands that the test suite runs.

In ``README.md`` and ``docs/*.md``, a fenced ``sh`` block whose line just above
is an HTML comment ``<!-- runnable -->`` is run by ``tests/docs``; readers do
not see the comment. Rules:

- All runnable blocks of one document run in order in one ``bash`` with
  ``set -euo pipefail``, so variables and files carry from block to block, and
  any failing command fails the test.
- The working directory is a fresh temporary directory that looks like a clone:
  ``tests/``, ``deploy/``, ``docs/`` and ``src/`` link to the repository, so
  write paths as a user in a clone would (``tests/data/reference/...``).
- ``primero-progres`` is the project's own (``.venv/bin`` first on ``PATH``);
  no ``PRIMERO_PROGRES_*`` variable is inherited.
- The example ports 8080, 8443, 8912 and 8470 are replaced by free ports, so
  several runs can share a machine.
- Start servers in the background with their output sent to a file
  (``... > serve.log 2>&1 &``) and wait for them with a loop, as a user would;
  everything still running when the document ends is stopped.
- ``<!-- runnable expect="TEXT" -->`` also requires TEXT in that block's output
  (``expect`` may repeat; quote with ``"`` or ``'``).

Blocks that cannot run here (root, systemd, a container engine, the real
peers) stay plain ``sh`` blocks and say so in the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

MARKER = re.compile(r"^<!--\s*runnable(?P<attrs>.*?)-->\s*$")
EXPECT = re.compile(r"""expect=(?:"([^"]*)"|'([^']*)')""")
FENCE = re.compile(r"^(?P<fence>```+|~~~+)\s*(?P<info>[^`]*)$")
EXAMPLE_PORTS = ("8080", "8443", "8912", "8470")


@dataclass(frozen=True)
class Block:
    document: Path
    line: int  #: line of the opening fence, 1-based
    code: str
    expect: tuple[str, ...]


def runnable_blocks(document: Path) -> list[Block]:
    """The runnable blocks of ``document``, in order; a marker not followed by a sh block fails."""
    lines = document.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        marker = MARKER.match(lines[index].strip())
        index += 1
        if not marker:
            continue
        fence = FENCE.match(lines[index]) if index < len(lines) else None
        if not fence or fence.group("info").strip().split(" ")[0] != "sh":
            raise ValueError(f"{document.name}:{index}: <!-- runnable --> must precede a sh block")
        closing = fence.group("fence")
        start = index + 1
        end = start
        while end < len(lines) and lines[end].strip() != closing:
            end += 1
        if end == len(lines):
            raise ValueError(f"{document.name}:{index + 1}: unclosed code block")
        expect = tuple(a or b for a, b in EXPECT.findall(marker.group("attrs")))
        blocks.append(Block(document, index + 1, "\n".join(lines[start:end]), expect))
        index = end + 1
    return blocks
