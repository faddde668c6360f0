"""The one settings object: built at run time from MLOPS_* variables, overridable per run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_CONTRACT = Path(__file__).parent / "contracts" / "house_prices.yaml"


class Settings(BaseSettings):
    """Everything the loop needs to know; every field works locally as it is."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_", extra="forbid", validate_default=True)

    # Object store
    s3_endpoint: str | None = Field(
        None, description="S3 endpoint URL (http://host:port); None starts a local server"
    )
    s3_access_key: SecretStr | None = Field(None, description="S3 access key (env or Secret block)")
    s3_secret_key: SecretStr | None = Field(None, description="S3 secret key (env or Secret block)")
    s3_region: str = Field("us-east-1", description="S3 region sent with signed requests")
    s3_secret_block: str | None = Field(
        None, description="name of a Prefect Secret block holding {access_key, secret_key}"
    )
    s3_retries: int = Field(3, ge=0, le=10, description="attempts after the first on S3 errors")
    s3_timeout_s: float = Field(5.0, gt=0, le=120, description="connect/read timeout per S3 call")
    bucket: str = Field("mlops", min_length=3, max_length=63, description="registry bucket")

    # Model and data
    model_name: str = Field(
        "house-price", pattern=r"^[a-z0-9][a-z0-9-]{1,62}$", description="registered model name"
    )
    contract_path: Path = Field(DEFAULT_CONTRACT, description="data contract YAML for the data set")
    data_uri: str | None = Field(
        None, description="training data: a CSV path or s3://bucket/key URI (flows may override)"
    )
    git_revision: str | None = Field(
        None, description="code revision recorded in manifests; default: `git rev-parse HEAD`"
    )
    seed: int = Field(42, ge=0, description="seed for splits, training and sampling")
    holdout_fraction: float = Field(0.2, gt=0.05, lt=0.5, description="share of rows held out")

    # Quality gate
    min_r2: float = Field(0.85, ge=-1, le=1, description="lowest holdout R² a candidate may have")
    max_mape: float = Field(0.25, gt=0, description="highest holdout MAPE (0.25 = 25%)")
    max_rmse: float | None = Field(None, gt=0, description="highest holdout RMSE, target units")
    champion_margin: float = Field(
        0.02, ge=0, le=1, description="candidate RMSE may exceed the champion's by this share"
    )
    slice_error_factor: float = Field(
        2.0, ge=1, description="a slice's MAPE may be at most this many times the overall MAPE"
    )
    min_slice_rows: int = Field(30, ge=1, description="slices smaller than this are not judged")
    invariance_tolerance: float = Field(
        0.05, ge=0, description="largest mean relative price change an irrelevant edit may cause"
    )

    # Serving
    serving_target: Literal["local", "kubernetes"] = Field(
        "local", description="where models are served: the local KServe server or a cluster"
    )

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not value.replace("-", "").replace(".", "").isalnum() or value != value.lower():
            raise ValueError(f"bucket {value!r} is not a valid S3 bucket name")
        return value


def get_settings(**overrides: Any) -> Settings:
    """Build the settings now (never at import), with per-run overrides on top of the env."""
    return Settings(**{key: value for key, value in overrides.items() if value is not None})
