"""Structured logging that cannot leak personal data.

Log events are key/value pairs. Only keys on the allow-list below (IDs,
statuses, counts, codes) are written; any other key is replaced by
``"[redacted]"`` so a careless ``log.info("x", case=case)`` shows up in review
instead of in a log file. Values that are not scalars are redacted too.

Libraries log through the standard library (``sqlalchemy`` prints SQL
parameters at DEBUG, ``httpcore2`` headers, ``uvicorn`` request
lines). Their records are made safe when they are created, so no handler, ours
or another's, ever sees the original: the message keeps its template, each
argument that is not a number becomes ``[redacted]``, a message built without
arguments (an f-string may hold anything) is kept only if it is plain words,
and an exception keeps its type and traceback but not its text.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import threading
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
        "fields",
    }
)
_SAFE_SUFFIXES = ("_id", "_ids", "_number", "_count", "_key", "_status", "_at", "_url")
REDACTED = "[redacted]"


_SCALARS = (bool, int, float, str)
_ITEMS = (str, int)


def is_safe_key(key: str) -> bool:
    return key in _ALWAYS or key.endswith(_SAFE_SUFFIXES) or key == "progres_interventionnumber"


#: ``is_safe_key``, remembered: every log line asks it of each of its keys (the code's own
#: names, so few)
_safe_key = functools.lru_cache(maxsize=4096)(is_safe_key)


def redact_event(_logger: Any, _name: str, event: Mapping[str, Any]) -> dict[str, Any]:
    """structlog processor: keep allow-listed scalar fields, redact everything else."""
    out: dict[str, Any] = {}
    for key, value in event.items():
        if key == "exc_info":
            # A traceback's texts may quote data (a library's error about a value): keep the type.
            out["error"] = _exception_type(value)
        elif not _safe_key(key):
            out[key] = REDACTED
        elif value is None or isinstance(value, _SCALARS):
            out[key] = value
        elif isinstance(value, list | tuple) and all(isinstance(v, _ITEMS) for v in value):
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


#: one %-conversion of a logging template (``%s``, ``%(name)r``, ``%5.2f``, ``%%``...)
_CONVERSION = re.compile(
    r"%(?P<key>\([^)]*\))?[#0 +-]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?(?P<type>[diouxXeEfFgGcrsa%])"
)
#: a message logged without arguments is kept only when it is a few plain words
_PLAIN = re.compile(r"[A-Za-z][A-Za-z ]{0,78}[.!]?")


class RedactedError(Exception):
    """Stands in a log record for an exception whose text may quote data: its type only."""


def safe_message(msg: object, args: Any) -> str:
    """A stdlib log message with nothing from its arguments but numbers."""
    if not isinstance(msg, str):
        return REDACTED
    if not args:
        return msg if _PLAIN.fullmatch(msg.strip()) else REDACTED
    positional = iter(args) if isinstance(args, tuple) else iter(())
    named = args if isinstance(args, Mapping) else {}

    def replace(match: re.Match[str]) -> str:
        if match["type"] == "%":
            return "%"
        key = match["key"]
        value = named.get(key[1:-1], None) if key else next(positional, None)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return REDACTED

    return _CONVERSION.sub(replace, msg)


def _safe_exc_info(exc_info: Any) -> Any:
    if isinstance(exc_info, tuple) and len(exc_info) == 3 and exc_info[0] is not None:
        kind, _value, traceback = exc_info
        return (kind, RedactedError(kind.__name__), traceback)
    return exc_info


def _install_record_factory() -> None:
    """Every stdlib record is made safe as it is created (once per process)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_primero_progres_safe", False):
        return

    def safe_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.msg = safe_message(record.msg, record.args)
        record.args = ()
        record.exc_info = _safe_exc_info(record.exc_info)
        record.exc_text = None
        return record

    safe_record._primero_progres_safe = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(safe_record)


class _StderrPrinter:
    """structlog's ``PrintLogger``, writing to the ``sys.stderr`` of the moment (test runners
    swap it). One for the process: structlog asks its factory for a logger at every call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def msg(self, message: str) -> None:
        stream = sys.stderr
        with self._lock:
            stream.write(message + "\n")
            stream.flush()

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


_STDERR = _StderrPrinter()


def _stderr_logger(*_args: Any) -> _StderrPrinter:
    return _STDERR


class _StderrHandler(logging.StreamHandler[Any]):
    """Writes to the ``sys.stderr`` of the moment, like the structlog side."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


#: third-party loggers kept at WARNING whatever ``LOG_LEVEL`` says
NOISY_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2", "hpack")


def configure_logging(*, level: str = "INFO", json: bool = True) -> None:
    """Route structlog and every stdlib logger through the redacting pipeline to stderr."""
    _install_record_factory()
    _configure_structlog(level=level, json=json)
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                redact_event,
                _renderer(json),
            ],
        )
    )
    root = logging.getLogger()
    for previous in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(level)
    # Client libraries trace every header at DEBUG: redacted, they would still be noise.
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _renderer(json: bool) -> Any:
    if json:
        return structlog.processors.JSONRenderer()
    return structlog.dev.ConsoleRenderer(colors=False)


def _configure_structlog(*, level: str, json: bool) -> None:
    renderer = _renderer(json)
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
_install_record_factory()
