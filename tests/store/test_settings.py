"""Settings: environment, TOML, secret files; errors name the variable, never the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from primero_progres.errors import ConfigurationError
from primero_progres.settings import DEFAULT_DATABASE_URL, Settings
from primero_progres.store import PayloadUnreadable, generate_key

KEY = generate_key()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("PRIMERO_PROGRES_"):
            monkeypatch.delenv(name)


def test_defaults_with_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIMERO_PROGRES_ENCRYPTION_KEY", KEY)
    settings = Settings.load()
    assert settings.database_url == DEFAULT_DATABASE_URL == "sqlite:///./primero-progres.db"
    assert settings.inbox_max_bytes == 1024 * 1024
    assert settings.dead_letter_retention_days == 30
    assert settings.primero_auth == "basic"
    assert settings.inbox_tokens == []


def test_missing_key_refuses_to_start() -> None:
    with pytest.raises(ConfigurationError, match="PRIMERO_PROGRES_ENCRYPTION_KEY is not set"):
        Settings.load()


def test_invalid_key_names_the_variable_not_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIMERO_PROGRES_ENCRYPTION_KEY", "c2VjcmV0LXNob3J0")
    with pytest.raises(ConfigurationError) as error:
        Settings.load()
    assert "PRIMERO_PROGRES_ENCRYPTION_KEY" in str(error.value)
    assert "c2VjcmV0LXNob3J0" not in str(error.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PRIMERO_PROGRES_PORT", "eighty"),
        ("PRIMERO_PROGRES_RETRY_MAX_ATTEMPTS", "0"),
        ("PRIMERO_PROGRES_POLL_INTERVAL_SECONDS", "-5"),
        ("PRIMERO_PROGRES_PRIMERO_URL", "primero.example.org"),
        ("PRIMERO_PROGRES_PRIMERO_AUTH", "kerberos"),
        ("PRIMERO_PROGRES_DATABASE_URL", "mysql://x/y"),
    ],
)
def test_invalid_values_name_their_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=name):
        Settings.load(encryption_key=KEY)


def test_environment_and_comma_separated_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIMERO_PROGRES_INBOX_TOKENS", "new-token, old-token")
    monkeypatch.setenv("PRIMERO_PROGRES_RETRY_BASE_SECONDS", "2.5")
    monkeypatch.setenv("PRIMERO_PROGRES_PRIMERO_URL", "https://primero.example.org/")
    settings = Settings.load(encryption_key=KEY)
    assert settings.inbox_token_values() == [b"new-token", b"old-token"]
    assert settings.retry_base_seconds == 2.5
    assert settings.primero_url == "https://primero.example.org"
    assert "new-token" not in repr(settings)


def test_toml_file_and_environment_precedence(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(
        'database_url = "postgresql+psycopg://bridge@db/bridge"\n'
        "poll_interval_seconds = 60\n"
        'dtp_url = "https://dtp.example.org"\n'
        "port = 9000\n"
    )
    monkeypatch.setenv("PRIMERO_PROGRES_PORT", "9100")
    monkeypatch.setenv("PRIMERO_PROGRES_CONFIG", str(config))
    settings = Settings.load(encryption_key=KEY)
    assert settings.database_url == "postgresql+psycopg://bridge@db/bridge"
    assert settings.poll_interval_seconds == 60
    assert settings.dtp_url == "https://dtp.example.org"
    assert settings.port == 9100, "the environment wins over the file"


def test_toml_unknown_key_and_bad_syntax(tmp_path: Path) -> None:
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('primero_pasword = "x"\n')
    with pytest.raises(ConfigurationError, match="primero_pasword"):
        Settings.load(unknown, encryption_key=KEY)
    broken = tmp_path / "broken.toml"
    broken.write_text("port = \n")
    with pytest.raises(ConfigurationError, match="PRIMERO_PROGRES_CONFIG"):
        Settings.load(broken, encryption_key=KEY)
    with pytest.raises(ConfigurationError, match="PRIMERO_PROGRES_CONFIG"):
        Settings.load(tmp_path / "missing.toml", encryption_key=KEY)


def test_secrets_from_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    monkeypatch.setenv("PRIMERO_PROGRES_ENCRYPTION_KEY_FILE", str(key_file))
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "primero_progres_primero_password").write_text("s3cret")
    monkeypatch.setenv("PRIMERO_PROGRES_SECRETS_DIR", str(secrets))
    settings = Settings.load()
    assert settings.cipher().current == "default"
    assert settings.primero_password is not None
    assert settings.primero_password.get_secret_value() == "s3cret"


def test_unreadable_secret_file_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PRIMERO_PROGRES_DTP_SUBSCRIPTION_KEY_FILE", str(tmp_path / "none"))
    with pytest.raises(ConfigurationError, match="PRIMERO_PROGRES_DTP_SUBSCRIPTION_KEY_FILE"):
        Settings.load(encryption_key=KEY)


def test_for_tests_makes_a_throwaway_key() -> None:
    one, two = Settings.for_tests(), Settings.for_tests()
    token = one.cipher().encrypt({}, context="jobs", row_id="r")
    with pytest.raises(PayloadUnreadable):
        two.cipher().decrypt(token, context="jobs", row_id="r")


def test_with_webhooks_flows_2_and_3_poll_at_the_webhook_interval() -> None:
    from primero_progres import flows
    from primero_progres.stack import ping_settings
    from primero_progres.store import Flow

    plain = Settings.for_tests(poll_interval_seconds=900)
    assert set(flows.poll_triggers(plain).values()) == {900}
    hooked = Settings.for_tests(poll_interval_seconds=900, webhooks=True)
    assert flows.poll_triggers(hooked) == {
        Flow.PRIMERO_DECISION: 3600,
        Flow.PRIMERO_REFERRAL: 3600,
    }
    over_ping = Settings.for_tests(
        **ping_settings("http://127.0.0.1:1"), webhooks=True, webhook_poll_interval_seconds=7200
    )
    assert flows.poll_triggers(over_ping) == {
        Flow.PROGRES_REFERRAL: 900,  # PING's queues: no webhook tells of them
        Flow.PRIMERO_DECISION: 7200,
        Flow.PRIMERO_REFERRAL: 7200,
        Flow.PROGRES_DECISION: 900,
    }


def test_webhook_tokens_are_secret_and_comma_separated() -> None:
    settings = Settings.for_tests(primero_webhook_tokens=" tok-a1, tok-b2 ,")
    assert settings.webhook_token_values() == [b"tok-a1", b"tok-b2"]
    assert "tok-a1" not in repr(settings)
