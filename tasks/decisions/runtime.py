"""The runtime check: can a serving runtime's scikit-learn load a model's pickle?"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict


# -- the runtime's scikit-learn must match the model's ---------------------------------------
class RuntimeVerdict(BaseModel):
    """Can the sklearn serving runtime load this model? With the reason either way."""

    model_config = ConfigDict(frozen=True)
    compatible: bool
    model_sklearn: str | None
    runtime_sklearn: str
    reason: str


def _major_minor(version: str) -> tuple[int, int] | None:
    match = re.match(r"^\s*(\d+)\.(\d+)", version)
    return (int(match[1]), int(match[2])) if match else None


def check_sklearn_runtime(library_versions: Mapping[str, str], runtime: str) -> RuntimeVerdict:
    """Same major.minor or refuse: joblib pickles are not portable across sklearn minors."""
    model = library_versions.get("scikit-learn")
    verdict = {"model_sklearn": model, "runtime_sklearn": runtime}
    if model is None:
        reason = "the manifest records no scikit-learn version, so compatibility is unknown"
        return RuntimeVerdict(compatible=False, reason=reason, **verdict)
    wanted, offered = _major_minor(model), _major_minor(runtime)
    if wanted is None or offered is None:
        bad = model if wanted is None else runtime
        reason = f"scikit-learn version {bad!r} is not of the form major.minor[.patch]"
        return RuntimeVerdict(compatible=False, reason=reason, **verdict)
    if wanted != offered:
        reason = (
            f"model was trained with scikit-learn {model} but the runtime has {runtime}: "
            f"{wanted[0]}.{wanted[1]} != {offered[0]}.{offered[1]}"
        )
        return RuntimeVerdict(compatible=False, reason=reason, **verdict)
    reason = f"scikit-learn {model} and runtime {runtime} share {wanted[0]}.{wanted[1]}"
    return RuntimeVerdict(compatible=True, reason=reason, **verdict)
