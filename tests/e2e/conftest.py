"""End-to-end tests over real loopback HTTP.

The fixtures ``stack`` and ``pg_stack`` live in tests/conftest.py.
"""
