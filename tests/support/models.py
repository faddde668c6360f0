"""Small real house-price models for the tests that need registered versions to serve."""

from __future__ import annotations

from tasks.data.contract import DataContract
from tasks.data.loading import data_digest
from tasks.data.synthetic import generate_house_prices
from tasks.registry.versions import DataSummary, ModelRegistry, ModelSpec
from tasks.training.model import library_versions, train_model


def register(
    registry: ModelRegistry, contract: DataContract, seed: int, price_factor: float
) -> int:
    """A real model; price_factor != 1 makes one that prices every house wrongly."""
    frame = generate_house_prices(1500, seed=seed)
    frame["price"] *= price_factor
    model = train_model(frame, contract, seed=seed).model
    spec = ModelSpec(
        features=contract.feature_names,
        target="price",
        metrics={"r2": 0.9},
        data=DataSummary(digest=data_digest(frame), rows=len(frame)),
        contract={"name": contract.name},
        git_revision="test",
        params={},
        library_versions=library_versions(),
    )
    return registry.register(model, spec).version
