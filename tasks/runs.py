"""Prefect run helpers shared by every stage: the task decorator we use, and run names."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from prefect import task as prefect_task
from prefect.cache_policies import NO_CACHE

# Inputs are data frames and live S3 clients: hashing them for a cache key is waste (or fails).
task = partial(prefect_task, cache_policy=NO_CACHE)


def run_name(stage: str) -> Callable[[], str]:
    """A flow-run name saying what the run is about: "<stage> <model> (<reason, data or version>)"."""

    def name() -> str:
        from prefect.runtime import flow_run

        from tasks.settings import get_settings

        parameters = flow_run.parameters
        model = parameters.get("model_name") or get_settings().model_name
        about = next(
            (str(parameters[key]) for key in ("reason", "data", "version") if parameters.get(key)),
            "",
        )
        return f"{stage} {model} ({about})" if about else f"{stage} {model}"

    return name
