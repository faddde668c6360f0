"""Small real house-price models for the tests that need registered versions to serve.

Training the project's pipeline on 1,500 rows takes several seconds on a busy 2-core machine,
and the canary and Prefect-fault tests each register the same three versions (two good ones and
one that prices every house too high). `HouseModels` trains each once per session (the
`house_models` fixture in tests/conftest.py); every test still registers them in its own,
fresh registry. A test that is about training itself (determinism, the retrain flow) trains its
own model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tasks.data.contract import DataContract
from tasks.data.loading import data_digest
from tasks.data.synthetic import generate_house_prices
from tasks.registry.versions import ModelRegistry
from tasks.training.model import train_model
from tests.support.specs import spec_for

ROWS = 1500


@dataclass(frozen=True)
class HouseModel:
    model: object
    digest: str  # of the training frame
    rows: int


@dataclass
class HouseModels:
    """Models keyed by (seed, price_factor): the seed picks the data and the training seed."""

    contract: DataContract
    trained: dict[tuple[int, float], HouseModel] = field(default_factory=dict)

    def get(self, seed: int, price_factor: float = 1.0) -> HouseModel:
        """A real model; price_factor != 1 makes one that prices every house wrongly."""
        key = (seed, price_factor)
        if key not in self.trained:
            frame = generate_house_prices(ROWS, seed=seed)
            frame["price"] *= price_factor
            model = train_model(frame, self.contract, seed=seed).model
            self.trained[key] = HouseModel(model, data_digest(frame), len(frame))
        return self.trained[key]


def register(registry: ModelRegistry, models: HouseModels, seed: int, price_factor: float) -> int:
    """Register the (seed, price_factor) model in `registry`; its version number."""
    trained, contract = models.get(seed, price_factor), models.contract
    spec = spec_for(contract, digest=trained.digest, rows=trained.rows)
    return registry.register(trained.model, spec).version
