"""Settings: built from MLOPS_* at call time, overridable per run, secrets never shown."""

import pytest
from pydantic import ValidationError

from tasks.settings import get_settings


def test_environment_is_read_when_called(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_MODEL_NAME", "energy-use")
    monkeypatch.setenv("MLOPS_MIN_R2", "0.9")
    settings = get_settings()
    assert settings.model_name == "energy-use"
    assert settings.gate.min_r2 == 0.9


def test_overrides_win_and_none_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_MODEL_NAME", "from-env")
    assert get_settings(model_name="from-run").model_name == "from-run"
    assert get_settings(model_name=None).model_name == "from-env"


def test_secrets_are_not_printed() -> None:
    settings = get_settings(s3_access_key="AKIDEXAMPLE", s3_secret_key="very-secret-value")
    assert "very-secret-value" not in repr(settings)
    assert "very-secret-value" not in settings.model_dump_json()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("bucket", "Bad_Bucket"),
        ("min_r2", 2),
        ("model_name", "Has Spaces"),
        ("holdout_fraction", 0.9),
    ],
)
def test_invalid_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        get_settings(**{field: value})


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(ValidationError, match="not_a_setting"):
        get_settings(not_a_setting=1)


def test_a_misspelt_variable_is_named_with_the_setting_it_resembles(monkeypatch, caplog) -> None:
    from tasks.settings import unknown_variables

    monkeypatch.setenv("MLOPS_CANARY_PERCNT", "30")
    monkeypatch.setenv("MLOPS_CACHE_DIR", "/tmp/x")  # tooling, not a setting: no warning
    assert unknown_variables({"MLOPS_CANARY_PERCNT": "30", "MLOPS_CACHE_DIR": "/x"}) == {
        "MLOPS_CANARY_PERCNT": "MLOPS_CANARY_PERCENT"
    }
    with caplog.at_level("WARNING", logger="tasks.settings"):
        settings = get_settings()
    assert settings.canary_percent == 10  # the typo set nothing...
    assert "MLOPS_CANARY_PERCNT is not a setting" in caplog.text  # ...and says so
    assert "did you mean MLOPS_CANARY_PERCENT?" in caplog.text
    assert "MLOPS_CACHE_DIR" not in caplog.text


def test_policies_are_nested_and_the_flat_names_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_GATE__MAX_MAPE", "0.3")
    monkeypatch.setenv("MLOPS_DRIFT_THRESHOLD", "0.2")  # the flat name of earlier releases
    monkeypatch.setenv("MLOPS_CANARY__MIN_REQUESTS", "80")
    settings = get_settings(seed=7)
    assert settings.gate.max_mape == 0.3 and settings.gate.min_r2 is None  # bars are off by default
    assert settings.drift.numeric_threshold == settings.drift.categorical_threshold == 0.2
    assert settings.drift.seed == 7  # the drift sample follows the run's seed
    assert (settings.canary.min_requests, settings.canary.max_window_s) == (80, 600.0)
    assert get_settings(canary_max_wait_s=30).canary.max_window_s == 30  # a run's override wins


def test_a_nested_variable_is_known_and_a_misspelt_one_is_not() -> None:
    from tasks.settings import unknown_variables

    known = {"MLOPS_GATE__MIN_R2": "1", "MLOPS_TRAINING__MAX_ITER": "5", "MLOPS_MIN_R2": "1"}
    assert unknown_variables(known) == {}
    assert unknown_variables({"MLOPS_GATE__MIN_R3": "1"}) == {
        "MLOPS_GATE__MIN_R3": "MLOPS_GATE__MIN_R2"
    }


def test_a_bad_policy_value_names_its_policy_and_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_TRAINING__LEARNING_RATE", "2")
    with pytest.raises(ValidationError) as raised:
        get_settings()
    assert [error["loc"] for error in raised.value.errors()] == [("training", "learning_rate")]


