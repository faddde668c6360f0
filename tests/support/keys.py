"""The manifest signing key of this test session: random, never on disk.

Signatures are on by default, as in production: a registry without a key refuses to register or
load. `tests/conftest.py` puts this key in the environment for the whole session, so every flow,
worker and model server the tests start signs and verifies with it; a test that opens a registry
on a bare store passes `TEST_KEY`.
"""

from __future__ import annotations

import secrets

TEST_KEY_HEX = secrets.token_hex(32)
TEST_KEY = TEST_KEY_HEX.encode()
