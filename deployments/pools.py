"""The work pools of each target: the local process pool and the Kubernetes pool."""

from __future__ import annotations

import json
import sys
from copy import deepcopy
from typing import Any

from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
from prefect.exceptions import ObjectNotFound

from deployments.changes import Change
from deployments.targets import KUBERNETES_POOL, LOCAL_POOL, PROJECT_ROOT, Target

K8S_TEMPLATE = PROJECT_ROOT / "infra" / "prefect" / "kubernetes-base-job-template.json"


class PoolConflict(RuntimeError):
    """A pool of the wanted name exists with another type; Prefect cannot change a pool's type."""


def local_pool_template() -> dict[str, Any]:
    """The process pool's default job template, with the flow-run command of the local stack
    (infra/flow_run_launcher.py: one interpreter fewer per run than Prefect's default)."""
    from prefect.workers.process import ProcessWorker

    template = ProcessWorker.get_default_base_job_template()
    command = template["variables"]["properties"]["command"]
    command["default"] = f"{sys.executable} -m infra.flow_run_launcher"
    return template


def kubernetes_pool_template(image: str | None = None) -> dict[str, Any]:
    """infra/'s job template; with `image`, that image is the default of every flow run."""
    template = json.loads(K8S_TEMPLATE.read_text())
    if image is not None:
        template["variables"]["properties"]["image"]["default"] = image
    return template


def ensure_pools(target: Target) -> list[Change]:
    """The target's pools. Locally: created when missing, as before. For Kubernetes: created,
    or brought back to infra/'s template with the target's image as the default."""
    if target.image is None:
        wanted = [(LOCAL_POOL, "process", local_pool_template())]
        if K8S_TEMPLATE.exists():
            wanted.append((KUBERNETES_POOL, "kubernetes", kubernetes_pool_template()))
        return [
            _ensure_pool(name, kind, template, reconcile=False) for name, kind, template in wanted
        ]
    template = kubernetes_pool_template(target.image)
    return [_ensure_pool(target.pool, "kubernetes", template, reconcile=True)]


def _ensure_pool(name: str, kind: str, template: dict[str, Any], reconcile: bool) -> Change:
    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(name=name, type=kind, base_job_template=template)
            )
            return Change("work pool", name, "created", kind)
        if pool.type != kind:
            raise PoolConflict(
                f"work pool {name!r} exists with type {pool.type!r}, not {kind!r}: "
                f"delete it (prefect work-pool delete {name}) and run the set-up again"
            )
        if not reconcile or pool.base_job_template == template:
            return Change("work pool", name, "unchanged")
        client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))
        return Change("work pool", name, "updated", _what_differs(pool.base_job_template, template))


def _what_differs(before: dict[str, Any], after: dict[str, Any]) -> str:
    old, new = _default_image(before), _default_image(after)
    rest_before, rest_after = _without_image(before), _without_image(after)
    if old != new and rest_before == rest_after:
        return f"default image {old} -> {new}"
    what = f"base job template from {K8S_TEMPLATE.relative_to(PROJECT_ROOT)}"
    return what + (f", default image {old} -> {new}" if old != new else "")


def _default_image(template: dict[str, Any]) -> str | None:
    return template.get("variables", {}).get("properties", {}).get("image", {}).get("default")


def _without_image(template: dict[str, Any]) -> dict[str, Any]:
    template = deepcopy(template)
    template.get("variables", {}).get("properties", {}).get("image", {}).pop("default", None)
    return template
