"""Which alerts are due: the conditions, the repeat window, and the texts (pure, no I/O).

``evaluate`` takes what monitoring read, the new dead letters and the alert states kept in the
database, and returns the states to save and the notices to send. Every text is built from
flow names, peer names, reason codes, counts, times and allow-listed IDs only: never a value
from a payload, so an alert cannot carry personal data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from ..peers.errors import REFUSALS, CallFailure
from ..store import AlertNotice, AlertState, AuditEntry, Flow, PeerStatus
from ..store.schema import ID_COLUMNS
from .monitoring import Monitoring, code

PRODUCT = "primero-progres"
#: how early the DTP client certificate's expiry is announced, and how often
CERTIFICATE_WARNING = timedelta(days=30)
CERTIFICATE_REPEAT = timedelta(days=1)
#: a poll is stale after this many intervals without one completing
STALE_INTERVALS = 3
#: what a stale poll holds up (flows 1 and 4 poll only over PING, where proGres queues them)
_STALE_MEANS = {
    Flow.PRIMERO_DECISION: "Decisions made in Primero are not sent to UNHCR meanwhile.",
    Flow.PRIMERO_REFERRAL: "Referrals made in Primero are not sent to UNHCR meanwhile.",
    Flow.PROGRES_REFERRAL: "Interventions queued in PING are not brought to Primero meanwhile.",
    Flow.PROGRES_DECISION: "Decisions queued in PING are not brought to Primero meanwhile.",
}
#: IDs listed in one dead-letter notice
MAX_IDS = 10
#: the state row holding the dead-letter reader's place in the audit trail
DEAD_LETTER_CURSOR = "dead_letters"
RUNBOOK = "docs/alerts.md"

#: the business IDs a dead letter is known by, most telling first (then the job id)
_ID_NAMES = ("progres_interventionnumber", "org_referral_id", "case_id", *ID_COLUMNS, "message_id")
#: what an ID may look like to be quoted (anything else is left out)
_ID_SHAPE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._:#/@+-]{0,127}\Z")


class AlertEvent(StrEnum):
    DEAD_LETTERS = "dead_letters"
    PEER_DOWN = "peer_down"
    POLL_STALE = "poll_stale"
    BACKLOG = "backlog"
    CERTIFICATE_EXPIRY = "certificate_expiry"
    RECOVERED = "recovered"
    TEST = "test"


class Severity(StrEnum):
    """The notification types apprise knows (their values are apprise's)."""

    FAILURE = "failure"
    WARNING = "warning"
    SUCCESS = "success"
    INFO = "info"


@dataclass(frozen=True)
class Rules:
    """The thresholds of the conditions, from the settings."""

    repeat: timedelta = timedelta(minutes=60)
    peer_down: timedelta = timedelta(minutes=10)
    backlog: timedelta = timedelta(minutes=30)
    #: a group of dead letters is announced once its first is this old, so that a burst (one
    #: message's interventions failing together) is one notice; longer than the reader's delay
    #: (``service.SETTLE``), so the burst has been read by then
    dead_letter_wait: timedelta = timedelta(seconds=5)
    #: the base URL of the operator console's links; None: notices carry no links
    public_url: str | None = None


@dataclass
class Decision:
    """What one check decided: states to save, notices to send."""

    states: list[AlertState] = field(default_factory=list)
    notices: list[AlertNotice] = field(default_factory=list)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "never"


def _minutes(span: timedelta) -> int:
    return max(int(span.total_seconds() // 60), 0)


class _Check:
    def __init__(self, states: Mapping[str, AlertState], rules: Rules, now: datetime) -> None:
        self.states = states
        self.rules = rules
        self.now = now
        self.changed: dict[str, AlertState] = {}
        self.notices: list[AlertNotice] = []

    def state(self, key: str, event: AlertEvent) -> AlertState:
        return self.changed.get(key) or self.states.get(key) or AlertState(key, event.value)

    def save(self, state: AlertState) -> None:
        if state != (self.states.get(state.key) or AlertState(state.key, state.event)):
            self.changed[state.key] = state
        else:
            self.changed.pop(state.key, None)

    def all_states(self) -> dict[str, AlertState]:
        return {**self.states, **self.changed}

    def may_notify(self, state: AlertState, repeat: timedelta | None = None) -> bool:
        window = repeat if repeat is not None else self.rules.repeat
        return state.notified_at is None or self.now - state.notified_at >= window

    def link(self, path: str, **params: str) -> str | None:
        if self.rules.public_url is None:
            return None
        query = f"?{urlencode(params)}" if params else ""
        return f"{self.rules.public_url}{path}{query}"

    def links_line(self, path: str, **params: str) -> list[str]:
        link = self.link(path, **params)
        return [f"Console: {link}"] if link else []

    def notice(
        self, key: str, event: AlertEvent, severity: Severity, title: str, lines: Iterable[str]
    ) -> None:
        self.notices.append(
            AlertNotice(key, event.value, severity.value, f"[{PRODUCT}] {title}", "\n".join(lines))
        )

    def condition(
        self,
        event: AlertEvent,
        subject: str,
        holds: bool,
        *,
        title: str,
        lines: Sequence[str],
        severity: Severity = Severity.FAILURE,
        recovered: str,
    ) -> None:
        """A condition that is announced, reminded every repeat window, and recovers."""
        key = f"{event.value}:{subject}"
        state = self.state(key, event)
        after = state
        if holds:
            after = replace(after, since=state.since or self.now)
            if self.may_notify(state):
                reminder = " (still)" if state.active else ""
                self.notice(key, event, severity, f"{title}{reminder}", lines)
                after = replace(after, active=True, notified_at=self.now)
        else:
            if state.active:
                self.notice(
                    key,
                    AlertEvent.RECOVERED,
                    Severity.SUCCESS,
                    f"recovered: {recovered}",
                    [
                        f"Recovered: {recovered}.",
                        f"The condition held from {_when(state.since)} to {_when(self.now)}.",
                        *self.links_line("/admin/"),
                    ],
                )
            after = replace(after, active=False, since=None)
        self.save(after)


def _runbook(anchor: str) -> str:
    return f"Runbook: {RUNBOOK}#{anchor}"


# ------------------------------------------------------------------------------ the conditions


def _peer(check: _Check, peer: PeerStatus) -> None:
    since = peer.failing_since
    failure = peer.last_failure_kind or "unknown"
    refused = failure in {f.value for f in REFUSALS}
    down_for = check.now - since if since is not None else timedelta(0)
    holds = since is not None and (refused or down_for >= check.rules.peer_down)
    name = code(peer.peer, limit=32)
    if refused:
        # a refusal said otherwise than with a 401 (PING's B2C: 400) is named by its reason
        reason = peer.last_failure_reason
        said = "HTTP 401" if reason in (None, "http_401") else code(reason)
        what = {
            CallFailure.UNAUTHORIZED.value: f"refuses the bridge's credentials ({said})",
            CallFailure.FORBIDDEN.value: "refuses the bridge's permissions (HTTP 403)",
            CallFailure.TLS.value: "fails the TLS handshake (certificate refused or untrusted)",
        }[failure]
        title = f"{name} {what}"
    else:
        title = f"{name} is down: every call has failed for {_minutes(down_for)} min"
    check.condition(
        AlertEvent.PEER_DOWN,
        name,
        holds,
        title=title,
        lines=[
            f"Peer: {name}",
            f"Last failure: {code(failure)} at {_when(peer.last_failure_at)}",
            f"Failing since: {_when(since)}",
            f"Last success: {_when(peer.last_success_at)}",
            "Work for this peer is retried with backoff and waits meanwhile; nothing is lost.",
            *check.links_line("/admin/#peers"),
            _runbook("peer-down"),
        ],
        recovered=f"{name} answers again",
    )


def _poll(check: _Check, flow: Flow, interval: float, last: datetime | None) -> None:
    state = check.state(f"{AlertEvent.POLL_STALE.value}:{flow.value}", AlertEvent.POLL_STALE)
    watching = state.data.get("watching_since")
    if watching is None:
        # a flow that never polled counts from the first check that saw it
        watching = check.now.isoformat()
        check.save(replace(state, data={"watching_since": watching}))
    reference = last or datetime.fromisoformat(watching)
    stale_after = timedelta(seconds=STALE_INTERVALS * interval)
    check.condition(
        AlertEvent.POLL_STALE,
        flow.value,
        check.now - reference > stale_after,
        title=f"{flow.value} has completed no poll for {_minutes(check.now - reference)} min",
        lines=[
            f"Flow: {flow.value}",
            f"Last completed poll: {_when(last)}",
            f"Poll interval: {int(interval)} s (stale after {STALE_INTERVALS} intervals)",
            _STALE_MEANS[flow],
            *check.links_line("/admin/polls"),
            _runbook("poll-stale"),
        ],
        recovered=f"{flow.value} polls again",
    )


def _backlog(check: _Check, monitoring: Monitoring, flow: Flow) -> None:
    waiting = monitoring.waiting.get(flow)
    age = check.now - waiting.oldest_created_at if waiting is not None else timedelta(0)
    check.condition(
        AlertEvent.BACKLOG,
        flow.value,
        waiting is not None and age > check.rules.backlog,
        title=f"backlog in {flow.value}: the oldest job has waited {_minutes(age)} min",
        lines=[
            f"Flow: {flow.value}",
            f"Unfinished jobs: {waiting.count if waiting else 0}",
            f"Oldest queued at: {_when(waiting.oldest_created_at if waiting else None)}",
            *check.links_line("/admin/"),
            _runbook("backlog"),
        ],
        severity=Severity.WARNING,
        recovered=f"{flow.value} has no job waiting over {_minutes(check.rules.backlog)} min",
    )


def _certificate(check: _Check, expires: datetime | None) -> None:
    key = f"{AlertEvent.CERTIFICATE_EXPIRY.value}:dtp"
    state = check.state(key, AlertEvent.CERTIFICATE_EXPIRY)
    if expires is None or expires - check.now >= CERTIFICATE_WARNING:
        check.save(replace(state, active=False, since=None))
        return
    if not check.may_notify(state, CERTIFICATE_REPEAT):
        return
    day = expires.strftime("%Y-%m-%d")
    left = (expires - check.now).days
    expired = expires <= check.now
    check.notice(
        key,
        AlertEvent.CERTIFICATE_EXPIRY,
        Severity.FAILURE if expired else Severity.WARNING,
        f"the DTP client certificate {'expired' if expired else 'expires'} on {day}",
        [
            f"The client certificate the bridge presents to DTP is valid until {_when(expires)}"
            + ("." if expired else f" ({left} days left)."),
            "Make a new one, send it to UNHCR to pin next to the current one, then switch.",
            *check.links_line("/admin/settings"),
            _runbook("certificate-expiry"),
        ],
    )
    check.save(replace(state, active=True, since=state.since or check.now, notified_at=check.now))


def _dead_letter_ids(entry: AuditEntry) -> dict[str, str]:
    ids = entry.ids
    found = {"job_id": str(ids.get("job_id", "")), "kind": code(ids.get("kind", ""))}
    for name in _ID_NAMES:
        value = ids.get(name)
        if isinstance(value, str) and _ID_SHAPE.match(value):
            found["id_name"], found["id"] = name, value
            break
    return found


def _dead_letters(check: _Check, entries: Sequence[AuditEntry]) -> None:
    for entry in entries:
        flow = code(entry.flow or "other", limit=32)
        reason = code(entry.ids.get("reason", "unknown"))
        group = check.state(
            f"{AlertEvent.DEAD_LETTERS.value}:{flow}:{reason}", AlertEvent.DEAD_LETTERS
        )
        listed = list(group.data.get("ids", []))
        if len(listed) < MAX_IDS:
            listed.append(_dead_letter_ids(entry))
        data = {
            "flow": flow,
            "reason": reason,
            "count": int(group.data.get("count", 0)) + 1,
            "ids": listed,
            "first_at": group.data.get("first_at") or entry.at.isoformat(),
            "last_at": entry.at.isoformat(),
        }
        check.save(replace(group, data=data))
    if entries:
        cursor = check.state(DEAD_LETTER_CURSOR, AlertEvent.DEAD_LETTERS)
        check.save(replace(cursor, data={"after_id": entries[-1].id}))
    for key, group in sorted(check.all_states().items()):
        if group.event != AlertEvent.DEAD_LETTERS.value or not group.data.get("count"):
            continue
        first = datetime.fromisoformat(group.data["first_at"])
        if check.now - first >= check.rules.dead_letter_wait and check.may_notify(group):
            _announce_dead_letters(check, key, group.data)
            check.save(replace(group, data={}, notified_at=check.now))


def _announce_dead_letters(check: _Check, key: str, data: Mapping[str, Any]) -> None:
    flow, reason, count = data["flow"], data["reason"], int(data["count"])
    listed: list[dict[str, str]] = list(data.get("ids", []))
    lines = [
        f"{count} job(s) of flow {flow} became dead letters with reason {reason}, "
        f"from {_when(datetime.fromisoformat(data['first_at']))} "
        f"to {_when(datetime.fromisoformat(data['last_at']))}.",
        "They will not be retried by themselves: fix the cause, then replay them.",
        "",
        f"IDs (up to {MAX_IDS}):",
    ]
    for item in listed:
        name, value = item.get("id_name"), item.get("id")
        business = f", {name} {value}" if name and value else ""
        trace = check.link("/admin/trace", q=value or item["job_id"])
        lines.append(
            f"- job {item['job_id']} ({item['kind']}){business}" + (f": {trace}" if trace else "")
        )
    if count > len(listed):
        lines.append(f"- and {count - len(listed)} more")
    lines += ["", *check.links_line("/admin/dead-letters", flow=flow, reason=reason)]
    lines.append(_runbook("dead-letters"))
    check.notice(
        key,
        AlertEvent.DEAD_LETTERS,
        Severity.FAILURE,
        f"{count} new dead letter(s) in {flow}: {reason}",
        lines,
    )


def dead_letter_cursor(states: Mapping[str, AlertState]) -> int:
    """Where the dead-letter reader stopped in the audit trail (0: from the start)."""
    cursor = states.get(DEAD_LETTER_CURSOR)
    return int(cursor.data.get("after_id", 0)) if cursor is not None else 0


def evaluate(
    monitoring: Monitoring,
    dead_letters: Sequence[AuditEntry],
    states: Mapping[str, AlertState],
    rules: Rules,
) -> Decision:
    """The notices due now and the alert states after them."""
    check = _Check(states, rules, monitoring.now)
    _dead_letters(check, dead_letters)
    for peer in monitoring.peers:
        _peer(check, peer)
    for flow, interval in monitoring.poll_intervals.items():
        _poll(check, flow, interval, monitoring.last_polls.get(flow))
    for flow in Flow:
        _backlog(check, monitoring, flow)
    _certificate(check, monitoring.certificate_expires)
    return Decision(list(check.changed.values()), check.notices)


def test_notice(public_url: str | None) -> AlertNotice:
    """What ``primero-progres alert test`` sends."""
    lines = ["A test notification from primero-progres: this alert target works."]
    if public_url:
        lines.append(f"Console: {public_url}/admin/")
    title = f"[{PRODUCT}] test notification"
    return AlertNotice("test", AlertEvent.TEST.value, Severity.INFO.value, title, "\n".join(lines))
