"""In-memory fakes of what a flow step talks to: the store's typed protocol and the two peers.

The store fake applies a step's typed commands the way ``store.jobs.commit_step`` does (in
order, job keys unique), so a test can run one step after another without a database.
The peers' fakes answer from dictionaries and record every call. The real store and
clients are covered by tests/store, tests/peers and the end-to-end tests.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from primero_progres.mapping.values import timestamp
from primero_progres.peers.primero import (
    CasePosition,
    CaseWindow,
    ForbiddenError,
    format_watermark,
)
from primero_progres.store import (
    AuditRecord,
    CursorMove,
    Enqueue,
    Exchange,
    Flow,
    Job,
    JobState,
    LeaseBusy,
    LedgerRecord,
    StepBuffer,
)
from primero_progres.store.schema import ID_COLUMNS

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def make_job(
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    refs: dict[str, Any] | None = None,
    message_id: str | None = None,
    key: str | None = None,
    job_id: str | None = None,
) -> Job:
    return Job(
        id=job_id or f"job-{kind}",
        kind=kind,
        key=key,
        state=JobState.RUNNING,
        attempts=1,
        next_attempt_at=NOW,
        lease_owner="fake/0",
        lease_expires_at=NOW,
        dead_reason=None,
        message_id=message_id,
        refs=dict(refs or {}),
        created_at=NOW,
        updated_at=NOW,
        has_payload=payload is not None,
        payload=payload,
    )


class FakeLedger:
    def __init__(self) -> None:
        self.exchanges: dict[tuple[str, str], Exchange] = {}
        #: (flow, key, event, detail) in the order they were recorded
        self.history: list[tuple[str, str, str, dict[str, Any]]] = []
        #: what ``cases_waiting_for_decision`` pages through (the real query: tests/store)
        self.waiting: list[str] = []
        self.waiting_calls: list[tuple[str | None, int]] = []

    async def get(self, flow: Flow, key: str) -> Exchange | None:
        return self.exchanges.get((str(flow), key))

    async def find(self, flow: Flow | None = None, **ids: Any) -> list[Exchange]:
        return [
            e
            for (f, _), e in self.exchanges.items()
            if (flow is None or f == str(flow))
            and all(getattr(e, name) == value for name, value in ids.items())
        ]

    async def cases_waiting_for_decision(
        self, statuses: Collection[str], *, after: str | None = None, limit: int
    ) -> list[str]:
        self.waiting_calls.append((after, limit))
        later = [i for i in sorted(self.waiting) if after is None or i > after]
        return later[:limit]

    def apply(self, record: LedgerRecord) -> None:
        flow = Flow(record.flow).value
        current = self.exchanges.get((flow, record.key))
        values: dict[str, Any] = {**record.ids, "state": str(record.state), "updated_at": NOW}
        if record.fingerprint is not None:
            values["content_fingerprint"] = record.fingerprint
        if current is None:
            empty = dict.fromkeys((*ID_COLUMNS, "content_fingerprint"))
            current = Exchange(
                id=f"x-{len(self.exchanges) + 1}",
                flow=flow,
                key=record.key,
                created_at=NOW,
                **{**empty, **values},
            )
        else:
            current = replace(current, **values)
        self.exchanges[(flow, record.key)] = current
        event = str(record.event or record.state)
        self.history.append((flow, record.key, event, dict(record.detail)))


class FakeCursors:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def get(self, flow: Flow) -> str | None:
        return self.values.get(str(flow))


class FakeMessages:
    def __init__(self) -> None:
        self.payloads: dict[str, dict[str, Any]] = {}

    async def payload(self, message_id: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.payloads.get(message_id))


class FakeJobs(list[Enqueue]):
    """The committed jobs, in order; every one counts as outstanding (nothing runs here)."""

    async def outstanding(self, kind: str, key_prefix: str) -> bool:
        return any(j.kind == kind and (j.key or "").startswith(key_prefix) for j in self)


class FakeStore:
    """``FlowStore`` in memory, plus what the committed steps wrote."""

    def __init__(self) -> None:
        self.ledger = FakeLedger()
        self.cursors = FakeCursors()
        self.messages = FakeMessages()
        self.jobs = FakeJobs()
        self.audit: list[AuditRecord] = []
        #: leases another worker holds: ``hold`` raises LeaseBusy for them
        self.busy: set[str] = set()
        self.held: list[str] = []
        #: the indexes of ``jobs`` a test has run already (``next_job``)
        self.ran: set[int] = set()

    async def fingerprint(self, obj: object) -> str:
        canonical = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(canonical).hexdigest()

    def context(self, job: Job) -> StepBuffer:
        async def hold(lease: str) -> None:
            if lease in self.busy:
                raise LeaseBusy("another worker holds the lease", reason="busy")
            self.held.append(lease)

        return StepBuffer(job, worker_id="fake/0", hold=hold)

    def commit(self, ctx: StepBuffer) -> None:
        """What ``store.jobs.commit_step`` does with the step's commands."""
        keys = {job.key for job in self.jobs if job.key is not None}
        for command in ctx.commands:
            if isinstance(command, Enqueue):
                if command.key is None or command.key not in keys:
                    self.jobs.append(command)
                    keys.add(command.key)
            elif isinstance(command, LedgerRecord):
                self.ledger.apply(command)
            elif isinstance(command, AuditRecord):
                self.audit.append(command)
            elif isinstance(command, CursorMove):
                self.cursors.values[Flow(command.flow).value] = command.value

    def next_job(self, kinds: Collection[str]) -> Job | None:
        """The oldest queued job of these kinds no test has run yet, as a worker claims it."""
        for index, command in enumerate(self.jobs):
            if index in self.ran or command.kind not in kinds:
                continue
            self.ran.add(index)
            return make_job(
                command.kind,
                dict(command.payload) if command.payload is not None else None,
                refs=dict(command.refs),
                message_id=command.message_id,
                key=command.key,
                job_id=f"job-{index + 1}",
            )
        return None

    def jobs_of(self, kind: str) -> list[Enqueue]:
        return [job for job in self.jobs if job.kind == kind]

    def audit_of(self, event: str) -> list[dict[str, Any]]:
        return [dict(entry.ids) for entry in self.audit if entry.event == event]


