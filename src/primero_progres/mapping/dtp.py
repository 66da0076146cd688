"""DTP wire constants: request types and feedback statuses.

These name DTP's own endpoints and states (its protocol, the same for every
country), so they live here; everything a country localizes is in the profile.
"""

from __future__ import annotations

PROGRES_REFERRAL_REQUEST = "PrimeroOutgoingReferral"
PROGRES_DECISION_REQUEST = "PrimeroIncomingReferralDecision"
REFERRAL_REQUEST = "ReceiveIncomingReferral"
DECISION_REQUEST = "ReceiveDecisionOutgoingReferral"
FEEDBACK_REQUEST = "Feedback"
PENDING_ACKNOWLEDGEMENT = "Pending Acknowledgement"
DELIVERY_FAIL = "Delivery Fail"
