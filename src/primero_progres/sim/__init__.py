"""Simulators of the peers (Primero v2, UNHCR's DTP and PING), served over real HTTP.

They back the tests and the demo: the bridge is always exercised over the network.
"""
