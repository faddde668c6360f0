"""The scenario's last step: a second model, from a user's CSV, beside the house-price one.

The CSV is scikit-learn's bundled diabetes data set (real measurements, a regression target),
published to the bucket as a user would upload it. `mlops init` infers its configuration; it is
stored, signed, in the registry; the `ci-checks` deployment then validates the CSV against that
contract and gates a candidate against the naive baseline — the same flows, another model.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from tasks.data.inference import infer_config
from tasks.data.model_config import config_yaml
from tasks.registry.configs import publish_config
from tasks.registry.versions import open_registry
from tasks.settings import get_settings

USER_MODEL = "diabetes"
# 442 rows: a smaller, slower-learning booster than the default, declared in its configuration.
SMALL_DATA_TRAINING = {"max_iter": 150, "learning_rate": 0.03, "max_leaf_nodes": 4}


def publish_user_model() -> tuple[str, list[str]]:
    """The user's CSV in the bucket and its inferred configuration stored: (CSV URI, decisions)."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    settings = get_settings(model_name=USER_MODEL)
    registry = open_registry(settings, create_bucket=True)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    key = f"datasets/{USER_MODEL}/diabetes.csv"
    registry.store.put_bytes(key, buffer.getvalue().encode(), "text/csv")
    config, decisions = infer_config(frame, "target", USER_MODEL, "sklearn's diabetes data set")
    config = config.model_copy(update={"training": SMALL_DATA_TRAINING})
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / f"{USER_MODEL}.yaml"
        path.write_text(config_yaml(config, decisions, "diabetes.csv"), encoding="utf-8")
        publish_config(registry, path)
    return f"s3://{settings.bucket}/{key}", decisions
