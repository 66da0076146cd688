"""Sending notices through apprise: e-mail, Microsoft Teams, Slack, JSON webhooks and the rest.

apprise is synchronous (smtplib, requests), so each send runs in a worker thread under an
overall timeout: a slow or unreachable target never holds up the event loop, and so never a
flow. A target is named in logs by its scheme and position in ``ALERT_URLS`` only: the URL
holds credentials, and apprise's own log lines (which quote hosts and addresses) are kept out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import cast

import apprise

from ..errors import ConfigurationError
from ..logging import get_logger
from ..settings import Settings, env_name
from ..store import AlertNotice

log = get_logger(__name__)
#: apprise logs recipients and server replies; our own lines say what happened
logging.getLogger("apprise").setLevel(logging.CRITICAL)

#: the longest one notice may take to one target (apprise's own timeouts are shorter)
SEND_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Target:
    """One configured alert URL."""

    #: keyed fingerprint of the URL (the outbox's name for it; reveals nothing)
    id: str
    #: 1-based position in ALERT_URLS, and the URL's scheme: how logs and commands name it
    position: int
    scheme: str
    #: the URL with its secrets masked by apprise, for the operator's eyes
    shown: str
    url: str = field(repr=False)

    @property
    def name(self) -> str:
        return f"{self.scheme}#{self.position}"


def targets(settings: Settings) -> list[Target]:
    """The configured alert URLs, named by their position (``named`` gives them the outbox's
    names); a URL apprise cannot use is a ``ConfigurationError`` naming its position and
    scheme, never its text."""
    found = []
    for position, url in enumerate(settings.alert_url_values(), start=1):
        scheme = url.partition("://")[0].lower() if "://" in url else "?"
        plugin = apprise.Apprise.instantiate(url)
        if plugin is None:
            raise ConfigurationError(
                f"{env_name('alert_urls')}: URL #{position} ({scheme}://) is not an apprise URL "
                "apprise can use (unknown scheme, or a part missing)",
                reason="invalid_alert_url",
            )
        # apprise's url() is untyped; it masks passwords and tokens with privacy=True
        shown = str(cast(Callable[..., object], plugin.url)(privacy=True))
        found.append(Target(str(position), position, scheme, shown, url))
    return found


async def named(
    found: Sequence[Target], fingerprint: Callable[[str], Awaitable[str]]
) -> list[Target]:
    """The targets with their outbox names: a keyed fingerprint of each URL (stable across
    processes and restarts, and revealing nothing of the URL)."""
    return [replace(target, id=(await fingerprint(target.url))[:16]) for target in found]


def _send(target: Target, notice: AlertNotice) -> bool:
    # a fresh plugin each time: apprise remembers delivered recipients per instance
    plugin = apprise.Apprise.instantiate(target.url)
    if plugin is None:
        return False
    return bool(
        plugin.notify(
            body=notice.body,
            title=notice.title,
            notify_type=apprise.NotifyType(notice.severity),
            body_format=apprise.NotifyFormat.TEXT,
        )
    )


async def send(
    target: Target, notice: AlertNotice, *, timeout: float = SEND_TIMEOUT_SECONDS
) -> bool:
    """Send ``notice`` to ``target``; False (logged) if it failed or took too long."""
    try:
        sent = await asyncio.wait_for(asyncio.to_thread(_send, target, notice), timeout)
    except TimeoutError:
        log.warning("alert.send_failed", target_id=target.name, error="timeout")
        return False
    except Exception as exc:
        log.warning("alert.send_failed", target_id=target.name, error=type(exc).__name__)
        return False
    if not sent:
        log.warning("alert.send_failed", target_id=target.name, error="refused")
    return sent


async def send_all(targets: Sequence[Target], notice: AlertNotice) -> dict[Target, bool]:
    """Send one notice to every target at once; which ones took it."""
    results = await asyncio.gather(*(send(target, notice) for target in targets))
    return dict(zip(targets, results, strict=True))
