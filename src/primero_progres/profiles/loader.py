"""Read a profile YAML file and validate it, reporting problems by key path and line.

ruamel.yaml (YAML 1.2, round-trip loader) keeps ``NO`` and ``012`` as written,
refuses duplicate keys and remembers where each key was, so every problem
can name its key and line.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from ..errors import ConfigurationError
from .schema import Profile

BUILT_IN = ("gambella",)


@dataclass(frozen=True, slots=True)
class ProfileProblem:
    """One thing wrong in a profile: where (dotted key path, 1-based line) and what."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.path or "<profile>"
        if self.line is not None:
            where = f"{where} (line {self.line})"
        return f"{where}: {self.message}"


class ProfileError(ConfigurationError):
    """The profile cannot be used; ``problems`` lists every problem found."""

    def __init__(self, source: str, problems: list[ProfileProblem]) -> None:
        self.source = source
        self.problems = list(problems)
        summary = "; ".join(str(p) for p in self.problems[:5])
        more = f" (+{len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(f"invalid profile {source}: {summary}{more}", reason="invalid_profile")


def built_in_path(name: str) -> Path:
    """The file of a built-in profile."""
    return Path(str(resources.files(__package__).joinpath(f"{name}.yaml")))


def _resolve(name_or_path: str | Path) -> Path:
    if isinstance(name_or_path, Path):
        return name_or_path
    if name_or_path in BUILT_IN:
        return built_in_path(name_or_path)
    if "/" in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        return Path(name_or_path)
    raise ProfileError(
        name_or_path,
        [ProfileProblem("", None, f"no such built-in profile (built in: {', '.join(BUILT_IN)})")],
    )


def _plain(node: Any) -> Any:
    """Round-trip containers and scalar subclasses to plain Python values."""
    if isinstance(node, dict):
        return {_plain(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, str):
        return str(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


def _line_of(document: Any, loc: tuple[Any, ...]) -> int | None:
    """The line of the deepest key of ``loc`` that exists in the document."""
    node, line = document, None
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(node, CommentedMap):
            key = part if part in node else _same_key(node, part)
            if key is None:
                break
            line = node.lc.key(key)[0] + 1
            node = node[key]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            break
    return line


def _same_key(node: CommentedMap, part: Any) -> Any:
    for key in node:
        if str(key) == str(part):
            return key
    return None


def _problems_from(error: ValidationError, document: Any) -> list[ProfileProblem]:
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        loc = tuple(item["loc"])
        path = ".".join(str(p) for p in loc if p != "[key]")
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] == "missing":
            message = "required key missing"
        elif "[key]" in loc:
            message = f"key: {message} (quote codes that look like numbers)"
        problems.append(ProfileProblem(path, _line_of(document, loc), message))
    return problems


def _read(path: Path) -> tuple[Profile | None, list[ProfileProblem]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [ProfileProblem("", None, f"cannot read the file ({type(exc).__name__})")]
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        document = yaml.load(text)
    except DuplicateKeyError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        return None, [ProfileProblem(_duplicate_key_path(text, exc), line, "duplicate key")]
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        return None, [ProfileProblem("", line, f"not valid YAML: {exc.problem or exc.context}")]
    except YAMLError as exc:
        return None, [ProfileProblem("", None, f"not valid YAML ({type(exc).__name__})")]
    if not isinstance(document, CommentedMap):
        return None, [ProfileProblem("", None, "a profile is a mapping of keys to values")]
    try:
        return Profile.model_validate(_plain(document)), []
    except ValidationError as exc:
        return None, _problems_from(exc, document)


def _duplicate_key_path(text: str, exc: DuplicateKeyError) -> str:
    """The dotted path of a duplicate key, found from where its mapping starts."""
    first = exc.context_mark if exc.context_mark is not None else exc.problem_mark
    problem = exc.problem or ""
    start = problem.find('"')
    end = problem.find('"', start + 1)
    name = problem[start + 1 : end] if 0 <= start < end else ""
    if first is None:
        return name
    lenient = YAML(typ="rt")
    lenient.allow_duplicate_keys = True
    try:
        document = lenient.load(text)
    except YAMLError:
        return name
    found = _path_at_line(document, first.line, ())
    return ".".join((*found[:-1], name)) if found else name


def _path_at_line(node: Any, line: int, prefix: tuple[str, ...]) -> tuple[str, ...] | None:
    if isinstance(node, CommentedMap):
        for key in node:
            here = (*prefix, str(key))
            if node.lc.key(key)[0] == line:
                return here
            inner = _path_at_line(node[key], line, here)
            if inner:
                return inner
    elif isinstance(node, CommentedSeq):
        for index, item in enumerate(node):
            inner = _path_at_line(item, line, (*prefix, str(index)))
            if inner:
                return inner
    return None


def check_profile(
    path: str | Path | None = None, *, gateway: Literal["dtp", "ping"] = "dtp"
) -> list[ProfileProblem]:
    """Every problem of a profile file (or a built-in name); empty when it is usable.

    With ``gateway="ping"`` the profile must also have its ``ping`` section.
    """
    try:
        resolved = _resolve(path if path is not None else BUILT_IN[0])
    except ProfileError as exc:
        return exc.problems
    profile, problems = _read(resolved)
    if profile is not None and gateway == "ping" and profile.ping is None:
        problems = [ProfileProblem("ping", None, "required with the PING gateway")]
    return problems


@functools.lru_cache(maxsize=16)
def _load_cached(path: Path) -> Profile:
    profile, problems = _read(path)
    if profile is None:
        raise ProfileError(str(path), problems)
    return profile


def load_profile(name_or_path: str | Path = "gambella") -> Profile:
    """A validated profile, by built-in name or file path; raises ``ProfileError``."""
    path = _resolve(name_or_path)
    if isinstance(name_or_path, str) and name_or_path in BUILT_IN:
        return _load_cached(path)
    profile, problems = _read(path)
    if profile is None:
        raise ProfileError(str(path), problems)
    return profile


def profile_sha256(name_or_path: str | Path) -> str:
    """SHA-256 of the profile's file as it is on disk: which profile a deployment runs."""
    return hashlib.sha256(_resolve(name_or_path).read_bytes()).hexdigest()
