"""A model's own local server is found by its record (`mlops serve` writes one); the others are
driven at `serving_url`. A worker started by the stack serves flow runs of every model, so the
address cannot be one variable for all of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.release.target import local_server_url, open_target
from tasks.settings import get_settings


def test_a_model_with_a_record_is_driven_at_its_own_server(tmp_path: Path) -> None:
    (tmp_path / "energy.json").write_text(json.dumps({"pid": 1, "url": "http://127.0.0.1:8091"}))
    settings = get_settings(serving_records=tmp_path, serving_url="http://127.0.0.1:8080")
    assert local_server_url(settings.model_copy(update={"model_name": "energy"})) == (
        "http://127.0.0.1:8091"
    )
    assert local_server_url(settings) == "http://127.0.0.1:8080"  # house-price: no record
    target = open_target(get_settings(serving_records=tmp_path, model_name="energy"))
    assert (target.url, target.model_name) == ("http://127.0.0.1:8091", "energy")
    assert local_server_url(get_settings(model_name="energy")) == get_settings().serving_url


def test_an_unreadable_record_is_named_not_skipped(tmp_path: Path) -> None:
    (tmp_path / "energy.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"serving record .*energy\.json is unreadable"):
        local_server_url(get_settings(serving_records=tmp_path, model_name="energy"))
