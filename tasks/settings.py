"""The one settings object: built at run time from MLOPS_* variables, overridable per run."""

from __future__ import annotations

import difflib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlparse

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from tasks.decisions.canary import CanaryPolicy
from tasks.decisions.drift import DriftPolicy
from tasks.decisions.gate import GatePolicy
from tasks.decisions.guard import GuardPolicy
from tasks.images import checked_image
from tasks.training.policy import TrainingPolicy, TrainingSetPolicy

DEFAULT_CONTRACT = Path(__file__).parent / "data" / "contracts" / "house_prices.yaml"


class Settings(BaseSettings):
    """Everything the loop needs to know; every field works locally as it is."""

    model_config = SettingsConfigDict(
        env_prefix="MLOPS_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
        allow_inf_nan=False,
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
        None, description="HMAC key that signs manifests and verifies them before any load"
    )
    manifest_key_block: str | None = Field(
        None, description="name of a Prefect Secret block holding the manifest HMAC key"
    )
    allow_unsigned: bool = Field(
        False,
        description="without a manifest key, register and load unsigned versions (insecure; "
        "warns on every load); otherwise a registry without a key refuses",
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

    # Policies: each field declared once, in its policy (tasks/decisions, tasks/training/policy.py).
    # Set one as MLOPS_<POLICY>__<FIELD> (e.g. MLOPS_GATE__MIN_R2); the flat names of earlier
    # releases (MLOPS_MIN_R2, MLOPS_DRIFT_THRESHOLD, ...) still work: see LEGACY_NAMES.
    gate: GatePolicy = Field(default_factory=GatePolicy, description="the quality gate")
    canary: CanaryPolicy = Field(default_factory=CanaryPolicy, description="the canary verdict")
    drift: DriftPolicy = Field(default_factory=DriftPolicy, description="the drift verdict")
    guard: GuardPolicy = Field(
        default_factory=GuardPolicy, description="the watch over a champion after promotion"
    )
    training: TrainingPolicy = Field(
        default_factory=TrainingPolicy, description="the estimator's parameters"
    )
    training_set: TrainingSetPolicy = Field(
        default_factory=TrainingSetPolicy,
        description="a drift-triggered retrain's data: labelled serving traffic (+ reference)",
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
    serving_records: Path | None = Field(
        None,
        description="folder of local model servers' address records (<model>.json, written by "
        "`mlops serve`): a model with one is driven at its own server, any other at serving_url",
    )
    canary_percent: int = Field(10, ge=1, le=50, description="share of traffic a new canary gets")
    canary_poll_s: float = Field(1.0, gt=0, le=60, description="seconds between canary looks")
    kserve_namespace: str = Field("mlops", description="namespace of the InferenceService")
    kserve_service: str | None = Field(
        None,
        pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
        description="InferenceService name; default: the model's name, so each model has its own "
        "(one name set for every flow run would point every model at one service)",
    )
    image: str | None = Field(
        None,
        description="the project's image, pinned to the tag or digest CI built: flow runs, the "
        "InferenceService's predictor and the Kubeflow pipeline's pods all run it "
        "(`python -m deployments.setup --target kubernetes --image` sets it)",
    )
    kube_context: str | None = Field(None, description="kubeconfig context outside a cluster")

    _overrides: dict[str, Any] = PrivateAttr(default_factory=dict)  # what get_settings was given

    @property
    def inference_service(self) -> str:
        """The model's InferenceService: `kserve_service` when set, else the model's name."""
        return self.kserve_service or self.model_name

    def reconfigured(self, config: Mapping[str, Mapping[str, Any]]) -> Settings:
        """These settings rebuilt with a model's stored policy sections under them: the
        environment and this run's arguments still win."""
        return get_settings(config=config, **self._overrides)

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not value.replace("-", "").replace(".", "").isalnum() or value != value.lower():
            raise ValueError(f"bucket {value!r} is not a valid S3 bucket name")
        return value

    @field_validator("image")
    @classmethod
    def _pinned_image(cls, value: str | None) -> str | None:
        return value if value is None else checked_image(value)

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

    @model_validator(mode="before")
    @classmethod
    def _nest_legacy_names(cls, data: Any) -> Any:
        """Flat names of earlier releases go into their policy; a flat name, when given, wins.
        The drift policy samples with the run's seed unless it names its own."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for flat, targets in LEGACY_NAMES.items():
            if flat in data:
                value = data.pop(flat)
                for policy, field in targets:
                    data[policy] = {**_as_dict(data.get(policy)), field: value}
        seed = _valid_seed(data.get("seed", cls.model_fields["seed"].default))
        inherited = {"drift": {"seed": seed}} if seed is not None else {}
        configured = _MODEL_CONFIG.get() or {}  # the model's stored policies: under env, arguments
        for policy in {*inherited, *RUN_DEFAULTS, *configured}:
            data[policy] = _merged(
                inherited.get(policy),
                RUN_DEFAULTS.get(policy),
                configured.get(policy),
                data.get(policy),  # the environment and the run's arguments, merged already
            )
        return data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _LegacyEnvironment(settings_cls), env_settings


def _valid_seed(value: Any) -> int | None:
    """The run's seed if it is one (a bad one is reported once, on `seed` itself)."""
    try:
        seed = int(value)
    except (TypeError, ValueError):
        return None
    return seed if seed >= 0 else None


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_unset=True)
    return dict(value or {})


def _merged(*layers: Any) -> dict[str, Any]:
    """Policy sections merged at every depth, a later layer winning leaf by leaf: a stored
    `training: {search: {budget_s: 20}}` keeps its budget under MLOPS_TRAINING__SEARCH__CV."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in _as_dict(layer).items():
            if isinstance(value, Mapping | BaseModel):
                below = merged.get(key)
                value = _merged(below if isinstance(below, Mapping) else None, value)
            merged[key] = value
    return merged


class _LegacyEnvironment(PydanticBaseSettingsSource):
    """MLOPS_MIN_R2 and the other flat variables of earlier releases, as flat keys."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return {
            flat: os.environ[f"MLOPS_{flat.upper()}"]
            for flat in LEGACY_NAMES
            if f"MLOPS_{flat.upper()}" in os.environ
        }