@dataclass
class FakePrimero:
    """``PrimeroApi`` over dictionaries; ``errors`` makes an operation raise."""

    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    referrals: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, Exception] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    #: drop these fields from write answers (a Primero that answers less than it wrote)
    answer_without: tuple[str, ...] = ()
    #: cases per ``case_window`` page
    window: int = 1000
    #: fields Primero drops from writes (``name`` or ``services_section.<name>``)
    not_writable: tuple[str, ...] = ()
    #: the API user's role scope (``own_user``); ``users_forbidden``: no users permission
    scope: str = "all"
    users_forbidden: bool = False

    def _call(self, operation: str, argument: Any) -> None:
        self.calls.append((operation, argument))
        if operation in self.errors:
            raise self.errors[operation]

    def calls_of(self, operation: str) -> list[Any]:
        return [argument for name, argument in self.calls if name == operation]

    async def iter_cases(
        self,
        *,
        filters: Mapping[str, str | Sequence[str]] | None = None,
        updated_since: datetime | None = None,
        ids: Sequence[str] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        self._call("iter_cases", {"filters": filters, "since": updated_since, "ids": ids})
        for case in list(self.cases.values()):
            if ids is not None and case["id"] not in ids:
                continue
            if filters and not all(_overlaps(case.get(k), v) for k, v in filters.items()):
                continue
            yield copy.deepcopy(case)

    async def case_window(
        self,
        position: CasePosition,
        *,
        filters: Mapping[str, str | Sequence[str]] | None = None,
        ids: Sequence[str] | None = None,
    ) -> CaseWindow:
        """``window`` cases at a time, oldest update first, from ``position`` (a simpler walk
        than the client's, with the same contract; the client's own: tests/peers)."""
        self._call("case_window", {"position": position, "filters": filters, "ids": ids})
        cases = sorted(
            (
                c
                for c in self.cases.values()
                if (ids is None or c["id"] in ids)
                and all(_overlaps(c.get(k), v) for k, v in (filters or {}).items())
            ),
            key=lambda c: (_second(c), c["id"]),
        )
        since, seen = position.since, set(position.seen)
        later = [
            c
            for c in cases
            if since is None or _second(c) > since or (_second(c) == since and c["id"] not in seen)
        ]
        page = later[: self.window]
        if len(later) <= self.window:
            return CaseWindow([copy.deepcopy(c) for c in page], None)
        last = _second(page[-1])
        at_last = {c["id"] for c in page if _second(c) == last}
        if last == since:
            at_last |= seen
        return CaseWindow(
            [copy.deepcopy(c) for c in page], CasePosition(last, tuple(sorted(at_last)))
        )

    async def find_cases(self, field: str, value: str) -> list[dict[str, Any]]:
        self._call("find_cases", (field, value))
        return [copy.deepcopy(c) for c in self.cases.values() if c.get(field) == value]

    async def get_case(self, record_id: str) -> dict[str, Any]:
        self._call("get_case", record_id)
        return copy.deepcopy(self.cases[record_id])

    def _permitted(self, data: dict[str, Any]) -> dict[str, Any]:
        """What Primero keeps of a write: fields off every writable form drop silently."""
        kept = {k: copy.deepcopy(v) for k, v in data.items() if k not in self.not_writable}
        rows = kept.get("services_section")
        if isinstance(rows, list):
            kept["services_section"] = [
                {k: v for k, v in row.items() if f"services_section.{k}" not in self.not_writable}
                for row in rows
            ]
        return kept

    async def create_case(self, data: dict[str, Any]) -> dict[str, Any]:
        self._call("create_case", data)
        data = self._permitted(data)
        number = len(self.cases) + 1
        case = {**copy.deepcopy(data), "id": f"rec-{number}", "case_id": f"case-{number}"}
        for index, row in enumerate(case.get("services_section") or []):
            row.setdefault("unique_id", f"svc-{number}-{index}")
        self.cases[case["id"]] = case
        return self._answer(case)

    async def patch_case(self, record_id: str, data: dict[str, Any]) -> dict[str, Any]:
        self._call("patch_case", (record_id, data))
        data = self._permitted(data)
        case = self.cases[record_id]
        rows = case.setdefault("services_section", [])
        for row in data.get("services_section") or []:
            same = [r for r in rows if r.get("unique_id") == row.get("unique_id")]
            if row.get("unique_id") and same:
                same[0].update(row)
            else:
                rows.append({"unique_id": f"svc-{record_id}-{len(rows)}", **row})
        case.update({k: v for k, v in data.items() if k != "services_section"})
        return self._answer({**copy.deepcopy(data), "id": record_id})

    def _answer(self, record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in copy.deepcopy(record).items() if k not in self.answer_without}

    async def list_referrals(self, record_id: str) -> list[dict[str, Any]]:
        self._call("list_referrals", record_id)
        return copy.deepcopy(self.referrals.get(record_id, []))

    async def update_referral(
        self,
        record_id: str,
        referral_id: str,
        *,
        status: str,
        rejected_reason: str | None = None,
    ) -> dict[str, Any]:
        self._call("update_referral", (record_id, referral_id, status, rejected_reason))
        [referral] = [r for r in self.referrals[record_id] if r["id"] == referral_id]
        referral["status"] = status
        return copy.deepcopy(referral)

    async def get_user(self, user_name: str) -> dict[str, Any] | None:
        self._call("get_user", user_name)
        if self.users_forbidden:
            raise ForbiddenError("primero", "get_user", "HTTP 403", status_code=403)
        return copy.deepcopy(self.users.get(user_name))

    async def own_user(self) -> dict[str, Any]:
        self._call("own_user", None)
        if self.users_forbidden:
            raise ForbiddenError("primero", "own_user", "HTTP 403", status_code=403)
        return {"user_name": "api", "role_group_permission": self.scope}

    async def aclose(self) -> None:
        return None


def _second(case: Mapping[str, Any]) -> str:
    stamp = timestamp(case.get("last_updated_at"))
    return format_watermark(stamp) if stamp else ""


def _overlaps(value: Any, wanted: str | Sequence[str]) -> bool:
    options = {wanted} if isinstance(wanted, str) else set(wanted)
    values = value if isinstance(value, list) else [value]
    return bool(options & set(values))


@dataclass(frozen=True)
class Receipt:
    request_id: str | None


@dataclass
class FakeGateway:
    """``ProgresGateway`` that keeps what it was sent; ``error`` makes every send raise."""

    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    error: Exception | None = None
    #: the ``Idempotency-Key`` of every send attempted, failed ones included, in order
    keys: list[str | None] = field(default_factory=list)

    async def send_referral(
        self, message: dict[str, Any], *, idempotency_key: str | None = None
    ) -> Receipt:
        return self._send("referral", message, idempotency_key)

    async def send_decision(
        self, message: dict[str, Any], *, idempotency_key: str | None = None
    ) -> Receipt:
        return self._send("decision", message, idempotency_key)

    def _send(self, endpoint: str, message: dict[str, Any], key: str | None) -> Receipt:
        self.keys.append(key)
        if self.error is not None:
            raise self.error
        self.sent.append((endpoint, copy.deepcopy(message)))
        return Receipt(f"req-{len(self.sent)}")

    async def aclose(self) -> None:
        return None
