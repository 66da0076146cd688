"""Commands of the 'repair' part: the operator console's views and repairs from a shell.

``messages``, ``dead-letters``, ``queue``, ``trace``, ``replay``, ``discard`` and ``cursor``,
through the same store API the console uses; each repair is audited as ``cli:<system user>``.
Output is one JSON object a line (IDs, codes, statuses, counts and times only).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from ..errors import BridgeError
from .store import ConfigOption, load_settings, print_rows, with_store

if TYPE_CHECKING:
    from ..settings import Settings
    from ..store import Flow, Job, Store

T = TypeVar("T")


class FlowName(StrEnum):
    """``store.Flow``'s values, repeated so that the option's choices do not load the store
    (a test keeps them equal)."""

    PROGRES_REFERRAL = "progres-referral"
    PRIMERO_DECISION = "primero-decision"
    PRIMERO_REFERRAL = "primero-referral"
    PROGRES_DECISION = "progres-decision"


FlowOption = Annotated[FlowName | None, typer.Option("--flow", help="Only this flow.")]
ReasonOption = Annotated[
    str | None, typer.Option("--reason", help="Only this typed reason (http_401, unknown_case...).")
]
MAX_REASON = 200


def dead_letter_row(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "kind": job.kind,
        "flow": job.flow,
        "step": job.step,
        "attempts": job.attempts,
        "first_failed_at": job.first_failed_at.isoformat() if job.first_failed_at else None,
        "updated_at": job.updated_at.isoformat(),
        "reason": job.dead_reason.as_json() if job.dead_reason else None,
        "refs": job.refs,
        "payload_stored": job.has_payload,
    }


def _act(settings: Settings, action: Callable[[Store], Awaitable[T]]) -> T:
    """Run a repair; a refusal (bad input, no start point...) exits 2 with its message."""
    try:
        return with_store(settings, action)
    except BridgeError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None


def _polling(flow: str) -> Flow:
    from .. import flows
    from ..store import Flow

    if flow not in flows.POLLING_FLOWS:
        typer.echo(
            f"unknown polling flow {flow!r}: one of {', '.join(flows.POLLING_FLOWS)}", err=True
        )
        raise typer.Exit(2)
    return Flow(flow)


def _reason(reason: str | None, *, required: bool = False) -> str | None:
    if reason is not None:
        reason = " ".join(reason.split())
    if required and not reason:
        typer.echo("error: give a reason (--reason TEXT)", err=True)
        raise typer.Exit(2)
    if reason and len(reason) > MAX_REASON:
        typer.echo(f"error: the reason is longer than {MAX_REASON} characters", err=True)
        raise typer.Exit(2)
    return reason or None


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root app."""

    @app.command()
    def messages(
        config: ConfigOption = None,
        flow: FlowOption = None,
        limit: int = 50,
    ) -> None:
        """Inbound messages (IDs only), newest first, one JSON object a line."""
        from ..store import Flow

        settings = load_settings(config)

        chosen = Flow(flow.value) if flow else None

        async def view(store: Store) -> list[dict[str, Any]]:
            rows = []
            for summary in await store.reports.messages(flow=chosen, limit=limit):
                message = summary.message
                jobs = await store.jobs.list(message_id=message.id, limit=1000)
                rows.append(
                    {
                        "message_id": message.id,
                        "flow": message.flow,
                        "request_type": message.request_type,
                        "received_at": message.received_at.isoformat(),
                        "intervention_numbers": message.intervention_numbers,
                        "org_referral_ids": message.org_referral_ids,
                        "items": summary.items,
                        "outcome": summary.outcome,
                        "payload_stored": message.has_payload,
                        "jobs": {job.kind + ":" + job.id: job.state for job in jobs},
                    }
                )
            return rows

        print_rows(with_store(settings, view))

    @app.command("dead-letters")
    def dead_letters(
        config: ConfigOption = None,
        flow: FlowOption = None,
        reason: ReasonOption = None,
        limit: int = 100,
    ) -> None:
        """Dead jobs with their typed reason, last failure first, one JSON object a line."""
        from ..store import DeadLetterFilter

        settings = load_settings(config)
        where = DeadLetterFilter(flow=flow.value if flow else None, reason=reason)

        async def view(store: Store) -> list[dict[str, Any]]:
            return [dead_letter_row(j) for j in await store.jobs.dead_letters(where, limit=limit)]

        print_rows(with_store(settings, view))

    @app.command()
    def queue(config: ConfigOption = None) -> None:
        """Unfinished and dead jobs by kind and state, one JSON object a line (a drained queue
        prints nothing): e.g. before switching the UNHCR gateway."""
        settings = load_settings(config)

        async def view(store: Store) -> list[dict[str, Any]]:
            counts = await store.jobs.counts()
            return [
                {"kind": kind, "state": state, "count": count}
                for (kind, state), count in sorted(counts.items())
                if state in ("pending", "running", "dead")
            ]

        print_rows(with_store(settings, view))

    @app.command()
    def trace(
        id_: Annotated[
            str,
            typer.Argument(
                metavar="ID",
                help="A progres_interventionnumber, a Primero case id or record id, an org "
                "referral id, a message id or a job id.",
            ),
        ],
        config: ConfigOption = None,
    ) -> None:
        """Everything the bridge did for one ID, oldest first, one JSON object a line."""
        settings = load_settings(config)
        found = with_store(settings, lambda store: store.reports.trace(id_))
        if not found.entries:
            typer.echo(f"nothing found for {id_[:200]!r}", err=True)
            raise typer.Exit(1)
        print_rows(
            [
                {
                    "at": entry.at.isoformat(),
                    "source": entry.source,
                    "what": entry.what,
                    "flow": entry.flow,
                    "outcome": entry.outcome,
                    "ids": entry.ids,
                }
                for entry in found.entries
            ]
        )

    @app.command()
    def replay(
        job_id: Annotated[str | None, typer.Argument(help="The dead job to replay.")] = None,
        config: ConfigOption = None,
        all_: Annotated[
            bool,
            typer.Option("--all", help="Every dead letter (matching --flow and --reason)."),
        ] = False,
        flow: FlowOption = None,
        reason: ReasonOption = None,
        why: Annotated[
            str | None, typer.Option("--why", help="Kept in the audit trail (IDs, no names).")
        ] = None,
    ) -> None:
        """Send dead jobs back to the queue (attempts reset). Safe to repeat: the ledger drops
        what was already delivered."""
        from ..operators import command_line_account
        from ..store import DeadLetterFilter

        if (job_id is None) == (not all_):
            typer.echo("error: give JOB_ID or --all (not both)", err=True)
            raise typer.Exit(2)
        if job_id is not None and (flow or reason):
            typer.echo("error: --flow and --reason go with --all", err=True)
            raise typer.Exit(2)
        settings = load_settings(config)
        note = _reason(why)
        account = command_line_account()
        if job_id is not None:
            replayed = _act(settings, lambda s: s.jobs.replay(job_id, account=account, reason=note))
            if not replayed:
                typer.echo(f"no dead job {job_id}", err=True)
                raise typer.Exit(1)
            typer.echo(f"job {job_id} queued again")
            return
        where = DeadLetterFilter(flow=flow.value if flow else None, reason=reason)
        ids = _act(settings, lambda s: s.jobs.replay_matching(where, account=account, reason=note))
        typer.echo(f"{len(ids)} job(s) queued again")

    @app.command()
    def discard(
        job_id: Annotated[str, typer.Argument(help="The dead job to give up on.")],
        reason: Annotated[
            str,
            typer.Option(
                "--reason", help="Why (required; kept in the audit trail: IDs, no names)."
            ),
        ],
        config: ConfigOption = None,
    ) -> None:
        """Give up on a dead letter: its payload is deleted, the row and the reason stay."""
        from ..operators import command_line_account

        settings = load_settings(config)
        why = _reason(reason, required=True)
        assert why is not None
        account = command_line_account()
        if not _act(settings, lambda s: s.jobs.discard(job_id, account=account, reason=why)):
            typer.echo(f"no dead job {job_id}", err=True)
            raise typer.Exit(1)
        typer.echo(f"job {job_id} discarded")

    cursor = typer.Typer(
        help="The polling flows' cursors (where the next poll reads Primero from).",
        no_args_is_help=True,
    )
    app.add_typer(cursor, name="cursor")

    @cursor.command("show")
    def cursor_show(config: ConfigOption = None) -> None:
        """Each polling flow's cursor, last finished poll and next poll."""
        from .. import flows

        settings = load_settings(config)
        triggers = flows.poll_triggers(settings)

        async def view(store: Store) -> list[dict[str, Any]]:
            return [
                {
                    "flow": status.flow,
                    "cursor": status.cursor,
                    "cursor_updated_at": status.cursor_updated_at,
                    "last_finished_at": status.last_finished_at,
                    "running": status.running,
                    "next_poll_at": status.next_poll_at,
                    "start_point": status.startable,
                }
                for status in await store.polls.status(
                    triggers, start_points=flows.start_points(settings)
                )
            ]

        print_rows(with_store(settings, view))

    @cursor.command("set")
    def cursor_set(
        flow: Annotated[str, typer.Argument(help="primero-decision or primero-referral")],
        to: Annotated[
            str | None,
            typer.Option(
                "--to", metavar="DATE-TIME", help="ISO 8601, e.g. 2026-11-30T08:00:00Z (UTC)."
            ),
        ] = None,
        from_beginning: Annotated[
            bool,
            typer.Option("--from-beginning", help="Read every case Primero holds, on purpose."),
        ] = False,
        config: ConfigOption = None,
    ) -> None:
        """Set FLOW's start point: its next poll reads Primero from there."""
        from ..operators import command_line_account
        from ..store import BEGINNING, parse_moment

        chosen = _polling(flow)
        if (to is None) == (not from_beginning):
            typer.echo("error: give --to DATE-TIME or --from-beginning", err=True)
            raise typer.Exit(2)
        settings = load_settings(config)
        account = command_line_account()

        async def move(store: Store) -> str:
            await store.upgrade()
            moment = BEGINNING if to is None else parse_moment(to)
            return await store.polls.set_start(chosen, moment, account=account)

        value = _act(settings, move)
        typer.echo(f"{chosen}: cursor set to {value}")

    @cursor.command("rewind")
    def cursor_rewind(
        flow: Annotated[str, typer.Argument(help="primero-decision or primero-referral")],
        to: Annotated[
            str,
            typer.Option("--to", metavar="DATE-TIME", help="ISO 8601, before the cursor (UTC)."),
        ],
        reason: Annotated[
            str | None, typer.Option("--reason", help="Kept in the audit trail.")
        ] = None,
        config: ConfigOption = None,
    ) -> None:
        """Move FLOW's cursor back: the next poll re-reads that window, and the ledger drops
        what was already sent (nothing goes twice)."""
        from ..operators import command_line_account
        from ..store import parse_moment

        chosen = _polling(flow)
        settings = load_settings(config)
        note = _reason(reason)
        account = command_line_account()

        async def move(store: Store) -> str:
            moment = parse_moment(to)
            return await store.polls.rewind(chosen, moment, account=account, reason=note)

        value = _act(settings, move)
        typer.echo(f"{chosen}: cursor rewound to {value}")
