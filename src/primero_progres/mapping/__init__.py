"""Pure transforms between DTP messages and Primero records, one module per flow.

Nothing here does I/O, reads the clock or logs payloads: the flows pass in the
payload, the profile and the date, and get back results or typed errors.
"""