def test_gate_bars_are_off_by_default_and_settable_per_run(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = get_settings().gate
    assert (gate.min_r2, gate.max_mape, gate.max_rmse) == (None, None, None)
    assert gate.min_improvement_over_baseline == 0.10
    monkeypatch.setenv("MLOPS_GATE__MIN_R2", "0.6")
    monkeypatch.setenv("MLOPS_GATE__MIN_IMPROVEMENT_OVER_BASELINE", "0.25")
    assert (get_settings().gate.min_r2, get_settings().gate.min_improvement_over_baseline) == (
        0.6,
        0.25,
    )
    assert get_settings(gate={"min_r2": 0.5}).gate.min_r2 == 0.5  # a run's override
    monkeypatch.setenv("MLOPS_MIN_R2", "0.7")  # the flat name of earlier releases wins
    assert get_settings().gate.min_r2 == 0.7


def test_the_target_transform_is_none_unless_declared(monkeypatch: pytest.MonkeyPatch) -> None:
    assert get_settings().training.target_transform == "none"
    monkeypatch.setenv("MLOPS_TRAINING__TARGET_TRANSFORM", "log")
    assert get_settings().training.params()["target_transform"] == "log"
    monkeypatch.setenv("MLOPS_TRAINING__TARGET_TRANSFORM", "sqrt")
    with pytest.raises(ValidationError, match="target_transform"):
        get_settings()


def test_the_retired_log_target_variable_is_refused_not_ignored(monkeypatch) -> None:
    """MLOPS_TRAINING__LOG_TARGET is gone (target_transform replaces it): setting it stops the run
    instead of training silently without the transform it asked for."""
    monkeypatch.setenv("MLOPS_TRAINING__LOG_TARGET", "true")
    with pytest.raises(ValidationError) as raised:
        get_settings()
    assert [error["loc"] for error in raised.value.errors()] == [("training", "log_target")]


def test_a_variable_of_a_nested_section_is_known_and_applied(monkeypatch, caplog) -> None:
    """MLOPS_TRAINING__SEARCH__ENABLED sets training.search.enabled: no 'is not a setting'."""
    from tasks.settings import unknown_variables

    monkeypatch.setenv("MLOPS_TRAINING__SEARCH__ENABLED", "true")
    monkeypatch.setenv("MLOPS_TRAINING__SEARCH__BUDGET_S", "5")
    assert unknown_variables({"MLOPS_TRAINING__SEARCH__L2_REGULARIZATION": "[0.1, 1]"}) == {}
    with caplog.at_level("WARNING", logger="tasks.settings"):
        search = get_settings().training.search
    assert (search.enabled, search.budget_s) == (True, 5.0)
    assert "not a setting" not in caplog.text


def test_a_misspelt_variable_of_a_nested_section_is_named_with_the_leaf_it_resembles(
    monkeypatch, caplog
) -> None:
    from tasks.settings import unknown_variables

    assert unknown_variables({"MLOPS_TRAINING__SEARCH__ENABLD": "true"}) == {
        "MLOPS_TRAINING__SEARCH__ENABLD": "MLOPS_TRAINING__SEARCH__ENABLED"
    }
    monkeypatch.setenv("MLOPS_TRAINING__SEARCH__ENABLD", "true")
    with caplog.at_level("WARNING", logger="tasks.settings"), pytest.raises(ValidationError):
        get_settings()  # the search policy refuses the unknown field after the warning
    assert "did you mean MLOPS_TRAINING__SEARCH__ENABLED?" in caplog.text


def test_stored_config_environment_and_run_merge_leaf_by_leaf_at_depth_two(monkeypatch) -> None:
    """Run overrides > environment > the model's stored config > policy defaults, per leaf:
    each level sets its own leaves of training.search, and `cv`, set at all three, is the run's."""
    from tasks.training.policy import SearchPolicy, TrainingPolicy

    stored = {"training": {"max_iter": 50, "search": {"enabled": True, "budget_s": 20, "cv": 4}}}
    monkeypatch.setenv("MLOPS_TRAINING__SEARCH__CANDIDATES", "8")
    monkeypatch.setenv("MLOPS_TRAINING__SEARCH__CV", "5")
    expected = SearchPolicy(enabled=True, budget_s=20, candidates=8, factor=4, cv=6)
    run = get_settings(training={"search": {"factor": 4, "cv": 6}})
    for settings in (
        get_settings(config=stored, training={"search": {"factor": 4, "cv": 6}}),
        run.reconfigured(stored),
        get_settings(config=stored, training=TrainingPolicy(search=SearchPolicy(factor=4, cv=6))),
    ):
        assert settings.training.search == expected
        assert settings.training.max_iter == 50  # a stored leaf beside the section stays too
    assert get_settings(config=stored).training.search.cv == 5  # the environment over the store


def test_each_model_has_its_own_inference_service_unless_one_is_named() -> None:
    """A second model's flow runs drive an InferenceService of its own name: one name set for
    every run (the ConfigMap once did) would deploy "diabetes" over "house-price"."""
    assert get_settings().inference_service == "house-price"
    assert get_settings(model_name="diabetes").inference_service == "diabetes"
    named = get_settings(model_name="diabetes", kserve_service="sugar-v2")
    assert named.inference_service == "sugar-v2"
    with pytest.raises(ValidationError, match="kserve_service"):
        get_settings(kserve_service="Not_A_DNS_Name")


def test_the_readme_lists_every_policy_key_as_the_policies_declare_it() -> None:
    """The README's table of policy keys is generated from the policies: a field added, renamed
    or given another default shows up here until the table is regenerated."""
    from pathlib import Path

    from tasks.settings import known_variables, policy_reference

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("<!-- policy-keys:start -->\n")[1].split("<!-- policy-keys:end -->")[0]
    assert table == policy_reference(), "regenerate it: tasks.settings.policy_reference()"
    listed = {line.split("`")[3] for line in table.splitlines()[2:]}
    assert "MLOPS_TRAINING__SEARCH__BUDGET_S" in listed and listed <= known_variables()
