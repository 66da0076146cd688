"""Structured logging that cannot leak personal data.

Log events are key/value pairs. Only keys on the allow-list below (IDs,
statuses, counts, codes) are written; any other key is replaced by
``"[redacted]"`` so a careless ``log.info("x", case=case)`` shows up in review
instead of in a log file. Values that are not scalars are redacted too.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

import structlog

_ALWAYS = frozenset(
    {
        "event",
        "level",
        "timestamp",
        "logger",
        "flow",
        "kind",
        "step",
        "status",
        "state",
        "reason",
        "failure_class",
        "attempt",
        "attempts",
        "count",
        "total",
        "page",
        "per",
        "duration_ms",
        "peer",
        "operation",
        "status_code",
        "method",
        "path",
        "port",
        "host",
        "scheme",
        "worker",
        "cursor",
        "watermark",
        "retry_in",
        "retry_after",
        "http_status",
        "profile",
        "database",
        "key_id",
        "decision",
        "outcome",
        "request_type",
        "error",
    }
)
_SAFE_SUFFIXES = ("_id", "_ids", "_number", "_count", "_key", "_status", "_at", "_url")
REDACTED = "[redacted]"


def is_safe_key(key: str) -> bool:
    return key in _ALWAYS or key.endswith(_SAFE_SUFFIXES) or key == "progres_interventionnumber"


def redact_event(_logger: Any, _name: str, event: Mapping[str, Any]) -> dict[str, Any]:
    """structlog processor: keep allow-listed scalar fields, redact everything else."""
    out: dict[str, Any] = {}
    for key, value in event.items():
        if key == "exc_info":
            # A traceback's texts may quote data (a library's error about a value): keep the type.
            out["error"] = _exception_type(value)
        elif not is_safe_key(key):
            out[key] = REDACTED
        elif value is None or isinstance(value, bool | int | float | str):
            out[key] = value
        elif isinstance(value, list | tuple) and all(isinstance(v, str | int) for v in value):
            out[key] = list(value)
        else:
            out[key] = REDACTED
    return out


def _exception_type(exc_info: Any) -> str | None:
    if isinstance(exc_info, BaseException):
        return type(exc_info).__name__
    if isinstance(exc_info, tuple) and exc_info and exc_info[0] is not None:
        return str(exc_info[0].__name__)
    current = sys.exc_info()[0]
    return current.__name__ if exc_info and current is not None else None


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    """A logger writing to the ``sys.stderr`` of the moment (test runners swap it)."""
    return structlog.PrintLogger(sys.stderr)


def configure_logging(*, level: str = "INFO", json: bool = True) -> None:
    """Route structlog and stdlib logging through the redacting pipeline to stderr."""
    _configure_structlog(level=level, json=json)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    # Client libraries log full URLs and headers at INFO/DEBUG; keep them quiet.
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "hpack"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _configure_structlog(*, level: str, json: bool) -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)


# Redaction holds from the first import, before (or without) an explicit configuration.
_configure_structlog(level="INFO", json=False)
