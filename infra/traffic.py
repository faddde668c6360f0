"""Simulated users for the local stack: requests to the model server, and the truth later.

Every request carries an id; the sale prices (labels) of the houses it asked about are attached
to the serving logs by that id after a delay, as they would arrive in production.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import pandas as pd

from tasks.modelserver.logs import attach_labels
from tasks.s3 import ObjectStore


@dataclass
class TrafficReport:
    sent: int = 0
    failed: int = 0
    by_version: Counter = field(default_factory=Counter)
    labels_attached: int = 0
    errors: list[str] = field(default_factory=list)


class Traffic:
    """A bounded background stream of V1 requests (loopback only), with labels attached by id."""

    def __init__(self, url: str, model: str, rows: pd.DataFrame, target: str, store: ObjectStore,
                 batch: int = 4, label_every_s: float = 1.0, max_requests: int = 20_000,
                 classes: Sequence[str] | None = None) -> None:  # fmt: skip
        """`classes`: a classifier's, its labels then attached as class text (else numbers)."""
        self.url, self.model, self.target, self.store = url.rstrip("/"), model, target, store
        self.rows, self.batch, self.label_every_s = (
            rows.reset_index(drop=True),
            batch,
            label_every_s,
        )
        self.max_requests = max_requests
        self.classes = list(classes) if classes is not None else None
        self.report = TrafficReport()
        self._stop = threading.Event()
        self._pending: list[dict] = []
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> TrafficReport:
        self._stop.set()
        self._thread.join(timeout=30)
        self._attach_labels()
        return self.report

    def _run(self) -> None:
        features = [c for c in self.rows.columns if c != self.target]
        last_label = time.monotonic()
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self._stop.is_set() and self.report.sent < self.max_requests:
                start = (self.report.sent * self.batch) % max(1, len(self.rows) - self.batch)
                chunk = self.rows.iloc[start : start + self.batch]
                self._send(client, chunk, features)
                if time.monotonic() - last_label >= self.label_every_s:
                    self._attach_labels()
                    last_label = time.monotonic()

    def _send(self, client: httpx.Client, chunk: pd.DataFrame, features: list[str]) -> None:
        request_id = uuid.uuid4().hex
        body = {"instances": chunk[features].to_dict(orient="records")}
        self.report.sent += 1
        try:
            response = client.post(f"/v1/models/{self.model}:predict", json=body,
                                   headers={"x-request-id": request_id})  # fmt: skip
        except httpx.HTTPError as error:
            self.report.failed += 1
            self.report.errors.append(str(error))
            return
        if response.status_code != 200:
            self.report.failed += 1
            self.report.errors.append(f"{response.status_code}: {response.text[:200]}")
            return
        self.report.by_version[response.headers.get("x-model-version")] += 1
        labels = chunk[self.target] if self.classes else chunk[self.target].astype(float)
        self._pending += [{"request_id": request_id, "row": i, "label": label}
                          for i, label in enumerate(labels)]  # fmt: skip

    def _attach_labels(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            attach_labels(self.store, self.model, pd.DataFrame(pending), self.classes)
            self.report.labels_attached += len(pending)
