"""Over PING, the queue flows need no ``POLL_START_AT``: they start at the queue's beginning,
as the scheduler does (``flows.start_at``). What the operator reads of the polls must say
the same, not that they have no start point."""

from __future__ import annotations

import re

from console_client import console_session
from primero_progres.stack import Stack
from primero_progres.store import Flow

NO_START_POINT = "This flow does not poll until it has a start point"


async def test_the_polls_page_tells_only_the_primero_flows_they_need_a_start_point(
    ping_stack: Stack,
) -> None:
    async with console_session(ping_stack) as client:
        page = (await client.get("/admin/polls")).text
    sections = dict(re.findall(r'<section data-flow="([^"]+)">(.*?)</section>', page, re.S))
    assert set(sections) == {
        Flow.PROGRES_REFERRAL.value,
        Flow.PROGRES_DECISION.value,
        Flow.PRIMERO_DECISION.value,
        Flow.PRIMERO_REFERRAL.value,
    }
    assert NO_START_POINT not in sections[Flow.PROGRES_REFERRAL.value]
    assert NO_START_POINT not in sections[Flow.PROGRES_DECISION.value]
    # Primero's polls read history: they still wait for POLL_START_AT or a cursor
    assert NO_START_POINT in sections[Flow.PRIMERO_REFERRAL.value]


async def test_the_store_says_a_flow_with_a_start_point_can_start(ping_stack: Stack) -> None:
    from primero_progres import flows

    statuses = {
        s.flow: s
        for s in await ping_stack.store.polls.status(
            flows.poll_triggers(ping_stack.settings),
            start_points=flows.start_points(ping_stack.settings),
        )
    }
    assert statuses[Flow.PROGRES_REFERRAL.value].startable
    assert statuses[Flow.PROGRES_REFERRAL.value].next_poll_at is not None
    assert not statuses[Flow.PRIMERO_DECISION.value].startable
    assert statuses[Flow.PRIMERO_DECISION.value].next_poll_at is None
