"""``primero-progres alert test`` against real receivers, and the alert settings."""

from __future__ import annotations

import pytest

from alert_receivers import SmtpReceiver, WebhookReceiver
from cli_helpers import run
from primero_progres.errors import ConfigurationError
from primero_progres.settings import Settings

SECRET = "S3CRET-WEBHOOK-TOKEN"


def _urls(monkeypatch: pytest.MonkeyPatch, *urls: str) -> None:
    monkeypatch.setenv("PRIMERO_PROGRES_ALERT_URLS", ",".join(urls))


def test_alert_test_sends_to_every_url_and_names_those_that_failed(
    monkeypatch: pytest.MonkeyPatch,
    smtp: SmtpReceiver,
    webhook: WebhookReceiver,
    refused_url: str,
) -> None:
    refused = refused_url.replace("http://", f"json://alerts:{SECRET}@") + "/alerts"
    _urls(monkeypatch, smtp.url, webhook.url, refused)
    monkeypatch.setenv("PRIMERO_PROGRES_PUBLIC_URL", "https://bridge.example.org/")
    code, _, out = run("alert", "test")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("sent   #1 mailto://")
    assert lines[1].startswith("sent   #2 json://")
    assert lines[2].startswith("FAILED #3 json://alerts:")
    assert lines[3] == "2 sent, 1 failed"
    assert SECRET not in out
    [mail] = smtp.about("test notification")
    [post] = webhook.about("test notification")
    assert mail.subject == post.title == "[primero-progres] test notification"
    assert "Console: https://bridge.example.org/admin/" in mail.body
    assert post.notice["type"] == "info"


def test_alert_test_exits_0_when_every_url_worked(
    monkeypatch: pytest.MonkeyPatch, webhook: WebhookReceiver
) -> None:
    _urls(monkeypatch, webhook.url)
    code, _, out = run("alert", "test")
    assert (code, out.splitlines()[-1]) == (0, "1 sent, 0 failed")


def test_alert_test_without_urls_or_with_an_unusable_one_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PRIMERO_PROGRES_ALERT_URLS", raising=False)
    code, _, _ = run("alert", "test")
    assert code == 2
    _urls(monkeypatch, f"nosuchservice://{SECRET}@example.org")
    code, _, out = run("alert", "test")
    assert code == 2
    assert SECRET not in out + capsys.readouterr().err


def test_alert_urls_split_only_before_a_scheme_and_stay_secret() -> None:
    settings = Settings.for_tests(
        alert_urls=(
            f"mailtos://bridge:{SECRET}@smtp.example.org?to=a@example.org,b@example.org, "
            "json://hooks.example.org/alerts ,msteams://team/a/b/c"
        ),
        public_url="https://bridge.example.org/",
    )
    assert settings.alert_url_values() == [
        f"mailtos://bridge:{SECRET}@smtp.example.org?to=a@example.org,b@example.org",
        "json://hooks.example.org/alerts",
        "msteams://team/a/b/c",
    ]
    assert settings.public_url == "https://bridge.example.org"
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())


def test_an_unusable_alert_url_is_refused_by_position_without_its_text() -> None:
    from primero_progres.alerts.notify import targets

    settings = Settings.for_tests(alert_urls=f"json://ok.example.org, bogus://{SECRET}@host")
    with pytest.raises(ConfigurationError) as caught:
        targets(settings)
    assert "URL #2 (bogus://)" in caught.value.message
    assert SECRET not in caught.value.message
    with pytest.raises(ConfigurationError) as bad_url:
        Settings.for_tests(public_url="bridge.example.org")
    assert "PRIMERO_PROGRES_PUBLIC_URL" in bad_url.value.message
