"""The benchmark's baseline: one registry version in a minimal kserve.Model, no router, no logs.

Shaped like kserve's own sklearnserver model, so `bench/serving.py` measures what the canary
router and the serving logs add on top of plain KServe serving the same model the same way.
"""

from __future__ import annotations

from kserve import Model

from tasks.modelserver.model import predict_rows
from tasks.registry.versions import ModelRegistry


class PlainModel(Model):
    """One version, no router, no logs: the baseline the benchmark compares the router with."""

    def __init__(self, registry: ModelRegistry, version: int) -> None:
        super().__init__(registry.name)
        self.registry, self.version = registry, version
        self._model: object | None = None
        self._features: list[str] = []

    def load(self) -> bool:
        manifest, self._model = self.registry.load(self.version)
        self._features = list(manifest.features)
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        instances = payload["instances"]
        rows = [[i[f] for f in self._features] if isinstance(i, dict) else i for i in instances]
        return {"predictions": predict_rows(self._model, rows, self._features)}
