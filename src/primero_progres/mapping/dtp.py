"""DTP wire constants: request types (which are also DTP's endpoint names) and feedback statuses.

These name DTP's own endpoints and states (its protocol, the same for every
country). This module is the one place the bridge spells them: the mapping,
the flows, the inbox, the DTP client and the settings read them from here.
Everything a country localizes is in the profile. The DTP simulator keeps its
own copy on purpose: it plays the other side of the wire, so a wrong constant
here cannot make both sides agree.
"""

from __future__ import annotations

PROGRES_REFERRAL_REQUEST = "PrimeroOutgoingReferral"
PROGRES_DECISION_REQUEST = "PrimeroIncomingReferralDecision"
REFERRAL_REQUEST = "ReceiveIncomingReferral"
DECISION_REQUEST = "ReceiveDecisionOutgoingReferral"
FEEDBACK_REQUEST = "Feedback"
PENDING_ACKNOWLEDGEMENT = "Pending Acknowledgement"
DELIVERY_FAIL = "Delivery Fail"
