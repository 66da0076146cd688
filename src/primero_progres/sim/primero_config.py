"""What the simulated Primero instance is: the API role's scope and field permissions, its lookups.

Set at start (``create_app(config=...)``, ``simulate primero --config FILE``) and at run time
(``PUT``/``PATCH /_sim/config``). ``PrimeroSimConfig()`` is the permissive instance (every
field readable and writable, nothing validated); ``PrimeroSimConfig.for_profile(profile)`` is
a realistic instance for a mapping profile (Gambella by default), whose lookups hold the
profile's codes, so what the bridge writes is validated the way Primero validates it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..profiles import Profile
from .common import SimulatorConfigError

Scope = Literal["all", "agency", "group", "self"]
#: a form field, or ``<subform>.<field>`` for a field of a subform row
FieldName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)?$")]
LookupId = Annotated[str, Field(min_length=1, max_length=200)]
Code = Annotated[str, Field(min_length=1, max_length=200)]
ModuleId = Literal["primeromodule-cp", "primeromodule-gbv", "primeromodule-mrm"]
#: actions of Primero's ``webhook`` permission resource (``Permission::RESOURCE_ACTIONS``)
WebhookAction = Literal["create", "read", "write", "delete", "manage"]

#: Primero's stock values of the lookups the bridge's fields use (db/configuration/lookups)
STOCK_LOOKUPS: dict[str, tuple[str, ...]] = {
    "lookup-case-status": ("open", "closed", "transferred", "duplicate"),
    "lookup-service-response-type": ("care_plan", "action_plan", "service_provision"),
    "lookup-service-implemented": ("not_implemented", "implemented"),
    # instance lookups of the Gambella deployment (not in core Primero)
    "lookup-service-referral": ("external_referral", "internal_referral"),
    "lookup-unhcr-referral-status": ("pending", "accepted", "rejected"),
}


class WebhookAuth(BaseModel):
    """How Primero authenticates its webhook POSTs (``Webhook#auth_type``/``auth_secret``).

    The webhooks API cannot set these (``webhook_params`` does not permit them): an
    administrator sets them in the database, so the simulator takes them from here.
    ``api_key`` sends ``x-api-key: <secret>``; ``basic_auth`` takes the secret as
    ``user:password`` and, as Primero (``secret.split(':')``), keeps what follows the
    first colon only up to the next one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["api_key", "basic_auth"] | None = Field(
        default=None, description="null: the webhooks are sent without authentication"
    )
    secret: str | None = Field(default=None, min_length=1, description="the key, or user:password")

    @model_validator(mode="after")
    def _secret_with_type(self) -> WebhookAuth:
        if self.type is not None and self.secret is None:
            raise ValueError(f"webhook_auth of type {self.type} needs a secret")
        return self


class PrimeroSimConfig(BaseModel):
    """The simulated instance; ``null`` readable or writable fields mean every field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scope: Scope = Field(
        default="all",
        description="the API role's group permission: which cases and referrals it sees",
    )
    readable_fields: list[FieldName] | None = Field(
        default=None,
        description="fields the role may read (filter on and get back); id, enabled and "
        "last_updated_at are always rendered; null: every field",
    )
    writable_fields: list[FieldName] | None = Field(
        default=None,
        description="fields on a read-write form of the module (subform fields as "
        "'services_section.<field>'); others are dropped from POST/PATCH; null: every field",
    )
    lookups: dict[LookupId, list[Code]] = Field(
        default_factory=dict, description="lookup unique_id -> its option ids"
    )
    field_lookups: dict[FieldName, LookupId] = Field(
        default_factory=dict,
        description="select field -> the lookup its values must come from ('service_type' "
        "applies to a field of that name in any subform; 'services_section.service_type' "
        "to that subform only)",
    )
    users_permission: bool = Field(
        default=True, description="the role may list users (GET /api/v2/users); false answers 403"
    )
    sync_external: bool = Field(
        default=True,
        description="the role's case permission sync_external: it may PATCH mark_synced, "
        "mark_synced_url and mark_synced_status (else they are dropped) and reads sync_status "
        "and synced_at",
    )
    webhook_permissions: list[WebhookAction] = Field(
        default_factory=lambda: list[WebhookAction](["manage"]),
        description="the role's actions on the webhook resource (/api/v2/webhooks): read "
        "lists and shows, create registers, write or delete deletes, manage does all; "
        "empty: 403",
    )
    modules_permission: bool = Field(
        default=True,
        description="the role may list the modules (GET /api/v2/primero_modules, the metadata "
        "permission); false answers 403",
    )
    use_webhooks_for: dict[ModuleId, list[str]] = Field(
        default_factory=lambda: {module: ["case"] for module in get_args(ModuleId)},
        description="module -> the record types whose creates and updates are posted to "
        "the webhooks (the module option use_webhooks_for); a case of a module not listed, "
        "or without a module, sends none",
    )
    webhook_auth: WebhookAuth = Field(
        default_factory=WebhookAuth, description="how the webhook POSTs authenticate"
    )
    webhook_content_type: str | None = Field(
        default="application/x-www-form-urlencoded",
        description="the Content-Type of the webhook POSTs, whose body is JSON all the same: "
        "Primero sets none, and Ruby's Net::HTTP supplied this one until net-http 0.7 "
        "(Primero v2.14 and earlier); null: none, as from Primero v2.15",
    )
    hostname: str = Field(
        default="primero.example.org",
        min_length=1,
        description="the instance's host name, sent in every webhook body (hostname)",
    )

    @model_validator(mode="after")
    def _lookups_exist(self) -> PrimeroSimConfig:
        unknown = sorted(
            f for f, lookup in self.field_lookups.items() if lookup not in self.lookups
        )
        if unknown:
            raise ValueError(
                "field_lookups name lookups missing from 'lookups': "
                + ", ".join(f"{f} -> {self.field_lookups[f]}" for f in unknown)
            )
        return self

    def merged(self, changes: dict[str, Any]) -> PrimeroSimConfig:
        """This configuration with some top-level keys replaced (validated again)."""
        return PrimeroSimConfig.model_validate({**self.model_dump(), **changes})

    @classmethod
    def for_profile(cls, profile: Profile) -> PrimeroSimConfig:
        """A realistic instance for ``profile``: every field permitted, lookups holding its codes.

        The lookups are Primero's stock values plus every code the profile writes (flow 1)
        or translates (flow 3), so a profile that writes a code is accepted, and a code
        removed from here in a test shows up as Primero's 422.
        """
        flow1 = profile.progres_referral
        flow3 = profile.primero_referral
        row = flow1.service_row
        codes: dict[str, set[str]] = {name: set(values) for name, values in STOCK_LOOKUPS.items()}
        codes["lookup-case-status"].add(profile.primero.case_status)
        codes["lookup-service-response-type"].add(row.service_response_type)
        codes["lookup-service-referral"].update(
            {row.service_referral, profile.primero_decision.service_referral}
        )
        codes["lookup-unhcr-referral-status"].update(
            {row.unhcr_referral_status, *profile.primero_decision.statuses}
        )
        codes["lookup-gender"] = {*flow1.sex.values(), *flow3.sex}
        codes["lookup-language"] = {
            *flow1.languages.values(),
            flow1.other_language,
            *flow3.languages,
        }
        codes["lookup-service-type"] = {*flow1.service_types.values(), *flow3.service_types}
        return cls(
            lookups={name: sorted(values) for name, values in sorted(codes.items())},
            field_lookups={
                "status": "lookup-case-status",
                "sex": "lookup-gender",
                "language": "lookup-language",
                "service_type": "lookup-service-type",
                "service_response_type": "lookup-service-response-type",
                "service_implemented": "lookup-service-implemented",
                "service_referral": "lookup-service-referral",
                "unhcr_referral_status": "lookup-unhcr-referral-status",
            },
        )


def profile_users(profile: Profile) -> list[dict[str, Any]]:
    """The Primero users a profile names: focal points (default and routes), UNHCR caseworkers."""
    users: dict[str, dict[str, Any]] = {}
    for name in [profile.focal_point.default_user, *(r.user for r in profile.focal_point.routes)]:
        users.setdefault(name, {"user_name": name, "full_name": name, "position": "Focal point"})
    for name in profile.unhcr_caseworkers:
        users.setdefault(name, {"user_name": name, "full_name": name, "position": "Caseworker"})
    return list(users.values())


def load_config(path: Path) -> PrimeroSimConfig:
    """A configuration file (JSON); every problem is a SimulatorConfigError naming the key."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SimulatorConfigError(
            f"cannot read the configuration file {path.name} ({type(exc).__name__})",
            reason="bad_sim_config",
        ) from exc
    try:
        return PrimeroSimConfig.model_validate(document)
    except ValidationError as exc:
        raise SimulatorConfigError(
            f"invalid configuration {path.name}: {describe(exc)}", reason="bad_sim_config"
        ) from None


def describe(exc: ValidationError) -> str:
    """Problems of a configuration, one ``key.path: message`` each."""
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or '<config>'}: {error['msg']}"
        for error in exc.errors(include_url=False, include_input=False)
    )
