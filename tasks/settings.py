"""The one settings object: built at run time from MLOPS_* variables, overridable per run."""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from tasks.drift_verdict import DriftPolicy

DEFAULT_CONTRACT = Path(__file__).parent / "contracts" / "house_prices.yaml"


class Settings(BaseSettings):
    """Everything the loop needs to know; every field works locally as it is."""

    model_config = SettingsConfigDict(
        env_prefix="MLOPS_", extra="forbid", validate_default=True, allow_inf_nan=False
    )

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
    manifest_key: SecretStr | None = Field(
        None, description="HMAC key that signs manifests; when set, unsigned versions are refused"
    )
    manifest_key_block: str | None = Field(
        None, description="name of a Prefect Secret block holding the manifest HMAC key"
    )

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

    # Drift
    drift_method: Literal["psi", "jensenshannon"] = Field(
        "psi", description="per-column drift statistic (named, never Evidently's default)"
    )
    drift_threshold: float = Field(0.1, gt=0, description="a column drifts above this score")
    drift_share: float = Field(
        0.3, gt=0, le=1, description="share of drifted features that means data-set drift"
    )

    # Kubeflow
    kfp_host: str | None = Field(None, description="KFP API host; set it to retrain on Kubeflow")
    kfp_timeout_s: float = Field(3600, gt=0, description="longest wait for a KFP retrain run")
    kfp_poll_s: float = Field(5, gt=0, le=300, description="seconds between KFP run status polls")

    # Serving
    serving_target: Literal["local", "kubernetes"] = Field(
        "local", description="where models are served: the local KServe server or a cluster"
    )
    serving_url: str = Field(
        "http://127.0.0.1:8080", description="the local model server (its admin API included)"
    )
    canary_percent: int = Field(10, ge=1, le=50, description="share of traffic a new canary gets")
    canary_poll_s: float = Field(1.0, gt=0, le=60, description="seconds between canary looks")
    canary_max_wait_s: float = Field(
        600, gt=0, description="an undecided canary is rolled back after this long"
    )
    kserve_namespace: str = Field("mlops", description="namespace of the InferenceService")
    kserve_service: str = Field("house-price", description="InferenceService name")
    kserve_logger_url: str = Field(
        "http://mlops-inference-logger.mlops.svc.cluster.local",
        description="sink of KServe's inference logger (serving logs)",
    )
    kserve_sklearn_version: str = Field(
        "1.9", description="scikit-learn major.minor inside the cluster's sklearn runtime"
    )
    kube_context: str | None = Field(None, description="kubeconfig context outside a cluster")

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not value.replace("-", "").replace(".", "").isalnum() or value != value.lower():
            raise ValueError(f"bucket {value!r} is not a valid S3 bucket name")
        return value

    @field_validator("s3_endpoint", "serving_url")
    @classmethod
    def _http_address(cls, value: str | None, info: ValidationInfo) -> str | None:
        # A typo here surfaces otherwise only at the first call, as a confusing network error.
        bare = info.field_name == "s3_endpoint" and "://" not in (value or "")
        url = urlparse(f"http://{value}" if bare else value or "")
        try:
            url.port  # noqa: B018 - raises on a port outside 0-65535
        except ValueError:
            url = url._replace(netloc="")
        if value is not None and (
            url.scheme not in {"http", "https"}
            or not url.hostname
            or url.path not in {"", "/"}
            or any(character.isspace() for character in value)
        ):
            raise ValueError(f"{value!r} is not an http(s)://host[:port] address")
        return value

    def drift_policy(self) -> DriftPolicy:
        from tasks.drift_verdict import DriftPolicy

        return DriftPolicy(
            method=self.drift_method,
            numeric_threshold=self.drift_threshold,
            categorical_threshold=self.drift_threshold,
            drift_share=self.drift_share,
            seed=self.seed,
        )


# MLOPS_* variables that are not settings: read by the tooling around the settings object.
NOT_SETTINGS = frozenset(
    {"MLOPS_CACHE_DIR", "MLOPS_RELIABILITY_REPORT", "MLOPS_SECRET_VARS", "MLOPS_REASON",
     "MLOPS_TRAINING_S3_ACCESS_KEY", "MLOPS_TRAINING_S3_SECRET_KEY"}
)  # fmt: skip
LOG = logging.getLogger(__name__)


def unknown_variables(environ: Mapping[str, str]) -> dict[str, str | None]:
    """MLOPS_* variables that set nothing (a typo?), each with the setting it most resembles."""
    known = {f"MLOPS_{name.upper()}" for name in Settings.model_fields}
    unknown = sorted(k for k in environ if k.startswith("MLOPS_") and k not in known | NOT_SETTINGS)
    return {k: next(iter(difflib.get_close_matches(k, known, n=1)), None) for k in unknown}


def get_settings(**overrides: Any) -> Settings:
    """Build the settings now (never at import), with per-run overrides on top of the env."""
    for variable, closest in unknown_variables(os.environ).items():
        hint = f"; did you mean {closest}?" if closest else ""
        LOG.warning("%s is not a setting and is ignored%s", variable, hint)
    return Settings(**{key: value for key, value in overrides.items() if value is not None})
