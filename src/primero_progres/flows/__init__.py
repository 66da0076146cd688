"""The four flows: they orchestrate the mapping, the peers and the store.

``build_handlers`` gives the worker one async handler per job kind;
``poll_triggers`` gives the scheduler the polling flows and their intervals.
"""

from __future__ import annotations

from typing import Any


def build_handlers(settings: Any, store: Any) -> dict[str, Any]:
    """Job kind -> handler. Filled in as the flows land."""
    return {}


def poll_triggers(settings: Any) -> dict[str, float]:
    """Polling flow name -> interval in seconds."""
    return {}
