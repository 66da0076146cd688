"""What flows 1 and 4 share: a message from the inbox, read, then fanned out one job per item."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import InvalidInputError
from ..mapping.errors import MappingError
from ..mapping.values import ProgresMessage
from ..store import AuditEvent, Flow, StepContext
from .runtime import Runtime


async def read_inbound(
    rt: Runtime, ctx: StepContext, read: Callable[[Any], ProgresMessage | MappingError]
) -> ProgresMessage:
    """The inbox message of this receive job; one that ``read`` refuses is invalid input."""
    message_id = ctx.job.message_id
    message = await rt.store.messages.payload(message_id) if message_id else None
    result = read(message)
    if isinstance(result, MappingError):
        raise InvalidInputError(f"message {message_id}: {result.kind}", reason=result.kind)
    return result


def fanned_out(ctx: StepContext, flow: Flow, count: int) -> None:
    ctx.audit(AuditEvent.MESSAGE_FANNED_OUT, flow=flow, message_id=ctx.job.message_id, count=count)
