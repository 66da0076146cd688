"""Alerts: the conditions operators must hear about within minutes, sent through apprise with
IDs, codes and counts only (docs/alerts.md).

``health`` records what each process sees of the peers, ``monitoring`` reads what the checks
and the metrics look at, ``conditions`` decides (pure), ``notify`` sends, ``service`` runs the
check under the ``alerts`` lease.
"""

from .health import PeerHealthRecorder
from .service import Alerter

__all__ = ["Alerter", "PeerHealthRecorder"]
