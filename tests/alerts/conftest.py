"""Real alert receivers for the alerting tests (tests/alert_receivers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from alert_receivers import SmtpReceiver, WebhookReceiver


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()
