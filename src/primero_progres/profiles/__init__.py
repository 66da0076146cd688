"""Mapping profiles: the localized tables, codes and defaults the transforms use."""

from .loader import (
    BUILT_IN,
    ProfileError,
    ProfileProblem,
    check_profile,
    load_profile,
    profile_sha256,
)
from .schema import Profile, profile_json_schema

__all__ = [
    "BUILT_IN",
    "Profile",
    "ProfileError",
    "ProfileProblem",
    "check_profile",
    "load_profile",
    "profile_json_schema",
    "profile_sha256",
]
