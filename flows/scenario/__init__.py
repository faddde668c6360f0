"""The demo scenario: the self-healing loop played on the local stack, and what it shows."""
