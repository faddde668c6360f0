"""Reading CSVs: malformed files are refused with an error that names the problem."""

from pathlib import Path

import pytest

from tasks.data.loading import DataLoadError, data_digest, load_csv, split_holdout
from tasks.data.synthetic import generate_house_prices


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"   \n\n", "the file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary content"),
        (b"size;price\n1;2\n", "wrong delimiter"),
        (b"size,price\n", "a header but no data rows"),
        (b"size,size,price\n1,2,3\n", "duplicated column names ['size']"),
        ("size,price\n1,caf\xe9\n".encode("latin-1"), "not UTF-8"),
        (b'size,price\n1,"unclosed\n', "not a valid CSV"),
    ],
)
def test_malformed_files_are_named(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "batch.csv"
    path.write_bytes(content)
    with pytest.raises(DataLoadError) as error:
        load_csv(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DataLoadError, match="file not found"):
        load_csv(tmp_path / "absent.csv")
    with pytest.raises(DataLoadError, match="is a directory"):
        load_csv(tmp_path)


def test_s3_uri_needs_a_connection() -> None:
    with pytest.raises(DataLoadError, match="needs an S3 connection"):
        load_csv("s3://mlops/datasets/x.csv")


def test_round_trip_and_digest(tmp_path: Path) -> None:
    frame = generate_house_prices(200, seed=1)
    frame.to_csv(tmp_path / "houses.csv", index=False)
    loaded = load_csv(tmp_path / "houses.csv")
    assert list(loaded.columns) == list(frame.columns)
    assert data_digest(loaded) == data_digest(load_csv(tmp_path / "houses.csv"))
    changed = loaded.copy()
    changed.loc[0, "price"] += 1
    assert data_digest(changed) != data_digest(loaded)


def test_holdout_split_is_seeded() -> None:
    frame = generate_house_prices(100, seed=1)
    first, second = split_holdout(frame, 0.2, seed=7), split_holdout(frame, 0.2, seed=7)
    assert first[1].equals(second[1]) and len(first[1]) == 20
    assert not split_holdout(frame, 0.2, seed=8)[1].equals(first[1])
