"""A model that slips past every check but labelled truth, for the scenario and its tests.

Kept in its own small module (numpy only): the model server unpickles it by this import path.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


class Blurred:
    """A fitted model whose every answer is off by a random factor with mean 1: on average its
    predictions look like the original's (no shift to see), but its error per house is far larger."""

    def __init__(self, model: object, spread: float) -> None:
        self.model, self.spread = model, spread

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        predictions = np.asarray(self.model.predict(frame), dtype=float)
        noise = np.random.default_rng().normal(0.0, self.spread, len(predictions))
        return predictions * np.exp(noise - self.spread**2 / 2)
