"""Forms, field permissions, lookups and record validation of the simulated Primero.

The forms are the stock Primero case forms the bridge touches (``db/configuration/forms/case``)
plus the fields the Gambella instance added to the services subform. What the API role may
read and write comes from ``PrimeroSimConfig``; Primero expresses that per form (a role has
``r`` or ``rw`` on a form), so a form whose fields the configuration splits is served as
several forms (``<form>``, ``<form>_read_only``, ``<form>_not_permitted``).

Validation follows ``RecordJsonValidatorService``: text is a string, a number an integer, a
date an ISO date or date-time, a tick box a boolean, a select box a string (a list of strings
when multi-select) from its lookup, a subform a list of rows; a failure is 422 ``Invalid
Record JSON`` with the JSON pointers of every bad value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .primero_config import PrimeroSimConfig
from .primero_records import ID_FIELDS, parse_time

CASE = "case"
MODULE_IDS = ("primeromodule-cp", "primeromodule-gbv", "primeromodule-mrm")
#: ``PermittedFieldService::PERMITTED_STATUS_VALUES``: what ``status`` may be without a form
CORE_STATUS_VALUES = ("open", "closed", "transferred", "identified")
INT_RANGE = (-2_147_483_648, 2_147_483_647)


@dataclass(frozen=True, slots=True)
class FieldDef:
    name: str
    type: str
    multi_select: bool = False
    date_include_time: bool = False
    #: where the options come from when not a lookup (``Agency``, ``User``, ``Location``)
    source: str | None = None
    #: default lookup of a select box (the configuration's ``field_lookups`` wins)
    lookup: str | None = None
    #: the nested form of a subform field
    subform: str | None = None


@dataclass(frozen=True, slots=True)
class FormDef:
    unique_id: str
    name: str
    fields: tuple[FieldDef, ...]
    is_nested: bool = False


def _text(*names: str) -> tuple[FieldDef, ...]:
    return tuple(FieldDef(name, "text_field") for name in names)


SERVICES = "services_section"
#: the fields the Gambella instance added to the services subform (PRIMERO-API.md §6)
INSTANCE_SERVICE_FIELDS = (
    FieldDef("progres_interventionnumber", "text_field"),
    FieldDef("unhcr_referral_status", "select_box", lookup="lookup-unhcr-referral-status"),
    FieldDef("unhcr_referral_rejection_reason", "textarea"),
    FieldDef("service_referral", "select_box", lookup="lookup-service-referral"),
    FieldDef("service_request_external", "tick_box"),
    *_text("service_request_agency", "service_request_title", "service_request_phone"),
    *_text("service_request_email", "service_type_other"),
)
FORMS: tuple[FormDef, ...] = (
    FormDef(
        "basic_identity",
        "Basic Identity",
        (
            *_text("case_id", "short_id", "case_id_display"),
            FieldDef("status", "select_box", lookup="lookup-case-status"),
            *_text("name", "name_first", "name_middle", "name_last", "name_nickname"),
            FieldDef("registration_date", "date_field"),
            FieldDef("sex", "select_box", lookup="lookup-gender"),
            FieldDef("age", "numeric_field"),
            FieldDef("date_of_birth", "date_field"),
            *_text("unhcr_id_no", "unhcr_individual_no"),
            FieldDef("nationality", "select_box", multi_select=True, lookup="lookup-country"),
            FieldDef("address_current", "textarea"),
            FieldDef("location_current", "select_box", source="Location"),
            *_text("telephone_current"),
        ),
    ),
    FormDef(
        "other_identity_details",
        "Other Identity Details",
        (FieldDef("language", "select_box", multi_select=True, lookup="lookup-language"),),
    ),
    FormDef(
        "consent",
        "Data Confidentiality",
        (
            FieldDef("consent_for_services", "tick_box"),
            FieldDef("disclosure_other_orgs", "tick_box"),
        ),
    ),
    FormDef("services", "Services", (FieldDef(SERVICES, "subform", subform=SERVICES),)),
    FormDef(
        SERVICES,
        "Nested Services",
        (
            FieldDef("service_response_type", "select_box", lookup="lookup-service-response-type"),
            FieldDef("service_type", "select_box", lookup="lookup-service-type"),
            FieldDef("service_response_day_time", "date_field", date_include_time=True),
            FieldDef("service_implementing_agency", "select_box", source="Agency"),
            FieldDef("service_implementing_agency_individual", "select_box", source="User"),
            FieldDef("service_status_referred", "tick_box"),
            FieldDef("service_referral_notes", "textarea"),
            FieldDef("service_implemented", "select_box", lookup="lookup-service-implemented"),
            FieldDef("service_implemented_day_time", "date_field", date_include_time=True),
            FieldDef("note_on_referral_from_provider", "textarea"),
            *INSTANCE_SERVICE_FIELDS,
        ),
        is_nested=True,
    ),
)
NESTED = {form.unique_id: form for form in FORMS if form.is_nested}
TOP_FIELDS = {f.name: f for form in FORMS if not form.is_nested for f in form.fields}
#: always permitted, whatever the forms (``PERMITTED_CORE_FIELDS_SCHEMA``)
CORE_FIELDS = frozenset(
    {"id", "status", "case_status_reopened", "record_state", "owned_by", "module_id", "created_at"}
)
ROW_KEYS = frozenset({"unique_id", "_destroy"})
#: ``PermittedFieldService::SYNC_FIELDS_SCHEMA``: permitted with ``sync_external``, whatever
#: the forms; ``True`` where the value must be a boolean, else a string
SYNC_FIELDS: dict[str, bool] = {
    "synced_at": False,
    "sync_status": False,
    "mark_synced": True,
    "mark_synced_url": False,
    "mark_synced_status": False,
}
#: readable (and filterable) whatever the forms: the core fields, ``PERMITTED_FILTER_FIELD_NAMES``
#: and ``PERMITTED_RECORD_INFORMATION_FIELDS`` of ``app/services/permitted_field_service.rb``
#: that the bridge meets. A ``readable_fields`` list replaces them all: list them for realism.
ALWAYS_PERMITTED = frozenset(
    {
        *CORE_FIELDS,
        "associated_user_names",
        "assigned_user_names",
        "case_id_display",
        "short_id",
        "sex",
        "age",
        "registration_date",
        "workflow",
        "created_by",
        "last_updated_at",
        "last_updated_by",
        "owned_by_agency_id",
        "owned_by_groups",
        "previously_owned_by",
        "consent_for_services",
        "disclosure_other_orgs",
    }
)


class FieldAccess:
    """What one configuration lets the API role read, write and send, field by field."""

    def __init__(self, config: PrimeroSimConfig) -> None:
        self.config = config
        self._readable = set(config.readable_fields) if config.readable_fields is not None else None
        writable = config.writable_fields
        self._writable = {n for n in writable if "." not in n} if writable is not None else None
        self._row_writable: dict[str, set[str]] = {}
        for name in writable or ():
            subform, _, key = name.partition(".")
            if key:
                self._row_writable.setdefault(subform, set()).add(key)

    # -------------------------------------------------------------- reading and writing

    def can_read(self, name: str) -> bool:
        """Whether a record key is rendered to the role."""
        return self._readable is None or name in self._readable

    def can_filter(self, name: str) -> bool:
        """Whether an index filter is applied (else Primero drops it without a word)."""
        if self._readable is not None:
            return name in self._readable
        return (
            name in ALWAYS_PERMITTED
            or name in TOP_FIELDS
            or name in ID_FIELDS
            or name in self.config.field_lookups
        )

    def can_write(self, name: str) -> bool:
        return self._writable is None or name in self._writable or name in self._row_writable

    def row_key_writable(self, subform: str, key: str) -> bool:
        """A subform row key survives when the subform lists it (or lists none of its fields)."""
        if key in ROW_KEYS or self._writable is None:
            return True
        listed = self._row_writable.get(subform)
        return listed is None or key in listed

    def writable_part(self, data: Mapping[str, Any], module_id: Any) -> dict[str, Any]:
        """Strong params: core fields, plus form fields on a read-write form of the module."""
        kept: dict[str, Any] = {}
        for key, value in data.items():
            if key in SYNC_FIELDS:
                if self.config.sync_external:
                    kept[key] = value
            elif key in CORE_FIELDS:
                kept[key] = value
            elif module_id in MODULE_IDS and self.can_write(key):
                if isinstance(value, list) and all(isinstance(row, dict) for row in value):
                    value = [
                        {k: v for k, v in row.items() if self.row_key_writable(key, k)}
                        for row in value
                    ]
                kept[key] = value
        return kept

    def readable_part(self, record: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if self.can_read(k)}

    # -------------------------------------------------------------- options and validation

    def lookup_of(self, name: str, subform: str | None = None) -> str | None:
        lookups = self.config.field_lookups
        if subform is not None and f"{subform}.{name}" in lookups:
            return lookups[f"{subform}.{name}"]
        if name in lookups:
            return lookups[name]
        fields = NESTED[subform].fields if subform in NESTED else TOP_FIELDS.values()
        return next((field.lookup for field in fields if field.name == name), None)

    def options(self, name: str, subform: str | None = None) -> list[str] | None:
        """The values a select field accepts; None when the instance has no such lookup."""
        lookup = self.lookup_of(name, subform)
        return self.config.lookups.get(lookup) if lookup else None

    def invalid_pointers(self, data: Mapping[str, Any]) -> list[str]:
        """JSON pointers of every value the record's JSON schema refuses."""
        pointers: list[str] = []
        for key, value in data.items():
            if key == "status" and self.lookup_of("status") not in self.config.lookups:
                if value not in CORE_STATUS_VALUES:
                    pointers.append("/status")
                continue
            if key in ("case_status_reopened", "record_state"):
                if not (isinstance(value, bool) or (value is None and key != "record_state")):
                    pointers.append(f"/{key}")
                continue
            if key in SYNC_FIELDS:
                if not isinstance(value, bool if SYNC_FIELDS[key] else str):
                    pointers.append(f"/{key}")
                continue
            field = TOP_FIELDS.get(key)
            if field is None and key in self.config.field_lookups:
                field = FieldDef(key, "select_box")
            if field is not None:
                pointers.extend(self._check(field, value, f"/{key}", None))
        return pointers

    def _check(self, field: FieldDef, value: Any, at: str, subform: str | None) -> list[str]:
        if field.type == "subform":
            return self._check_rows(field, value, at)
        if field.type == "tick_box":
            return [] if isinstance(value, bool) else [at]
        if value is None:
            return []
        if field.type in ("text_field", "textarea"):
            return [] if isinstance(value, str) else [at]
        if field.type == "numeric_field":
            ok = isinstance(value, int) and not isinstance(value, bool)
            return [] if ok and INT_RANGE[0] <= value <= INT_RANGE[1] else [at]
        if field.type == "date_field":
            return [] if isinstance(value, str) and parse_time(value) is not None else [at]
        if field.type == "select_box":
            options = self.options(field.name, subform)
            if field.multi_select or isinstance(value, list):
                if not field.multi_select or not isinstance(value, list):
                    return [at]
                return [
                    f"{at}/{i}"
                    for i, item in enumerate(value)
                    if not isinstance(item, str) or (options is not None and item not in options)
                ]
            if not isinstance(value, str) or (options is not None and value not in options):
                return [at]
        return []

    def _check_rows(self, field: FieldDef, rows: Any, at: str) -> list[str]:
        if rows is None:
            return []
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            return [at]
        nested = {f.name: f for f in NESTED[field.subform].fields} if field.subform else {}
        pointers = []
        for index, row in enumerate(rows):
            for key, value in row.items():
                where = f"{at}/{index}/{key}"
                if key == "_destroy":
                    if value is not None and not isinstance(value, bool):
                        pointers.append(where)
                elif key in nested:
                    pointers.extend(self._check(nested[key], value, where, field.name))
                elif f"{field.name}.{key}" in self.config.field_lookups:
                    pointers.extend(
                        self._check(FieldDef(key, "select_box"), value, where, field.name)
                    )
        return pointers

    # -------------------------------------------------------------- what the role is given

    def served_forms(self) -> list[tuple[FormDef, str | None]]:
        """Every form as served, with the role's permission on it (``rw``, ``r`` or None)."""
        served: list[tuple[FormDef, str | None]] = []
        for form in FORMS:
            if form.is_nested:
                fields = tuple(
                    f for f in form.fields if self.row_key_writable(form.unique_id, f.name)
                )
                served.append((FormDef(form.unique_id, form.name, fields, True), None))
                continue
            parts: dict[str | None, list[FieldDef]] = {"rw": [], "r": [], None: []}
            for field in form.fields:
                if self.can_write(field.name):
                    parts["rw"].append(field)
                elif self.can_read(field.name):
                    parts["r"].append(field)
                else:
                    parts[None].append(field)
            for permission, suffix, name in (
                ("rw", "", form.name),
                ("r", "_read_only", f"{form.name} (read only)"),
                (None, "_not_permitted", f"{form.name} (not permitted)"),
            ):
                if parts[permission]:
                    unique_id = form.unique_id + suffix
                    served.append((FormDef(unique_id, name, tuple(parts[permission])), permission))
        return served

    def permitted_forms(self) -> dict[str, str]:
        """``Role#form_section_permission``: form unique_id -> ``r`` or ``rw``."""
        return {form.unique_id: p for form, p in self.served_forms() if p is not None}

    def render_forms(
        self, *, module_id: str | None = None, record_type: str | None = None
    ) -> list[dict[str, Any]]:
        """``GET /api/v2/forms``: ``FormSection.as_json`` with fields and module ids."""
        if (module_id is not None and module_id not in MODULE_IDS) or record_type not in (
            None,
            CASE,
        ):
            return []
        served = [form for form, _ in self.served_forms()]
        ids = {form.unique_id: index + 1 for index, form in enumerate(served)}
        rendered = []
        field_id = 0
        for order, form in enumerate(served):
            fields = []
            for position, field in enumerate(form.fields):
                field_id += 1
                fields.append(
                    self._render_field(field, field_id, position, ids[form.unique_id], ids, form)
                )
            rendered.append(
                {
                    "id": ids[form.unique_id],
                    "unique_id": form.unique_id,
                    "name": {"en": form.name},
                    "parent_form": CASE,
                    "visible": not form.is_nested,
                    "is_nested": form.is_nested,
                    "editable": True,
                    "core_form": False,
                    "order": order,
                    "fields": fields,
                    "module_ids": list(MODULE_IDS),
                    "collapsed_field_names": [],
                }
            )
        return rendered

    def _render_field(
        self,
        field: FieldDef,
        field_id: int,
        position: int,
        form_id: int,
        ids: Mapping[str, int],
        form: FormDef,
    ) -> dict[str, Any]:
        subform = form.unique_id if form.is_nested else None
        lookup = self.lookup_of(field.name, subform) if field.type == "select_box" else None
        rendered: dict[str, Any] = {
            "id": field_id,
            "name": field.name,
            "type": field.type,
            "display_name": {"en": field.name.replace("_", " ").capitalize()},
            "form_section_id": form_id,
            "order": position,
            "visible": True,
            "editable": True,
            "disabled": False,
            "required": False,
            "multi_select": field.multi_select,
            "date_include_time": field.date_include_time,
        }
        if lookup is not None:
            rendered["option_strings_source"] = f"lookup {lookup}"
        elif field.source is not None:
            rendered["option_strings_source"] = field.source
        if field.subform is not None:
            rendered["subform_section_id"] = ids[field.subform]
        return rendered

    def render_lookups(self) -> list[dict[str, Any]]:
        """``GET /api/v2/lookups`` items: ``{id, unique_id, name, locked, values}``."""
        return [
            {
                "id": index + 1,
                "unique_id": unique_id,
                "name": {"en": unique_id.removeprefix("lookup-").replace("-", " ").capitalize()},
                "locked": False,
                "values": [
                    {"id": code, "display_text": {"en": code.replace("_", " ").capitalize()}}
                    for code in values
                ],
            }
            for index, (unique_id, values) in enumerate(sorted(self.config.lookups.items()))
        ]


