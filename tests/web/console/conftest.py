"""Fixtures of the console's browser tests (defined in console_helpers.py)."""

from console_helpers import browser, console, ping_console, shots

__all__ = ["browser", "console", "ping_console", "shots"]
