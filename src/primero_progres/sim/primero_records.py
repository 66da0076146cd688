"""Record rules of the Primero simulator: ids, timestamps, index filters and PATCH merge.

Pure functions over plain dicts, kept apart from HTTP so each rule of
PRIMERO-API.md (§2.1 filters, §2.4 merge, §7 ids and timestamps) reads on its own.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

UUID_RE = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")

#: ``Child.filterable_id_fields`` as far as PRIMERO-API.md §2.1 lists them: exact string match
ID_FIELDS = frozenset(
    {
        "unique_identifier",
        "short_id",
        "case_id_display",
        "case_id",
        "unhcr_id_no",
        "unhcr_individual_no",
    }
)
#: fields the default API role may filter on (PERMITTED_FILTER_FIELD_NAMES and record information)
DEFAULT_READABLE_FIELDS = ID_FIELDS | {
    "last_updated_at",
    "created_at",
    "associated_user_names",
    "owned_by",
    "record_state",
    "status",
    "sex",
    "age",
    "registration_date",
}
#: dropped silently on PATCH (``UPDATE_FORBIDDEN*``), plus what the server computes itself
UPDATE_FORBIDDEN = frozenset(
    {
        "id",
        "unique_identifier",
        "unique_id",
        "short_id",
        "created_at",
        "created_by",
        "case_id",
        "case_id_display",
        "last_updated_at",
        "associated_user_names",
    }
)
#: computed by the server on create; a client value is ignored
CREATE_COMPUTED = frozenset(
    {
        "unique_identifier",
        "short_id",
        "case_id_display",
        "created_at",
        "created_by",
        "last_updated_at",
        "associated_user_names",
    }
)
#: kept on create even without a ``module_id`` (PERMITTED_CORE_FIELDS)
CORE_FIELDS = frozenset({"id", "case_id", "module_id", "owned_by", "record_state", "status"})
MODULE_IDS = frozenset({"primeromodule-cp", "primeromodule-gbv", "primeromodule-mrm"})
#: parameters of the index that are not record filters
INDEX_CONTROL_PARAMS = frozenset({"page", "per", "order_by", "order", "fields", "query", "id"})

_INDEXED_KEY = re.compile(r"\A(?P<name>[A-Za-z0-9_]+)\[(?P<index>\d*)\]\Z")
_DATE_RE = re.compile(r"\A\d{4}-\d{2}-\d{2}\Z")
_DATETIME_RE = re.compile(
    r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?\Z"
)


def format_time(moment: datetime) -> str:
    """Primero's timestamp format: UTC ISO-8601 with milliseconds and ``Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime | None:
    """An ISO date or datetime (UTC when no offset), or None if the text is neither."""
    if _DATE_RE.match(text):
        return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
    if _DATETIME_RE.match(text):
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