# MLOPS_* variables that are not settings: read by the tooling around the settings object.
NOT_SETTINGS = frozenset(
    {"MLOPS_CACHE_DIR", "MLOPS_RELIABILITY_REPORT", "MLOPS_SECRET_VARS", "MLOPS_REASON",
     "MLOPS_TRAINING_S3_ACCESS_KEY", "MLOPS_TRAINING_S3_SECRET_KEY"}
)  # fmt: skip
LOG = logging.getLogger(__name__)
_GATE = ("min_r2", "max_mape", "max_rmse", "champion_margin", "slice_error_factor",
         "min_slice_rows", "invariance_tolerance")  # fmt: skip
# Flat setting names of earlier releases -> where they live now (policy, field).
LEGACY_NAMES: dict[str, tuple[tuple[str, str], ...]] = {
    **{name: (("gate", name),) for name in _GATE},
    "drift_method": (("drift", "method"),),
    "drift_threshold": (("drift", "numeric_threshold"), ("drift", "categorical_threshold")),
    "drift_share": (("drift", "drift_share"),),
    "canary_max_wait_s": (("canary", "max_window_s"),),
}
# A model's stored policy sections while get_settings builds its settings (see get_settings).
_MODEL_CONFIG: ContextVar[Mapping[str, Mapping[str, Any]] | None] = ContextVar(
    "model_config", default=None
)
# Where a run's default differs from the policy's own (the flows' analysis window is 10 minutes).
RUN_DEFAULTS: dict[str, dict[str, Any]] = {"canary": {"max_window_s": 600.0}}
_POLICIES = {"gate": GatePolicy, "canary": CanaryPolicy, "drift": DriftPolicy,
             "guard": GuardPolicy, "training": TrainingPolicy,
             "training_set": TrainingSetPolicy}  # fmt: skip


