"""The loop's Prefect events: one resource per model, one function per event we emit."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect.events import emit_event

if TYPE_CHECKING:
    from tasks.registry.versions import Manifest


def model_resource(name: str) -> dict[str, str]:
    return {"prefect.resource.id": f"mlops.model.{name}", "prefect.resource.name": name}


def emit_model_event(event: str, model_name: str, payload: dict[str, object]) -> None:
    emit_event(event=event, resource=model_resource(model_name), payload=payload)


def announce_registration(manifest: Manifest, reason: str) -> None:
    """`mlops.model.registered`: a new version passed the gate and is stored."""
    emit_model_event(
        "mlops.model.registered",
        manifest.name,
        {
            "version": manifest.version,
            "storage_uri": manifest.storage_uri,
            "sha256": manifest.sha256,
            "metrics": manifest.metrics,
            "reason": reason,
        },
    )
