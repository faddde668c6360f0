"""A training set from labelled traffic: only answered, labelled, in-contract rows, and the
reference sampled down so recent traffic weighs more."""

from __future__ import annotations

import pandas as pd
import pytest

from tasks.data.contract import DataContract
from tasks.data.labelled_traffic import build_training_set, within_contract
from tasks.data.synthetic import generate_house_prices
from tasks.training.policy import TrainingSetPolicy


def _logs(contract: DataContract, rows: int = 1000) -> pd.DataFrame:
    frame = generate_house_prices(rows, seed=5)
    logs = frame[contract.feature_names].copy()
    logs["label"] = frame[contract.target.name]
    logs["request_id"] = [f"r{i // 4}" for i in range(rows)]
    logs["row"] = [i % 4 for i in range(rows)]
    logs["status"] = "ok"
    logs["prediction"] = frame[contract.target.name] * 1.01
    return logs


def test_only_answered_labelled_in_contract_rows_are_kept(contract: DataContract) -> None:
    logs = _logs(contract)
    logs.loc[:99, "label"] = None  # truth not arrived
    logs.loc[100:109, "status"] = "error"  # failed requests teach nothing
    logs.loc[110:114, "neighborhood"] = "atlantis"  # accepted by the server, not the contract
    found = build_training_set(logs, contract, TrainingSetPolicy(min_labelled_rows=100), None, 1)
    assert found.counts == {"logged_rows": 1000, "labelled_rows": 890, "outside_contract": 5,
                            "reference_rows": 0, "needed": 100}  # fmt: skip
    assert len(found.frame) == 885 and set(found.frame["origin"]) == {"traffic"}
    assert not set(found.frame["request_id"]) & {f"r{i // 4}" for i in range(100)}


def test_too_few_rows_give_no_set_but_the_counts(contract: DataContract) -> None:
    found = build_training_set(_logs(contract, 80), contract, TrainingSetPolicy(), None, 1)
    assert found.frame is None and found.labelled_rows == 80 and found.needed == 500


def test_the_reference_is_capped_at_its_share(contract: DataContract) -> None:
    reference = generate_house_prices(5000, seed=9)
    policy = TrainingSetPolicy(min_labelled_rows=100, max_reference_share=0.25)
    found = build_training_set(_logs(contract), contract, policy, reference, 1)
    assert found.reference_rows == 333  # 1000 traffic rows are 75%: 333 reference rows are 25%
    assert set(found.frame.loc[found.frame["origin"] == "reference", "row"]) == {-1}


@pytest.mark.parametrize(
    ("column", "value"),
    [("size_sqft", -5.0), ("size_sqft", float("inf")), ("neighborhood", None), ("price", None)],
)
def test_within_contract_refuses_each_kind_of_bad_row(contract, column, value) -> None:
    frame = generate_house_prices(10, seed=2)
    frame[column] = frame[column].astype(object)
    frame.loc[3, column] = value
    assert within_contract(frame, contract).tolist() == [i != 3 for i in range(10)]


def test_a_classifier_s_logged_text_labels_and_integer_reference_train_as_one_set_of_classes() -> (
    None
):
    """Wine: the logs hold labels as class text ("0"), its CSV reference the integers; a label
    outside the classes is dropped as outside the contract, and the set trains a model that
    answers exactly the contract's classes."""
    from sklearn.datasets import load_wine

    from tasks.data.inference import infer_config
    from tasks.data.validation import conform, validate_frame
    from tasks.registry.datasets import without_provenance
    from tasks.training.model import train_model

    reference = load_wine(as_frame=True).frame
    contract = infer_config(reference, "target", "wine")[0].contract
    logs = reference[contract.feature_names].copy()
    logs["label"] = reference["target"].map(str).astype(object)
    logs.loc[logs.index[:3], "label"] = "9"
    logs = logs.assign(request_id=[f"r{i}" for i in range(len(logs))], row=0, status="ok")
    policy = TrainingSetPolicy(min_labelled_rows=100, max_reference_share=0.2)
    found = build_training_set(logs, contract, policy, reference, seed=1)
    assert found.outside_contract == 3 and found.reference_rows == 43  # 175 traffic rows: 80%
    frame = without_provenance(found.frame)  # as retrain validates it
    assert validate_frame(frame, contract).passed
    trained = train_model(conform(frame, contract), contract, 1, {"max_iter": 20})
    assert list(trained.model.classes_) == ["0", "1", "2"]
