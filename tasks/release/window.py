"""The canary window: both versions' evidence counted from the serving logs on S3.

Every target writes the same logs, the local model server and KServe pods alike: one row per
input row with its request id, version, latency, status and prediction; labels join them later
by (request id, row). `version_evidence` counts one version's evidence from such rows, a pure
function; `CanaryWindow` keeps the rows of one window, reading each S3 file once across polls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tasks.data.contract import class_text
from tasks.decisions.canary import VersionEvidence
from tasks.decisions.canary_checks import LATENCY_BOUNDS_MS
from tasks.decisions.sequential import Moments
from tasks.modelserver.answers import PROBA_PREFIX, proba_column
from tasks.modelserver.logs import (
    label_file_keys,
    label_frame,
    latest_labels,
    log_file_keys,
    log_frame,
    with_log_defaults,
)
from tasks.s3 import ObjectStore

if TYPE_CHECKING:
    from tasks.registry.versions import Manifest

EPSILON = 1e-15  # log loss clips probabilities here, as scikit-learn does

_BOUNDS = np.asarray(LATENCY_BOUNDS_MS)
_KEPT = ["ts", "request_id", "row", "version", "latency_ms", "status", "prediction"]


@dataclass(frozen=True)
class Loss:
    """A per-row loss of predictions against labels (arrays in, array out), and its name."""

    name: str
    of: Callable[[np.ndarray, np.ndarray], np.ndarray]


def _absolute_error(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.abs(predictions - labels)


ABSOLUTE_ERROR = Loss("absolute error", _absolute_error)


@dataclass(frozen=True)
class Scoring:
    """How one model's logged rows become evidence: the per-row loss on labels, and the logged
    columns whose means the shift check watches.

    A regressor: absolute error on its `prediction`, whose mean is watched. A classifier: log
    loss, -log p(true class) clipped at 1e-15 as scikit-learn does, a proper scoring rule that a
    worse ranking, a worse calibration and more misclassification all raise; its probability
    shift is watched on each class's probability (`proba_<i>`; for two classes the second's
    alone, the first being its complement). `loss_of(rows)` gives one loss per row, NaN where
    there is none (no label, or a label the model has no class for).
    """

    loss_name: str
    loss_of: Callable[[pd.DataFrame], np.ndarray]
    watched: tuple[str, ...] = ("prediction",)

    @classmethod
    def from_loss(cls, loss: Loss) -> Scoring:
        """A regressor's scoring with `loss` on (prediction, label)."""

        def of(rows: pd.DataFrame) -> np.ndarray:
            labels = pd.to_numeric(rows["label"], errors="coerce").to_numpy(dtype="float64")
            predictions = rows["prediction"].to_numpy(dtype="float64")
            known = ~np.isnan(labels) & np.isfinite(predictions)
            losses = np.full(len(rows), np.nan)
            losses[known] = loss.of(predictions[known], labels[known])
            return losses

        return cls(loss.name, of)

    @classmethod
    def classifier(cls, classes: Sequence[str]) -> Scoring:
        """A classifier's scoring over `classes`, in the order of its `proba_<i>` columns."""
        index = {label: i for i, label in enumerate(classes)}
        columns = [proba_column(i) for i in range(len(classes))]

        def log_loss(rows: pd.DataFrame) -> np.ndarray:
            proba = rows.reindex(columns=columns).to_numpy(dtype="float64")
            truth = class_text(rows["label"]).map(lambda v: index.get(v, -1)).to_numpy(int)
            losses = np.full(len(rows), np.nan)
            known = (truth >= 0) & np.isfinite(proba).all(axis=1)
            chosen = proba[np.flatnonzero(known), truth[known]]
            losses[known] = -np.log(np.clip(chosen, EPSILON, 1.0))
            return losses

        watched = tuple(columns[1:]) if len(classes) == 2 else tuple(columns)
        return cls("log loss", log_loss, watched)


REGRESSION = Scoring.from_loss(ABSOLUTE_ERROR)


def scoring_for(manifest: Manifest) -> Scoring:
    """The scoring of the version `manifest` describes (its task and classes)."""
    return Scoring.classifier(manifest.classes) if manifest.classes else REGRESSION


def _moments(values: np.ndarray) -> Moments:
    """`Moments.of` in two numpy passes: a window holds up to millions of rows."""
    if not len(values):
        return Moments()
    mean = float(values.mean())
    return Moments(n=len(values), mean=mean, m2=float(np.square(values - mean).sum()))


def _aware(*times: datetime) -> None:
    if any(at.tzinfo is None for at in times):
        raise ValueError("since and now must be timezone-aware datetimes (use UTC)")


