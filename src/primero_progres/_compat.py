"""Small shared type aliases."""

from typing import Literal

Peer = Literal["primero", "dtp", "ping"]
