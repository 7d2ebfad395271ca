"""A local emulation of the Vonage Conversation API v1 read endpoints (see README.md).

Standard library HTTP plus PyJWT/cryptography; no Django. Entry points: ``python -m sandbox``
(keygen, serve) and ``sandbox.testing.running_sandbox`` for tests.
"""
