"""The Primero simulator's case table and its indexes, so that a page of the bridge's walk
(``last_updated_at=<second>..&order_by=last_updated_at&order=asc``, maybe with
``associated_user_names``) costs the page, not the whole table.

``CaseTable`` is the ``dict`` of cases by id; it keeps, as cases are stored, replaced or
removed: the cases sorted by ``(last_updated_at, position in the dict)`` (the order the
index's stable sort gives), and which cases each user is associated with. A change made
inside a stored case (``touch``, a referral) is followed by ``reindex``. The id fields
(``unhcr_individual_no``, ``case_id``...: flow 1's search) are indexed by value. A case whose
``last_updated_at`` is not in Primero's own format (a seeded oddity) is *irregular*: its string
order may not be its time order, so any irregular case sends ``list_cases`` down the plain
path, which filters every case.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from .primero_records import ID_FIELDS

#: ``format_time``'s output: ordering these strings orders the moments
CANONICAL = re.compile(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z\Z")


def second_bound(moment: datetime) -> str:
    """The smallest canonical stamp in ``moment``'s second (filters compare whole seconds)."""
    second = moment.astimezone(UTC).replace(microsecond=0)
    return second.strftime("%Y-%m-%dT%H:%M:%S") + ".000Z"


def after_second_bound(moment: datetime) -> str:
    """The smallest canonical stamp after ``moment``'s second."""
    second = moment.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
    return second.strftime("%Y-%m-%dT%H:%M:%S") + ".000Z"


def _names(case: Mapping[str, Any]) -> tuple[str, ...]:
    names = case.get("associated_user_names")
    if not isinstance(names, list):
        return ()
    return tuple({name for name in names if isinstance(name, str)})


def _id_values(case: Mapping[str, Any]) -> list[tuple[str, str]]:
    pairs = set()
    for field in ID_FIELDS:
        stored = case.get(field)
        for value in stored if isinstance(stored, list) else [stored]:
            if isinstance(value, str):
                pairs.add((field, value))
    return list(pairs)


