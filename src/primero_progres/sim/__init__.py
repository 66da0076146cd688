"""Simulators of the two peers (Primero v2 and UNHCR's DTP), served over real HTTP for tests and the demo."""
