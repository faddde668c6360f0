"""Reading an InferenceService: which versions it serves, at what split, and whether it is ready.

Pure functions of the object as the API server returns it (spec, our labels and annotations,
status.components.predictor): no client here.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from tasks.decisions.rollout import ServingState
from tasks.kserve.errors import KServeError
from tasks.kserve.manifests import (
    ANN_STABLE_URI,
    ANN_STABLE_VERSION,
    LABEL_VERSION,
    Obj,
    ServedModel,
    served_from_container,
)


# -- pure reading of an InferenceService -------------------------------------------------------
class DesiredSplit(BaseModel):
    """What the spec asks for: which version is stable, which (if any) is the canary."""

    model_config = ConfigDict(frozen=True)
    stable: ServedModel
    canary: ServedModel | None
    percent: int | None


class Readiness(BaseModel):
    model_config = ConfigDict(frozen=True)
    ready: bool
    reason: str


def desired_split(obj: Obj) -> DesiredSplit:
    """Which version is stable and which (if any) is the canary, from our labels/annotations."""
    meta, predictor = obj.get("metadata", {}), obj.get("spec", {}).get("predictor", {})
    labels, notes = meta.get("labels") or {}, meta.get("annotations") or {}
    try:
        current = ServedModel(
            version=int(labels[LABEL_VERSION]),
            storage_uri=served_from_container(predictor["containers"][0]),
        )
        percent = predictor.get("canaryTrafficPercent")
        if percent is None or ANN_STABLE_VERSION not in notes:
            return DesiredSplit(stable=current, canary=None, percent=percent)
        stable = ServedModel(
            version=int(notes[ANN_STABLE_VERSION]), storage_uri=notes[ANN_STABLE_URI]
        )
    except (KeyError, ValueError, TypeError, IndexError) as error:
        raise KServeError(
            f"InferenceService {meta.get('namespace')}/{meta.get('name')} is not one this "
            f"project manages (missing or bad {error}): expected the {LABEL_VERSION} label, "
            "the predictor container's --storage-uri and, during a canary, the stable-* annotations"
        ) from error
    if stable.version == current.version:  # rolled back: pinned to the stable version
        return DesiredSplit(stable=current, canary=None, percent=percent)
    return DesiredSplit(stable=stable, canary=current, percent=percent)


def readiness(obj: Obj) -> Readiness:
    """Ready only when the controller has seen this generation, says Ready, and the newest
    revision is the ready one (a stale Ready from before the last patch does not count)."""
    generation = obj.get("metadata", {}).get("generation")
    status = obj.get("status") or {}
    observed = status.get("observedGeneration")
    if generation is not None and (observed is None or observed < generation):
        return Readiness(ready=False, reason=f"generation {generation} not yet observed")
    ready = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), None)
    if ready is None:
        return Readiness(ready=False, reason="no Ready condition yet")
    if ready.get("status") != "True":
        why = f"{ready.get('reason', '')} {ready.get('message', '')}".strip()
        return Readiness(ready=False, reason=f"Ready={ready.get('status')}: {why}")
    predictor = status.get("components", {}).get("predictor", {})
    created, latest = predictor.get("latestCreatedRevision"), predictor.get("latestReadyRevision")
    if created and created != latest:
        return Readiness(ready=False, reason=f"revision {created} created, {latest} is ready")
    return Readiness(ready=True, reason=f"Ready at generation {generation}")


def serving_state(obj: Obj, model_name: str) -> ServingState:
    """Spec (which versions) plus status.components.predictor (revisions, traffic)."""
    split = desired_split(obj)
    predictor = (obj.get("status") or {}).get("components", {}).get("predictor", {})
    traffic = predictor.get("traffic", [])
    to_latest = [t.get("percent", 0) for t in traffic if t.get("latestRevision")]
    split_seen = len(traffic) > 1 and to_latest
    percent = (to_latest[0] if split_seen else split.percent or 0) if split.canary else 0
    keys = ("latestReadyRevision", "latestCreatedRevision", "latestRolledoutRevision")
    detail: dict[str, object] = {key: predictor.get(key) for key in keys}
    detail |= {
        "previousRolledoutRevision": predictor.get("previousRolledoutRevision"),
        "traffic": traffic,
        "desired_canary_percent": split.percent,
        "storage_uri": (split.canary or split.stable).storage_uri,
        "url": (obj.get("status") or {}).get("url"),
        "reason": readiness(obj).reason,
    }
    return ServingState(
        model_name=model_name,
        stable_version=split.stable.version,
        canary_version=split.canary.version if split.canary else None,
        canary_percent=percent,
        ready=readiness(obj).ready,
        detail=detail,
    )
