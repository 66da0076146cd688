"""In-memory state of the PING simulator: proGres tables, query rows, ingestion, transactions.

The tables hold what proGres holds for one partner: LP interventions (each with
its individual, caseworker, languages and specific needs) and
interoperability referrals. Queries turn them into the flat, aliased rows
PING answers with (PING.md §4.1, §6, §7); ingestion applies ``{Name, Value}``
field updates to them (§4.2, §4.3). Where PING.md marks behaviour unknown
([C]), this follows its documented choice.

Reachable as ``app.state.ping``; one lock, because tests poke it from another
thread than uvicorn's.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: synthetic personal values carry it, so leak checks can look for it
MARKER = "ZZPIIMARKER"

#: the reference deployment's shipping processes (PING.md §6), keyed as in the settings
DEFAULT_SHIPPING_PROCESSES: dict[str, str] = {
    "referrals_pending": "SHP-2747",
    "referral_detail": "SHP-2358",
    "intervention_update": "SHP-2748",
    "referral_create": "SHP-2731",
    "decisions_list": "SHP-2795",
    "decision_detail": "SHP-2796",
    "referral_update": "SHP-2284",
}

# PING.md §5
TRANSFER_READY = 125080000
TRANSFER_STATUSES = frozenset(range(125080000, 125080005))
REFERRAL_NEW = 125080000
REFERRAL_ACCEPTED = 125080001
REFERRAL_REJECTED = 125080002
REFERRAL_STATUSES = frozenset(range(125080000, 125080004))
REVIEW_ACCEPTED = 125080000
REVIEW_REJECTED = 125080001
SEX_CODES = frozenset(range(125080000, 125080004))

NO_DATA = "No Data Available"
_DATE = re.compile(r"\A\d{4}-\d{2}-\d{2}\Z")

Clock = Callable[[], float]


def new_guid() -> str:
    return str(uuid.uuid4())


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def _lookup(logical_name: str, name: str | None) -> dict[str, Any] | None:
    """A Dataverse lookup as PING renders it: ``{"Id", "LogicalName", "Name"}``."""
    if name is None:
        return None
    guid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{logical_name}/{name}"))
    return {"Id": guid, "LogicalName": logical_name, "Name": name}


# ------------------------------------------------------------------ seed records


class _Seed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SeedIndividual(_Seed):
    progres_id: str = Field(min_length=1, description="individual number, e.g. 803-100000519")
    registration_group_id: str = Field(default_factory=new_guid)
    registration_group_name: str | None = "803-26-0000001"
    given_name: str | None = None
    middle_name: str | None = None
    family_name: str | None = None
    common_name: str | None = None
    date_of_birth: str | None = Field(default=None, description="ISO date or date-time")
    sex: int | None = Field(default=None, description="option-set code, e.g. 125080000 female")
    phone: str | None = None
    locations: list[str] = Field(default_factory=list, max_length=6,
                                 description="names of location levels 1..6")


class SeedCaseworker(_Seed):
    title: str | None = None
    mobilephone: str | None = None
    internalemailaddress: str | None = None


class SeedNeed(_Seed):
    category: str = Field(min_length=1)
    subcategory: str | None = None


class SeedIntervention(_Seed):
    lp_intervention_id: str = Field(default_factory=new_guid)
    intervention_number: str = Field(min_length=1)
    business_unit: str = "cccccccc-0000-4000-8000-000000000001"
    business_unit_name: str = "Demo - Business unit"
    intervention_type: str | None = "Alternative Care"
    start_date: str | None = None
    description: str | None = None
    reason_for_referral: str | None = None
    primero_id: str | None = None
    flagged: bool = Field(default=True, description="queued for Primero by a proGres user")
    transfer_status: int | None = None
    individual: SeedIndividual
    caseworker: SeedCaseworker | None = None
    languages: list[str] = Field(default_factory=list)
    specific_needs: list[SeedNeed] = Field(default_factory=list)


class SeedReferral(_Seed):
    referral_id: str = Field(default_factory=new_guid)
    fields: dict[str, Any] = Field(
        default_factory=dict, description="progres_* fields as proGres holds them"
    )


class Seed(_Seed):
    interventions: list[SeedIntervention] = Field(default_factory=list)
    referrals: list[SeedReferral] = Field(default_factory=list)


class Modes(_Seed):
    """Behaviours a test or a demo switches at run time (``PUT /_sim/modes``)."""

    page_size: int = Field(default=50, ge=1, le=5000, description="rows per retrieve page")
    empty_as_string: bool = Field(
        default=True, description='an empty result is Data "No Data Available" (else [])'
    )
    malformed_status: bool = Field(
        default=True, description="check status answers the unescaped string of PING.md §4.4"
    )
    async_delay_seconds: float = Field(
        default=0.0, ge=0, description="queued for this long, then processing for as long again"
    )
    token_seconds: int = Field(default=3600, ge=1, description="expires_in of issued tokens")
    rate_limit_calls: int | None = Field(
        default=None, ge=1, description="API calls allowed per rate_limit_seconds (429 beyond)"
    )
    rate_limit_seconds: float = Field(default=60.0, gt=0)
    duplicate_deliveries: int = Field(
        default=0, ge=0, description="list queries that ignore the latest status changes (chaos)"
    )
    lost_writebacks: int = Field(
        default=0, ge=0, description="/data calls answered as applied but dropped (chaos)"
    )
    failing_async_items: int = Field(
        default=0, ge=0, description="async items that fail when processed (chaos)"
    )
    lost_answers: int = Field(
        default=0, ge=0,
        description="/data calls applied but answered 504, as if the answer was lost (chaos)",
    )
    lost_async_answers: int = Field(
        default=0, ge=0,
        description="/asyncdata calls queued but answered 504, as if the answer was lost (chaos)",
    )


class Decide(_Seed):
    """What a proGres user records on an interoperability referral."""

    decision: Literal["accepted", "rejected"]
    rejection_reason: int | None = Field(default=None, description="option-set code of the reason")
    rejection_reason_name: str | None = Field(default=None, description="the reason's label")
    comment: str | None = None


# ------------------------------------------------------------------ live records


@dataclass
class Intervention:
    seed: SeedIntervention
    transfer_status: int | None
    transfer_status_date: str | None = None
    primero_id: str | None = None
    primero_caseworker: str | None = None
    comments: list[str] = field(default_factory=list)
    #: the status the list showed before the latest write (duplicate-delivery chaos)
    previous_status: int | None = None
    changed: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            **self.seed.model_dump(),
            "transfer_status": self.transfer_status,
            "transfer_status_date": self.transfer_status_date,
            "primero_id": self.primero_id,
            "primero_caseworker": self.primero_caseworker,
            "comments": list(self.comments),
        }


@dataclass
class Referral:
    referral_id: str
    fields: dict[str, Any]
    comments: list[str] = field(default_factory=list)
    transaction_id: str | None = None
    previous_status: int | None = None
    changed: bool = False

    @property
    def status(self) -> Any:
        return self.fields.get("progres_interoperabilityreferralstatus")

    def as_json(self) -> dict[str, Any]:
        return {
            "referral_id": self.referral_id,
            "fields": dict(self.fields),
            "comments": list(self.comments),
            "transaction_id": self.transaction_id,
        }


@dataclass
class AsyncItem:
    external_id: str | None
    fields: dict[str, Any]
    attachments: list[str]
    status: str = "Queued"
    message: str | None = None
    referral_id: str | None = None


@dataclass
class Transaction:
    transaction_id: str
    shipping_process_id: str
    created: float
    items: list[AsyncItem]
    done: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "transaction_id": self.transaction_id,
            "shipping_process_id": self.shipping_process_id,
            "done": self.done,
            "items": [
                {"external_id": i.external_id, "status": i.status, "message": i.message,
                 "referral_id": i.referral_id}
                for i in self.items
            ],
        }


class PingProblem(Exception):
    """PING answers it as an ``ErrorMessage``; the text names fields, never values."""


def fields_of(item: Any) -> dict[str, Any]:
    """``{Name: Value}`` of an ingestion item's ``Fields`` list."""
    if not isinstance(item, Mapping) or not isinstance(item.get("Fields"), list):
        raise PingProblem("Item without a Fields list")
    out: dict[str, Any] = {}
    for entry in item["Fields"]:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("Name"), str):
            raise PingProblem("Field without a Name")
        out[entry["Name"]] = entry.get("Value")
    return out


