"""Which cases and referrals a user sees, by the role's scope (its group permission).

Cases follow ``Search::SearchScope`` (``app/services/search/search_scope.rb``): ``self`` sees
cases whose ``associated_user_names`` hold the user, ``agency`` those associated with a user
of the same agency, ``group`` those associated with a user sharing a user group, ``all``
every case. Referrals follow ``Transitionable#referrals_for_user``
(``app/models/concerns/transitionable.rb``); the simulated role may view referrals.

A user's agency is its ``agency_id``, its groups its ``user_group_unique_ids`` (as seeded).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .primero_config import Scope

Users = Mapping[str, Mapping[str, Any]]
ACTIVE = ("in_progress", "accepted")


def _agency(users: Users, user_name: Any) -> Any:
    user = users.get(user_name) if isinstance(user_name, str) else None
    return user.get("agency_id") if user else None


def _groups(users: Users, user_name: Any) -> set[str]:
    user = users.get(user_name) if isinstance(user_name, str) else None
    groups = user.get("user_group_unique_ids") if user else None
    return {g for g in groups if isinstance(g, str)} if isinstance(groups, list) else set()


def _associated(case: Mapping[str, Any]) -> list[Any]:
    names = case.get("associated_user_names")
    return names if isinstance(names, list) else []


def case_in_scope(case: Mapping[str, Any], user_name: str, scope: Scope, users: Users) -> bool:
    if scope == "all":
        return True
    associated = _associated(case)
    if scope == "self":
        return user_name in associated
    if scope == "agency":
        mine = _agency(users, user_name)
        return mine is not None and any(_agency(users, n) == mine for n in associated)
    mine_groups = _groups(users, user_name)
    return any(mine_groups & _groups(users, n) for n in associated)


def referrals_for_user(
    case: Mapping[str, Any],
    referrals: Iterable[Mapping[str, Any]],
    user_name: str,
    scope: Scope,
    users: Users,
) -> list[Mapping[str, Any]]:
    """The case's referrals this user may list."""
    referrals = list(referrals)
    owner = case.get("owned_by")
    if scope == "all" or owner == user_name:
        return referrals
    if scope == "self":
        return [r for r in referrals if r.get("transitioned_to") == user_name]
    if scope == "agency":
        mine = _agency(users, user_name)
        if mine is not None and _agency(users, owner) == mine:
            return referrals
        return [r for r in referrals if r.get("transitioned_to_agency") == mine]
    mine_groups = _groups(users, user_name)
    if mine_groups & _groups(users, owner):
        return referrals
    return [r for r in referrals if mine_groups & _groups(users, r.get("transitioned_to"))]
