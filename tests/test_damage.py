"""Damaged Parquet files (issue 12, item 7): found by their markers and footer, mlmi's own removed so
that the workflow makes them again, and a stage that reads one stops with a line naming it."""
from pathlib import Path

import pandas as pd
import pytest

from mlmi.run import io
from mlmi.run.damage import DamagedFile, parquet_problem, remove_damaged


@pytest.fixture
def good(tmp_path) -> Path:
    path = tmp_path / "results" / "run" / "imputations" / "imp_1.parquet"
    io.write_parquet(pd.DataFrame({"g": [1, 1, 2], "x": [0.5, 1.5, 2.5]}), path)
    return path


def test_a_whole_file_has_no_problem_and_each_damage_is_named(good):
    whole = good.read_bytes()
    assert parquet_problem(good) is None
    good.write_bytes(whole[: len(whole) // 2])
    assert parquet_problem(good) == "it does not end with Parquet's marker 'PAR1': cut short?"
    good.write_bytes(b"")
    assert parquet_problem(good) == "0 bytes, fewer than the 12 of the smallest Parquet file"
    good.write_bytes(b"not Parquet at all")
    assert parquet_problem(good) == "it does not start with Parquet's marker 'PAR1'"
    good.write_bytes(whole[:4] + whole[len(whole) // 2:])           # both markers, the footer length wrong
    assert parquet_problem(good).startswith("its footer cannot be read: ")


def test_only_damaged_outputs_are_removed_each_with_one_line(good, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    damaged = good.with_name("imp_2.parquet")
    damaged.write_bytes(good.read_bytes()[:100])
    assert remove_damaged("results/run") == {"results/run/imputations/imp_2.parquet": (
        "results/run/imputations/imp_2.parquet was damaged (it does not end with Parquet's marker 'PAR1': "
        "cut short?); it will be made again")}
    assert good.exists() and not damaged.exists()
    assert remove_damaged("results/run") == {} and remove_damaged("results/none") == {}


def test_a_stage_reading_a_damaged_file_says_which_in_one_line(good):
    good.write_bytes(good.read_bytes()[:40])
    with pytest.raises(DamagedFile) as error:
        io.read_parquet(good)
    assert str(error.value) == (f"{good} is damaged (it does not end with Parquet's marker 'PAR1': cut short?); "
                                "run snakemake again: it removes damaged outputs and makes them again")
