"""The error taxonomy every layer shares.

Flows never look at error texts: they branch on ``failure_class``. Every message
built here must carry system IDs, codes and statuses only, never personal data,
because errors end up in logs, the audit trail and the operator views.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class FailureClass(StrEnum):
    """How a failure should be handled, independent of where it happened."""

    INVALID_INPUT = "invalid_input"  # the message itself is unusable: reject, never retry
    MAPPING = "mapping"  # readable, but cannot be mapped with this profile: report back
    TRANSIENT = "transient"  # a peer or the network may recover: retry with backoff
    PERMANENT = "permanent"  # a peer refused for good: dead letter, report where the spec says


class BridgeError(Exception):
    """Base of every error raised on purpose by the bridge."""

    failure_class: ClassVar[FailureClass] = FailureClass.PERMANENT

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: a short machine-readable code (``unknown_case``, ``http_503``...), safe for metric labels
        self.reason = reason or type(self).__name__

    @property
    def retryable(self) -> bool:
        return self.failure_class is FailureClass.TRANSIENT


class InvalidInputError(BridgeError):
    failure_class = FailureClass.INVALID_INPUT


class MappingFailure(BridgeError):
    failure_class = FailureClass.MAPPING


class TransientError(BridgeError):
    failure_class = FailureClass.TRANSIENT


class PermanentError(BridgeError):
    failure_class = FailureClass.PERMANENT


class ConfigurationError(BridgeError):
    """Settings or a profile are missing or invalid; the process should not start."""

    failure_class = FailureClass.INVALID_INPUT