def modules(config: PrimeroSimConfig) -> list[dict[str, Any]]:
    """``_primero_module.json.jbuilder``, the parts a client reads: ids and ``module_options``
    (``use_webhooks_for``: the record types whose saves are posted to the webhooks)."""
    record_types: dict[str, list[str]] = {str(k): v for k, v in config.use_webhooks_for.items()}
    return [
        {
            "id": index,
            "unique_id": unique_id,
            "name": {"en": unique_id.removeprefix("primeromodule-").upper()},
            "associated_record_types": ["case"],
            "module_options": {"use_webhooks_for": list(record_types.get(unique_id, []))},
        }
        for index, unique_id in enumerate(MODULE_IDS, start=1)
    ]


def role_permissions(config: PrimeroSimConfig) -> list[dict[str, Any]]:
    """``permissions.list`` of the extended user: what the API role may do, by resource."""
    case_actions = ["read", "create", "write", "referral", "receive_referral"]
    if config.sync_external:
        case_actions.append("sync_external")
    permissions: list[dict[str, Any]] = [{"resource": "cases", "actions": case_actions}]
    if config.users_permission:
        permissions.append({"resource": "users", "actions": ["read"]})
    if config.webhook_permissions:
        permissions.append({"resource": "webhooks", "actions": list(config.webhook_permissions)})
    return permissions
