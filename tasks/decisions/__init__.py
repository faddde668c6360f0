"""Every pure decision: gate, canary verdict, drift verdict, routing, rollout plan, runtime check.

No Prefect, no I/O, no network client (tests/unit/test_layering.py holds it to that)."""
