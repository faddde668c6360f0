"""`mlops init`: reads a data file, writes one configuration that loads back, says what it decided,
and refuses — exit code 2, the problem named, nothing written — what it cannot or must not do."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.datasets import load_diabetes

from flows.cli import main
from tasks.data.contract import load_contract
from tasks.data.inference import infer_config
from tasks.data.loading import load_csv
from tasks.data.model_config import load_model_config
from tasks.data.synthetic import generate_house_prices
from tasks.data.validation import validate_frame

COPY, ABSENT = b"<the house csv>", None


@pytest.fixture
def house_csv(tmp_path: Path) -> Path:
    path = tmp_path / "house_prices.csv"
    generate_house_prices(500, seed=4).to_csv(path, index=False)
    return path


def test_init_writes_a_configuration_named_after_the_file(
    house_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init", "--data", str(house_csv), "--target", "price"]) == 0
    out = tmp_path / "house-prices.yaml"
    config = load_model_config(out)
    expected, decisions = infer_config(load_csv(house_csv), "price", "house-prices")
    assert config.contract.model_dump(exclude={"description"}) == expected.contract.model_dump(
        exclude={"description"}
    )
    assert validate_frame(load_csv(house_csv), load_contract(out)).passed
    printed = capsys.readouterr().out
    assert all(decision in printed for decision in decisions)
    assert "wrote house-prices.yaml" in printed


def test_init_reads_parquet_and_writes_where_told(tmp_path: Path) -> None:
    frame = load_diabetes(as_frame=True).frame
    frame.to_parquet(tmp_path / "diabetes.parquet")
    out = tmp_path / "configs" / "d.yaml"
    out.parent.mkdir()
    args = ["init", "--data", str(tmp_path / "diabetes.parquet"), "--target", "target"]
    assert main([*args, "--name", "diabetes", "--out", str(out)]) == 0
    contract = load_contract(out)
    assert (contract.name, contract.task) == ("diabetes", "regression")
    assert validate_frame(frame, contract).passed


def test_init_refuses_to_overwrite_unless_forced(house_csv: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "mine.yaml"
    out.write_text("my reviewed edits\n")
    args = ["init", "--data", str(house_csv), "--target", "price", "--out", str(out)]
    assert main(args) == 2
    assert "mine.yaml exists; pass --force" in capsys.readouterr().err
    assert out.read_text() == "my reviewed edits\n"
    assert main([*args, "--force"]) == 0
    assert load_contract(out).target.name == "price"


@pytest.mark.parametrize(
    ("file", "content", "target", "message"),
    [
        ("houses.csv", COPY, "prize", "target column 'prize' is not in the data; did you mean"),
        ("houses.csv", b"", "price", "the file is empty"),
        ("houses.csv", b"price,size\n", "price", "a header but no data rows"),
        ("houses.json", b'[{"price": 1}]', "price", "a .json file; expected .csv or .parquet"),
        ("houses.parquet", b"not parquet", "price", "not a readable Parquet file"),
        ("absent.csv", ABSENT, "price", "absent.csv: file not found"),
    ],
)
def test_init_names_the_problem_and_writes_nothing(
    house_csv: Path, tmp_path: Path, capsys, file: str, content, target: str, message: str
) -> None:
    data = tmp_path / file
    if content is not ABSENT:
        data.write_bytes(house_csv.read_bytes() if content == COPY else content)
    out = tmp_path / "out.yaml"
    assert main(["init", "--data", str(data), "--target", target, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
