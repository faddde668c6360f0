"""Wall and CPU seconds and peak resident memory of one step in this process (Linux: /proc/self).

The peak is VmHWM after the high-water mark is reset through /proc/self/clear_refs, not
ru_maxrss: Linux carries a spawning process's high-water mark into its child's ru_maxrss, and
tracemalloc slows allocation-heavy code and misses what native libraries allocate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def memory_mib() -> dict[str, float]:
    """This process's resident set now (VmRSS) and its high-water mark (VmHWM), in MiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        fields = dict(line.split(":", 1) for line in status if line.startswith(("VmRSS", "VmHWM")))
    return {key: int(value.split()[0]) / 1024 for key, value in fields.items()}


def measured_step(action: Callable[[], T]) -> tuple[T, dict[str, float]]:
    """`action()`'s result, and its wall seconds, CPU seconds (all threads), RSS at its start
    and peak RSS while it ran."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
        refs.write("5")  # reset VmHWM to the current RSS
    before = memory_mib()["VmRSS"]
    start, cpu_start = time.perf_counter(), time.process_time()
    result = action()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    peak = memory_mib()["VmHWM"]
    return result, {"seconds": seconds, "cpu_seconds": cpu, "start_mib": before, "peak_mib": peak}
