"""What every part of the registry shares: its error base, and who is acting."""

from __future__ import annotations

import getpass
import os
import socket


class RegistryError(RuntimeError):
    """The registry refused an operation; the message says why."""


def actor() -> str:
    """Who is acting: the Prefect flow run when there is one, else user@host."""
    run = os.environ.get("PREFECT__FLOW_RUN_ID")
    return f"flow-run/{run}" if run else f"{getpass.getuser()}@{socket.gethostname()}"
