"""Realistic synthetic house-price data, with knobs for drift and corruption."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

NEIGHBORHOOD_PREMIUM = {
    "downtown": 1.45,
    "riverside": 1.25,
    "suburbs": 1.0,
    "hillside": 1.15,
    "industrial": 0.75,
}
COLORS = ["white", "grey", "beige", "blue", "red"]


class DriftSpec(BaseModel):
    """How the world changed: bigger/older houses, a new market level, a new neighborhood."""

    model_config = ConfigDict(frozen=True)

    size_shift: float = Field(0.0, description="relative change of the mean size (0.3 = +30%)")
    age_shift_years: float = Field(0.0, description="years added to every house's age")
    price_level: float = Field(1.0, gt=0, description="multiplier on every price (market move)")
    new_category_share: float = Field(0.0, ge=0, le=1, description="share in an unseen area")
    downtown_share: float | None = Field(None, ge=0, le=1, description="share of downtown sales")


class CorruptionSpec(BaseModel):
    """Damage to apply: the data-quality failures a contract must catch."""

    model_config = ConfigDict(frozen=True)

    null_share: float = Field(0.0, ge=0, le=1, description="share of cells set to NaN")
    negative_size_share: float = Field(0.0, ge=0, le=1, description="rows with negative size")
    price_outlier_share: float = Field(0.0, ge=0, le=1, description="prices x1000")


def generate_house_prices(
    rows: int,
    seed: int = 0,
    drift: DriftSpec | None = None,
    corruption: CorruptionSpec | None = None,
) -> pd.DataFrame:
    """A data frame following the default house-price contract (unless drifted or corrupted)."""
    drift = drift or DriftSpec()
    rng = np.random.default_rng(seed)
    size = np.clip(rng.lognormal(np.log(1700 * (1 + drift.size_shift)), 0.35, rows), 300, 14000)
    bedrooms = np.clip(np.round(size / 650 + rng.normal(0, 0.7, rows)), 1, 12).astype(int)
    bathrooms = np.clip(np.round((bedrooms * 0.6 + rng.normal(0.4, 0.4, rows)) * 2) / 2, 1, 10)
    age = np.clip(rng.gamma(2.0, 14.0, rows) + drift.age_shift_years, 0, 200).astype(int)
    lot = np.clip(size * rng.lognormal(1.1, 0.5, rows), 0, 500000)
    distance = np.clip(rng.gamma(2.2, 4.0, rows), 0.2, 99)
    condition = rng.choice([1, 2, 3, 4, 5], rows, p=[0.05, 0.15, 0.4, 0.28, 0.12])
    areas = list(NEIGHBORHOOD_PREMIUM)
    weights = np.array([0.18, 0.17, 0.35, 0.18, 0.12])
    if drift.downtown_share is not None:
        rest = weights[1:] / weights[1:].sum() * (1 - drift.downtown_share)
        weights = np.array([drift.downtown_share, *rest])
    neighborhood = rng.choice(areas, rows, p=weights / weights.sum()).astype(object)
    if drift.new_category_share:
        neighborhood[rng.random(rows) < drift.new_category_share] = "lakeside"
    premium = np.array([NEIGHBORHOOD_PREMIUM.get(area, 1.3) for area in neighborhood])
    price = (
        (55000 + 165 * size + 9000 * bathrooms + 4500 * bedrooms + 0.6 * np.sqrt(lot) * 100)
        * premium
        * (1 - 0.0035 * np.minimum(age, 100))
        * (0.88 + 0.05 * condition)
        * np.exp(-0.012 * distance)
        * drift.price_level
        * rng.lognormal(0, 0.06, rows)
    )
    frame = pd.DataFrame(
        {
            "size_sqft": np.round(size, 1),
            "bedrooms": bedrooms,
            "bathrooms": bathrooms,
            "age_years": age,
            "lot_size_sqft": np.round(lot, 1),
            "distance_to_center_km": np.round(distance, 2),
            "condition": condition,
            "neighborhood": neighborhood,
            "exterior_color": rng.choice(COLORS, rows),
            "price": np.round(np.clip(price, 20000, 5000000), -2),
        }
    )
    return corrupt(frame, corruption, rng) if corruption else frame


def corrupt(frame: pd.DataFrame, spec: CorruptionSpec, rng: np.random.Generator) -> pd.DataFrame:
    """Apply the requested damage to a copy of the frame."""
    frame = frame.copy()
    rows = len(frame)
    if spec.null_share:
        mask = rng.random(frame.shape) < spec.null_share
        frame = frame.mask(mask)
    if spec.negative_size_share:
        frame.loc[rng.random(rows) < spec.negative_size_share, "size_sqft"] *= -1
    if spec.price_outlier_share:
        frame.loc[rng.random(rows) < spec.price_outlier_share, "price"] *= 1000
    return frame