class CaseTable(dict[str, dict[str, Any]]):
    """Cases by id, with the indexes ``list_cases`` reads."""

    def __init__(self) -> None:
        super().__init__()
        self._seq = 0
        #: id -> its position in the dict (kept when a case is replaced, as a dict keeps it)
        self._position: dict[str, int] = {}
        #: (last_updated_at, position, id) of the regular cases, sorted
        self.order: list[tuple[str, int, str]] = []
        #: id -> its entry in ``order``
        self._entry: dict[str, tuple[str, int, str]] = {}
        #: ids whose last_updated_at is not canonical
        self.irregular: set[str] = set()
        #: user name -> ids of the cases whose ``associated_user_names`` hold it
        self.by_user: dict[str, set[str]] = {}
        #: user name -> the entries of ``order`` of that user's regular cases, sorted
        self.user_order: dict[str, list[tuple[str, int, str]]] = {}
        self._users_of: dict[str, tuple[str, ...]] = {}
        #: (id field, value) -> ids of the cases holding it
        self.by_value: dict[tuple[str, str], set[str]] = {}
        self._values_of: dict[str, list[tuple[str, str]]] = {}

    # ------------------------------------------------------------ keeping the indexes

    def __setitem__(self, record_id: str, case: dict[str, Any]) -> None:
        if record_id not in self._position:
            self._position[record_id] = self._seq
            self._seq += 1
        super().__setitem__(record_id, case)
        self.reindex(case, record_id)

    def __delitem__(self, record_id: str) -> None:
        super().__delitem__(record_id)
        self._forget(record_id)
        del self._position[record_id]

    def pop(self, record_id: str, *default: Any) -> Any:
        if record_id in self:
            case = self[record_id]
            del self[record_id]
            return case
        if default:
            return default[0]
        raise KeyError(record_id)

    def clear(self) -> None:
        super().clear()
        self._position.clear()
        self.order.clear()
        self._entry.clear()
        self.irregular.clear()
        self.by_user.clear()
        self.user_order.clear()
        self._users_of.clear()
        self.by_value.clear()
        self._values_of.clear()

    def update(self, *args: Any, **kwargs: Any) -> None:
        for record_id, case in dict(*args, **kwargs).items():
            self[record_id] = case

    def setdefault(self, record_id: str, case: Any = None) -> Any:
        if record_id not in self:
            self[record_id] = case
        return self[record_id]

    def popitem(self) -> tuple[str, dict[str, Any]]:
        record_id = next(reversed(self))
        return record_id, self.pop(record_id)

    def reindex(self, case: Mapping[str, Any], record_id: str | None = None) -> None:
        """After the stored case ``case`` changed in place (its time, its users)."""
        record_id = str(case["id"]) if record_id is None else record_id
        self._forget(record_id)
        stamp = case.get("last_updated_at")
        entry = None
        if isinstance(stamp, str) and CANONICAL.match(stamp):
            entry = (stamp, self._position[record_id], record_id)
            bisect.insort(self.order, entry)
            self._entry[record_id] = entry
        else:
            self.irregular.add(record_id)
        names = _names(case)
        self._users_of[record_id] = names
        for name in names:
            self.by_user.setdefault(name, set()).add(record_id)
            if entry is not None:
                bisect.insort(self.user_order.setdefault(name, []), entry)
        values = _id_values(case)
        self._values_of[record_id] = values
        for pair in values:
            self.by_value.setdefault(pair, set()).add(record_id)

    def _forget(self, record_id: str) -> None:
        entry = self._entry.pop(record_id, None)
        if entry is not None:
            at = bisect.bisect_left(self.order, entry)
            del self.order[at]
        self.irregular.discard(record_id)
        for name in self._users_of.pop(record_id, ()):
            ids = self.by_user.get(name)
            if ids is not None:
                ids.discard(record_id)
                if not ids:
                    del self.by_user[name]
            entries = self.user_order.get(name)
            if entries is not None and entry is not None:
                del entries[bisect.bisect_left(entries, entry)]
                if not entries:
                    del self.user_order[name]
        for pair in self._values_of.pop(record_id, ()):
            holders = self.by_value.get(pair)
            if holders is not None:
                holders.discard(record_id)
                if not holders:
                    del self.by_value[pair]

    # ------------------------------------------------------------ reading

    def key(self, record_id: str) -> tuple[str, int, str]:
        return self._entry[record_id]

    def window(
        self, low: str | None, high: str | None, skip: int, per: int, user: str | None = None
    ) -> tuple[int, list[str]]:
        """How many regular cases (of ``user``, else all) have ``low <= last_updated_at <
        high``, and the ids of ``[skip, skip + per)`` of them, in order."""
        entries = self.order if user is None else self.user_order.get(user, [])
        start = 0 if low is None else bisect.bisect_left(entries, (low,))
        stop = len(entries) if high is None else bisect.bisect_left(entries, (high,))
        if stop <= start:
            return 0, []
        chosen = entries[start + skip : min(stop, start + skip + per)]
        return stop - start, [entry[2] for entry in chosen]

    def walk(self, low: str | None, high: str | None) -> Iterator[str]:
        """Ids of the regular cases with ``low <= last_updated_at < high``, in order."""
        start = 0 if low is None else bisect.bisect_left(self.order, (low,))
        stop = len(self.order) if high is None else bisect.bisect_left(self.order, (high,))
        return (self.order[at][2] for at in range(start, stop))

    def holding(self, field: str, value: str) -> set[str]:
        """Ids of the cases whose id field ``field`` is (or, a list, holds) ``value``."""
        return self.by_value.get((field, value), set())

    def associated(self, names: Iterable[str]) -> set[str]:
        found: set[str] = set()
        for name in names:
            found |= self.by_user.get(name, set())
        return found


class ReferralTable(dict[str, dict[str, Any]]):
    """Referrals by id, and the ids of each case's referrals (a case's listing and a
    referral's update read those, not every referral)."""

    def __init__(self) -> None:
        super().__init__()
        self._seq = 0
        #: id -> its position in the dict (kept when a referral is replaced)
        self._position: dict[str, int] = {}
        self._by_case: dict[str, set[str]] = {}
        self._case_of: dict[str, str] = {}

    def __setitem__(self, referral_id: str, referral: dict[str, Any]) -> None:
        super().__setitem__(referral_id, referral)
        if referral_id not in self._position:
            self._position[referral_id] = self._seq
            self._seq += 1
        previous = self._case_of.pop(referral_id, None)
        if previous is not None:
            self._by_case[previous].discard(referral_id)
        record_id = referral.get("record_id")
        if isinstance(record_id, str):  # a case id is a string: nothing else lists it
            self._case_of[referral_id] = record_id
            self._by_case.setdefault(record_id, set()).add(referral_id)

    def __delitem__(self, referral_id: str) -> None:
        super().__delitem__(referral_id)
        del self._position[referral_id]
        previous = self._case_of.pop(referral_id, None)
        if previous is not None:
            self._by_case[previous].discard(referral_id)

    def clear(self) -> None:
        super().clear()
        self._position.clear()
        self._by_case.clear()
        self._case_of.clear()

    def of_case(self, record_id: str) -> list[dict[str, Any]]:
        """The case's referrals in the dict's order (the order of ``values()``)."""
        ids = sorted(self._by_case.get(record_id, ()), key=self._position.__getitem__)
        return [self[referral_id] for referral_id in ids]
