"""The local pool's flow-run command: Prefect's engine in a session of its own, started directly.

By default Prefect 3.9's process worker starts each flow run through a workspace supervisor, an
interpreter that imports Prefect only to exec a second one that imports it again: about 1.5 s of
every run on two cores. The local stack needs no workspace resolution (its deployments pull by
`set_working_directory`, which the engine runs itself), so its pool's `command` is this module:
one tiny interpreter that starts `python -m prefect.engine`. The engine gets a session of its
own, as the supervisor gave it, so losing the worker's process group does not kill the run (it
crashes at its next log line, see tests/reliability/test_faults_prefect.py), and the worker's
SIGTERM or SIGINT (a cancellation) is passed on to it.
"""

from __future__ import annotations

import signal
import subprocess
import sys


def main() -> int:
    engine = subprocess.Popen([sys.executable, "-m", "prefect.engine"], start_new_session=True)

    def forward(signum: int, _frame: object) -> None:
        engine.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    return engine.wait()


if __name__ == "__main__":
    sys.exit(main())
