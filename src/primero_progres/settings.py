"""Configuration: ``PRIMERO_PROGRES_*`` variables, a TOML file, and secrets from files.

Precedence, highest first: explicit arguments, environment variables,
``PRIMERO_PROGRES_<NAME>_FILE`` files, a secrets directory
(``PRIMERO_PROGRES_SECRETS_DIR``, one file per setting name), the TOML file
(``--config`` or ``PRIMERO_PROGRES_CONFIG``), defaults. Every problem is
reported as a ``ConfigurationError`` naming the variable, never its value.
"""

from __future__ import annotations

import os
import re
import tomllib
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from .errors import ConfigurationError
from .mapping.dtp import DECISION_REQUEST, REFERRAL_REQUEST
from .store.crypto import Cipher, generate_key

if TYPE_CHECKING:
    from cryptography import x509

PREFIX = "PRIMERO_PROGRES_"
DEFAULT_DATABASE_URL = "sqlite:///./primero-progres.db"
#: the credentials every deployment holds; the deploy examples pass each one as a file
SECRET_FIELDS = (
    "encryption_key",
    "inbox_tokens",
    "primero_password",
    "dtp_subscription_key",
    "database_url",
)
#: where Primero's webhooks reach the bridge (``web/webhook.py``), after ``PUBLIC_URL``
WEBHOOK_PATH = "/api/v1/primero/webhook"
_CONFIG_FILE: ContextVar[Path | None] = ContextVar("primero_progres_config_file", default=None)

#: partner, interop and shipping-process ids (PING.md §2, §6)
_PING_IDS = (
    "ping_partner_id",
    "ping_interop_id",
    "ping_shp_referrals_pending",
    "ping_shp_referral_detail",
    "ping_shp_intervention_update",
    "ping_shp_referral_create",
    "ping_shp_decisions_list",
    "ping_shp_decision_detail",
    "ping_shp_referral_update",
)
#: the PING settings every PING deployment must set (docs/ping.md explains each)
PING_REQUIRED = (
    "ping_url",
    "ping_token_url",
    "ping_token_path",
    "ping_client_id",
    "ping_username",
    "ping_password",
    "ping_scope",
    "ping_subscription_key",
    *_PING_IDS,
)
_ALERT_URL_START = re.compile(r"[\s,]+(?=[A-Za-z][A-Za-z0-9+.-]*://)")
#: what an id may hold: the partner id goes into a URL path
_ID_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


def env_name(field: str) -> str:
    return f"{PREFIX}{field.upper()}"


