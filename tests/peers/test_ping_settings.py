"""PING settings: the gateway switch, every id as configuration, secrets from files, errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ping_helpers import CLIENT_ID, KEY, PASSWORD, USER, running_ping_sim
from primero_progres.errors import ConfigurationError
from primero_progres.peers.ping import client_from_settings
from primero_progres.settings import PING_REQUIRED, Settings, env_name
from primero_progres.sim.ping import DEFAULT_SCOPE, DEFAULT_TOKEN_PATH
from primero_progres.sim.ping_state import Seed, synthetic_interventions
from primero_progres.store import generate_key

ENCRYPTION_KEY = generate_key()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PRIMERO_PROGRES_"):
            monkeypatch.delenv(name)


def ping_environment(url: str) -> dict[str, str]:
    return {
        "PRIMERO_PROGRES_UNHCR_GATEWAY": "ping",
        "PRIMERO_PROGRES_PING_URL": url,
        "PRIMERO_PROGRES_PING_TOKEN_URL": url,
        "PRIMERO_PROGRES_PING_TOKEN_PATH": DEFAULT_TOKEN_PATH,
        "PRIMERO_PROGRES_PING_CLIENT_ID": CLIENT_ID,
        "PRIMERO_PROGRES_PING_USERNAME": USER,
        "PRIMERO_PROGRES_PING_SCOPE": DEFAULT_SCOPE,
        "PRIMERO_PROGRES_PING_PARTNER_ID": "PNR-7",
        "PRIMERO_PROGRES_PING_INTEROP_ID": "INT-7",
        "PRIMERO_PROGRES_PING_SHP_REFERRALS_PENDING": "SHP-11",
        "PRIMERO_PROGRES_PING_SHP_REFERRAL_DETAIL": "SHP-12",
        "PRIMERO_PROGRES_PING_SHP_INTERVENTION_UPDATE": "SHP-13",
        "PRIMERO_PROGRES_PING_SHP_REFERRAL_CREATE": "SHP-14",
        "PRIMERO_PROGRES_PING_SHP_DECISIONS_LIST": "SHP-15",
        "PRIMERO_PROGRES_PING_SHP_DECISION_DETAIL": "SHP-16",
        "PRIMERO_PROGRES_PING_SHP_REFERRAL_UPDATE": "SHP-17",
    }


def test_the_gateway_is_dtp_unless_set() -> None:
    assert Settings.load(encryption_key=ENCRYPTION_KEY).unhcr_gateway == "dtp"
    assert Settings.load(encryption_key=ENCRYPTION_KEY, unhcr_gateway="ping").unhcr_gateway == (
        "ping")


def test_an_unknown_gateway_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIMERO_PROGRES_UNHCR_GATEWAY", "pong")
    with pytest.raises(ConfigurationError, match="PRIMERO_PROGRES_UNHCR_GATEWAY"):
        Settings.load(encryption_key=ENCRYPTION_KEY)


def test_require_ping_names_every_missing_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIMERO_PROGRES_PING_URL", "https://apim.example.org")
    monkeypatch.setenv("PRIMERO_PROGRES_PING_PASSWORD", "  ")
    settings = Settings.load(encryption_key=ENCRYPTION_KEY, unhcr_gateway="ping")
    with pytest.raises(ConfigurationError) as caught:
        settings.require_ping()
    message = str(caught.value)
    assert "PRIMERO_PROGRES_PING_URL" not in message
    missing = [env_name(name) for name in PING_REQUIRED if name != "ping_url"]
    assert message == f"PRIMERO_PROGRES_UNHCR_GATEWAY=ping needs: {', '.join(missing)}"
    with pytest.raises(ConfigurationError):
        client_from_settings(settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PRIMERO_PROGRES_PING_PARTNER_ID", "PNR 1363"),
        ("PRIMERO_PROGRES_PING_PARTNER_ID", "PNR/1363"),
        ("PRIMERO_PROGRES_PING_SHP_REFERRAL_DETAIL", "SHP-2358?x=1"),
        ("PRIMERO_PROGRES_PING_INTEROP_ID", ""),
        ("PRIMERO_PROGRES_PING_TOKEN_PATH", "tenant/policy/oauth2/v2.0/token"),
        ("PRIMERO_PROGRES_PING_URL", "apim.example.org"),
        ("PRIMERO_PROGRES_PING_TIMEOUT_SECONDS", "-3"),
    ],
)
def test_invalid_values_name_their_variable_not_the_value(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as caught:
        Settings.load(encryption_key=ENCRYPTION_KEY)
    assert name in str(caught.value)
    if value:
        assert value not in str(caught.value)


def test_secrets_come_from_files_and_stay_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for setting, content in (("PASSWORD", "file-password"), ("SUBSCRIPTION_KEY", "file-key"),
                             ("CLIENT_ID", "file-client")):
        path = tmp_path / setting.lower()
        path.write_text(content + "\n")
        monkeypatch.setenv(f"PRIMERO_PROGRES_PING_{setting}_FILE", str(path))
    settings = Settings.load(encryption_key=ENCRYPTION_KEY)
    assert settings.ping_password is not None
    assert settings.ping_password.get_secret_value() == "file-password"
    assert settings.ping_subscription_key is not None
    assert settings.ping_subscription_key.get_secret_value() == "file-key"
    assert "file-password" not in repr(settings) and "file-key" not in repr(settings)


async def test_the_configured_client_reaches_the_configured_deployment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    shipping = {"referrals_pending": "SHP-11", "referral_detail": "SHP-12",
                "intervention_update": "SHP-13", "referral_create": "SHP-14",
                "decisions_list": "SHP-15", "decision_detail": "SHP-16",
                "referral_update": "SHP-17"}
    with running_ping_sim(partner_id="PNR-7", interop_id="INT-7",
                          shipping_processes=shipping) as sim:
        sim.seed(Seed(interventions=synthetic_interventions(2)))
        for name, value in ping_environment(sim.url).items():
            monkeypatch.setenv(name, value)
        (tmp_path / "password").write_text(PASSWORD)
        monkeypatch.setenv("PRIMERO_PROGRES_PING_PASSWORD_FILE", str(tmp_path / "password"))
        monkeypatch.setenv("PRIMERO_PROGRES_PING_SUBSCRIPTION_KEY", KEY)
        monkeypatch.setenv("PRIMERO_PROGRES_PING_TOKEN_GEO", "")
        settings = Settings.load(encryption_key=ENCRYPTION_KEY)
        async with client_from_settings(settings) as client:
            rows = [row async for row in client.iter_pending_referrals()]
            assert client.shipping_processes.referral_update == "SHP-17"
    assert len(rows) == 2
    assert [q["shipping_process_id"] for q in sim.state.queries] == ["SHP-11"]
    assert sim.state.token_geos == [None]