def version_evidence(
    logs: pd.DataFrame,
    version: int,
    since: datetime,
    now: datetime,
    loss: Loss | Scoring = REGRESSION,
) -> VersionEvidence:
    """What `version` did from `since` to `now` (since <= ts < now), from logged rows.

    `logs` has the serving logs' columns, and a `label` column where labels have arrived (NaN
    where not). A request counts once however many rows it has; it is an error if any of its
    rows is; its latency is bucketed only if it was answered and the latency is known (rows
    written before latency was logged have none). Predictions and losses count answered rows.
    """
    _aware(since, now)
    logs = with_log_defaults(logs)
    rows = logs[(logs["version"] == version) & (logs["ts"] >= since) & (logs["ts"] < now)]
    ok = (rows["status"] == "ok").to_numpy()
    per_request = (
        pd.DataFrame(
            {
                "request_id": rows["request_id"].to_numpy(),
                "failed": ~ok,
                "latency_ms": rows["latency_ms"].to_numpy(dtype="float64"),
            }
        )
        .groupby("request_id", sort=False)
        .agg(failed=("failed", "any"), latency_ms=("latency_ms", "max"))
    )
    latency = per_request.loc[~per_request["failed"], "latency_ms"].to_numpy()
    latency = latency[np.isfinite(latency)]
    buckets = np.searchsorted(_BOUNDS, latency, side="left")
    counts = np.bincount(buckets, minlength=len(_BOUNDS) + 1)
    scoring = loss if isinstance(loss, Scoring) else Scoring.from_loss(loss)
    answered = rows[ok]
    watched = []
    for column in scoring.watched:
        values = answered.reindex(columns=[column]).to_numpy("float64")[:, 0]
        watched.append(_moments(values[np.isfinite(values)]))
    losses = np.empty(0)
    if "label" in answered.columns and len(answered):
        losses = np.asarray(scoring.loss_of(answered), dtype="float64")
    return VersionEvidence(
        version=version,
        requests=len(per_request),
        errors=int(per_request["failed"].sum()),
        latency_counts=tuple(int(c) for c in counts),
        predictions=watched[0],
        class_probabilities=tuple(watched) if len(watched) > 1 else (),
        losses=_moments(losses[np.isfinite(losses)]),
        loss_name=scoring.loss_name,
        elapsed_s=max((now - since).total_seconds(), 0.0),
    )


class CanaryWindow:
    """The serving logs and labels of `model` from `since` on, read from S3 poll by poll.

    Each poll lists the files that can have landed since the previous one and fetches those it
    has not read, so every file is fetched once. A file may land late: the writer retries a
    failed put under the key it chose before (named by its newest row), and pods' clocks differ.
    So each listing reaches back `late_s` before the previous one; a file landing later than
    that is not seen (a pod's file holds both versions' rows: neither is favoured by the loss).
    """

    def __init__(
        self,
        store: ObjectStore,
        model: str,
        since: datetime,
        loss: Loss | Scoring = REGRESSION,
        late_s: float = 600.0,
    ) -> None:
        _aware(since)
        self.store, self.model, self.since, self.loss = store, model, since, loss
        self.late = timedelta(seconds=late_s)
        self.read_keys: set[str] = set()  # every log and label file fetched so far
        self._listed_at: datetime | None = None  # this reader's clock at the last full poll
        self._log_parts: list[pd.DataFrame] = []  # in-window rows of each file, not joined yet
        self._label_parts: list[pd.DataFrame] = []
        self._labels = latest_labels([])
        self._rows: pd.DataFrame | None = None  # the parts read so far, joined with labels

    def evidence(
        self, stable: int, canary: int, now: datetime
    ) -> tuple[VersionEvidence, VersionEvidence]:
        """Both versions' evidence from `since` to `now`, after reading what is new on S3."""
        self.poll()
        rows = self.rows()
        return (
            version_evidence(rows, stable, self.since, now, self.loss),
            version_evidence(rows, canary, self.since, now, self.loss),
        )

    def poll(self) -> int:
        """Fetch the log and label files not read yet; how many there were."""
        clock = datetime.now(UTC)
        floor = self.since if self._listed_at is None else self._listed_at - self.late
        floor = max(floor, self.since)
        logs = log_file_keys(self.store, self.model, floor, clock + self.late)
        labels = label_file_keys(self.store, self.model, floor)
        fetched = 0
        for key in (k for k in logs if k not in self.read_keys):
            frame = log_frame(self.store.get_bytes(key))
            kept = _KEPT + [c for c in frame.columns if c.startswith(PROBA_PREFIX)]
            frame = frame.loc[frame["ts"] >= self.since, kept]
            if len(frame):
                self._log_parts.append(frame)
            self.read_keys.add(key)
            fetched += 1
        for key in (k for k in labels if k not in self.read_keys):
            self._label_parts.append(label_frame(self.store.get_bytes(key)))
            self.read_keys.add(key)
            fetched += 1
        # Only once every listed file was read: after a failed fetch the same floor is listed.
        self._listed_at = clock
        return fetched

    def rows(self) -> pd.DataFrame:
        """Every row read so far from `since` on, with its label where one has arrived."""
        if self._label_parts:
            self._labels = latest_labels([self._labels, *self._label_parts])
            self._label_parts = []
            if self._rows is not None:  # a new or corrected label can be any read row's
                self._log_parts.insert(0, self._rows.drop(columns="label"))
                self._rows = None
        if self._log_parts:
            logs = pd.concat(self._log_parts, ignore_index=True)
            labels = self._labels[["request_id", "row", "label"]]
            joined = logs.merge(labels, on=["request_id", "row"], how="left")
            parts = [joined] if self._rows is None else [self._rows, joined]
            self._rows, self._log_parts = pd.concat(parts, ignore_index=True), []
        return pd.DataFrame(columns=[*_KEPT, "label"]) if self._rows is None else self._rows
