"""The scenario's last steps: more models, from users' CSVs, beside the house-price one.

The CSV is scikit-learn's bundled diabetes data set (real measurements, a regression target),
published to the bucket as a user would upload it. `mlops init` infers its configuration; it is
stored, signed, in the registry; the `ci-checks` deployment then validates the CSV against that
contract and gates a candidate against the naive baseline — the same flows, another model.

Then a classifier: scikit-learn's breast-cancer set (its labels as text), configured the same
way, gets a model server of its own and is trained by the `retrain` deployment; the registered
event deploys it to that server (the worker finds it by its record), which answers the class
and every class's probability.
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


CLASSIFIER_MODEL = "breast-cancer"


def publish_classifier() -> tuple[str, list[dict]]:
    """Breast cancer's CSV in the bucket and its inferred configuration stored: (CSV URI, a few
    rows to ask the served model about, without their labels)."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.assign(target=data.frame["target"].map(dict(enumerate(data.target_names))))
    uri, _ = _publish(CLASSIFIER_MODEL, frame, "target", "sklearn's breast cancer data set", {})
    return uri, frame.drop(columns="target").head(3).to_dict(orient="records")


def publish_user_model() -> tuple[str, list[str]]:
    """The user's CSV in the bucket and its inferred configuration stored: (CSV URI, decisions)."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    return _publish(USER_MODEL, frame, "target", "sklearn's diabetes data set", SMALL_DATA_TRAINING)


def _publish(
    name: str, frame, target: str, description: str, training: dict
) -> tuple[str, list[str]]:
    """The CSV under datasets/<name>/, and its inferred configuration (with `training`) stored
    signed in the registry, as `mlops init --register` would: (the CSV's URI, the decisions)."""
    settings = get_settings(model_name=name)
    registry = open_registry(settings, create_bucket=True)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    key = f"datasets/{name}/{name}.csv"
    registry.store.put_bytes(key, buffer.getvalue().encode(), "text/csv")
    config, decisions = infer_config(frame, target, name, description)
    config = config.model_copy(update={"training": training})
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / f"{name}.yaml"
        path.write_text(config_yaml(config, decisions, f"{name}.csv"), encoding="utf-8")
        publish_config(registry, path)
    return f"s3://{settings.bucket}/{key}", decisions