class Clock:
    """Millisecond wall clock that never repeats, so every write moves time forward."""

    def __init__(self) -> None:
        self._last = datetime.min.replace(tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            current = datetime.now(UTC)
            current = current.replace(microsecond=current.microsecond // 1000 * 1000)
            if current <= self._last:
                current = self._last + timedelta(milliseconds=1)
            self._last = current
            return current

    def after(self, stamp: str | None) -> str:
        """A timestamp strictly later than ``stamp`` (which may be seeded in the future)."""
        moment = self.now()
        previous = parse_time(stamp) if isinstance(stamp, str) else None
        if previous is not None and moment <= previous:
            moment = previous + timedelta(milliseconds=1)
            with self._lock:
                self._last = max(self._last, moment)
        return format_time(moment)


def new_uuid() -> str:
    return str(uuid.uuid4())


def derive_ids(case: dict[str, Any]) -> None:
    """``case_id`` is ``unique_identifier``; ``short_id``/``case_id_display`` its last 7 chars."""
    case_id = case.get("case_id") or case.get("unique_identifier") or new_uuid()
    case["case_id"] = case_id
    case["unique_identifier"] = case_id
    case["short_id"] = str(case_id)[-7:]
    case["case_id_display"] = case["short_id"]


def refresh_associated(case: dict[str, Any]) -> None:
    """``associated_user_names = [owned_by] + assigned_user_names`` (Ownable)."""
    names: list[str] = []
    for name in [case.get("owned_by"), *(case.get("assigned_user_names") or [])]:
        if isinstance(name, str) and name and name not in names:
            names.append(name)
    case["associated_user_names"] = names


def is_array_of_hashes(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(row, dict) for row in value)


def invalid_row_ids(data: Mapping[str, Any]) -> list[str]:
    """JSON pointers of subform rows whose ``unique_id`` is not a lowercase UUID (a 422)."""
    pointers = []
    for key, value in data.items():
        if isinstance(value, list) and value and is_array_of_hashes(value):
            for index, row in enumerate(value):
                row_id = row.get("unique_id")
                if row_id is not None and not (isinstance(row_id, str) and UUID_RE.match(row_id)):
                    pointers.append(f"/{key}/{index}/unique_id")
    return pointers


def assign_row_ids(case: dict[str, Any]) -> None:
    """Every subform row gets a ``unique_id`` before save (``populate_subform_ids``)."""
    for value in case.values():
        if isinstance(value, list) and value and is_array_of_hashes(value):
            for row in value:
                if not row.get("unique_id"):
                    row["unique_id"] = new_uuid()


def merge(old: Any, new: Any) -> Any:
    """RecordMergeDataHashService: deep merge, subform rows matched by ``unique_id``."""
    if isinstance(old, dict) and isinstance(new, dict):
        merged = dict(old)
        for key, value in new.items():
            merged[key] = merge(old[key], value) if key in old else _without_destroyed(value)
        return merged
    if is_array_of_hashes(new) and (isinstance(old, list) and is_array_of_hashes(old)):
        return _merge_rows(old, new)
    return _without_destroyed(new)


def _without_destroyed(value: Any) -> Any:
    if isinstance(value, list) and is_array_of_hashes(value):
        return [row for row in value if not row.get("_destroy")]
    return value


def _merge_rows(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id = {row.get("unique_id"): row for row in new if row.get("unique_id")}
    merged: list[dict[str, Any]] = []
    for row in old:
        update = by_id.pop(row.get("unique_id"), None) if row.get("unique_id") else None
        if update is None:
            merged.append(row)
        elif not update.get("_destroy"):
            merged.append(merge(row, {k: v for k, v in update.items() if k != "_destroy"}))
    matched = {row.get("unique_id") for row in old}
    for row in new:
        row_id = row.get("unique_id")
        if row.get("_destroy") or (row_id and row_id in matched):
            continue
        merged.append(dict(row))
    return merged


# ---------------------------------------------------------------- index filters


def parse_index_query(pairs: Iterable[tuple[str, str]]) -> dict[str, str | list[str]]:
    """Query pairs as Rails sees them: ``name[N]=v`` folds into a list; ``name[]`` is dropped."""
    params: dict[str, str | list[str]] = {}
    indexed: dict[str, dict[int, str]] = {}
    for key, value in pairs:
        match = _INDEXED_KEY.match(key)
        if match:
            if match["index"]:
                indexed.setdefault(match["name"], {})[int(match["index"])] = value
            continue
        params[key] = value
    for name, values in indexed.items():
        params[name] = [values[index] for index in sorted(values)]
    return params


class Range:
    def __init__(self, start: Any, end: Any) -> None:
        self.start = start
        self.end = end


def destringify(field: str, raw: str | list[str]) -> Any:
    """DestringifyService, for one filter value; None means the filter is dropped."""
    if isinstance(raw, list):
        return [destringify(field, item) for item in raw]
    if field in ID_FIELDS:
        return raw
    if ".." in raw:
        parts = raw.split("..")
        while parts and parts[-1] == "":
            parts.pop()  # Ruby's split drops empty trailing fields
        if not parts or parts[0] == "" or len(parts) > 2:
            return None  # ``..y``: no lower bound, the range class is nil and the filter is dropped
        start = _scalar(parts[0], upper=False)
        end = _scalar(parts[1], upper=True) if len(parts) == 2 else None
        return Range(start, end)
    if "," in raw:
        return [_scalar(item, upper=False) for item in raw.split(",")]
    return _scalar(raw, upper=False)


def _scalar(text: str, *, upper: bool) -> Any:
    if text in ("true", "false"):
        return text == "true"
    if text.isdigit():
        return int(text)
    moment = parse_time(text)
    if moment is not None:
        if upper and _DATE_RE.match(text):
            return moment + timedelta(days=1) - timedelta(seconds=1)
        return moment
    return text


def _floor_second(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


def _equal(stored: Any, wanted: Any) -> bool:
    if isinstance(wanted, datetime):
        moment = parse_time(stored) if isinstance(stored, str) else None
        return moment is not None and _floor_second(moment) == _floor_second(wanted)
    if isinstance(wanted, bool) or isinstance(stored, bool):
        return stored is wanted
    return stored == wanted


def _in_range(stored: Any, wanted: Range) -> bool:
    if isinstance(wanted.start, datetime):
        moment = parse_time(stored) if isinstance(stored, str) else None
        if moment is None:
            return False
        second = _floor_second(moment)
        if second < _floor_second(wanted.start):
            return False
        return not (isinstance(wanted.end, datetime) and second > _floor_second(wanted.end))
    if isinstance(wanted.start, int) and isinstance(stored, int) and not isinstance(stored, bool):
        return stored >= wanted.start and (not isinstance(wanted.end, int) or stored <= wanted.end)
    return False


def matches(record: Mapping[str, Any], field: str, wanted: Any) -> bool:
    """Whether a record passes one (destringified) filter; array fields match on overlap."""
    stored = record.get(field)
    values = stored if isinstance(stored, list) else [stored]
    if field in ID_FIELDS:
        return any(isinstance(value, str) and value == wanted for value in values)
    options = wanted if isinstance(wanted, list) else [wanted]
    for option in options:
        for value in values:
            if isinstance(option, Range):
                if _in_range(value, option):
                    return True
            elif _equal(value, option):
                return True
    return False


def sort_key(field: str) -> Any:
    def key(record: Mapping[str, Any]) -> tuple[int, int, Any]:
        value = record.get(field)
        if value is None:
            return (1, 0, "")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return (0, 0, value)
        return (0, 1, str(value))

    return key
