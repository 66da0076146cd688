"""The alert conditions with a clock of their own: thresholds, the repeat window, recovery, the
once-a-day certificate notice, the grouping of dead letters (``alerts.conditions``, pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from primero_progres.alerts.conditions import Rules, dead_letter_cursor, evaluate
from primero_progres.alerts.monitoring import Monitoring
from primero_progres.store import AlertNotice, AlertState, AuditEntry, Flow, PeerStatus, WaitingJobs

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
RULES = Rules(public_url="https://bridge.example.org")


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


class Checks:
    """Successive checks, each keeping the states the previous one saved."""

    def __init__(self, rules: Rules = RULES) -> None:
        self.rules = rules
        self.states: dict[str, AlertState] = {}

    def run(
        self, now: datetime, dead: Sequence[AuditEntry] = (), **seen: Any
    ) -> list[AlertNotice]:
        state = Monitoring(
            now=now,
            peers=seen.get("peers", []),
            waiting=seen.get("waiting", {}),
            poll_intervals=seen.get("poll_intervals", {}),
            last_polls=seen.get("last_polls", {}),
            certificate_expires=seen.get("certificate_expires"),
        )
        decision = evaluate(state, dead, self.states, self.rules)
        self.states = {**self.states, **{s.key: s for s in decision.states}}
        return decision.notices


def titles(notices: Sequence[AlertNotice]) -> list[str]:
    return [n.title.removeprefix("[primero-progres] ") for n in notices]


def failing(peer: str, since: datetime, failure: str = "timeout") -> PeerStatus:
    return PeerStatus(
        peer,
        last_success_at=since - timedelta(minutes=1),
        last_failure_at=since,
        last_failure_kind=failure,
        consecutive_failures=1,
        failing_since=since,
        updated_at=since,
    )


def working(peer: str, at: datetime) -> PeerStatus:
    return PeerStatus(peer, last_success_at=at, updated_at=at)


def test_a_peer_is_down_after_the_threshold_reminded_each_window_and_recovers_once() -> None:
    checks = Checks()
    assert checks.run(minutes(9.9), peers=[failing("dtp", T0)]) == []
    [down] = checks.run(minutes(10), peers=[failing("dtp", T0)])
    assert down.title == "[primero-progres] dtp is down: every call has failed for 10 min"
    assert (down.key, down.event, down.severity) == ("peer_down:dtp", "peer_down", "failure")
    assert "Last failure: timeout at 2026-03-01 08:00 UTC" in down.body
    assert "Console: https://bridge.example.org/admin/#peers\n" in down.body
    assert "Runbook: docs/alerts.md#peer-down" in down.body

    assert checks.run(minutes(69), peers=[failing("dtp", T0)]) == []
    assert titles(checks.run(minutes(70), peers=[failing("dtp", T0)])) == [
        "dtp is down: every call has failed for 70 min (still)"
    ]
    [recovered] = checks.run(minutes(71), peers=[working("dtp", minutes(71))])
    assert (recovered.title, recovered.event, recovered.severity) == (
        "[primero-progres] recovered: dtp answers again",
        "recovered",
        "success",
    )
    assert "The condition held from 2026-03-01 08:10 UTC to 2026-03-01 09:11 UTC." in (
        recovered.body
    )
    assert checks.run(minutes(72), peers=[working("dtp", minutes(71))]) == []


def test_refused_credentials_permissions_or_certificate_are_announced_at_once() -> None:
    expected = {
        "unauthorized": "primero refuses the bridge's credentials (HTTP 401)",
        "forbidden": "primero refuses the bridge's permissions (HTTP 403)",
        "tls": "primero fails the TLS handshake (certificate refused or untrusted)",
    }
    for failure, title in expected.items():
        checks = Checks()
        assert titles(checks.run(T0, peers=[failing("primero", T0, failure)])) == [title]
    # PING's identity provider refuses a password with a 400: the title names the reason
    token = replace(failing("ping", T0, "unauthorized"), last_failure_reason="token_refused")
    assert titles(Checks().run(T0, peers=[token])) == [
        "ping refuses the bridge's credentials (token_refused)"
    ]


def test_a_flapping_peer_is_announced_once_per_window() -> None:
    checks = Checks()
    assert titles(checks.run(minutes(10), peers=[failing("dtp", T0)])) == [
        "dtp is down: every call has failed for 10 min"
    ]
    assert titles(checks.run(minutes(11), peers=[working("dtp", minutes(11))])) == [
        "recovered: dtp answers again"
    ]
    again = failing("dtp", minutes(12))
    assert checks.run(minutes(25), peers=[again]) == [], "down again within the window"
    assert checks.run(minutes(69), peers=[again]) == []
    assert titles(checks.run(minutes(70), peers=[again])) == [
        "dtp is down: every call has failed for 58 min"
    ]


def test_a_stale_ping_queue_poll_says_what_it_holds_up() -> None:
    checks = Checks()
    intervals = {Flow.PROGRES_REFERRAL: 600.0, Flow.PROGRES_DECISION: 600.0}
    assert checks.run(T0, poll_intervals=intervals) == []
    referral, decision = checks.run(minutes(31), poll_intervals=intervals)
    assert referral.title.endswith("progres-referral has completed no poll for 31 min")
    assert "Interventions queued in PING are not brought to Primero meanwhile." in referral.body
    assert decision.title.endswith("progres-decision has completed no poll for 31 min")
    assert "Decisions queued in PING are not brought to Primero meanwhile." in decision.body


def test_a_poll_is_stale_after_three_intervals_without_one_completing() -> None:
    checks = Checks()
    intervals = {Flow.PRIMERO_DECISION: 600.0}
    # never polled: counted from the first check that saw the flow
    assert checks.run(T0, poll_intervals=intervals) == []
    assert checks.run(minutes(30), poll_intervals=intervals) == []
    [stale] = checks.run(minutes(31), poll_intervals=intervals)
    assert stale.title == "[primero-progres] primero-decision has completed no poll for 31 min"
    assert "Last completed poll: never" in stale.body
    assert "Decisions made in Primero are not sent to UNHCR meanwhile." in stale.body
    assert "Console: https://bridge.example.org/admin/polls" in stale.body

    polled = {Flow.PRIMERO_DECISION: minutes(40)}
    assert titles(checks.run(minutes(41), poll_intervals=intervals, last_polls=polled)) == [
        "recovered: primero-decision polls again"
    ]
    assert checks.run(minutes(70), poll_intervals=intervals, last_polls=polled) == []
    # stale again, but within an hour of the first notice: it waits for the window
    assert checks.run(minutes(71), poll_intervals=intervals, last_polls=polled) == []
    assert titles(checks.run(minutes(91), poll_intervals=intervals, last_polls=polled)) == [
        "primero-decision has completed no poll for 51 min"
    ]


def test_a_backlog_is_the_oldest_unfinished_job_waiting_too_long() -> None:
    checks = Checks()
    waiting = {Flow.PROGRES_REFERRAL: WaitingJobs(4, T0)}
    assert checks.run(minutes(30), waiting=waiting) == []
    [backlog] = checks.run(minutes(31), waiting=waiting)
    assert backlog.title == (
        "[primero-progres] backlog in progres-referral: the oldest job has waited 31 min"
    )
    assert backlog.severity == "warning"
    assert "Unfinished jobs: 4" in backlog.body
    assert titles(checks.run(minutes(32))) == [
        "recovered: progres-referral has no job waiting over 30 min"
    ]


def test_the_certificate_expiring_is_announced_once_a_day_and_stops_once_renewed() -> None:
    checks = Checks()
    expires = T0 + timedelta(days=40)
    assert checks.run(T0, certificate_expires=expires) == []
    [first] = checks.run(T0 + timedelta(days=11), certificate_expires=expires)
    assert first.title == "[primero-progres] the DTP client certificate expires on 2026-04-10"
    assert "(29 days left)" in first.body and first.severity == "warning"
    assert checks.run(T0 + timedelta(days=11, hours=23), certificate_expires=expires) == []
    assert len(checks.run(T0 + timedelta(days=12), certificate_expires=expires)) == 1
    [expired] = checks.run(T0 + timedelta(days=41), certificate_expires=expires)
    assert expired.title == "[primero-progres] the DTP client certificate expired on 2026-04-10"
    assert expired.severity == "failure"
    renewed = T0 + timedelta(days=400)
    assert checks.run(T0 + timedelta(days=42), certificate_expires=renewed) == []
    assert checks.states["certificate_expiry:dtp"].active is False


def dead(entry_id: int, seconds: float, reason: str = "http_403", **ids: Any) -> AuditEntry:
    job_id = f"job-{entry_id:03d}"
    return AuditEntry(
        entry_id,
        T0 + timedelta(seconds=seconds),
        "job.dead",
        "progres-referral",
        {"job_id": job_id, "kind": "progres-referral.deliver", "reason": reason, **ids},
    )


def test_dead_letters_are_grouped_by_flow_and_reason_after_a_short_wait() -> None:
    checks = Checks()
    burst = [
        dead(1, 0, progres_interventionnumber="DEMO-1"),
        dead(2, 1, progres_interventionnumber="DEMO-2"),
        dead(3, 2, reason="http_400", case_id="CASE-9"),
    ]
    assert checks.run(T0 + timedelta(seconds=4), burst) == [], "the burst may not be complete"
    assert dead_letter_cursor(checks.states) == 3
    notices = checks.run(T0 + timedelta(seconds=7))
    assert titles(notices) == [
        "1 new dead letter(s) in progres-referral: http_400",
        "2 new dead letter(s) in progres-referral: http_403",
    ]
    body = notices[1].body
    assert "- job job-001 (progres-referral.deliver), progres_interventionnumber DEMO-1: " in body
    assert "https://bridge.example.org/admin/trace?q=DEMO-2" in body
    assert (
        "Console: https://bridge.example.org/admin/dead-letters?flow=progres-referral"
        "&reason=http_403"
    ) in body
    assert "q=CASE-9" in notices[0].body
    assert checks.run(T0 + timedelta(seconds=60)) == []


def test_dead_letters_within_the_window_are_counted_and_announced_after_it() -> None:
    checks = Checks()
    assert len(checks.run(T0 + timedelta(seconds=10), [dead(1, 0)])) == 1
    later = [dead(n, 60 + n) for n in range(2, 16)]
    assert checks.run(minutes(5), later) == []
    assert checks.run(minutes(59)) == []
    [notice] = checks.run(minutes(60.2))
    assert notice.title == "[primero-progres] 14 new dead letter(s) in progres-referral: http_403"
    assert "14 job(s) of flow progres-referral became dead letters" in notice.body
    assert notice.body.count("\n- job ") == 10
    assert "- and 4 more" in notice.body
    assert checks.states["dead_letters:progres-referral:http_403"].data == {}


def test_only_id_shaped_values_are_quoted_and_links_need_a_public_url() -> None:
    checks = Checks(Rules())
    odd = dead(1, 0, progres_interventionnumber="Amani Example 2015-03-01", case_id="CASE-7")
    [notice] = checks.run(T0 + timedelta(seconds=10), [odd])
    assert "Amani" not in notice.body
    assert "case_id CASE-7" in notice.body
    assert "http" not in notice.body.replace("http_403", "")
