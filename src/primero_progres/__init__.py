"""primero-progres: the bridge between UNICEF's Primero v2 and UNHCR's proGres v4 (through DTP)."""

__version__ = "0.1.0"
