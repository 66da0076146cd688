"""HTTP surface: the DTP inbox, health, readiness and metrics."""

from .app import create_app

__all__ = ["create_app"]
