"""The world around the loop in the scenario: data, users, a bad model, and what we observe."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pandas as pd
from prefect import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.events import emit_event

from flows.scenario.faulty import Blurred
from infra.traffic import Traffic, TrafficReport
from tasks.data.contract import load_contract
from tasks.data.loading import data_digest
from tasks.data.synthetic import CorruptionSpec, DriftSpec, generate_house_prices
from tasks.events import announce_registration, model_resource
from tasks.modelserver.logs import read_serving_logs
from tasks.registry.datasets import read_snapshot
from tasks.registry.versions import DataSummary, ModelRegistry, ModelSpec, open_registry
from tasks.s3 import ObjectStore, connect
from tasks.settings import Settings, get_settings
from tasks.training.model import library_versions, train_model

MARKET_MOVE = DriftSpec(price_level=1.15, size_shift=0.25, age_shift_years=8)


class ScenarioFailed(RuntimeError):
    """A step of the scenario did not go as the loop promises; the message says which."""


@dataclass
class World:
    settings: Settings
    serving_url: str
    rows: int = 4000
    traffic_reports: list[TrafficReport] = field(default_factory=list)
    # The stack's way to start another model's server (LocalStack.add_model_server).
    add_model_server: Callable[[str], str] | None = None

    @classmethod
    def from_environment(
        cls,
        serving_url: str,
        rows: int = 4000,
        add_model_server: Callable[[str], str] | None = None,
    ) -> World:
        return cls(get_settings(), serving_url, rows, add_model_server=add_model_server)

    @property
    def model(self) -> str:
        return self.settings.model_name

    @property
    def target(self) -> str:
        return load_contract(self.settings.contract_path).target.name

    @property
    def store(self) -> ObjectStore:
        return connect(self.settings)

    @property
    def registry(self) -> ModelRegistry:
        return open_registry(self.settings)

    def houses(
        self, seed: int, rows: int | None = None, drifted: bool = False, corrupt: bool = False
    ) -> pd.DataFrame:
        damage = CorruptionSpec(null_share=0.01, negative_size_share=0.02) if corrupt else None
        return generate_house_prices(
            rows or self.rows, seed=seed, drift=MARKET_MOVE if drifted else None, corruption=damage
        )

    def publish(self, name: str, frame: pd.DataFrame) -> str:
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        key = f"datasets/{self.model}/{name}.csv"
        self.store.put_bytes(key, buffer.getvalue().encode(), "text/csv")
        return f"s3://{self.settings.bucket}/{key}"

    def served(self, url: str | None = None) -> dict:
        """The routing of the model server at `url` (default: the house-price one)."""
        url = url or self.serving_url
        return httpx.get(f"{url}/mlops/v1/routing", timeout=10).json()["routing"]

    def serves(self, url: str, version: int) -> bool:
        """Whether the model server at `url` serves `version` as its stable version."""
        return self.served(url)["stable_version"] == version

    @staticmethod
    def ask(url: str, model: str, rows: list[dict]) -> dict:
        """A user's V1 request to `model`'s server; its answer."""
        answer = httpx.post(
            f"{url}/v1/models/{model}:predict", json={"instances": rows}, timeout=30
        )
        if answer.status_code != 200:
            raise ScenarioFailed(f"{model} answered {answer.status_code}: {answer.text[:200]}")
        return answer.json()

    def champion_served(self, version: int) -> bool:
        routing = self.served()
        return (
            self.registry.alias("champion") == version
            and routing["stable_version"] == version
            and routing["canary_version"] is None
        )

    def rolled_back(self, version: int) -> bool:
        moves = [(m.alias, m.from_version, m.to_version) for m in self.registry.history()]
        return ("canary", version, None) in moves and self.served()["canary_version"] is None

    @staticmethod
    def switch_traffic(users: Traffic, rows: pd.DataFrame) -> None:
        users.rows = rows.reset_index(drop=True)

    def emit_extra_drift_events(self, count: int) -> None:
        """The same alert fired again (another monitor, a retry): it must not start more retrains."""
        for index in range(count):
            emit_event(
                event="mlops.drift.detected",
                resource=model_resource(self.model),
                payload={"summary": f"repeated alert {index + 1}", "data_uri": None},
            )

    def labelled_rows(self, seconds: float) -> int:
        """Rows served in the last `seconds` whose truth has arrived."""
        until = datetime.now(UTC)
        logs = read_serving_logs(self.store, self.model, until - timedelta(seconds=seconds), until)
        return int(logs["label"].notna().sum()) if "label" in logs else 0

    def training_rows(self, version: int) -> dict[str, int]:
        """Where version's training rows came from, read from its snapshot in the registry."""
        data = self.registry.manifest(version).data
        snapshot = read_snapshot(self.store, data.source, data.digest)
        origin = (
            snapshot["origin"] if "origin" in snapshot else pd.Series(["batch"] * len(snapshot))
        )
        return {name: int((origin == name).sum()) for name in ("traffic", "reference", "batch")}

    def retrain_runs_by_event(self) -> int:
        """Retrain runs that completed after being started by a drift event."""
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["retrain"]))
            )
        return sum(
            1
            for run in runs
            if "drift" in str(run.parameters.get("reason", ""))
            and run.state
            and run.state.is_completed()
        )

    def register_bad_model(self) -> int:
        """A model that prices every house 60% too high, registered by hand past the gate."""
        contract = load_contract(self.settings.contract_path)
        frame = self.houses(seed=6, drifted=True)
        frame[contract.target.name] *= 1.6
        return self._register_by_hand(train_model(frame, contract, seed=6).model, frame)

    def register_blurred_model(self) -> int:
        """Right on average, wrong on each house: only labelled truth can tell (the guard's case)."""
        contract = load_contract(self.settings.contract_path)
        frame = self.houses(seed=7, drifted=True)
        model = Blurred(train_model(frame, contract, seed=7).model, spread=0.4)
        return self._register_by_hand(model, frame)

    def _register_by_hand(self, model: object, frame: pd.DataFrame) -> int:
        contract = load_contract(self.settings.contract_path)
        spec = ModelSpec(
            features=contract.feature_names,
            target=contract.target.name,
            metrics={},
            data=DataSummary(digest=data_digest(frame), rows=len(frame)),
            contract={"name": contract.name},
            git_revision="hotfix",
            params={},
            library_versions=library_versions(),
            reason="hotfix by hand",
            parent=self.registry.alias("champion"),
        )
        manifest = self.registry.register(model, spec)
        announce_registration(manifest, "hotfix by hand, skipped the gate")
        return manifest.version

    @staticmethod
    @contextmanager
    def labels_withheld(users: Traffic) -> Iterator[None]:
        """The truth is late for a while (a holiday at the land registry), then all arrives."""
        every, users.label_every_s = users.label_every_s, float("inf")
        try:
            yield
        finally:
            users.label_every_s = every

    def check_agreement(self) -> str:
        champion, routing = self.registry.alias("champion"), self.served()
        history = self.registry.version_at("champion", datetime.now(UTC))
        if not champion == routing["stable_version"] == history:
            raise ScenarioFailed(f"champion {champion}, served {routing}, history {history}")
        return f"champion v{champion} = served v{routing['stable_version']} = alias history"