def attachments_of(item: Mapping[str, Any]) -> list[str]:
    found = item.get("Attachments")
    comments = []
    for attachment in found if isinstance(found, list) else []:
        if isinstance(attachment, Mapping) and isinstance(attachment.get("Comment"), str):
            comments.append(attachment["Comment"])
    return comments


def _code(name: str, value: Any, allowed: frozenset[int]) -> int:
    """Option-set values arrive as strings (PING.md §4.2); ints are tolerated."""
    if isinstance(value, bool):
        raise PingProblem(f"Invalid option set value for {name}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise PingProblem(f"Invalid option set value for {name}") from None
    if number not in allowed:
        raise PingProblem(f"Invalid option set value for {name}")
    return number


def _date(name: str, value: Any) -> str:
    if not isinstance(value, str) or not _DATE.match(value):
        raise PingProblem(f"Invalid date for {name}")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise PingProblem(f"Invalid date for {name}") from None
    return value


# ------------------------------------------------------------------ the state


class PingState:
    """Everything the simulated PING (and the proGres behind it) holds."""

    def __init__(
        self,
        *,
        partner_id: str,
        interop_id: str,
        shipping_processes: Mapping[str, str],
        clock: Clock = time.monotonic,
    ) -> None:
        missing = set(DEFAULT_SHIPPING_PROCESSES) - set(shipping_processes)
        if missing:
            raise ValueError(f"shipping processes missing: {', '.join(sorted(missing))}")
        self.partner_id = partner_id
        self.interop_id = interop_id
        self.shp = dict(shipping_processes)
        self.clock = clock
        self.lock = threading.RLock()
        self.modes = Modes()
        self.interventions: dict[str, Intervention] = {}
        self.referrals: dict[str, Referral] = {}
        self.transactions: dict[str, Transaction] = {}
        self.journal: list[dict[str, Any]] = []
        self.queries: list[dict[str, Any]] = []
        self.ingestions: list[dict[str, Any]] = []
        #: every ingestion write applied to a row, one entry per item (ids and status codes
        #: only): how often each status reached each row, and in which order
        self.writes: list[dict[str, Any]] = []
        self.tokens: dict[str, float] = {}
        self.token_requests = 0
        #: the ``x-ms-cpim-geo`` cookie of each token request
        self.token_geos: list[str | None] = []
        self._calls: list[float] = []

    def reset(self) -> None:
        with self.lock:
            self.modes = Modes()
            self.interventions.clear()
            self.referrals.clear()
            self.transactions.clear()
            self.journal.clear()
            self.queries.clear()
            self.ingestions.clear()
            self.writes.clear()
            self.tokens.clear()
            self.token_requests = 0
            self.token_geos.clear()
            self._calls.clear()

    # -------------------------------------------------------------- seeding and users

    def seed(self, seed: Seed) -> dict[str, list[str]]:
        with self.lock:
            for record in seed.interventions:
                self.interventions[record.lp_intervention_id] = Intervention(
                    seed=record.model_copy(deep=True),
                    transfer_status=record.transfer_status,
                    primero_id=record.primero_id,
                )
            for referral in seed.referrals:
                fields = dict(referral.fields)
                fields["progres_interoperabilityreferralid"] = referral.referral_id
                fields.setdefault("progres_interoperabilityreferralstatus", REFERRAL_NEW)
                self.referrals[referral.referral_id] = Referral(referral.referral_id, fields)
        return {
            "interventions": [r.lp_intervention_id for r in seed.interventions],
            "referrals": [r.referral_id for r in seed.referrals],
        }

    def flag(self, lp_intervention_id: str) -> Intervention:
        """A proGres user queues (or re-queues, once fixed) an intervention for Primero."""
        with self.lock:
            record = self.interventions[lp_intervention_id]
            self._remember(record)
            record.seed.flagged = True
            record.transfer_status = TRANSFER_READY
            record.transfer_status_date = _today()
            return record

    def decide(self, referral_id: str, decision: Decide) -> Referral:
        """A proGres user accepts or rejects an interoperability referral."""
        with self.lock:
            referral = self.referrals[referral_id]
            self._remember(referral)
            accepted = decision.decision == "accepted"
            referral.fields["progres_interoperabilityreferralstatus"] = (
                REFERRAL_ACCEPTED if accepted else REFERRAL_REJECTED
            )
            referral.fields["progres_reviewdecision"] = (
                REVIEW_ACCEPTED if accepted else REVIEW_REJECTED
            )
            for key, value in (
                ("progres_interoperabiltyreferralrejectionreason", decision.rejection_reason),
                (
                    "progres_interoperabiltyreferralrejectionreasonname",
                    decision.rejection_reason_name,
                ),
                ("progres_interoperabilityreferralrejectionomment", decision.comment),
            ):
                if value is None or accepted:
                    referral.fields.pop(key, None)
                else:
                    referral.fields[key] = value
            return referral

    def _remember(self, record: Intervention | Referral) -> None:
        status = record.transfer_status if isinstance(record, Intervention) else record.status
        record.previous_status = status
        record.changed = True

    # -------------------------------------------------------------- APIM side

    def issue_token(self, geo: str | None = None) -> tuple[str, int]:
        with self.lock:
            self.token_geos.append(geo)
            token = f"sim-{uuid.uuid4().hex}"
            lifetime = self.modes.token_seconds
            self.tokens[token] = self.clock() + lifetime
            self.token_requests += 1
            return token, lifetime

    def token_valid(self, token: str) -> bool:
        with self.lock:
            expires = self.tokens.get(token)
            return expires is not None and self.clock() < expires

    def revoke_tokens(self) -> int:
        with self.lock:
            count = len(self.tokens)
            self.tokens.clear()
            return count

    def throttled(self) -> float | None:
        """Seconds to wait when the rate limit is reached, else None (and the call counts)."""
        with self.lock:
            limit = self.modes.rate_limit_calls
            if limit is None:
                return None
            now = self.clock()
            window = self.modes.rate_limit_seconds
            self._calls = [t for t in self._calls if now - t < window]
            if len(self._calls) >= limit:
                return max(1.0, window - (now - self._calls[0]))
            self._calls.append(now)
            return None

    # -------------------------------------------------------------- retrieve

    def retrieve(
        self,
        shipping_process_id: str,
        record_ids: list[str] | None,
        page_number: int | None,
        paging_cookie: Any,
    ) -> dict[str, Any]:
        """The answer of ``retrievedatawithpaging`` for one page (PING.md §4.1).

        ``page_number`` is what the caller sent (None: no paging fields, page 1).
        """
        with self.lock:
            self._advance()
            rows = self._rows(shipping_process_id, record_ids)
            size = self.modes.page_size
            page = max(page_number or 1, 1)
            chunk = rows[(page - 1) * size : page * size]
            more = len(rows) > page * size
            self.queries.append(
                {
                    "shipping_process_id": shipping_process_id,
                    "record_ids": record_ids,
                    "page_number": page_number,
                    "paging_cookie": paging_cookie,
                    "count": len(chunk),
                }
            )
            paged = page > 1 or more
            summary = {
                "PagingCookie": self._cookie(shipping_process_id, page) if more else None,
                "PageNumber": page if paged else 0,
                "IsMoreRecordsAvailable": more,
            }
            if not chunk and self.modes.empty_as_string:
                data: Any = NO_DATA
                count: int | None = None
            else:
                data, count = chunk, len(chunk)
            return {
                "Data": data,
                "ErrorMessage": None,
                "RecordCount": count,
                "SPHTransactionId": new_guid(),
                "PagingSummary": summary,
            }

    @staticmethod
    def _cookie(shipping_process_id: str, page: int) -> str:
        return f'<cookie page="{page}"><shp>{shipping_process_id}</shp></cookie>'

    def _rows(self, shipping_process_id: str, record_ids: list[str] | None) -> list[dict[str, Any]]:
        chaos = self.modes.duplicate_deliveries > 0
        if shipping_process_id == self.shp["referrals_pending"]:
            rows = [self._pending_row(r, chaos) for r in self.interventions.values()]
            self._seen(self.interventions.values(), chaos)
            return [row for row in rows if row is not None]
        if shipping_process_id == self.shp["decisions_list"]:
            found = [self._decision_list_row(r, chaos) for r in self.referrals.values()]
            self._seen(self.referrals.values(), chaos)
            return found
        if shipping_process_id == self.shp["referral_detail"]:
            records = self.interventions.values() if record_ids is None else [
                self.interventions[i] for i in record_ids if i in self.interventions
            ]
            return [row for record in records for row in self._detail_rows(record)]
        if shipping_process_id == self.shp["decision_detail"]:
            referrals = self.referrals.values() if record_ids is None else [
                self.referrals[i] for i in record_ids if i in self.referrals
            ]
            return [self._decision_detail_row(r) for r in referrals]
        raise PingProblem("Shipping process not found for this partner")

    def _seen(self, records: Iterable[Intervention | Referral], chaos: bool) -> None:
        """A list query has shown the latest changes; the chaos mode hides them once."""
        if chaos:
            self.modes.duplicate_deliveries -= 1
        for record in records:
            record.changed = False

    @staticmethod
    def _pending_row(record: Intervention, chaos: bool) -> dict[str, Any] | None:
        """SHP referrals_pending [C]: flagged interventions whose status is ready or empty."""
        status = record.transfer_status
        if chaos and record.changed:
            status = record.previous_status
        if not record.seed.flagged or status not in (None, TRANSFER_READY):
            return None
        return _without_none(
            {
                "progres_lpinterventionid": record.seed.lp_intervention_id,
                "progres_interventionnumber": record.seed.intervention_number,
                "progres_businessunit": record.seed.business_unit,
                "progres_businessunitname": record.seed.business_unit_name,
                "progres_primerotransferstatus": status,
                "statuscode": 1,
            }
        )

    @staticmethod
    def _detail_rows(record: Intervention) -> list[dict[str, Any]]:
        """SHP referral_detail: one row per (language, specific need) the joins produce."""
        seed, person = record.seed, record.seed.individual
        base: dict[str, Any] = {
            "progres_lpinterventionid": seed.lp_intervention_id,
            "progres_interventionnumber": seed.intervention_number,
            "progres_businessunit": seed.business_unit,
            "progres_primeroid": record.primero_id,
            "progres_interventionstartdate": seed.start_date,
            "progres_primerotransferstatus": record.transfer_status,
            "progres_primerotransferstatusdate": record.transfer_status_date,
            "progres_interventiondescription": seed.description,
            "progres_reasonforreferral": seed.reason_for_referral,
            "progres_interventiontype2.interventiontype.progres_description": (
                seed.intervention_type
            ),
            "progres_individual.individuals.progres_id": person.progres_id,
            "progres_individual.individuals.progres_registrationgroupid": (
                person.registration_group_id
            ),
            "progres_individual.progres_registrationgroupidname": person.registration_group_name,
            "progres_individual.individuals.progres_givenname": person.given_name,
            "progres_individual.individuals.progres_middlename": person.middle_name,
            "progres_individual.individuals.progres_familyname": person.family_name,
            "progres_individual.individuals.progres_commonyusedname": person.common_name,
            "progres_individual.individuals.progres_dateofbirth": person.date_of_birth,
            "progres_individual.individuals.progres_sex": person.sex,
            "progres_individual.individuals.progres_primaryphonenumber": person.phone,
        }
        for level, name in enumerate(person.locations, start=1):
            base[f"individuals.progres_coalocationlevel{level}"] = _lookup(
                "progres_locationlevel", name
            )
        if record.seed.caseworker is not None:
            worker = record.seed.caseworker
            base["systemuser.title"] = worker.title
            base["systemuser.su.mobilephone"] = worker.mobilephone
            base["systemuser.su.internalemailaddress"] = worker.internalemailaddress
        base = _without_none(base)
        languages: list[str | None] = list(seed.languages) or [None]
        needs: list[SeedNeed | None] = list(seed.specific_needs) or [None]
        rows = []
        for language, need in itertools.product(languages, needs):
            row = dict(base)
            if language is not None:
                row["progres_language.progres_languagecodeidname"] = language
                row["progres_language.progres_languagecodeid"] = _lookup(
                    "progres_languagecode", language
                )
            if need is not None:
                row["progres_specificneed.progres_spncategory2name"] = need.category
                row["progres_specificneed.specificneeds.progres_spncategory2"] = _lookup(
                    "progres_spncategory", need.category
                )
                if need.subcategory is not None:
                    row["progres_specificneed.progres_spnsubcategory2name"] = need.subcategory
            rows.append(row)
        return rows

    @staticmethod
    def _decision_list_row(referral: Referral, chaos: bool) -> dict[str, Any]:
        """SHP decisions_list [C]: every referral of the partner, in any status."""
        status = referral.previous_status if chaos and referral.changed else referral.status
        return {
            "progres_interoperabilityreferralid": referral.referral_id,
            "progres_interoperabilityreferralstatus": status,
        }

    @staticmethod
    def _decision_detail_row(referral: Referral) -> dict[str, Any]:
        keys = (
            "progres_interoperabilityreferralid",
            "progres_interoperabilityreferralstatus",
            "progres_reviewdecision",
            "progres_offlineid",
            "progres_orgreferralid",
            "progres_externalid",
            "progres_interoperabiltyreferralrejectionreason",
            "progres_interoperabiltyreferralrejectionreasonname",
            "progres_interoperabilityreferralrejectionomment",
            "progres_comments",
        )
        return _without_none({key: referral.fields.get(key) for key in keys})

    # -------------------------------------------------------------- synchronous ingestion

    def ingest(self, shipping_process_id: str, items: list[Any]) -> dict[str, Any]:
        """``/data``: apply each item's field updates to the row its key fields name."""
        if shipping_process_id not in (self.shp["intervention_update"],
                                       self.shp["referral_update"]):
            raise PingProblem("Shipping process not configured for synchronous ingestion")
        with self.lock:
            problems: list[str] = []
            applied = 0
            lose = self.modes.lost_writebacks > 0
            if lose:
                self.modes.lost_writebacks -= 1
            for index, item in enumerate(items):
                try:
                    self._apply(shipping_process_id, item, dry_run=lose)
                    applied += 1
                except PingProblem as problem:
                    problems.append(f"Item {index}: {problem}")
            return {
                "SPHTransactionId": new_guid(),
                "RecordCount": applied,
                "ErrorMessage": "; ".join(problems) if problems else None,
            }

    def _apply(self, shipping_process_id: str, item: Any, *, dry_run: bool) -> None:
        values = fields_of(item)
        comments = attachments_of(item)
        if shipping_process_id == self.shp["intervention_update"]:
            self._update_intervention(values, comments, dry_run=dry_run)
        else:
            self._update_referral(values, comments, dry_run=dry_run)

    def _update_intervention(
        self, values: dict[str, Any], comments: list[str], *, dry_run: bool
    ) -> None:
        key = values.get("progres_lpinterventionid")
        unit = values.get("progres_businessunit")
        record = self.interventions.get(key) if isinstance(key, str) else None
        if record is None or record.seed.business_unit != unit:
            raise PingProblem(
                "No record matches the key fields progres_lpinterventionid, progres_businessunit"
            )
        changes: dict[str, Any] = {}
        for name, value in values.items():
            if name in ("progres_lpinterventionid", "progres_businessunit"):
                continue
            if name == "progres_primerotransferstatus":
                changes[name] = _code(name, value, TRANSFER_STATUSES)
            elif name == "progres_primerotransferstatusdate":
                changes[name] = _date(name, value)
            elif name in ("progres_primeroid", "progres_primerocaseworker"):
                if value is not None and not isinstance(value, str):
                    raise PingProblem(f"Invalid value for {name}")
                changes[name] = value
            else:
                raise PingProblem(f"Unknown field {name}")
        if dry_run:
            return
        self._wrote("intervention", record.seed.lp_intervention_id,
                    changes.get("progres_primerotransferstatus"))
        if "progres_primerotransferstatus" in changes:
            self._remember(record)
            record.transfer_status = changes["progres_primerotransferstatus"]
        if "progres_primerotransferstatusdate" in changes:
            record.transfer_status_date = changes["progres_primerotransferstatusdate"]
        if "progres_primeroid" in changes:
            record.primero_id = changes["progres_primeroid"]
        if "progres_primerocaseworker" in changes:
            record.primero_caseworker = changes["progres_primerocaseworker"]
        record.comments.extend(comments)

    def _update_referral(
        self, values: dict[str, Any], comments: list[str], *, dry_run: bool
    ) -> None:
        key = values.get("progres_interoperabilityreferralid")
        referral = self.referrals.get(key) if isinstance(key, str) else None
        if referral is None:
            raise PingProblem(
                "No record matches the key field progres_interoperabilityreferralid"
            )
        changes: dict[str, Any] = {}
        for name, value in values.items():
            if name == "progres_interoperabilityreferralid":
                continue
            if name == "progres_interoperabilityreferralstatus":
                changes[name] = _code(name, value, REFERRAL_STATUSES)
            elif name == "progres_comments":
                if value is not None and not isinstance(value, str):
                    raise PingProblem(f"Invalid value for {name}")
                changes[name] = value
            else:
                raise PingProblem(f"Unknown field {name}")
        if dry_run:
            return
        self._wrote("referral", referral.referral_id,
                    changes.get("progres_interoperabilityreferralstatus"))
        if "progres_interoperabilityreferralstatus" in changes:
            self._remember(referral)
        referral.fields.update(changes)
        referral.comments.extend(comments)

    def answer_lost(self, endpoint: str = "data") -> bool:
        """Whether this applied ``/data`` call's answer is lost (the ``lost_answers`` mode),
        or this queued ``/asyncdata`` call's (``lost_async_answers``)."""
        mode = "lost_answers" if endpoint == "data" else "lost_async_answers"
        with self.lock:
            left = getattr(self.modes, mode)
            if left <= 0:
                return False
            setattr(self.modes, mode, left - 1)
            return True

    def _wrote(self, table: str, record_id: str, status: int | None) -> None:
        self.writes.append({"table": table, "record_id": record_id, "status": status})

    # -------------------------------------------------------------- asynchronous ingestion

    def ingest_async(self, shipping_process_id: str, items: list[Any]) -> dict[str, Any]:
        """``/asyncdata``: queue the items; they are processed after the configured delay."""
        if shipping_process_id != self.shp["referral_create"]:
            raise PingProblem("Shipping process not configured for asynchronous ingestion")
        queued = []
        for item in items:
            if not isinstance(item, Mapping):
                raise PingProblem("Item is not an object")
            external = item.get("ExternalId")
            try:
                values = fields_of(item)
            except PingProblem:
                values = {}
            queued.append(
                AsyncItem(
                    external_id=external if isinstance(external, str) else None,
                    fields=values,
                    attachments=attachments_of(item),
                )
            )
        with self.lock:
            transaction = Transaction(new_guid(), shipping_process_id, self.clock(), queued)
            self.transactions[transaction.transaction_id] = transaction
            return {"SPHTransactionId": transaction.transaction_id, "RecordCount": len(queued),
                    "ErrorMessage": None}

    def process_all(self) -> int:
        """Finish every pending transaction now (``POST /_sim/transactions/process``)."""
        with self.lock:
            pending = [t for t in self.transactions.values() if not t.done]
            for transaction in pending:
                self._finish(transaction)
            return len(pending)

    def _advance(self) -> None:
        """Move transactions on with the clock: queued, then processing, then done."""
        delay = self.modes.async_delay_seconds
        now = self.clock()
        for transaction in self.transactions.values():
            if transaction.done:
                continue
            age = now - transaction.created
            if age >= 2 * delay:
                self._finish(transaction)
            elif age >= delay:
                for item in transaction.items:
                    item.status = "Processing"

    def _finish(self, transaction: Transaction) -> None:
        for item in transaction.items:
            try:
                if self.modes.failing_async_items > 0:
                    self.modes.failing_async_items -= 1
                    raise PingProblem("Processing error")
                item.referral_id = self._create_referral(item, transaction.transaction_id)
                item.status, item.message = "Succeeded", None
            except PingProblem as problem:
                item.status, item.message = "Failed", str(problem)
        transaction.done = True

    def _create_referral(self, item: AsyncItem, transaction_id: str) -> str:
        values = item.fields
        if not values:
            raise PingProblem("Item without a Fields list")
        for name, value in values.items():
            if not name.startswith("progres_"):
                raise PingProblem(f"Unknown field {name}")
            if name == "progres_pocsex" and value is not None:
                _code(name, value, SEX_CODES)
            if name in ("progres_referraldate", "progres_pocdateofbirth") and value is not None:
                _date(name, value)
        if not isinstance(values.get("progres_orgreferralid"), str) or not values.get(
            "progres_orgreferralid"
        ):
            raise PingProblem("Required field progres_orgreferralid is missing")
        referral_id = new_guid()
        fields = {
            **values,
            "progres_interoperabilityreferralid": referral_id,
            "progres_interoperabilityreferralstatus": REFERRAL_NEW,
        }
        self.referrals[referral_id] = Referral(
            referral_id, fields, comments=list(item.attachments), transaction_id=transaction_id
        )
        self._wrote("referral_created", referral_id, REFERRAL_NEW)
        return referral_id

    def check_status(self, transaction_id: str) -> Any:
        """The ``Data`` of a check-status answer, malformed as PING makes it when so configured."""
        with self.lock:
            self._advance()
            transaction = self.transactions.get(transaction_id)
            if transaction is None:
                return None
            entries = []
            for item in transaction.items:
                echo = json.dumps(item.fields, ensure_ascii=False)
                entries.append((item, echo))
            if not self.modes.malformed_status:
                return [
                    {"ExternalId": item.external_id, "Status": item.status,
                     "Message": item.message, "Data": echo}
                    for item, echo in entries
                ]
            parts = []
            for item, echo in entries:
                head = json.dumps(
                    {"ExternalId": item.external_id, "Status": item.status,
                     "Message": item.message},
                    ensure_ascii=False,
                )
                # the embedded record is pasted between quotes without escaping (PING.md §4.4)
                parts.append(f'{head[:-1]},"Data":"{echo}"}}')
            return "[" + ",".join(parts) + "]"

    # -------------------------------------------------------------- inspection

    def snapshot(self, what: str) -> list[dict[str, Any]]:
        with self.lock:
            self._advance()
            if what == "interventions":
                return [r.as_json() for r in self.interventions.values()]
            if what == "referrals":
                return [r.as_json() for r in self.referrals.values()]
            if what == "transactions":
                return [t.as_json() for t in self.transactions.values()]
            source = {"journal": self.journal, "queries": self.queries,
                      "ingestions": self.ingestions, "writes": self.writes}[what]
            return copy.deepcopy(source)


def _without_none(row: dict[str, Any]) -> dict[str, Any]:
    """Dataverse leaves null attributes out of a result row."""
    return {key: value for key, value in row.items() if value is not None}


def synthetic_interventions(
    count: int, *, start: int = 1, languages: Iterable[str] = ("Nuer", "Anyuak"),
    marker: str = MARKER,
) -> list[SeedIntervention]:
    """Invented children whose personal fields carry ``marker`` (never real people)."""
    spoken = list(languages)
    out = []
    for n in range(start, start + count):
        out.append(
            SeedIntervention(
                intervention_number=f"SIM-26-PRTITV-{n:07d}",
                intervention_type="Alternative Care",
                start_date="2026-01-15",
                description=f"<p>{marker} description {n}</p>",
                reason_for_referral=f"{marker} reason {n}",
                individual=SeedIndividual(
                    progres_id=f"SIM-{n:08d}",
                    registration_group_name=f"SIM-26-{n:05d}",
                    given_name=f"{marker}Given{n}",
                    middle_name=f"{marker}Middle{n}",
                    family_name=f"{marker}Family{n}",
                    common_name=f"{marker}Nick{n}",
                    date_of_birth="2016-02-29T00:00:00Z",
                    sex=125080000 + n % 2,
                    phone=f"+000{marker}{n}",
                    locations=["Gambela", "Gambela Zuria", "Itang", "Camp A", "Block 1",
                               f"{marker} house {n}"],
                ),
                caseworker=SeedCaseworker(
                    title=f"{marker} caseworker", mobilephone=f"+000{marker}cw",
                    internalemailaddress=f"{marker.lower()}@example.org",
                ),
                languages=spoken,
                specific_needs=[SeedNeed(category="Child at risk",
                                         subcategory="Child at risk of not attending school")],
            )
        )
    return out
