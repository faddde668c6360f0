"""`spec_for`: the manifest content a test registers a model with, written once."""

from __future__ import annotations

from typing import Any

from tasks.data.contract import DataContract
from tasks.registry.versions import DataSummary, ModelSpec


def spec_for(
    contract: DataContract | None = None,
    *,
    rows: int = 3,
    digest: str = "d",
    metrics: dict[str, float] | None = None,
    **fields: Any,
) -> ModelSpec:
    """A ModelSpec for a test model: over the contract's features (with this machine's library
    versions, as the serving side checks them) or, without a contract, a one-feature x → y model.
    Any other ModelSpec field may be given."""
    if contract is None:
        base: dict[str, Any] = {
            "features": ["x"],
            "target": "y",
            "contract": {"name": "t"},
            "library_versions": {"scikit-learn": "1"},
        }
    else:
        from tasks.training.model import library_versions

        base = {
            "features": contract.feature_names,
            "target": contract.target.name,
            "contract": {"name": contract.name, "digest": contract.digest()},
            "library_versions": library_versions(),
        }
    defaults = {"git_revision": "test", "params": {}}
    return ModelSpec(
        **{**base, **defaults, **fields},
        metrics={"r2": 0.9} if metrics is None else metrics,
        data=DataSummary(digest=digest, rows=rows),
    )
