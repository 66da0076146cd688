"""Simulators of the two peers (Primero v2 and UNHCR's DTP), served over real HTTP.

They back the tests and the demo: the bridge is always exercised over the network.
"""
