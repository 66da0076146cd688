"""primero-progres: the bridge between UNICEF's Primero v2 and UNHCR's proGres v4 (through DTP)."""

__version__ = "0.1.0"

FLOWS = ("progres-referral", "primero-decision", "primero-referral", "progres-decision")