class _SecretFilesSource(PydanticBaseSettingsSource):
    """``PRIMERO_PROGRES_<NAME>_FILE=/run/secrets/x``: the setting is the file's content."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in self.settings_cls.model_fields:
            path = os.environ.get(f"{env_name(name)}_FILE")
            if not path:
                continue
            try:
                values[name] = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigurationError(
                    f"{env_name(name)}_FILE: cannot read the file ({type(exc).__name__})",
                    reason="unreadable_secret_file",
                ) from exc
        return values


class Settings(BaseSettings):
    """Everything the bridge needs to run; see docs/pipeline.md for each setting."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, extra="forbid", case_sensitive=False, validate_default=True
    )

    database_url: str = DEFAULT_DATABASE_URL
    encryption_key: SecretStr | None = None
    inbox_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    inbox_max_bytes: int = Field(default=1024 * 1024, gt=0)
    #: a message with more interventions is refused (413): DTP sends them in several messages
    inbox_max_interventions: int = Field(default=500, gt=0)

    primero_url: str | None = None
    primero_username: str | None = None
    primero_password: SecretStr | None = None
    primero_auth: Literal["basic", "token"] = "basic"
    primero_timeout_seconds: float = Field(default=30.0, gt=0)

    dtp_url: str | None = None
    dtp_subscription_key: SecretStr | None = None
    dtp_client_cert: Path | None = None
    dtp_client_key: Path | None = None
    dtp_ca: Path | None = None
    dtp_client_pkcs12: Path | None = None
    dtp_client_pkcs12_password: SecretStr | None = None
    #: DTP names its endpoints after the request types they take
    dtp_referral_path: str = REFERRAL_REQUEST
    dtp_decision_path: str = DECISION_REQUEST
    dtp_timeout_seconds: float = Field(default=30.0, gt=0)

    #: which UNHCR gateway speaks for proGres: the DTP gateway or the PING middleware
    unhcr_gateway: Literal["dtp", "ping"] = "dtp"

    ping_url: str | None = None
    ping_token_url: str | None = None
    ping_token_path: str | None = None
    ping_client_id: SecretStr | None = None
    ping_username: str | None = None
    ping_password: SecretStr | None = None
    ping_scope: str | None = None
    ping_subscription_key: SecretStr | None = None
    ping_partner_id: str | None = None
    ping_interop_id: str | None = None
    ping_shp_referrals_pending: str | None = None
    ping_shp_referral_detail: str | None = None
    ping_shp_intervention_update: str | None = None
    ping_shp_referral_create: str | None = None
    ping_shp_decisions_list: str | None = None
    ping_shp_decision_detail: str | None = None
    ping_shp_referral_update: str | None = None
    #: value of the ``x-ms-cpim-geo`` cookie sent to the token endpoint; empty: no cookie
    ping_token_geo: str = "EU"
    ping_timeout_seconds: float = Field(default=60.0, gt=0)
    #: a cached token is renewed this long before it expires
    ping_token_margin_seconds: float = Field(default=120.0, ge=0)
    #: flow 3: how long to wait before asking PING again whether an async ingestion is done
    #: (and before looking again for a referral whose post went unanswered)
    ping_status_check_seconds: float = Field(default=60.0, gt=0)

    profile: str = "gambella"
    poll_interval_seconds: float = Field(default=900.0, gt=0)
    #: each poll re-reads this far before its watermark (same-second writes, clock skew)
    poll_overlap_seconds: float = Field(default=60.0, ge=0)
    #: flow 2 reads every case updated since its cursor, not only those the ledger knows
    primero_decision_full_scan: bool = False
    #: where a polling flow with no cursor yet starts reading Primero (ISO 8601; no offset
    #: means UTC); unset, such a flow does not poll until a start point is given
    poll_start_at: datetime | None = None
    #: Primero posts each case create and update to the bridge (docs/primero-setup.md): flows
    #: 2 and 3 then run within seconds, and their polls are only the safety net for the
    #: webhooks Primero lost (it never retries one), at ``webhook_poll_interval_seconds``
    webhooks: bool = False
    webhook_poll_interval_seconds: float = Field(default=3600.0, gt=0)
    #: secret; comma-separated tokens Primero's webhooks may present (x-api-key, the Basic
    #: password, or the last segment of /api/v1/primero/webhook/{token})
    primero_webhook_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    #: after a flow-2 decision or a flow-3 referral reaches DTP (or dies as a dead letter),
    #: record the sync status on the Primero case (mark_synced; the sync_external permission)
    mark_synced: bool = False

    retry_base_seconds: float = Field(default=30.0, gt=0)
    retry_cap_seconds: float = Field(default=3600.0, gt=0)
    retry_max_attempts: int = Field(default=8, ge=1)
    lease_seconds: float = Field(default=120.0, gt=0)
    worker_concurrency: int = Field(default=2, ge=1, le=64)
    worker_poll_seconds: float = Field(default=1.0, gt=0)
    dead_letter_retention_days: float = Field(default=30.0, ge=0)
    purge_interval_seconds: float = Field(default=3600.0, gt=0)

    #: where alerts go: apprise URLs (mailtos://, msteams://, slack://, json://...), separated
    #: by commas; secret, they hold credentials
    alert_urls: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    alert_check_seconds: float = Field(default=30.0, gt=0)
    #: at most one notification per alert and subject in this time
    alert_repeat_minutes: float = Field(default=60.0, gt=0)
    #: a peer failing every call this long is down (a refused credential or certificate: at once)
    alert_peer_down_minutes: float = Field(default=10.0, gt=0)
    #: a job waiting longer than this (since it was queued) is a backlog
    alert_backlog_minutes: float = Field(default=30.0, gt=0)

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    #: serve HTTPS with this certificate chain (PEM; may hold the key too), so DTP can call
    #: the inbox without a reverse proxy in front
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: ``worker`` only: serve its own GET /metrics (and /healthz) on this address, so each
    #: extra worker's job, peer-call and alert counters can be scraped; unset, a worker
    #: listens on nothing (``serve`` ignores both: its /metrics shows its own worker's counts)
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    #: the address operators and DTP reach the bridge at: the base of the console links in
    #: alerts (``https://...`` also marks the console's session cookie ``Secure``)
    public_url: str | None = None
    #: an operator console session ends after this long without a request
    admin_session_idle_minutes: float = Field(default=30.0, gt=0)

    @field_validator("inbox_tokens", "primero_webhook_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value

    @field_validator("poll_start_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @field_validator("alert_urls", mode="before")
    @classmethod
    def _split_alert_urls(cls, value: Any) -> Any:
        # split only before a scheme: an apprise URL may hold commas (to=a@x.org,b@x.org)
        if isinstance(value, str):
            return [u.strip(" ,") for u in _ALERT_URL_START.split(value) if u.strip(" ,")]
        return value

    @field_validator("primero_url", "dtp_url", "ping_url", "ping_token_url", "public_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value

    @field_validator("ping_token_path")
    @classmethod
    def _absolute_path(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("/") or "?" in value or " " in value):
            raise ValueError("must be a path starting with / (without query or spaces)")
        return value

    @field_validator(*_PING_IDS)
    @classmethod
    def _ping_id(cls, value: str | None) -> str | None:
        if value is not None and (not value or not set(value) <= _ID_ALPHABET):
            raise ValueError("must be an id of letters, digits, '.', '_' or '-' (e.g. SHP-2358)")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:// or postgresql+psycopg:// URL")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            env_settings,
            _SecretFilesSource(settings_cls),
            file_secret_settings,
        ]
        config_file = _CONFIG_FILE.get()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @classmethod
    def load(
        cls,
        config_file: str | Path | None = None,
        *,
        require_encryption_key: bool = True,
        **overrides: Any,
    ) -> Settings:
        """Read the configuration; raise ``ConfigurationError`` naming what is wrong."""
        path = config_file or os.environ.get(f"{PREFIX}CONFIG")
        toml_path = Path(path) if path else None
        if toml_path is not None:
            _check_toml(toml_path)
        secrets_dir = os.environ.get(f"{PREFIX}SECRETS_DIR")
        token = _CONFIG_FILE.set(toml_path)
        try:
            settings = cls(_secrets_dir=secrets_dir, **overrides)
        except ValidationError as exc:
            raise _configuration_error(exc) from None
        finally:
            _CONFIG_FILE.reset(token)
        if require_encryption_key:
            settings.cipher()
        return settings

    @classmethod
    def for_tests(cls, **overrides: Any) -> Settings:
        """Settings with a throwaway encryption key (tests and the demo only)."""
        overrides.setdefault("encryption_key", generate_key())
        return cls.load(**overrides)

    def cipher(self) -> Cipher:
        """The key ring; the service refuses to start without one."""
        if self.encryption_key is None or not self.encryption_key.get_secret_value().strip():
            raise ConfigurationError(
                f"{env_name('encryption_key')} is not set: generate one with "
                "`primero-progres keygen`",
                reason="missing_encryption_key",
            )
        return Cipher.from_config(self.encryption_key.get_secret_value())

    def require(self, *fields: str) -> None:
        """Raise ``ConfigurationError`` naming every listed setting that is not set."""
        missing = [env_name(f) for f in fields if getattr(self, f) in (None, "")]
        if missing:
            raise ConfigurationError(
                f"not set: {', '.join(missing)}", reason="missing_settings"
            )

    def require_ping(self) -> None:
        """Raise ``ConfigurationError`` naming every PING setting a PING deployment lacks."""
        missing = [env_name(f) for f in PING_REQUIRED if _blank(getattr(self, f))]
        if missing:
            raise ConfigurationError(
                f"{env_name('unhcr_gateway')}=ping needs: {', '.join(missing)}",
                reason="missing_settings",
            )

    def inbox_token_values(self) -> list[bytes]:
        return [t.get_secret_value().encode() for t in self.inbox_tokens]

    def webhook_token_values(self) -> list[bytes]:
        return [t.get_secret_value().encode() for t in self.primero_webhook_tokens]

    def dtp_client_certificate(self) -> x509.Certificate | None:
        """The DTP client certificate configured (PEM, or in the PKCS#12 bundle), or None;
        ``ConfigurationError`` when it cannot be read."""
        from .peers.tls import client_certificate

        password = self.dtp_client_pkcs12_password
        return client_certificate(
            client_cert=self.dtp_client_cert,
            pkcs12_file=self.dtp_client_pkcs12,
            pkcs12_password=password.get_secret_value() if password is not None else None,
        )

    def alert_url_values(self) -> list[str]:
        return [u.get_secret_value() for u in self.alert_urls]


def _blank(value: Any) -> bool:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value is None or (isinstance(value, str) and not value.strip())


def _check_toml(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            tomllib.load(handle)
    except OSError as exc:
        raise ConfigurationError(
            f"{PREFIX}CONFIG: cannot read {path.name} ({type(exc).__name__})",
            reason="unreadable_config_file",
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(
            f"{PREFIX}CONFIG: {path.name} is not valid TOML ({exc})", reason="invalid_config_file"
        ) from exc


def _configuration_error(exc: ValidationError) -> ConfigurationError:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        field = str(error["loc"][0]) if error["loc"] else "?"
        name = env_name(field) if field in Settings.model_fields else f"{field!r} (unknown setting)"
        problems.append(f"{name}: {error['msg']}")
    return ConfigurationError("; ".join(problems), reason="invalid_settings")