def known_variables() -> set[str]:
    """Every MLOPS_* variable that sets something: fields, policy fields at every depth
    (MLOPS_TRAINING__SEARCH__ENABLED; a nested section, as JSON, too), legacy flat names."""
    names = {f"MLOPS_{name.upper()}" for name in Settings.model_fields if name not in _POLICIES}
    names |= {f"MLOPS_{name.upper()}" for name in LEGACY_NAMES}
    for policy, model in _POLICIES.items():
        names |= {_variable(key) for key, _, _ in _policy_fields(model, policy)}
    return names


def _policy_fields(model: type[BaseModel], path: str) -> Iterator[tuple[str, FieldInfo, bool]]:
    """Every field of `model` as (its dotted key, the field, whether it is a nested section),
    a section's own fields following it, at any depth."""
    for name, field in model.model_fields.items():
        key = f"{path}.{name}"
        nested = _nested_model(field.annotation)
        section = nested is not None and nested is not model
        yield key, field, section
        if section:
            yield from _policy_fields(nested, key)


def _variable(key: str) -> str:
    """The environment variable of a dotted policy key (training.search.cv: MLOPS_TRAINING__SEARCH__CV)."""
    return "MLOPS_" + key.upper().replace(".", "__")


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (`Policy` or `Policy | None`), else None."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def policy_reference() -> str:
    """Every policy key as a Markdown table (README "Every policy key"): its path in a model's
    configuration file, its variable, its default and description, read from the policies."""
    rows = ["| key | variable | default | meaning |", "|---|---|---|---|"]
    for policy, model in _POLICIES.items():
        run_defaults = RUN_DEFAULTS.get(policy, {})
        for key, field, section in _policy_fields(model, policy):
            if section:
                continue  # its fields have rows of their own
            shown = f"`{json.dumps(field.get_default(call_default_factory=True), default=str)}`"
            name = key.removeprefix(f"{policy}.")  # a run's defaults are top-level fields
            if name in run_defaults:
                shown += f" (a flow run's: `{json.dumps(run_defaults[name])}`)"
            meaning = (field.description or "").replace("|", "\\|")
            rows.append(f"| `{key}` | `{_variable(key)}` | {shown} | {meaning} |")
    return "\n".join(rows) + "\n"


def unknown_variables(environ: Mapping[str, str]) -> dict[str, str | None]:
    """MLOPS_* variables that set nothing (a typo?), each with the setting it most resembles."""
    known = known_variables()
    unknown = sorted(k for k in environ if k.startswith("MLOPS_") and k not in known | NOT_SETTINGS)
    return {k: next(iter(difflib.get_close_matches(k, known, n=1)), None) for k in unknown}


def get_settings(
    config: Mapping[str, Mapping[str, Any]] | None = None, **overrides: Any
) -> Settings:
    """Build the settings now (never at import), with per-run overrides on top of the env.

    `config`: a model's stored policy sections (tasks/registry/configs.py), under both the
    environment and `overrides`; `Settings.reconfigured` rebuilds a run's settings with them.
    """
    for variable, closest in unknown_variables(os.environ).items():
        hint = f"; did you mean {closest}?" if closest else ""
        LOG.warning("%s is not a setting and is ignored%s", variable, hint)
    # A policy given as a model sets the fields it was given, as a dict does: merged with the
    # environment leaf by leaf rather than replacing its whole section.
    given = {
        key: _as_dict(value) if isinstance(value, BaseModel) else value
        for key, value in overrides.items()
        if value is not None
    }
    token = _MODEL_CONFIG.set({name: dict(section) for name, section in (config or {}).items()})
    try:
        settings = Settings(**given)
    finally:
        _MODEL_CONFIG.reset(token)
    settings._overrides = given
    return settings
