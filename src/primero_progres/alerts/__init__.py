"""Alerts: the conditions operators must hear about within minutes, sent through apprise with
IDs, codes and counts only (docs/alerts.md).

``monitoring`` reads what the checks and the metrics look at (among it ``store.peers``, which
``flows.observed`` writes and the console shows), ``conditions`` decides (pure), ``notify``
sends, ``service`` runs the check under the ``alerts`` lease.
"""

from .service import Alerter

__all__ = ["Alerter"]
