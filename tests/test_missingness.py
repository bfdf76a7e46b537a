"""Amelia-style missingness summary against counts made by hand."""
import numpy as np
import pandas as pd
import pytest

from mlmi.data.missingness import summarize_missingness

# Rows by hand (x = missing):   a  b  c
#   0: complete                 .  .  .
#   1: b missing                .  x  .
#   2: complete                 .  .  .
#   3: c missing                .  .  x
#   4: b missing                .  x  .
#   5: b and c missing          .  x  x
DATA = pd.DataFrame({
    "a": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    "b": pd.array([1, None, 3, 4, None, None], dtype="Int64"),
    "c": ["u", "v", "w", None, "y", np.nan],
})


def test_fractions_rows_and_listwise():
    summary = summarize_missingness(DATA, ["a", "b"])
    assert summary["fraction_missing"] == {"a": 0.0, "b": pytest.approx(3 / 6), "c": pytest.approx(2 / 6)}
    assert list(summary["fraction_missing"]) == ["a", "b", "c"]
    assert summary["n_rows"] == 6
    assert summary["rows_listwise"] == 3          # rows 0, 2, 3: c is not a model variable
    assert summarize_missingness(DATA, ["a", "b", "c"])["rows_listwise"] == 2


def test_patterns_counted_with_the_complete_one_most_frequent_first():
    summary = summarize_missingness(DATA, ["a"])
    assert summary["n_patterns"] == 4             # complete, b, c, b+c
    patterns = summary["patterns"]
    assert list(patterns.columns) == ["a", "b", "c", "n_rows"]
    assert patterns["n_rows"].tolist() == [2, 2, 1, 1]
    # ties keep the order of first appearance: complete (row 0) before b (row 1), c before b+c
    assert patterns[["a", "b", "c"]].values.tolist() == [
        [False, False, False], [False, True, False], [False, False, True], [False, True, True]]
    assert patterns["n_rows"].sum() == summary["n_rows"]


def test_complete_data_has_one_pattern():
    summary = summarize_missingness(DATA[["a"]], ["a"])
    assert summary["n_patterns"] == 1
    assert summary["rows_listwise"] == 6


def test_unknown_model_variable_is_named():
    with pytest.raises(KeyError, match="nope"):
        summarize_missingness(DATA, ["a", "nope"])
